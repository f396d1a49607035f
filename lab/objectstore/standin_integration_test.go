package objectstore

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/imds"
)

// The repository as the booted lab's nodes configure it: AWS's own
// endpoint and addressing, the instance role's credentials from IMDSv2,
// no CA file.
const (
	siAccount  = "123456789012"
	siRepoPath = "/pgha/test"
	siRole     = "pgha-test-postgres"
	siInstance = "i-0123456789abcdef0"
)

// standInEnv runs pgBackRest and PostgreSQL in a network namespace of the
// test's, where the AWS stand-in serves S3 on 127.0.0.1:443 (the hosts
// file maps s3.REGION.amazonaws.com and the bucket's virtual host there)
// and the metadata service 169.254.169.254:80, as on an EC2 instance.
type standInEnv struct {
	*pitrEnv
	trail *lockedBuffer
	reqs  *lockedBuffer // the object store's request log: what pgBackRest lists
	acct  *awsapi.Account
}

func newStandInEnv(t *testing.T) *standInEnv {
	t.Helper()
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
	e := &standInEnv{pitrEnv: newBaseEnv(t), trail: &lockedBuffer{}, reqs: &lockedBuffer{}}
	e.repoPath = siRepoPath
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "pgha-s3-" + hex.EncodeToString(b)
	nstest.New(t, ns)
	nstest.IP(t, "-n", ns, "addr", "add", "169.254.169.254/32", "dev", "lo")
	e.netns = filepath.Join("/run/netns", ns)

	// The account: the bucket under its KMS key, the PostgreSQL role with
	// exactly the policy the program attaches, the instance holding it.
	acct, err := awsapi.NewAccount(siAccount, prRegion)
	require.NoError(t, err)
	t.Cleanup(acct.Close)
	e.acct = acct
	keyARN, err := acct.AddKMSKey("")
	require.NoError(t, err)
	store, err := New(e.storeDir, BehindFront(), WithRequestLog(), WithLogf(func(f string, a ...any) {
		fmt.Fprintf(e.reqs, f+"\n", a...)
	}))
	require.NoError(t, err)
	require.NoError(t, acct.SetObjectStore(store))
	require.NoError(t, acct.AddBucket(awsapi.Bucket{Name: prBucket, KMSKeyARN: keyARN, BucketKeyEnabled: true}))
	require.NoError(t, acct.AddRole(siRole))
	require.NoError(t, acct.PutRolePolicy(siRole, "backup",
		iampolicy.BackupRepo("aws", prRegion, prBucket, strings.TrimPrefix(siRepoPath, "/"), keyARN)))
	_, err = acct.AddInstanceProfile(siRole, siRole)
	require.NoError(t, err)
	require.NoError(t, acct.AddInstance(awsapi.Instance{ID: siInstance, PrivateIP: netip.MustParseAddr("10.42.2.10"),
		AvailabilityZone: prRegion + "a", InstanceProfile: siRole}))
	md, err := imds.New(imds.Options{Account: acct})
	require.NoError(t, err)
	// In the namespace the node reaches 169.254.169.254 over lo, from that
	// same address.
	require.NoError(t, md.Add(imds.Instance{ID: siInstance, Source: netip.MustParseAddr("169.254.169.254")}))

	sc, err := e.ca.Issue(append(awsapi.CertificateNames(prRegion), "127.0.0.1")...)
	require.NoError(t, err)
	cert, err := sc.TLSCertificate()
	require.NoError(t, err)
	api := &http.Server{Handler: awsapi.NewHandler(acct, awsapi.HandlerOptions{Log: e.trail}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, ReadHeaderTimeout: 10 * time.Second}
	meta := &http.Server{Handler: md, ReadHeaderTimeout: 10 * time.Second}
	apiLn := nstest.Listen(t, e.netns, "127.0.0.1:443")
	metaLn := nstest.Listen(t, e.netns, "169.254.169.254:80")
	go func() { _ = api.ServeTLS(apiLn, "", "") }()
	go func() { _ = meta.Serve(metaLn) }()
	t.Cleanup(func() { _ = api.Close(); _ = meta.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trail:\n%s", e.trail.String())
		}
	})

	e.hosts = filepath.Join(e.base, "hosts")
	require.NoError(t, os.WriteFile(e.hosts, []byte(fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.0.1\t%s %s\n",
		awsapi.S3Endpoint(prRegion), awsapi.BucketHost(prBucket, prRegion))), 0o644))
	// The machine trusts the lab CA in its system store: the commands see
	// a bundle holding it alone.
	e.caBundle = e.caFile

	e.writeConf(fmt.Sprintf(`[global]
repo1-type=s3
repo1-path=%s
repo1-s3-bucket=%s
repo1-s3-endpoint=%s
repo1-s3-region=%s
repo1-s3-uri-style=host
repo1-s3-key-type=auto
`, siRepoPath, prBucket, awsapi.S3Endpoint(prRegion), prRegion))
	return e
}

// TestPgBackRestThroughAWSStandIn is the backup repository as a booted
// node uses it: pgBackRest 2.45 against the stand-in's S3, signed with
// the instance role's temporary credentials from IMDSv2, authorized by
// iampolicy.BackupRepo and the bucket's KMS key. It archives, backs up
// (files over the 5 MiB upload chunk go multipart) and restores; a
// repository path outside the policy's prefix is refused.
func TestPgBackRestThroughAWSStandIn(t *testing.T) {
	e := newStandInEnv(t)
	data1 := e.initdb("data1")
	pg := e.startPG(data1, pgPort1, "archive_mode=on", archiveCommand(e.conf))
	pg.exec("CREATE TABLE filler (id bigserial PRIMARY KEY)")
	pg.exec(`CREATE TABLE blob (id int PRIMARY KEY, data bytea NOT NULL)`)
	pg.exec(`INSERT INTO blob SELECT i, (SELECT string_agg(decode(md5(random()::text || i || j), 'hex'), ''::bytea)
		FROM generate_series(1, 128) j) FROM generate_series(1, 6000) i`)
	var blobSum string
	pg.queryRow("SELECT md5(string_agg(data, ''::bytea ORDER BY id)) FROM blob", &blobSum)

	e.mustPgbackrest("stanza-create")
	e.mustPgbackrest("check")
	out := e.mustPgbackrest("--type=full", "backup")
	require.Contains(t, out, "new backup label")
	seg := pg.switchWAL()
	e.waitArchived(seg, 60*time.Second)
	out = e.mustPgbackrest("info")
	require.Contains(t, out, "status: ok")

	trail := e.trail.String()
	require.Contains(t, trail, "caller=arn:aws:sts::"+siAccount+":assumed-role/"+siRole+"/"+siInstance)
	require.Contains(t, trail, "operation=UploadPart", "a file over the chunk size went multipart")
	require.NotContains(t, trail, "decision=deny")

	t.Run("a repository outside the policy's prefix is refused", func(t *testing.T) {
		// repo-ls first asks whether the path is a file (HEAD of the path
		// itself): s3:GetObject on pgha/other, which BackupRepo does not grant.
		out, err := e.pgbackrest([]string{"PGBACKREST_REPO1_PATH=/pgha/other"}, "repo-ls")
		require.Error(t, err)
		require.Contains(t, out, "HTTP request failed with 403 (Forbidden)")
		require.Contains(t, e.trail.String(), "action=s3:GetObject operation=HeadObject caller=arn:aws:sts::"+siAccount+
			":assumed-role/"+siRole+"/"+siInstance+" resource=arn:aws:s3:::"+prBucket+"/pgha/other decision=deny status=403")
	})
	t.Run("repo-ls of the repository's root HEADs the prefix itself", func(t *testing.T) {
		// The same HEAD at the root of the repository asks for the key
		// "pgha/test", which BackupRepo's pgha/test/* does not cover: so
		// repo-ls (and repo-get) of the root are refused on AWS too;
		// below it they work.
		out, err := e.pgbackrest(nil, "repo-ls")
		require.Error(t, err, "%s", out)
		require.Contains(t, out, "HEAD /pgha/test\n")
		out, err = e.pgbackrest(nil, "repo-ls", "backup/"+prStanza)
		require.NoError(t, err, "%s", out)
		require.Contains(t, out, "backup.info")
	})

	pg.stop(syscall.SIGINT)
	data2 := e.postgresDir("data2")
	e.mustPgbackrest("--pg1-path="+data2, "--type=immediate", "--target-action=promote", "restore")
	pg2 := e.startPG(data2, pgPort2)
	require.Eventually(t, func() bool {
		var inRecovery bool
		pg2.queryRow("SELECT pg_is_in_recovery()", &inRecovery)
		return !inRecovery
	}, 60*time.Second, 200*time.Millisecond, "the restored cluster did not promote")
	var restoredSum string
	pg2.queryRow("SELECT md5(string_agg(data, ''::bytea ORDER BY id)) FROM blob", &restoredSum)
	require.Equal(t, blobSum, restoredSum)

	// Every listing was under the repository path plus "/": BackupRepo's
	// s3:prefix condition (pgha/test, pgha/test/*) covers them all.
	prefixes := listedPrefixes(e.reqs.String())
	t.Logf("prefixes pgBackRest listed: %q", prefixes)
	for _, p := range prefixes {
		require.True(t, strings.HasPrefix(p, "pgha/test/"), "pgBackRest listed %q, outside what BackupRepo's s3:prefix condition allows", p)
	}
}

var prefixParam = regexp.MustCompile(`[?&]prefix=([^& ]*)`)

// listedPrefixes are the distinct prefix= values of the listings in the
// object store's request log.
func listedPrefixes(log string) []string {
	seen := map[string]bool{}
	for _, m := range prefixParam.FindAllStringSubmatch(log, -1) {
		p, err := url.QueryUnescape(m[1])
		if err == nil {
			seen[p] = true
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
