package promgraph

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/report"
)

// fakeCluster serves the exporters' metrics, with their real names, for
// three Patroni/PostgreSQL nodes and two HAProxy nodes. Phase 0: pg-1
// leads. Phase 1: pg-1 is gone (its scrapes fail), pg-2 leads.
type fakeCluster struct {
	mu      sync.Mutex
	phase   int
	scrapes map[string]int // by node and job
	servers map[string]*httptest.Server
}

// WAL positions: the leader's, and each replica's replayed one.
var (
	leaderLSN   = [2]float64{50_000_000, 60_000_000}
	replayedLSN = [2]map[string]float64{
		{"pg-2": 49_999_000, "pg-3": 49_990_000},
		{"pg-3": 59_996_000, "pg-1": 0},
	}
	leaderOf = [2]string{"pg-1", "pg-2"}
)

func newFakeCluster(t *testing.T) *fakeCluster {
	f := &fakeCluster{scrapes: map[string]int{}, servers: map[string]*httptest.Server{}}
	for _, n := range []string{"pg-1", "pg-2", "pg-3", "haproxy-1", "haproxy-2"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(w, r, n) }))
		t.Cleanup(srv.Close)
		f.servers[n] = srv
	}
	return f
}

func (f *fakeCluster) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scrapes[key]
}

func (f *fakeCluster) setPhase(p int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phase = p
}

func (f *fakeCluster) serve(w http.ResponseWriter, r *http.Request, node string) {
	f.mu.Lock()
	phase := f.phase
	f.scrapes[node+r.URL.Path]++
	f.mu.Unlock()
	if node == "pg-1" && phase == 1 {
		http.Error(w, "killed", http.StatusServiceUnavailable)
		return
	}
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	leader := leaderOf[phase] == node
	var m strings.Builder
	switch r.URL.Path {
	case "/patroni":
		loc, replayed := 0.0, replayedLSN[phase][node]
		if leader {
			loc, replayed = leaderLSN[phase], 0
		}
		fmt.Fprintf(&m, "# TYPE patroni_master gauge\npatroni_master{scope=\"pgha\"} %d\n", b(leader))
		fmt.Fprintf(&m, "# TYPE patroni_replica gauge\npatroni_replica{scope=\"pgha\"} %d\n", b(!leader))
		fmt.Fprintf(&m, "# TYPE patroni_postgres_running gauge\npatroni_postgres_running{scope=\"pgha\"} 1\n")
		fmt.Fprintf(&m, "# TYPE patroni_xlog_location counter\npatroni_xlog_location{scope=\"pgha\"} %.0f\n", loc)
		fmt.Fprintf(&m, "# TYPE patroni_xlog_replayed_location counter\npatroni_xlog_replayed_location{scope=\"pgha\"} %.0f\n", replayed)
	case "/postgres":
		// Counters that grow 10/s (7 commits, 3 rollbacks) in the
		// application's database by the clock, whenever Prometheus asks;
		// the postgres database grows 100/s and must not count.
		now := float64(time.Now().UnixNano()) / 1e9
		fmt.Fprintf(&m, "# TYPE pg_up gauge\npg_up 1\n")
		fmt.Fprintf(&m, "# TYPE pg_stat_database_xact_commit counter\n")
		fmt.Fprintf(&m, "pg_stat_database_xact_commit{datid=\"16384\",datname=\"app\"} %.3f\n", 7*(now-1.7e9))
		fmt.Fprintf(&m, "pg_stat_database_xact_commit{datid=\"5\",datname=\"postgres\"} %.3f\n", 100*(now-1.7e9))
		fmt.Fprintf(&m, "# TYPE pg_stat_database_xact_rollback counter\n")
		fmt.Fprintf(&m, "pg_stat_database_xact_rollback{datid=\"16384\",datname=\"app\"} %.3f\n", 3*(now-1.7e9))
		fmt.Fprintf(&m, "pg_stat_database_xact_rollback{datid=\"5\",datname=\"postgres\"} 0\n")
	case "/metrics": // HAProxy: the primary backend empties in phase 1
		fmt.Fprintf(&m, "# TYPE haproxy_backend_active_servers gauge\n")
		fmt.Fprintf(&m, "haproxy_backend_active_servers{proxy=\"primary\"} %d\n", 1-phase)
		fmt.Fprintf(&m, "haproxy_backend_active_servers{proxy=\"replicas\"} 2\n")
		fmt.Fprintf(&m, "haproxy_backend_active_servers{proxy=\"stats\"} 0\n")
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(m.String()))
}

// scrapeConfig is Prometheus's configuration: the cluster's three jobs,
// each target labelled with its node, scraped every second.
func (f *fakeCluster) scrapeConfig() string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n")
	for _, job := range []struct{ name, path, role string }{
		{JobPatroni, "/patroni", "pg"}, {JobPostgres, "/postgres", "pg"}, {JobHAProxy, "/metrics", "haproxy"},
	} {
		fmt.Fprintf(&b, "  - job_name: %s\n    metrics_path: %s\n    static_configs:\n", job.name, job.path)
		for _, n := range []string{"pg-1", "pg-2", "pg-3", "haproxy-1", "haproxy-2"} {
			if strings.HasPrefix(n, job.role) {
				fmt.Fprintf(&b, "      - targets: ['%s']\n        labels: {node: %s}\n", strings.TrimPrefix(f.servers[n].URL, "http://"), n)
			}
		}
	}
	return b.String()
}

// promTLS is the cluster's material for a Prometheus server: a CA, the
// server's certificate for 127.0.0.1, and pgha's client certificate.
type promTLS struct {
	ca                 *pki.CA
	stack              outputs.Stack // CACertificate and ClientTLS, as validate reads them
	dir                string
	certFile, keyFile  string
	caFile, webCfgFile string
}

func newPromTLS(t *testing.T) promTLS {
	ca, err := pki.NewCA("promgraph test CA")
	require.NoError(t, err)
	dir := t.TempDir()
	p := promTLS{ca: ca, dir: dir, certFile: filepath.Join(dir, "server.crt"), keyFile: filepath.Join(dir, "server.key"),
		caFile: filepath.Join(dir, "ca.crt"), webCfgFile: filepath.Join(dir, "web.yml")}
	cert, key, err := ca.Issue(pki.Leaf{CommonName: "prometheus", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.certFile, cert, 0o644))
	require.NoError(t, os.WriteFile(p.keyFile, key, 0o600))
	require.NoError(t, os.WriteFile(p.caFile, ca.CertPEM, 0o644))
	ccert, ckey, err := ca.Issue(pki.ClientLeaf())
	require.NoError(t, err)
	p.stack = outputs.Stack{CACertificate: string(ca.CertPEM), ClientTLS: &outputs.ClientTLS{Certificate: string(ccert), PrivateKey: string(ckey)}}
	web := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\n",
		p.certFile, p.keyFile, p.caFile)
	require.NoError(t, os.WriteFile(p.webCfgFile, []byte(web), 0o644))
	return p
}

// startPrometheus runs the real server on a free loopback port with its
// own storage, and stops it (by its PID) when the test ends.
func startPrometheus(t *testing.T, config string, tlsm promTLS) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Geteuid() == 0 {
			t.Fatal("prometheus is not installed; scripts/install-deps.sh installs it")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o644))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.config.file="+tlsm.webCfgFile, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	return "https://" + addr
}

// clusterClient is validate's way to Prometheus: the stack's TLS
// configuration (probe.TLSConfig) on a direct dial.
func clusterClient(base string, s outputs.Stack) *Client {
	return &Client{BaseURL: base, HTTP: access.HTTPSClient(access.Direct(), 5*time.Second, probe.TLSConfig(s))}
}

func TestAgainstRealPrometheus(t *testing.T) {
	f := newFakeCluster(t)
	tlsm := newPromTLS(t)
	base := startPrometheus(t, f.scrapeConfig(), tlsm)
	c := clusterClient(base, tlsm.stack)
	ctx := context.Background()

	// Up, over TLS with the client certificate, and scraping.
	waitScraped(t, c, 8)
	from := time.Now()

	// Phase 0 for a few scrapes, then pg-1 goes and pg-2 leads.
	scraped := func(key string, n int) {
		t.Helper()
		start := f.count(key)
		require.True(t, wait.Poll(ctx, 30*time.Second, 100*time.Millisecond, func() bool { return f.count(key) >= start+n }),
			"%s was not scraped %d more times", key, n)
	}
	scraped("pg-1/patroni", 4)
	f.setPhase(1)
	scraped("pg-2/patroni", 5)
	scraped("pg-2/postgres", 1)
	to := time.Now()

	iv, err := ScrapeInterval(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, time.Second, iv.Round(100*time.Millisecond), "the raw samples are a second apart")

	m := Collect(ctx, c, Request{From: from, To: to, Database: "app"})
	require.Empty(t, m.Note)
	require.True(t, m.HasData())
	panels := map[string]report.MetricPanel{}
	for _, p := range m.Panels {
		require.Empty(t, p.Note, p.Name)
		panels[p.Name] = p
	}
	series := func(panel, name string) report.MetricSeries {
		t.Helper()
		for _, s := range panels[panel].Series {
			if s.Name == name {
				require.NotEmpty(t, s.Points)
				return s
			}
		}
		require.Failf(t, "no series", "%s has no %q: %+v", panel, name, panels[panel].Series)
		return report.MetricSeries{}
	}
	first := func(s report.MetricSeries) float64 { return s.Points[0].Value }
	last := func(s report.MetricSeries) float64 { return s.Points[len(s.Points)-1].Value }

	// Roles: pg-1 led and then has no samples (its failed scrapes marked
	// its series stale); pg-2 was a replica and leads.
	pg1, pg2, pg3 := series("roles", "pg-1"), series("roles", "pg-2"), series("roles", "pg-3")
	assert.Equal(t, float64(report.RoleLeader), first(pg1))
	assert.Equal(t, float64(report.RoleReplica), first(pg2))
	assert.Equal(t, float64(report.RoleLeader), last(pg2))
	assert.True(t, pg1.Points[len(pg1.Points)-1].At.Before(pg2.Points[len(pg2.Points)-1].At), "pg-1's lane ends when its scrapes fail")
	for _, p := range pg3.Points {
		assert.Equal(t, float64(report.RoleReplica), p.Value)
	}

	// Lag: the leader's position minus each replica's replayed one, in
	// bytes, whoever leads.
	assert.Equal(t, 1000.0, first(series("replication_lag", "pg-2")))
	assert.Equal(t, 10000.0, first(series("replication_lag", "pg-3")))
	assert.Equal(t, 4000.0, last(series("replication_lag", "pg-3")))
	for _, s := range panels["replication_lag"].Series {
		assert.NotEqual(t, "pg-1", s.Name, "pg-1 was never a replica here")
	}
	lag2 := series("replication_lag", "pg-2")
	assert.True(t, lag2.Points[len(lag2.Points)-1].At.Before(pg2.Points[len(pg2.Points)-1].At), "no lag for pg-2 once it leads")

	// Transactions: 7 commits + 3 rollbacks a second in app, on each node
	// that is scraped (the postgres database's 100/s is not counted).
	for _, n := range []string{"pg-2", "pg-3"} {
		s := series("tps", n)
		assert.InDelta(t, 10, s.Points[len(s.Points)/2].Value, 1, "%s: %v", n, s.Points)
	}

	// HAProxy: the primary backend empties, the replicas stay; the stats
	// proxy is not drawn.
	for _, n := range []string{"haproxy-1", "haproxy-2"} {
		assert.Equal(t, 1.0, first(series("haproxy_servers", n+" primary")))
		assert.Equal(t, 0.0, last(series("haproxy_servers", n+" primary")))
		rep := series("haproxy_servers", n+" replicas")
		assert.Equal(t, 2.0, last(rep))
		assert.True(t, rep.Dashed)
	}
	assert.Len(t, panels["haproxy_servers"].Series, 4)

	// Prometheus's own refusal of a bad query comes back typed.
	_, err = c.Query(ctx, "sum(", time.Time{})
	var pe *Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, http.StatusBadRequest, pe.Status)
	assert.Equal(t, "bad_data", pe.Type)
	assert.NotEmpty(t, pe.Message)

	// The graphs render from what came back.
	svg := report.MetricsSVG(report.Check{Name: "failover", Metrics: m}, "test")
	assert.Contains(t, string(svg), "haproxy-2 replicas")
}

func TestRealPrometheusRefusesWithoutClientCertificate(t *testing.T) {
	f := newFakeCluster(t)
	tlsm := newPromTLS(t)
	base := startPrometheus(t, f.scrapeConfig(), tlsm)
	ctx := context.Background()
	good := clusterClient(base, tlsm.stack)
	require.True(t, wait.Poll(ctx, 60*time.Second, 200*time.Millisecond, func() bool {
		_, err := good.Query(ctx, "1", time.Time{})
		return err == nil
	}), "Prometheus did not answer the cluster's client")

	// The CA alone: the server is trusted, the client is not.
	noCert := outputs.Stack{CACertificate: tlsm.stack.CACertificate}
	_, err := clusterClient(base, noCert).Query(ctx, "1", time.Time{})
	require.Error(t, err)
	var pe *Error
	assert.False(t, errors.As(err, &pe), "refused in the handshake, not by the API: %v", err)
	// Prometheus 2.42's Go says "bad certificate"; newer ones "certificate required".
	assert.Regexp(t, `remote error: tls: (bad certificate|certificate required)`, err.Error())

	// A client certificate from another CA.
	other, err := pki.NewCA("another CA")
	require.NoError(t, err)
	ocert, okey, err := other.Issue(pki.ClientLeaf())
	require.NoError(t, err)
	stranger := outputs.Stack{CACertificate: tlsm.stack.CACertificate, ClientTLS: &outputs.ClientTLS{Certificate: string(ocert), PrivateKey: string(okey)}}
	_, err = clusterClient(base, stranger).Query(ctx, "1", time.Time{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "remote error: tls: bad certificate")

	// And the client refuses a server its CA did not sign.
	pool := &tls.Config{MinVersion: tls.VersionTLS12}
	_, err = (&Client{BaseURL: base, HTTP: access.HTTPSClient(access.Direct(), 5*time.Second, pool)}).Query(ctx, "1", time.Time{})
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	// Collect turns the refusal into the report's one line.
	m := Collect(ctx, clusterClient(base, noCert), Request{From: time.Now().Add(-10 * time.Second), To: time.Now()})
	assert.False(t, m.HasData())
	assert.True(t, strings.HasPrefix(m.Note, "Prometheus at "+base+" did not answer: "), m.Note)
}

// waitScraped waits until Prometheus has scraped n targets successfully.
func waitScraped(t *testing.T, c *Client, n float64) {
	t.Helper()
	ctx := context.Background()
	var lastErr error
	require.True(t, wait.Poll(ctx, 60*time.Second, 200*time.Millisecond, func() bool {
		r, err := c.Query(ctx, `count(up == 1)`, time.Time{})
		lastErr = err
		return err == nil && len(r.Series) == 1 && r.Series[0].Samples[0].Value == n
	}), "Prometheus never scraped the %v targets: %v", n, lastErr)
}
