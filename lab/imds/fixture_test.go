package imds_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/imds"
)

const (
	region     = "eu-west-1"
	account    = "123456789012"
	instanceID = "i-0123456789abcdef0"
	role       = "pgha-dev-patroni"
	userData   = "#cloud-config\nruncmd:\n  - [echo, booted]\n"
	publicKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzFqTRbkMVzR9gPYKtQk9H1w5tHNqv6J3e0xw4Y6X3t pgha-dev"
	pgPassword = "/pgha/dev/postgres-password"
	haPassword = "/pgha/dev/haproxy-stats-password"
)

// lab is one account with a Patroni node registered at 127.0.0.1 (the
// tests' source address), its metadata service on loopback.
type lab struct {
	acct *awsapi.Account
	srv  *imds.Server
	url  string // http://127.0.0.1:PORT
	log  *syncBuffer
}

func newLab(t *testing.T, opts imds.Options) *lab {
	t.Helper()
	a, err := awsapi.NewAccount(account, region)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	for name, v := range map[string]string{pgPassword: "pg-secret", haPassword: "stats-secret"} {
		_, err := a.PutParameter(name, v, awsapi.SecureString)
		require.NoError(t, err)
	}
	require.NoError(t, a.AddRole(role))
	require.NoError(t, a.PutRolePolicy(role, "secrets",
		iampolicy.SecretsRead([]string{a.ParameterARN(pgPassword)}, "aws", region, account)))
	_, err = a.AddInstanceProfile(role+"-profile", role)
	require.NoError(t, err)
	require.NoError(t, a.AddInstance(awsapi.Instance{
		ID: instanceID, ImageID: "ami-0abcdef1234567890", InstanceType: "t3.small",
		PrivateIP: netip.MustParseAddr("10.42.2.10"), AvailabilityZone: region + "b",
		SubnetID: "subnet-0123456789abcdef0", VPCID: "vpc-0123456789abcdef0",
		KeyName: "pgha-dev", InstanceProfile: role + "-profile",
		Tags: map[string]string{"pgha:stack": "dev"},
	}))

	log := &syncBuffer{}
	opts.Account, opts.Log = a, log
	s, err := imds.New(opts)
	require.NoError(t, err)
	require.NoError(t, s.Add(imds.Instance{
		ID: instanceID, Source: netip.MustParseAddr("127.0.0.1"),
		UserData: []byte(userData), PublicKey: publicKey,
		SubnetCIDR: "10.42.2.0/24", VPCCIDR: "10.42.0.0/16",
		SecurityGroups: []string{"pgha-dev-patroni"}, SecurityGroupIDs: []string{"sg-0123456789abcdef0"},
	}))
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("imds log:\n%s", log.String())
		}
	})
	return &lab{acct: a, srv: s, url: hs.URL, log: log}
}

// from is an HTTP client whose connections come from a loopback address
// of the test's choice: Linux routes all of 127.0.0.0/8 to lo, so
// 127.0.0.2 is "another instance" without any network setup.
func from(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

type response struct {
	status int
	body   string
	header http.Header
}

// do sends one request; headers are name, value pairs.
func (l *lab) do(t *testing.T, c *http.Client, method, path string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, l.url+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, body: string(b), header: resp.Header}
}

// token gets an IMDSv2 token as the SDKs do.
func (l *lab) token(t *testing.T, c *http.Client) string {
	t.Helper()
	r := l.do(t, c, http.MethodPut, "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "21600")
	require.Equal(t, http.StatusOK, r.status, r.body)
	return r.body
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
