package objectstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
)

const (
	testKey    = "AKIALABTEST0000000001"
	testRegion = "eu-west-1"
	testBucket = "pgha-test"
)

// testEndpoint is a started Server and an HTTPS client that trusts it and
// connects to it whatever host name a request names.
type testEndpoint struct {
	addr   string
	client *http.Client
	tls    *tls.Config // the client's
	stop   func()
}

func startTest(t *testing.T, dir string, addr string) *testEndpoint {
	t.Helper()
	ca, err := awsapi.NewCA("objectstore test CA")
	require.NoError(t, err)
	cfg, err := TLSConfig(ca, "s3.lab.test", "*.s3.lab.test", "127.0.0.1")
	require.NoError(t, err)
	s, err := New(dir, WithAccessKey(testKey), WithRegion(testRegion), WithTLS(cfg),
		WithVirtualHosts("s3.lab.test"), WithLogf(t.Logf))
	require.NoError(t, err)
	require.NoError(t, s.CreateBucket(testBucket))
	require.NoError(t, s.CreateBucket(testBucket), "CreateBucket is idempotent")
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-served)
		}
	}
	t.Cleanup(stop)
	a := ln.Addr().String()
	clientTLS := &tls.Config{RootCAs: ca.Pool(), ServerName: "s3.lab.test"}
	tr := &http.Transport{
		TLSClientConfig: clientTLS,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, a)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &testEndpoint{addr: a, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, tls: clientTLS, stop: stop}
}

// do sends a request with an Authorization header naming key (none if
// empty). The signature is not checked by the server, so it is a dummy.
func (e *testEndpoint) do(t *testing.T, method, url, key string, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20240101/"+testRegion+
			"/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func (e *testEndpoint) put(t *testing.T, key, content string) {
	t.Helper()
	sum := md5.Sum([]byte(content))
	code, body := e.do(t, "PUT", "https://s3.lab.test/"+testBucket+"/"+key, testKey, []byte(content),
		map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(sum[:])})
	require.Equal(t, http.StatusOK, code, "PUT %s: %s", key, body)
}

type listResult struct {
	Contents []struct {
		Key  string
		Size int64
		ETag string
	}
	CommonPrefixes []struct{ Prefix string }
	IsTruncated    bool
}

func (e *testEndpoint) list(t *testing.T, query string) (keys, prefixes []string) {
	t.Helper()
	code, body := e.do(t, "GET", "https://s3.lab.test/"+testBucket+"/?list-type=2&"+query, testKey, nil, nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var r listResult
	require.NoError(t, xml.Unmarshal(body, &r))
	require.False(t, r.IsTruncated)
	for _, c := range r.Contents {
		keys = append(keys, c.Key)
	}
	for _, p := range r.CommonPrefixes {
		prefixes = append(prefixes, p.Prefix)
	}
	return keys, prefixes
}

func TestAuthentication(t *testing.T) {
	e := startTest(t, t.TempDir(), "127.0.0.1:0")
	url := "https://s3.lab.test/" + testBucket + "/?list-type=2"

	code, body := e.do(t, "GET", url, "", nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, string(body), "<Code>AccessDenied</Code>")

	code, body = e.do(t, "GET", url, "AKIAWRONG", nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, string(body), "<Code>InvalidAccessKeyId</Code>")

	code, body = e.do(t, "GET", url, "", nil, map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=" + testKey + "/20240101/us-east-1/s3/aws4_request, Signature=00"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(body), "<Code>AuthorizationHeaderMalformed</Code>")

	code, _ = e.do(t, "GET", url, "", nil, map[string]string{"Authorization": "AWS " + testKey + ":c2lnbmF0dXJl"})
	require.Equal(t, http.StatusBadRequest, code, "SigV2 is refused")

	code, body = e.do(t, "GET", url, testKey, nil, nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
}

func TestObjectsAndListing(t *testing.T) {
	e := startTest(t, t.TempDir(), "127.0.0.1:0")
	for _, k := range []string{"repo/archive/test/archive.info", "repo/archive/test/15-1/0000000100000000/000000010000000000000001-aa.gz",
		"repo/archive/test/15-1/0000000100000000/000000010000000000000002-bb.gz", "repo/backup/test/backup.info", "repo/a-b", "repo/a.b"} {
		e.put(t, k, "content of "+k)
	}

	// A prefix whose directory does not exist is an empty list.
	keys, prefixes := e.list(t, "prefix=repo/archive/test/15-1/0000000100000001/&delimiter=/")
	require.Empty(t, keys)
	require.Empty(t, prefixes)
	keys, prefixes = e.list(t, "prefix=nothing/here/&delimiter=/")
	require.Empty(t, keys)
	require.Empty(t, prefixes)

	keys, prefixes = e.list(t, "prefix=repo/archive/test/&delimiter=/")
	require.Equal(t, []string{"repo/archive/test/archive.info"}, keys)
	require.Equal(t, []string{"repo/archive/test/15-1/"}, prefixes)

	// A prefix ending mid-name, as pgBackRest sends for one WAL segment.
	keys, _ = e.list(t, "prefix=repo/archive/test/15-1/0000000100000000/000000010000000000000002&delimiter=/")
	require.Equal(t, []string{"repo/archive/test/15-1/0000000100000000/000000010000000000000002-bb.gz"}, keys)
	_, prefixes = e.list(t, "prefix=repo/arch&delimiter=/")
	require.Equal(t, []string{"repo/archive/"}, prefixes)

	// S3 orders by bytes: "a-b" < "a.b" < "archive/".
	keys, prefixes = e.list(t, "prefix=repo/&delimiter=/")
	require.Equal(t, []string{"repo/a-b", "repo/a.b"}, keys)
	require.Equal(t, []string{"repo/archive/", "repo/backup/"}, prefixes)
	keys, prefixes = e.list(t, "prefix=repo/../&delimiter=/")
	require.Empty(t, keys)
	require.Empty(t, prefixes)
	keys, _ = e.list(t, "prefix=repo/a")
	require.Equal(t, []string{"repo/a-b", "repo/a.b", "repo/archive/test/15-1/0000000100000000/000000010000000000000001-aa.gz",
		"repo/archive/test/15-1/0000000100000000/000000010000000000000002-bb.gz", "repo/archive/test/archive.info"}, keys)

	// HEAD, ranged GET, GET of a missing key, DELETE.
	code, _ := e.do(t, "HEAD", "https://s3.lab.test/"+testBucket+"/repo/backup/test/backup.info", testKey, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, body := e.do(t, "GET", "https://s3.lab.test/"+testBucket+"/repo/backup/test/backup.info", testKey, nil, map[string]string{"Range": "bytes=11-16"})
	require.Equal(t, http.StatusPartialContent, code)
	require.Equal(t, "repo/b", string(body))
	code, _ = e.do(t, "GET", "https://s3.lab.test/"+testBucket+"/repo/backup/test/missing", testKey, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = e.do(t, "GET", "https://s3.lab.test/"+testBucket+"/repo/a-b/under-an-object", testKey, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = e.do(t, "DELETE", "https://s3.lab.test/"+testBucket+"/repo/backup/test/backup.info", testKey, nil, nil)
	require.Equal(t, http.StatusNoContent, code)
	_, prefixes = e.list(t, "prefix=repo/&delimiter=/")
	require.Equal(t, []string{"repo/archive/"}, prefixes, "a directory left empty is no prefix")

	// Keys that would not be one file each are refused.
	code, _ = e.do(t, "PUT", "https://s3.lab.test/"+testBucket+"/repo//double", testKey, []byte("x"), nil)
	require.Equal(t, http.StatusBadRequest, code)

	// Virtual-host addressing.
	code, body = e.do(t, "GET", "https://"+testBucket+".s3.lab.test/repo/a-b", testKey, nil, nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Equal(t, "content of repo/a-b", string(body))
}

func TestPutIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	e := startTest(t, dir, "127.0.0.1:0")
	e.put(t, "wal/segment", "the whole segment")

	// A Content-MD5 that does not match the body leaves the object as it was.
	sum := md5.Sum([]byte("something else"))
	code, _ := e.do(t, "PUT", "https://s3.lab.test/"+testBucket+"/wal/segment", testKey, []byte("half a segment"),
		map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(sum[:])})
	require.Equal(t, http.StatusBadRequest, code)

	// A body cut short by the connection closing, likewise.
	conn, err := tls.Dial("tcp", e.addr, e.tls)
	require.NoError(t, err)
	fmt.Fprintf(conn, "PUT /%s/wal/segment HTTP/1.1\r\nHost: s3.lab.test\r\nAuthorization: AWS4-HMAC-SHA256 Credential=%s/20240101/%s/s3/aws4_request, Signature=00\r\nContent-Length: 1000\r\n\r\nhalf a segm",
		testBucket, testKey, testRegion)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, conn.Close())

	require.Eventually(t, func() bool {
		entries, err := os.ReadDir(filepath.Join(dir, incomingDir))
		return err == nil && len(entries) == 0
	}, 5*time.Second, 50*time.Millisecond, "the cut request's body is removed")
	code, body := e.do(t, "GET", "https://s3.lab.test/"+testBucket+"/wal/segment", testKey, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "the whole segment", string(body))
}

func TestRestartKeepsObjects(t *testing.T) {
	dir := t.TempDir()
	e := startTest(t, dir, "127.0.0.1:0")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	e.put(t, "repo/big", big)
	addr := e.addr
	e.stop()
	_, err := e.client.Get("https://s3.lab.test/")
	require.Error(t, err, "a stopped endpoint is unreachable")

	e2 := startTest(t, dir, addr) // the same address and directory
	code, body := e2.do(t, "GET", "https://s3.lab.test/"+testBucket+"/repo/big", testKey, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, big, string(body))
}

func TestMissingMetadataIsRepaired(t *testing.T) {
	dir := t.TempDir()
	e := startTest(t, dir, "127.0.0.1:0")
	e.put(t, "repo/archive.info", "the archive info")
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "metadata")))

	keys, _ := e.list(t, "prefix=repo/&delimiter=/")
	require.Equal(t, []string{"repo/archive.info"}, keys)
	code, body := e.do(t, "GET", "https://s3.lab.test/"+testBucket+"/repo/archive.info", testKey, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "the archive info", string(body))
}

func TestNewNeedsAKey(t *testing.T) {
	_, err := New(t.TempDir())
	require.ErrorContains(t, err, "WithAccessKey")
}
