package imds_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/imds"
)

const ttlHeader = "X-aws-ec2-metadata-token-ttl-seconds"
const tokHeader = "X-aws-ec2-metadata-token"

func TestTokensAreRequiredBoundAndExpire(t *testing.T) {
	l := newLab(t, imds.Options{})
	c := from("127.0.0.1")

	assert.Equal(t, http.StatusBadRequest, l.do(t, c, http.MethodPut, "/latest/api/token").status, "no TTL")
	assert.Equal(t, http.StatusBadRequest, l.do(t, c, http.MethodPut, "/latest/api/token", ttlHeader, "21601").status)
	assert.Equal(t, http.StatusForbidden, l.do(t, c, http.MethodPut, "/latest/api/token", ttlHeader, "60", "X-Forwarded-For", "10.0.0.1").status)
	assert.Equal(t, http.StatusMethodNotAllowed, l.do(t, c, http.MethodGet, "/latest/api/token").status)

	r := l.do(t, c, http.MethodPut, "/latest/api/token", ttlHeader, "60")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "60", r.header.Get(ttlHeader), "the SDKs read the TTL back")
	tok := r.body

	// HttpTokens=required: no token, no answer; a wrong one neither.
	assert.Equal(t, http.StatusUnauthorized, l.do(t, c, http.MethodGet, "/latest/meta-data/instance-id").status)
	assert.Equal(t, http.StatusUnauthorized, l.do(t, c, http.MethodGet, "/latest/meta-data/instance-id", tokHeader, "forged").status)
	r = l.do(t, c, http.MethodGet, "/latest/meta-data/instance-id", tokHeader, tok)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, instanceID, r.body)

	// Another instance cannot use this one's token.
	other := instanceID[:len(instanceID)-1] + "1"
	require.NoError(t, l.acct.AddInstance(awsapi.Instance{ID: other, PrivateIP: netip.MustParseAddr("10.42.2.11"), AvailabilityZone: region + "a"}))
	require.NoError(t, l.srv.Add(imds.Instance{ID: other, Source: netip.MustParseAddr("127.0.0.2")}))
	c2 := from("127.0.0.2")
	assert.Equal(t, http.StatusUnauthorized, l.do(t, c2, http.MethodGet, "/latest/meta-data/instance-id", tokHeader, tok).status)
	assert.Equal(t, other, l.do(t, c2, http.MethodGet, "/latest/meta-data/instance-id", tokHeader, l.token(t, c2)).body)

	// An unknown source is not an instance at all.
	assert.Equal(t, http.StatusNotFound, l.do(t, from("127.0.0.3"), http.MethodPut, "/latest/api/token", ttlHeader, "60").status)

	// Past its TTL the token is refused; the SDKs then fetch a new one.
	later := time.Now().Add(61 * time.Second)
	l.acct.SetClock(func() time.Time { return later })
	assert.Equal(t, http.StatusUnauthorized, l.do(t, c, http.MethodGet, "/latest/meta-data/instance-id", tokHeader, tok).status)
}

// The tokenless allowance covers what cloud-init reads and nothing else:
// never the role credentials.
func TestTokenlessBootAllowance(t *testing.T) {
	l := newLab(t, imds.Options{AllowTokenlessBoot: true})
	c := from("127.0.0.1")
	for path, want := range map[string]int{
		"/2009-04-04/meta-data/instance-id":                  http.StatusOK,
		"/2021-03-23/meta-data/":                             http.StatusOK,
		"/2021-03-23/meta-data/public-keys/0/openssh-key":    http.StatusOK,
		"/2021-03-23/meta-data/iam/info":                     http.StatusOK,
		"/2021-03-23/user-data":                              http.StatusOK,
		"/latest/meta-data/iam/security-credentials/":        http.StatusUnauthorized,
		"/latest/meta-data/iam/security-credentials/" + role: http.StatusUnauthorized,
		"/2021-03-23/meta-data/iam/security-credentials":     http.StatusUnauthorized,
		"/latest/dynamic/instance-identity/document":         http.StatusUnauthorized,
		"/":        http.StatusUnauthorized,
		"/latest/": http.StatusUnauthorized,
	} {
		assert.Equal(t, want, l.do(t, c, http.MethodGet, path).status, path)
	}
	// With a token, everything.
	tok := l.token(t, c)
	assert.Equal(t, http.StatusOK, l.do(t, c, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+role, tokHeader, tok).status)
	assert.Contains(t, l.log.String(), `GET /latest/meta-data/iam/security-credentials/ status=401 auth="no token"`)
}

func TestMetadataTree(t *testing.T) {
	l := newLab(t, imds.Options{})
	c := from("127.0.0.1")
	tok := l.token(t, c)
	get := func(path string) string {
		t.Helper()
		r := l.do(t, c, http.MethodGet, path, tokHeader, tok)
		require.Equal(t, http.StatusOK, r.status, path)
		assert.Equal(t, "text/plain", r.header.Get("Content-Type"))
		return r.body
	}
	assert.Equal(t, "2009-04-04\n2016-09-02\n2018-09-24\n2021-03-23\nlatest", get("/"))
	assert.Equal(t, "dynamic/\nmeta-data/\nuser-data", get("/latest/"))
	assert.Equal(t, userData, get("/2021-03-23/user-data"))
	md := strings.Split(get("/latest/meta-data/"), "\n")
	for _, want := range []string{"ami-id", "hostname", "iam/", "instance-id", "instance-type", "local-hostname",
		"local-ipv4", "mac", "network/", "placement/", "public-keys/", "services/"} {
		assert.Contains(t, md, want)
	}
	assert.Equal(t, get("/latest/meta-data/"), get("/latest/meta-data"), "a directory answers without the slash too")
	assert.Equal(t, "ami-0abcdef1234567890", get("/2016-09-02/meta-data/ami-id"))
	assert.Equal(t, "t3.small", get("/latest/meta-data/instance-type"))
	assert.Equal(t, "ip-10-42-2-10.eu-west-1.compute.internal", get("/latest/meta-data/hostname"))
	assert.Equal(t, "ip-10-42-2-10.eu-west-1.compute.internal", get("/latest/meta-data/local-hostname"))
	assert.Equal(t, "10.42.2.10", get("/latest/meta-data/local-ipv4"))
	assert.Equal(t, "eu-west-1b", get("/latest/meta-data/placement/availability-zone"))
	assert.Equal(t, "eu-west-1", get("/latest/meta-data/placement/region"))
	mac := get("/latest/meta-data/mac")
	assert.Equal(t, "0e:00:0a:2a:02:0a", mac)
	assert.Equal(t, mac+"/", get("/latest/meta-data/network/interfaces/macs/"))
	iface := "/latest/meta-data/network/interfaces/macs/" + mac + "/"
	assert.Equal(t, "0", get(iface+"device-number"))
	assert.Equal(t, "10.42.2.10", get(iface+"local-ipv4s"))
	assert.Equal(t, "10.42.2.0/24", get(iface+"subnet-ipv4-cidr-block"))
	assert.Equal(t, "vpc-0123456789abcdef0", get(iface+"vpc-id"))
	assert.Equal(t, "subnet-0123456789abcdef0", get(iface+"subnet-id"))
	assert.Equal(t, "0=pgha-dev", get("/latest/meta-data/public-keys/"))
	assert.Equal(t, "openssh-key", get("/latest/meta-data/public-keys/0/"))
	assert.Equal(t, publicKey, get("/latest/meta-data/public-keys/0/openssh-key"))
	assert.Equal(t, "info\nsecurity-credentials/", get("/latest/meta-data/iam/"))
	assert.Equal(t, role, get("/latest/meta-data/iam/security-credentials/"))

	var info struct{ Code, InstanceProfileArn, InstanceProfileId string }
	require.NoError(t, json.Unmarshal([]byte(get("/latest/meta-data/iam/info")), &info))
	assert.Equal(t, "Success", info.Code)
	assert.Equal(t, "arn:aws:iam::123456789012:instance-profile/pgha-dev-patroni-profile", info.InstanceProfileArn)
	assert.True(t, strings.HasPrefix(info.InstanceProfileId, "AIPA"))

	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(get("/latest/dynamic/instance-identity/document")), &doc))
	assert.Equal(t, instanceID, doc["instanceId"])
	assert.Equal(t, "eu-west-1b", doc["availabilityZone"])
	assert.Equal(t, "10.42.2.10", doc["privateIp"])
	assert.Equal(t, account, doc["accountId"])

	for _, path := range []string{"/2020-01-01/meta-data/", "/latest/meta-data/nope", "/latest/meta-data/instance-id/x"} {
		assert.Equal(t, http.StatusNotFound, l.do(t, c, http.MethodGet, path, tokHeader, tok).status, path)
	}
}

// The role's credentials, as EC2 serves them: the same until half their
// lifetime is gone, then new ones.
func TestRoleCredentials(t *testing.T) {
	l := newLab(t, imds.Options{CredentialTTL: time.Hour})
	c := from("127.0.0.1")
	read := func() map[string]string {
		t.Helper()
		r := l.do(t, c, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+role, tokHeader, l.token(t, c))
		require.Equal(t, http.StatusOK, r.status)
		var m map[string]string
		require.NoError(t, json.Unmarshal([]byte(r.body), &m))
		return m
	}
	first := read()
	assert.Equal(t, "Success", first["Code"])
	assert.Equal(t, "AWS-HMAC", first["Type"])
	assert.True(t, strings.HasPrefix(first["AccessKeyId"], "ASIA"))
	assert.NotEmpty(t, first["SecretAccessKey"])
	assert.NotEmpty(t, first["Token"])
	exp, err := time.Parse(time.RFC3339, first["Expiration"])
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), exp, time.Minute)
	assert.Equal(t, first["AccessKeyId"], read()["AccessKeyId"])

	later := time.Now().Add(31 * time.Minute)
	l.acct.SetClock(func() time.Time { return later })
	assert.NotEqual(t, first["AccessKeyId"], read()["AccessKeyId"])
}

func TestAddRefusesWhatItCannotServe(t *testing.T) {
	l := newLab(t, imds.Options{})
	err := l.srv.Add(imds.Instance{ID: "i-00000000000000000", Source: netip.MustParseAddr("127.0.0.5")})
	assert.ErrorContains(t, err, "add it with awsapi.Account.AddInstance first")
	err = l.srv.Add(imds.Instance{ID: instanceID, Source: netip.MustParseAddr("127.0.0.1")})
	assert.ErrorContains(t, err, "already belongs to instance")
	_, err = imds.New(imds.Options{})
	assert.ErrorContains(t, err, "Options.Account is required")

	l.srv.Remove(netip.MustParseAddr("127.0.0.1"))
	assert.Equal(t, http.StatusNotFound, l.do(t, from("127.0.0.1"), http.MethodPut, "/latest/api/token", ttlHeader, "60").status)
}
