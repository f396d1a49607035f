package userdata

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// monitorPaths extends the test layout with the monitoring files.
func monitorPaths(base, node string) Paths {
	p := labPaths(base, node)
	d := filepath.Join(base, node)
	p.ExporterKeyFile = filepath.Join(d, "tls", "exporter.key")
	p.ExporterWebConfig = filepath.Join(d, "exporter-web.yml")
	p.PrometheusConfig = filepath.Join(d, "prometheus.yml")
	p.PrometheusWebConfig = filepath.Join(d, "web.yml")
	p.PrometheusRules = filepath.Join(d, "pgha.rules.yml")
	p.PrometheusDataDir = filepath.Join(d, "prometheus")
	p.AlertmanagerConfig = filepath.Join(d, "alertmanager.yml")
	p.AlertmanagerDataDir = filepath.Join(d, "alertmanager")
	return p
}

// installMonitor issues the monitoring node's certificate into p.
func (tt *testTLS) installMonitor(t *testing.T, c Cluster, p Paths) {
	t.Helper()
	cert, key, err := tt.ca.Issue(pki.NodeLeaf(c.Plan, c.Plan.Monitor(), nil))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(p.TLSCertFile), 0o755))
	require.NoError(t, os.WriteFile(p.TLSCAFile, tt.ca.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(p.TLSCertFile, cert, 0o644))
	require.NoError(t, os.WriteFile(p.TLSKeyFile, key, 0o600))
}

// TestPrometheusConfigPromtool has promtool check the monitoring node's
// files as Prometheus would load them (certificates and rules read from
// disk): the scrape configuration, its web (TLS) configuration, and an
// exporter's.
func TestPrometheusConfigPromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	base := t.TempDir()
	tt := newTestTLS(t, base)
	c := defaultCluster(t)
	c.Monitoring = &Monitoring{ScrapeInterval: "2s", Retention: "2d"}
	p := monitorPaths(base, "monitor-1")
	tt.installMonitor(t, c, p)
	files, err := MonitorFiles(c, p)
	require.NoError(t, err)
	for _, f := range files {
		require.NoError(t, os.WriteFile(f.Path, f.Content, 0o644))
	}
	out, err := exec.Command(promtool, "check", "config", p.PrometheusConfig).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "SUCCESS: 1 rule files found")
	out, err = exec.Command(promtool, "check", "web-config", p.PrometheusWebConfig).CombinedOutput()
	require.NoError(t, err, string(out))

	cfg := string(files[0].Content)
	for _, j := range c.scrapeJobs() {
		assert.Contains(t, cfg, "job_name: "+j.Name)
		for _, n := range j.Nodes {
			assert.Contains(t, cfg, fmt.Sprintf("- targets: ['%s']\n        labels:\n          node: %s\n", hostPort(n.IP, j.Port), n.Name))
		}
	}
	assert.Equal(t, 9+3+3+3+2+1+1+1, strings.Count(cfg, "- targets:"), "node_exporter on every node and the monitoring node, then postgres_exporter, Patroni, etcd, HAProxy, Prometheus itself, Alertmanager; and Alertmanager as where alerts go")
	assert.Contains(t, cfg, "alerting:\n  alertmanagers:\n    - scheme: https\n")
	assert.Contains(t, cfg, "      static_configs:\n        - targets: ['10.42.4.40:9093']\nscrape_configs:\n")
	assert.Equal(t, "--storage.tsdb.retention.time=2d", PrometheusArgs(c, p)[4])

	// A bad duration is refused before anything renders.
	bad := c
	bad.Monitoring = &Monitoring{Retention: "two weeks"}
	_, err = MonitorFiles(bad, p)
	require.ErrorContains(t, err, `monitoring retention "two weeks" is not a duration`)
	bad.Monitoring = nil
	_, err = RenderPrometheusConfig(bad, p)
	require.ErrorContains(t, err, "no monitoring node")
}

// TestMonitoringOnTheNodes: with monitoring, PostgreSQL admits the exporter
// role on the socket by peer from the exporter's OS user alone, HAProxy
// serves its exporter on the private address behind client certificates
// (haproxy -c loads the files), and every node carries the exporters' web
// configuration; without monitoring, none of it.
func TestMonitoringOnTheNodes(t *testing.T) {
	haproxy := lookTool(t, "haproxy")
	base := t.TempDir()
	tt := newTestTLS(t, base)
	c := defaultCluster(t)
	off := c
	c.Monitoring = &Monitoring{}

	var peer []string
	for _, r := range c.HBA() {
		if r.Type == "local" && strings.Contains(strings.Join(r.Users, ","), c.Users.Exporter) {
			peer = append(peer, r.Line())
		}
	}
	assert.Equal(t, []string{"local postgres pgha_exporter peer map=pgha-exporter"}, peer)
	assert.Equal(t, []string{"pgha-exporter prometheus pgha_exporter"}, c.PGIdent())
	assert.Empty(t, off.PGIdent())
	for _, r := range off.HBA() {
		assert.NotContains(t, r.Users, c.Users.Exporter)
	}
	cfg, err := RenderPatroniConfig(c, "pg-1", CloudPaths())
	require.NoError(t, err)
	assert.Contains(t, string(cfg), "\n  pg_ident:\n    - pgha-exporter prometheus pgha_exporter\n")

	for _, n := range c.Plan.Nodes {
		files, err := NodeFiles(c, n.Name, CloudPaths())
		require.NoError(t, err)
		assert.Equal(t, CloudPaths().ExporterWebConfig, files[len(files)-1].Path, n.Name)
		offFiles, err := NodeFiles(off, n.Name, CloudPaths())
		require.NoError(t, err)
		assert.Len(t, offFiles, len(files)-1, n.Name)
	}

	h := c.Plan.ByRole(topology.RoleHAProxy)[0]
	p := monitorPaths(base, h.Name)
	tt.install(t, c, h.Name, p, "")
	b, err := RenderHAProxyConfig(c, h.Name, p)
	require.NoError(t, err)
	assert.Contains(t, string(b), fmt.Sprintf("bind %s:%d ssl crt %s ca-file %s verify required\n", h.IP, topology.PortHAProxyMetrics, p.TLSCertFile, p.TLSCAFile))
	require.NoError(t, os.WriteFile(p.HAProxyConfigFile, b, 0o644))
	out, err := exec.Command(haproxy, "-c", "-f", p.HAProxyConfigFile).CombinedOutput()
	require.NoError(t, err, string(out))
	b, err = RenderHAProxyConfig(off, h.Name, p)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "prometheus-exporter")
}

// TestNodeExporterServesTLSOnly runs Debian's node_exporter with the web
// configuration a node gets: a client with a certificate of the cluster CA
// reads the metrics, one without is refused in the handshake, and plain
// HTTP gets nothing.
func TestNodeExporterServesTLSOnly(t *testing.T) {
	exporter := lookTool(t, "prometheus-node-exporter")
	base := t.TempDir()
	tt := newTestTLS(t, base)
	c := defaultCluster(t)
	c.Monitoring = &Monitoring{}
	node := "etcd-1"
	p := monitorPaths(base, node)
	tt.install(t, c, node, p, "")
	key, err := os.ReadFile(p.TLSKeyFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.ExporterKeyFile, key, 0o600))
	web, err := RenderExporterWebConfig(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.ExporterWebConfig, web, 0o644))

	addr := freeAddr(t)
	args := NodeExporterArgs(topology.Node{IP: c.Plan.Nodes[0].IP}, p)
	require.Equal(t, "--web.config.file="+p.ExporterWebConfig, args[1])
	log := startDaemon(t, nil, exporter, "--web.listen-address="+addr, args[1])
	client := tt.client(t)
	client.ServerName = node // the certificate names the node, not 127.0.0.1
	body, err := waitTLSGet(client, "https://"+addr+"/metrics")
	require.NoError(t, err, log.String())
	assert.Contains(t, body, "node_exporter_build_info")

	anon := client.Clone()
	anon.Certificates = nil
	_, err = tlsGet(anon, "https://"+addr+"/metrics")
	require.Error(t, err, "a client without a certificate must be refused")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err == nil {
		resp.Body.Close()
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, "plain HTTP must get no metrics")
	}
}

// freeAddr is a loopback address whose port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startDaemon runs argv with env (nil: this process's) until the test
// ends, and returns what it logs.
func startDaemon(t *testing.T, env []string, argv ...string) *strings.Builder {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &log
}

// tlsGet GETs url with cfg: its body, or an error unless HTTP 200.
func tlsGet(cfg *tls.Config, url string) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return string(body), err
}

// waitTLSGet retries tlsGet for 20 s, while a daemon starts.
func waitTLSGet(cfg *tls.Config, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		body, err := tlsGet(cfg, url)
		if err == nil || ctx.Err() != nil {
			return body, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
