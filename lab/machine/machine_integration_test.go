package machine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/lab/image"
)

// labPackages is what the nodes' user data installs today; the test builds
// (or finds cached) the same image the lab uses.
var labPackages = []string{
	"postgresql-15", "patroni", "python3-etcd", "ssl-cert", "awscli", "curl",
	"etcd-server", "etcd-client", "haproxy",
}

const (
	nodeIP   = "10.99.0.10"
	linkIP   = "10.99.0.1" // the far end: IMDS, mirror, AWS endpoint
	nodeMAC  = "0e:99:00:00:00:0a"
	endpoint = "ssm.eu-west-1.amazonaws.com"
)

func needBootLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, p := range []string{"debootstrap", "systemd-nspawn", "apt-ftparchive", "nsenter", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s", p)
		}
	}
}

// testLab is one machine on a throwaway link: the node's namespace with
// eth0 (the node's address, a route to the IMDS) and, at the far end, a
// namespace holding 169.254.169.254 (the IMDS stand-in), the lab mirror and
// an HTTPS "AWS endpoint" whose certificate a lab CA signed.
type testLab struct {
	m          *Machine
	md         *imds
	state      string
	link       string
	mirrorHits *atomic.Int64
}

func newTestLab(t *testing.T, ctx context.Context, name, userData string) *testLab {
	t.Helper()
	t0 := time.Now()
	im, err := image.Build(ctx, image.Options{Packages: labPackages, Progress: logWriter{t}})
	require.NoError(t, err)
	t.Logf("TIMING image (cached=%v): %s", im.Cached, time.Since(t0).Round(time.Millisecond))

	node, link := "pgha-"+name, "pgha-"+name+"-l"
	nstest.New(t, node)
	nstest.New(t, link)
	nstest.IP(t, "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "uplink", "netns", link)
	nstest.IP(t, "-n", node, "link", "set", "eth0", "address", nodeMAC)
	nstest.IP(t, "-n", node, "addr", "add", nodeIP+"/24", "dev", "eth0")
	nstest.IP(t, "-n", node, "link", "set", "eth0", "up")
	nstest.IP(t, "-n", node, "route", "add", "169.254.169.254/32", "dev", "eth0")
	nstest.IP(t, "-n", link, "addr", "add", linkIP+"/24", "dev", "uplink")
	nstest.IP(t, "-n", link, "addr", "add", "169.254.169.254/32", "dev", "uplink")
	nstest.IP(t, "-n", link, "link", "set", "uplink", "up")

	l := &testLab{link: link, mirrorHits: new(atomic.Int64)}
	l.md = newIMDS("i-0pghalab00000001", "eu-west-1a", nodeIP, nodeMAC, name, userData)
	serve(t, nstest.Listen(t, "/run/netns/"+link, "169.254.169.254:80"), l.md)
	mirror := image.Handler(im.Repo)
	serve(t, nstest.Listen(t, "/run/netns/"+link, linkIP+":80"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mirrorHits.Add(1)
		mirror.ServeHTTP(w, r)
	}))
	caPEM, cert := testCA(t, endpoint)
	serveTLS(t, nstest.Listen(t, "/run/netns/"+link, linkIP+":443"), cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What SSM's GetParameter answers, for curl and awscli.
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"Parameter":{"Name":"/pgha/test","Type":"SecureString","Value":"s3cret","Version":1}}`))
	}))

	l.state, err = os.MkdirTemp("", "pgha-machine-test-")
	require.NoError(t, err)
	t.Cleanup(func() {
		left, err := FindLeftovers(l.state)
		assert.NoError(t, err)
		if !left.Empty() {
			t.Errorf("leftovers: %s", left)
			assert.NoError(t, Clean(l.state))
		}
		_ = os.RemoveAll(l.state)
	})
	l.m, err = Create(Spec{
		Name:     name,
		Image:    im.RootFS,
		StateDir: filepath.Join(l.state, name),
		Netns:    "/run/netns/" + node,
		Hosts:    []string{linkIP + " " + image.MirrorHost, linkIP + " " + endpoint},
		CACerts:  [][]byte{caPEM},
		Files:    []File{{Path: "/etc/pgha-test/placed", Mode: 0o600, Data: []byte("placed before boot\n")}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.m.Remove()) })
	return l
}

// run runs a command on the machine and returns its trimmed output.
func (l *testLab) run(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := l.m.Exec(ctx, args...)
	require.NoError(t, err, "%s", out)
	return strings.TrimSpace(string(out))
}

// boot starts the machine and waits for cloud-init to finish.
func (l *testLab) boot(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	t1 := time.Now()
	require.NoError(t, l.m.Start(ctx))
	require.NoError(t, l.m.WaitBooted(ctx, 2*time.Minute))
	t.Logf("TIMING %s -> multi-user.target: %s", what, time.Since(t1).Round(time.Millisecond))
	out, err := l.m.Exec(ctx, "cloud-init", "status", "--wait", "--long")
	require.NoError(t, err, "%s", out)
	t.Logf("TIMING %s -> cloud-init done: %s", what, time.Since(t1).Round(time.Millisecond))
	require.Contains(t, string(out), "status: done")
	require.NotContains(t, strings.ToLower(string(out)), "error", "%s", out)
	// Every unit came up, as on a healthy instance; cloud-init's warnings
	// are logged for a reader.
	if st := l.run(t, ctx, "sh", "-c", "systemctl is-system-running || true"); st != "running" {
		t.Errorf("system is %s: %s", st, l.run(t, ctx, "systemctl", "--failed", "--no-legend"))
	}
	t.Logf("cloud-init warnings:\n%s", l.run(t, ctx, "sh", "-c", "grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log || true"))
}

// TestBootEc2 boots one machine from the lab image whose user data comes
// from an IMDS stand-in through cloud-init's Ec2 datasource, and checks what
// EC2 user data relies on; then a forced stop and start (cloud-init must
// not run the user data again), a clean poweroff, and removal with nothing
// left behind.
func TestBootEc2(t *testing.T) {
	needBootLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	l := newTestLab(t, ctx, "mt-pg-1", `#cloud-config
package_update: true
packages:
  - ssl-cert
write_files:
  - path: /etc/pgha-test/hello
    content: hello from user data
  - path: /etc/pgha-test/late
    content: written after the packages
    defer: true
runcmd:
  - [sh, -c, "echo ran >> /var/lib/pgha-test-runcmd"]
`)
	m, md, state, link, mirrorHits := l.m, l.md, l.state, l.link, l.mirrorHits
	run := func(args ...string) string { t.Helper(); return l.run(t, ctx, args...) }

	// --- first boot ---
	l.boot(t, ctx, "launch")

	require.Equal(t, "hello from user data", run("cat", "/etc/pgha-test/hello"))
	require.Equal(t, "written after the packages", run("cat", "/etc/pgha-test/late"))
	require.Equal(t, "placed before boot", run("cat", "/etc/pgha-test/placed"))
	require.Equal(t, "ran", run("cat", "/var/lib/pgha-test-runcmd"))
	require.Equal(t, "eu-west-1a", run("cloud-init", "query", "v1.availability_zone"))
	require.Equal(t, "i-0pghalab00000001", run("cloud-init", "query", "v1.instance_id"))
	require.Equal(t, "ec2", run("cloud-init", "query", "v1.platform"))
	require.Greater(t, md.count("user-data"), 0)

	// The AMI's admin user, with passwordless sudo; sshd runs.
	require.Contains(t, run("id", "admin"), "(sudo)")
	run("runuser", "-u", "admin", "--", "sudo", "-n", "true")
	require.Equal(t, "active", run("systemctl", "is-active", "ssh.service"))
	require.Equal(t, "mt-pg-1", run("hostname"))
	// The machine has a cgroup of its own in every hierarchy systemd uses
	// (cgroup.go), not one shared with every other machine: its PID 1 is
	// in that cgroup's payload.
	require.NotEmpty(t, m.st.Cgroups)
	for _, d := range m.st.Cgroups {
		require.Equal(t, "pgha-"+m.machineName(), filepath.Base(d))
		procs := strings.Fields(readFile(t, filepath.Join(d, "payload", "init.scope", "cgroup.procs")))
		require.Contains(t, procs, strconv.Itoa(m.PID()), "PID 1 is not in %s", d)
	}
	running, err := CgroupsLeft(m.spec) // what the lab's teardown check looks for
	require.NoError(t, err)
	require.Equal(t, m.st.Cgroups, running)

	// The packages came from the lab's repository through the mirror
	// list cloud-init regenerated; the hosts lines survived its rewrite of
	// /etc/hosts.
	require.Equal(t, image.MirrorURL, run("cat", "/etc/apt/mirrors/debian.list"))
	require.Equal(t, "install ok installed", run("dpkg-query", "-W", "-f=${Status}", "ssl-cert"))
	require.Greater(t, mirrorHits.Load(), int64(0))
	hosts := run("cat", "/etc/hosts")
	require.Contains(t, hosts, linkIP+" "+image.MirrorHost)
	require.Contains(t, hosts, linkIP+" "+endpoint)
	require.Empty(t, run("sh", "-c", "grep -v '^#' /etc/resolv.conf || true"))

	// The lab CA is trusted by curl, and by what Debian's awscli reads.
	require.Contains(t, run("curl", "-sS", "--max-time", "10", "https://"+endpoint+"/"), "s3cret")
	// awscli's botocore takes its bundle from certifi.where(); Debian's
	// python3-certifi (which cloud-init pulls in) answers the system one.
	require.Equal(t, "/etc/ssl/certs/ca-certificates.crt", run("python3", "-c", "import certifi; print(certifi.where())"))

	// A link cut from outside does not stop the machine.
	nstest.IP(t, "-n", link, "link", "set", "uplink", "down")
	time.Sleep(time.Second)
	require.True(t, m.Running())
	run("true")
	nstest.IP(t, "-n", link, "link", "set", "uplink", "up")

	// --- forced stop, start: same disk, no second run of the user data ---
	t3 := time.Now()
	require.NoError(t, m.Kill())
	t.Logf("TIMING kill: %s", time.Since(t3).Round(time.Millisecond))
	require.False(t, m.Running())
	left, err := FindLeftovers(state)
	require.NoError(t, err)
	require.Empty(t, left.Processes, "%s", left)
	require.Equal(t, []string{m.Root()}, left.Mounts)

	l.boot(t, ctx, "restart")
	require.Equal(t, "ran", run("cat", "/var/lib/pgha-test-runcmd"), "runcmd ran again after a restart")
	require.Equal(t, "eu-west-1a", run("cloud-init", "query", "v1.availability_zone"))

	// Exec by another process's handle.
	other, err := Open(filepath.Join(state, "mt-pg-1"))
	require.NoError(t, err)
	require.True(t, other.Running())

	// --- clean poweroff, then removal ---
	t5 := time.Now()
	require.NoError(t, m.Poweroff(time.Minute))
	t.Logf("TIMING poweroff: %s", time.Since(t5).Round(time.Millisecond))
	require.False(t, m.Running())
	require.False(t, other.Running())
	require.Contains(t, readFile(t, m.ConsoleLog()), "Powering off")

	require.NoError(t, m.Remove())
	left, err = FindLeftovers(state)
	require.NoError(t, err)
	require.True(t, left.Empty(), "%s", left)
	for _, d := range m.st.Cgroups {
		require.NoDirExists(t, d, "the machine's cgroup outlived it")
	}
	left2, err := CgroupsLeft(m.spec)
	require.NoError(t, err)
	require.Empty(t, left2)
	require.NoDirExists(t, filepath.Join(state, "mt-pg-1"))
}

// TestBootLabPackages installs every package of the lab's list through
// cloud-init from the lab repository, as the nodes' user data does, and
// checks what the user data then relies on: the services the packages
// enable on EC2, Debian's cluster tools, and awscli trusting the lab CA.
// It takes a few minutes; -short skips it.
func TestBootLabPackages(t *testing.T) {
	needBootLab(t)
	if testing.Short() {
		t.Skip("installs every lab package (minutes)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	l := newTestLab(t, ctx, "mt-all", "#cloud-config\npackage_update: true\npackages:\n  - "+strings.Join(labPackages, "\n  - ")+"\n")
	run := func(args ...string) string { t.Helper(); return l.run(t, ctx, args...) }
	l.boot(t, ctx, "launch with every lab package")

	for _, p := range labPackages {
		require.Equal(t, "install ok installed", run("dpkg-query", "-W", "-f=${Status}", p), p)
	}
	for _, u := range []string{"etcd.service", "haproxy.service", "postgresql@15-main.service"} {
		// postgresql@15-main is enabled at run time by Debian's
		// postgresql-common generator, from the cluster's start.conf.
		require.Contains(t, []string{"enabled", "enabled-runtime"}, run("sh", "-c", "systemctl is-enabled "+u+" || true"), u)
		require.Equal(t, "active", run("sh", "-c", "systemctl is-active "+u+" || true"), u)
	}
	require.Equal(t, []string{"15", "main", "5432", "online"}, strings.Fields(run("pg_lsclusters", "--no-header"))[:4])
	require.Contains(t, run("etcdctl", "version"), "3.4")
	require.Equal(t, "s3cret", run("aws", "ssm", "get-parameter", "--no-sign-request", "--region", "eu-west-1",
		"--name", "/pgha/test", "--with-decryption", "--query", "Parameter.Value", "--output", "text"))
	t0 := time.Now()
	require.NoError(t, l.m.Poweroff(time.Minute))
	t.Logf("TIMING poweroff with PostgreSQL, etcd and HAProxy running: %s", time.Since(t0).Round(time.Millisecond))
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// serve serves h on ln until the test ends.
func serve(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func serveTLS(t *testing.T, ln net.Listener, cert tls.Certificate, h http.Handler) {
	t.Helper()
	serve(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}), h)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// testCA makes a CA and a server certificate for host signed by it.
func testCA(t *testing.T, host string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgha lab test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err = x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
