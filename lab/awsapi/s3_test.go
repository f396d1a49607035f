package awsapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
	"github.com/pgha/pgha/lab/objectstore"
)

const (
	backupBucket = "pgha-backup"
	otherBucket  = "pgha-other"
	repoPrefix   = "pgha/test"
	backupRole   = "pgha-dev-postgres"
	noKMSRole    = "pgha-dev-nokms"
)

// s3Fixture is the dev fixture plus the backup bucket (SSE-KMS under a
// key of the account, as the program makes it), another bucket, and the
// PostgreSQL role granted iampolicy.BackupRepo for repoPrefix; its twin
// noKMSRole has the same policy without the KMS statement.
type s3Fixture struct {
	*fixture
	keyARN   string
	storeDir string
	srv      *awsapitest.Server
}

func newS3Fixture(t *testing.T) *s3Fixture {
	t.Helper()
	f := &s3Fixture{fixture: newFixture(t)}
	a := f.acct
	var err error
	f.keyARN, err = a.AddKMSKey("")
	require.NoError(t, err)
	f.storeDir = t.TempDir()
	store, err := objectstore.New(f.storeDir, objectstore.BehindFront())
	require.NoError(t, err)
	require.NoError(t, a.AddBucket(awsapi.Bucket{Name: backupBucket, KMSKeyARN: f.keyARN, BucketKeyEnabled: true}))
	require.NoError(t, a.SetObjectStore(store))
	require.NoError(t, a.AddBucket(awsapi.Bucket{Name: otherBucket, KMSKeyARN: f.keyARN}))
	for _, b := range []string{backupBucket, otherBucket} {
		st, err := os.Stat(filepath.Join(f.storeDir, "buckets", b))
		require.NoError(t, err, "the bucket exists in the store once added")
		require.True(t, st.IsDir())
	}

	policy := iampolicy.BackupRepo("aws", testRegion, backupBucket, repoPrefix, f.keyARN)
	require.NoError(t, a.AddRole(backupRole))
	require.NoError(t, a.PutRolePolicy(backupRole, "secrets", tierSecretsPolicy([]string{a.ParameterARN(pgPassword)}, "aws", testRegion, testAccount)))
	require.NoError(t, a.PutRolePolicy(backupRole, "backup", policy))
	require.NoError(t, a.AddRole(noKMSRole))
	require.NoError(t, a.PutRolePolicy(noKMSRole, "backup", withoutStatement(t, policy, "BucketKeyThroughS3Only")))
	f.srv = awsapitest.Start(t, a)
	return f
}

// withoutStatement drops one statement (by Sid) from a policy document.
func withoutStatement(t *testing.T, doc, sid string) string {
	t.Helper()
	var p struct {
		Version   string
		Statement []map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(doc), &p))
	var kept []map[string]any
	for _, s := range p.Statement {
		if s["Sid"] != sid {
			kept = append(kept, s)
		}
	}
	require.Len(t, kept, len(p.Statement)-1, "no statement %s", sid)
	p.Statement = kept
	b, err := json.Marshal(p)
	require.NoError(t, err)
	return string(b)
}

// awscli (botocore's S3 signer: UNSIGNED-PAYLOAD over TLS with
// Content-MD5, path style against an IP endpoint) with role credentials
// granted iampolicy.BackupRepo: allowed inside the repository's prefix,
// refused everywhere else, and refused writes without the KMS grant.
func TestS3AWSCLIBackupRepoPolicy(t *testing.T) {
	cli := awsapitest.AWSCLI(t)
	f := newS3Fixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	withKeys := func(c awsapi.Credentials) []string {
		env := append(awsapitest.CLIEnv(t, f.srv.CAFile, ""),
			"AWS_ACCESS_KEY_ID="+c.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey)
		if c.SessionToken != "" {
			env = append(env, "AWS_SESSION_TOKEN="+c.SessionToken)
		}
		return env
	}
	aws := func(env []string, args ...string) awsapitest.Result {
		return awsapitest.Run(ctx, env, cli, append([]string{"--endpoint-url", f.srv.URL, "--region", testRegion}, args...)...)
	}
	pg := withKeys(f.roleCreds(t, backupRole))
	dir := t.TempDir()
	small := filepath.Join(dir, "small.txt")
	require.NoError(t, os.WriteFile(small, []byte("hello repository\n"), 0o644))
	denied := func(r awsapitest.Result, op, action, resource string) {
		t.Helper()
		assert.Equal(t, 254, r.ExitCode, r.Stderr)
		assert.Contains(t, r.Stderr, "An error occurred (AccessDenied) when calling the "+op+" operation: User: arn:aws:sts::123456789012:assumed-role/"+
			backupRole+"/"+devInstance+" is not authorized to perform: "+action+` on resource: "`+resource+`" because no identity-based policy allows the `+action+" action")
	}

	// Inside the prefix: the whole life of an object.
	r := aws(pg, "s3api", "put-object", "--bucket", backupBucket, "--key", repoPrefix+"/a.txt", "--body", small)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	var put struct{ ServerSideEncryption, SSEKMSKeyId string }
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &put))
	assert.Equal(t, "aws:kms", put.ServerSideEncryption)
	assert.Equal(t, f.keyARN, put.SSEKMSKeyId)

	got := filepath.Join(dir, "got.txt")
	r = aws(pg, "s3api", "get-object", "--bucket", backupBucket, "--key", repoPrefix+"/a.txt", got)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	assert.Contains(t, r.Stdout, `"SSEKMSKeyId": "`+f.keyARN+`"`)
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	assert.Equal(t, "hello repository\n", string(b))

	r = aws(pg, "s3api", "list-objects-v2", "--bucket", backupBucket, "--prefix", repoPrefix+"/")
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	assert.Contains(t, r.Stdout, `"Key": "pgha/test/a.txt"`)

	// A missing key the role may list under is NoSuchKey; one it may not
	// list is AccessDenied, as S3 answers a caller without s3:ListBucket.
	r = aws(pg, "s3api", "head-object", "--bucket", backupBucket, "--key", repoPrefix+"/missing")
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "An error occurred (404) when calling the HeadObject operation: Not Found")
	r = aws(pg, "s3api", "get-object", "--bucket", backupBucket, "--key", repoPrefix+"/missing", got)
	assert.Contains(t, r.Stderr, "(NoSuchKey)")

	// Over awscli's 8 MiB multipart threshold: CreateMultipartUpload,
	// UploadPart, CompleteMultipartUpload, then a ranged download.
	big := filepath.Join(dir, "big.bin")
	data := make([]byte, 9<<20+123)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(big, data, 0o644))
	r = aws(pg, "s3", "cp", big, "s3://"+backupBucket+"/"+repoPrefix+"/big.bin")
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	assert.Contains(t, f.srv.Log(), "action=s3:PutObject operation=UploadPart")
	assert.Contains(t, f.srv.Log(), "operation=CompleteMultipartUpload")
	back := filepath.Join(dir, "back.bin")
	r = aws(pg, "s3", "cp", "s3://"+backupBucket+"/"+repoPrefix+"/big.bin", back)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	b, err = os.ReadFile(back)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, b), "the multipart object came back whole")

	// Outside the prefix, another bucket, a listing outside: refused.
	r = aws(pg, "s3api", "put-object", "--bucket", backupBucket, "--key", "elsewhere/a.txt", "--body", small)
	denied(r, "PutObject", "s3:PutObject", "arn:aws:s3:::pgha-backup/elsewhere/a.txt")
	r = aws(pg, "s3api", "get-object", "--bucket", otherBucket, "--key", repoPrefix+"/a.txt", got)
	denied(r, "GetObject", "s3:GetObject", "arn:aws:s3:::pgha-other/pgha/test/a.txt")
	r = aws(pg, "s3api", "list-objects-v2", "--bucket", backupBucket, "--prefix", "elsewhere/")
	denied(r, "ListObjectsV2", "s3:ListBucket", "arn:aws:s3:::pgha-backup")
	r = aws(pg, "s3api", "list-objects-v2", "--bucket", backupBucket)
	denied(r, "ListObjectsV2", "s3:ListBucket", "arn:aws:s3:::pgha-backup")
	r = aws(pg, "s3api", "get-object", "--bucket", backupBucket, "--key", "elsewhere/missing", got)
	denied(r, "GetObject", "s3:GetObject", "arn:aws:s3:::pgha-backup/elsewhere/missing")
	assert.Contains(t, f.srv.Log(), "action=s3:PutObject operation=PutObject caller=arn:aws:sts::123456789012:assumed-role/pgha-dev-postgres/"+
		devInstance+" resource=arn:aws:s3:::pgha-backup/elsewhere/a.txt decision=deny status=403 error=AccessDenied")

	// DeleteObjects: each key on its own, refused ones reported per key.
	r = aws(pg, "s3api", "delete-objects", "--bucket", backupBucket, "--delete",
		`{"Objects":[{"Key":"pgha/test/a.txt"},{"Key":"elsewhere/b.txt"}]}`)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	var del struct {
		Deleted []struct{ Key string }
		Errors  []struct{ Key, Code, Message string }
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &del), r.Stdout)
	require.Len(t, del.Deleted, 1)
	assert.Equal(t, "pgha/test/a.txt", del.Deleted[0].Key)
	require.Len(t, del.Errors, 1)
	assert.Equal(t, "elsewhere/b.txt", del.Errors[0].Key)
	assert.Equal(t, "AccessDenied", del.Errors[0].Code)
	assert.NoFileExists(t, filepath.Join(f.storeDir, "buckets", backupBucket, "pgha", "test", "a.txt"))
	assert.Contains(t, f.srv.Log(), "action=s3:DeleteObject operation=DeleteObjects")
	assert.Contains(t, f.srv.Log(), "decision=partial")

	// The same policy without its KMS statement: S3 refuses the write for
	// want of kms:GenerateDataKey, the read for want of kms:Decrypt.
	nokms := withKeys(f.roleCreds(t, noKMSRole))
	r = aws(nokms, "s3api", "put-object", "--bucket", backupBucket, "--key", repoPrefix+"/c.txt", "--body", small)
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "An error occurred (AccessDenied) when calling the PutObject operation: User: arn:aws:sts::123456789012:assumed-role/"+
		noKMSRole+"/"+devInstance+" is not authorized to perform: kms:GenerateDataKey on resource: "+f.keyARN+" because no identity-based policy allows the kms:GenerateDataKey action")
	r = aws(nokms, "s3api", "get-object", "--bucket", backupBucket, "--key", repoPrefix+"/big.bin", got)
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "(AccessDenied) when calling the GetObject operation: User: arn:aws:sts::123456789012:assumed-role/"+
		noKMSRole+"/"+devInstance+" is not authorized to perform: kms:Decrypt on resource: "+f.keyARN)
	assert.NoFileExists(t, filepath.Join(f.storeDir, "buckets", backupBucket, "pgha", "test", "c.txt"))
	assert.Contains(t, f.srv.Log(), "detail=\"s3:PutObject allowed, but implicit-deny kms:GenerateDataKey on "+f.keyARN)

	// A wrong secret, and no signature at all.
	wrong := f.roleCreds(t, backupRole)
	wrong.SecretAccessKey = strings.Repeat("x", 40)
	r = aws(withKeys(wrong), "s3api", "list-objects-v2", "--bucket", backupBucket, "--prefix", repoPrefix+"/")
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "(SignatureDoesNotMatch) when calling the ListObjectsV2 operation: The request signature we calculated does not match the signature you provided.")
	r = aws(awsapitest.CLIEnv(t, f.srv.CAFile, ""), "--no-sign-request", "s3api", "list-objects-v2", "--bucket", backupBucket, "--prefix", repoPrefix+"/")
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "(AccessDenied) when calling the ListObjectsV2 operation: Access Denied")
}

// signedPut sends a PUT signed the way pgBackRest signs (the body's
// SHA-256 in X-Amz-Content-Sha256), with body possibly other than the
// one signed, to a virtual-host name dialled at the test server.
func signedPut(t *testing.T, f *s3Fixture, c awsapi.Credentials, host, path string, signed, body []byte) (int, string) {
	t.Helper()
	sum := sha256.Sum256(signed)
	hash := hex.EncodeToString(sum[:])
	req, err := http.NewRequest(http.MethodPut, "https://"+host+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Content-Sha256", hash)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}, req, hash, "s3", testRegion, time.Now(),
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }))
	addr := strings.TrimPrefix(f.srv.URL, "https://")
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.srv.CA.Pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// Virtual-host addressing with a signed payload, as pgBackRest sends it;
// a body that is not the one signed is refused and leaves nothing.
func TestS3SignedPayloadAndVirtualHost(t *testing.T) {
	f := newS3Fixture(t)
	c := f.roleCreds(t, backupRole)
	host := awsapi.BucketHost(backupBucket, testRegion)
	assert.Equal(t, "pgha-backup.s3.eu-west-1.amazonaws.com", host)

	status, body := signedPut(t, f, c, host, "/"+repoPrefix+"/ok", []byte("signed body"), []byte("signed body"))
	require.Equal(t, http.StatusOK, status, body)
	b, err := os.ReadFile(filepath.Join(f.storeDir, "buckets", backupBucket, "pgha", "test", "ok"))
	require.NoError(t, err)
	assert.Equal(t, "signed body", string(b))

	status, body = signedPut(t, f, c, host, "/"+repoPrefix+"/tampered", []byte("signed body"), []byte("other body!"))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "<Code>XAmzContentSHA256Mismatch</Code>")
	assert.NoFileExists(t, filepath.Join(f.storeDir, "buckets", backupBucket, "pgha", "test", "tampered"))

	// Path style on the regional name is the same bucket.
	status, body = signedPut(t, f, c, awsapi.S3Endpoint(testRegion), "/"+backupBucket+"/"+repoPrefix+"/path", []byte("p"), []byte("p"))
	require.Equal(t, http.StatusOK, status, body)
	assert.FileExists(t, filepath.Join(f.storeDir, "buckets", backupBucket, "pgha", "test", "path"))

	// No credential or session token reaches the objects' metadata.
	n := 0
	require.NoError(t, filepath.WalkDir(filepath.Join(f.storeDir, "metadata"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		meta, err := os.ReadFile(p)
		n++
		assert.NotContains(t, string(meta), c.SessionToken[:20], p)
		assert.NotContains(t, string(meta), "Security-Token", p)
		return err
	}))
	assert.NotZero(t, n, "the store keeps metadata files")
}
