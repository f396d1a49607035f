package readiness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/pki"
)

// runScript runs a readiness script with bash, as the remote command does.
func runScript(t *testing.T, script string, env []string, bound time.Duration) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// tlsServer starts h over HTTPS with a certificate of a new cluster CA for
// 127.0.0.1, and returns it and the CA's certificate file.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	ca, err := pki.NewCA("test cluster CA")
	require.NoError(t, err)
	cfg, err := ca.ServerConfig(pki.Leaf{CommonName: "pg-1", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM, 0o644))
	return srv, caFile
}

// fakePatroni serves /cluster and the leader's /patroni the way Patroni
// 3.0.2 does, over HTTPS, moving through formation stages as it is polled.
func fakePatroni(t *testing.T, stages int) (*httptest.Server, string) {
	var polls atomic.Int32
	var srv *httptest.Server
	srv, caFile := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stage := int(polls.Load())
		switch r.URL.Path {
		case "/cluster":
			polls.Add(1)
			members := []map[string]any{
				{"name": "pg-1", "role": "leader", "state": "running", "api_url": srv.URL + "/patroni", "timeline": 1},
				{"name": "pg-2", "role": "sync_standby", "state": "running", "timeline": 1},
			}
			if stage >= 1 {
				members = append(members, map[string]any{"name": "pg-3", "role": "replica", "state": "running", "timeline": 1})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"members": members, "scope": "pgha"})
		case "/patroni":
			repl := []map[string]any{{"application_name": "pg-2", "state": "streaming", "sync_state": "sync"}}
			if stage >= stages {
				repl = append(repl, map[string]any{"application_name": "pg-3", "state": "streaming", "sync_state": "async"})
			} else {
				repl = append(repl, map[string]any{"application_name": "pg-3", "state": "startup"})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"state": "running", "role": "master", "replication": repl})
		default:
			http.NotFound(w, r)
		}
	}))
	return srv, caFile
}

func TestClusterCheckWaitsForTwoStreamingReplicas(t *testing.T) {
	srv, caFile := fakePatroni(t, 2)
	out, errOut, err := runScript(t, ClusterCheckScript(srv.URL, caFile, 120), nil, 3*time.Minute)
	require.NoError(t, err, errOut)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &doc), "stdout must be the JSON cluster state: %q", out)
	assert.Len(t, doc["members"], 3)
	repl, _ := doc["replication"].([]any)
	assert.Len(t, repl, 2)
}

func TestClusterCheckGivesUpWithTheReason(t *testing.T) {
	srv, caFile := fakePatroni(t, 1_000_000) // pg-3 never streams
	out, errOut, err := runScript(t, ClusterCheckScript(srv.URL, caFile, 4), nil, 2*time.Minute)
	require.Error(t, err)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "cluster not formed after 4 s")
	assert.Contains(t, errOut, "streaming replicas: ['pg-2']")
}

func TestClusterCheckReportsAnUnreachableAPI(t *testing.T) {
	srv, caFile := tlsServer(t, http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, errOut, err := runScript(t, ClusterCheckScript(url, caFile, 2), nil, 2*time.Minute)
	require.Error(t, err)
	assert.Contains(t, errOut, "Patroni API:")
}

// A REST API whose certificate another CA signed is not the cluster's:
// the check must not believe what it says.
func TestClusterCheckRefusesAnotherCA(t *testing.T) {
	srv, _ := fakePatroni(t, 0)
	_, otherCA := tlsServer(t, http.NotFoundHandler())
	_, errOut, err := runScript(t, ClusterCheckScript(srv.URL, otherCA, 2), nil, 2*time.Minute)
	require.Error(t, err)
	assert.Contains(t, errOut, "CERTIFICATE_VERIFY_FAILED")
}

// TestWaitScript runs the wait with sudo and cloud-init replaced by shims
// on PATH (the script, not those tools, is under test here).
func TestWaitScript(t *testing.T) {
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755))
	// cloud-init 22.4's status --long after a failed package step, as a
	// booted lab node printed it.
	long := `status: error
boot_status_code: enabled-by-generator
detail:
('package-update-upgrade-install', ProcessExecutionError("Unexpected error while running command.\nCommand: ['apt-get', 'install', 'pgha-no-such-package']\nExit code: 100"))
('write-files-deferred', OSError('Unknown user or group: "getpwnam(): name not found: \'postgres\'"'))`
	require.NoError(t, os.WriteFile(filepath.Join(bin, "cloud-init"),
		[]byte("#!/bin/sh\nif [ \"$2\" = --long ]; then cat <<'EOF'\n"+long+"\nEOF\nexit 1\nfi\n[ -n \"${CLOUD_INIT_HANG:-}\" ] && sleep 60\nexit ${CLOUD_INIT_RC:-0}\n"), 0o755))
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	outputLog := filepath.Join(bin, "cloud-init-output.log")
	require.NoError(t, os.WriteFile(outputLog, []byte("Reading package lists...\nE: Unable to locate package pgha-no-such-package\n"), 0o644))

	cases := []struct {
		name      string
		ready     bool
		failed    string
		cloudInit string
		hang      bool
		timeout   int
		wantErr   string
	}{
		{name: "ready", ready: true},
		{name: "boot failed", failed: "patroni did not start", wantErr: "pg-1: boot failed: patroni did not start"},
		{name: "boot failed inside cloud-init", cloudInit: "1", failed: "etcd never healthy", wantErr: "pg-1: boot failed: etcd never healthy"},
		{name: "cloud-init error", cloudInit: "1", ready: true,
			wantErr: "pg-1: cloud-init failed in package-update-upgrade-install, write-files-deferred (E: Unable to locate package pgha-no-such-package); see " + outputLog + " on the node\n" +
				"    status: error\n"},
		{name: "never ready", timeout: 1, wantErr: "not ready after 1 s"},
		{name: "cloud-init never finishes", hang: true, ready: true, timeout: 1, wantErr: "pg-1: cloud-init still running after 1 s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ready, failed := filepath.Join(dir, "ready"), filepath.Join(dir, "failed")
			if tc.ready {
				require.NoError(t, os.WriteFile(ready, nil, 0o644))
			}
			if tc.failed != "" {
				require.NoError(t, os.WriteFile(failed, []byte(tc.failed), 0o644))
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 60
			}
			e := append(env, "CLOUD_INIT_RC="+tc.cloudInit)
			if tc.hang {
				e = append(e, "CLOUD_INIT_HANG=1")
			}
			out, errOut, err := runScript(t, waitScript("pg-1", ready, failed, outputLog, timeout), e, time.Minute)
			if tc.wantErr == "" {
				require.NoError(t, err, errOut)
				assert.Equal(t, "pg-1 ready\n", out)
				return
			}
			require.Error(t, err)
			assert.Contains(t, errOut, tc.wantErr)
		})
	}
}

// TestHostKeysScript runs the host-key command against this machine's own
// sshd keys: every line must be a public key validate can pin.
func TestHostKeysScript(t *testing.T) {
	files, _ := filepath.Glob("/etc/ssh/ssh_host_*_key.pub")
	if len(files) == 0 {
		t.Skip("no sshd host keys here (openssh-server is not installed)")
	}
	out, errOut, err := runScript(t, HostKeysScript, nil, time.Minute)
	require.NoError(t, err, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, len(files))
	for i, l := range lines {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		require.NoError(t, err, l)
		want, err := os.ReadFile(files[i])
		require.NoError(t, err)
		wk, _, _, _, err := ssh.ParseAuthorizedKey(want)
		require.NoError(t, err)
		assert.Equal(t, wk.Marshal(), k.Marshal(), files[i])
	}
}

// TestReadyScriptReadsTheHostKeys runs a node's whole readiness command
// (the wait, then the host keys) with sudo and cloud-init shimmed as in
// TestWaitScript, against this machine's real sshd keys, and parses its
// output as the program does.
func TestReadyScriptReadsTheHostKeys(t *testing.T) {
	files, _ := filepath.Glob("/etc/ssh/ssh_host_*_key.pub")
	if len(files) == 0 {
		t.Skip("no sshd host keys here (openssh-server is not installed)")
	}
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "cloud-init"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	dir := t.TempDir()
	ready, failed := filepath.Join(dir, "ready"), filepath.Join(dir, "failed")
	require.NoError(t, os.WriteFile(ready, nil, 0o644))

	out, errOut, err := runScript(t, ReadyScript("etcd-2", ready, failed, 60), env, time.Minute)
	require.NoError(t, err, errOut)
	require.True(t, strings.HasPrefix(out, "etcd-2 ready\n"), out)
	keys, err := ParseReadyOutput("etcd-2", out)
	require.NoError(t, err)
	require.Len(t, keys, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		want, _, _, _, err := ssh.ParseAuthorizedKey(b)
		require.NoError(t, err)
		assert.Equal(t, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(want))), keys[i], f)
	}

	// A node that never gets ready prints no keys: the wait's failure is
	// the error, not a missing key.
	require.NoError(t, os.Remove(ready))
	require.NoError(t, os.WriteFile(failed, []byte("etcd never healthy"), 0o644))
	out, errOut, err = runScript(t, ReadyScript("etcd-2", ready, failed, 60), env, time.Minute)
	require.Error(t, err)
	assert.Contains(t, errOut, "etcd-2: boot failed: etcd never healthy")
	assert.NotContains(t, out, HostKeysMarker)
}

// dsa is a DSA host key as cloud-init 22.4 makes one on a booted Debian 12
// node; golang.org/x/crypto/ssh does not parse DSA keys.
const dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAO1pOyOlh12Qn0Zbk43UznHuhjJJhotDZDnC1IXhN9Z5dy3zp+FdxbIWYFNkX9YjFK5Qg/7dICj4TPsEqjpVBDJBik7os8paZd4O/m5mhXsHs21/Z8BQTWOVLjYFnYLyNPbggD6XR7MIGCWQEakRIsxo0xsfwlHIo9ANZvSHjUYTAAAAFQC8N1iXhDY0cRu2iTQZWBlojlEtNwAAAIEAyAUOlYLdDSXIAusa8zROJjwIh/gZjDZBZRasbTxpaNR9c2kWR9uelDULIqVHeKbH6ICnkFANMlfKXUyO8Va7mzeRGtz2lzMTks9HP9Gmc03k5s9Y5BZDRai2bLtbNSat0G9DUviJFn+DL/i8PE0l0apzTPVWNn4TrqRYNTCvSTsAAACAb3neNy36EsBr5QQVzWrCGXHEwu5rfl6QjeI9aOUSxMatvWbqMyX8Oom12GVbqFm50albfcLEFsU+iejMwiyS4Q/tIx1rs0vdF8DgN0vyE90CrHlycPg/1mtCdteO5fpRrZo8ZkEc3JW+bswhUyboccQXZ+G4BpHpy4CE1m0GgGk="

func TestParseReadyOutput(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sk, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))

	keys, err := ParseReadyOutput("pg-1", "pg-1 ready\n"+HostKeysMarker+"\n"+dsa+"\n"+key+" root@pg-1\n\n")
	require.NoError(t, err)
	assert.Equal(t, []string{key}, keys, "the comment is dropped")

	for name, tc := range map[string]struct{ out, want string }{
		"no marker": {"pg-1 ready\n" + key + "\n", "has no"},
		"no keys":   {"pg-1 ready\n" + HostKeysMarker + "\n", "no SSH host keys"},
		"not a key": {"pg-1 ready\n" + HostKeysMarker + "\nawk: cannot open file\n", "is not an SSH public key"},
		"empty":     {"", "has no"},
		"only DSA":  {"pg-1 ready\n" + HostKeysMarker + "\n" + dsa + "\n", "no SSH host keys"},
		"truncated": {"pg-1 ready\n" + HostKeysMarker + "\n" + key[:20] + "\n", "is not an SSH public key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReadyOutput("pg-1", tc.out)
			require.ErrorContains(t, err, tc.want)
			assert.Contains(t, err.Error(), "pg-1")
		})
	}
}
