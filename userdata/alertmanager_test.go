package userdata

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/topology"
)

const testTopic = "arn:aws:sns:eu-west-1:123456789012:pgha-dev-alerts"

// TestAlertmanagerConfig has amtool load the rendered alertmanager.yml and
// route the cluster's alerts through it: to SNS with a topic, to nobody
// without one; and refuses what would not load.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := lookTool(t, "amtool")
	base := t.TempDir()
	c := defaultCluster(t)
	p := monitorPaths(base, "monitor-1")
	require.NoError(t, os.MkdirAll(base+"/monitor-1", 0o755))

	route := func(t *testing.T, m Monitoring) string {
		t.Helper()
		c.Monitoring = &m
		b, err := RenderAlertmanagerConfig(c, p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p.AlertmanagerConfig, b, 0o644))
		out, err := exec.Command(amtool, "check-config", p.AlertmanagerConfig).CombinedOutput()
		require.NoError(t, err, "%s\n%s", out, b)
		assert.Contains(t, string(out), " - 2 inhibit rules")
		out, err = exec.Command(amtool, "config", "routes", "test", "--config.file="+p.AlertmanagerConfig,
			"alertname=PatroniNoLeader", "cluster=pgha", "severity=critical").Output()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	t.Run("with a topic, every alert goes to SNS with the instance role", func(t *testing.T) {
		assert.Equal(t, "sns", route(t, Monitoring{AlertTopicARN: testTopic}))
		b, err := os.ReadFile(p.AlertmanagerConfig)
		require.NoError(t, err)
		cfg := string(b)
		assert.Contains(t, cfg, "      - topic_arn: "+testTopic+"\n        sigv4:\n          region: eu-west-1\n")
		assert.Contains(t, cfg, "        subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.cluster }} {{ .CommonLabels.alertname }}'\n        send_resolved: true\n")
		assert.NotContains(t, cfg, "access_key", "the instance role signs")
		assert.NotContains(t, cfg, "api_url", "SNS's own endpoint on AWS")
		assert.Contains(t, cfg, "group_wait: 30s")
	})
	t.Run("the lab's stand-in endpoint and a short wait", func(t *testing.T) {
		assert.Equal(t, "sns", route(t, Monitoring{AlertTopicARN: testTopic, AlertSNSEndpoint: "https://10.42.3.2", GroupWait: "2s"}))
		b, err := os.ReadFile(p.AlertmanagerConfig)
		require.NoError(t, err)
		assert.Contains(t, string(b), "        api_url: https://10.42.3.2\n")
		assert.Contains(t, string(b), "group_wait: 2s")
	})
	t.Run("without a topic, alerts page nobody", func(t *testing.T) {
		assert.Equal(t, "nobody", route(t, Monitoring{}))
	})
	t.Run("bad input is refused before anything renders", func(t *testing.T) {
		for m, want := range map[Monitoring]string{
			{AlertTopicARN: "pgha-alerts"}:                           `alert topic "pgha-alerts" is not an SNS topic ARN`,
			{AlertTopicARN: "arn:aws:s3:::bucket"}:                   "is not an SNS topic ARN",
			{AlertTopicARN: testTopic, AlertSNSEndpoint: "http://x"}: `SNS endpoint "http://x" is not an https:// URL`,
			{GroupWait: "soon"}:                                      `alert group wait "soon" is not a duration`,
		} {
			c.Monitoring = &m
			_, err := MonitorFiles(c, p)
			assert.ErrorContains(t, err, want)
		}
	})
}

// TestAlertmanagerInhibits runs the real Alertmanager with the rendered
// configuration and TLS, sends it the alerts of a lost leader and of lost
// quorum, and reads back which ones it silences: one fault, one page.
func TestAlertmanagerInhibits(t *testing.T) {
	bin := lookTool(t, "prometheus-alertmanager")
	base := t.TempDir()
	tt := newTestTLS(t, base)
	c := defaultCluster(t)
	c.Monitoring = &Monitoring{GroupWait: "1s"}
	p := monitorPaths(base, "monitor-1")
	tt.installMonitor(t, c, p)
	files, err := MonitorFiles(c, p)
	require.NoError(t, err)
	for _, f := range files {
		require.NoError(t, os.WriteFile(f.Path, f.Content, 0o644))
	}
	require.NoError(t, os.MkdirAll(p.AlertmanagerDataDir, 0o700))
	args := AlertmanagerArgs(c, p)
	addr := freeAddr(t)
	listen := "--web.listen-address=" + hostPort(c.Plan.Monitor().IP, topology.PortAlertmanager)
	require.Contains(t, args, listen)
	for i := range args {
		if args[i] == listen {
			args[i] = "--web.listen-address=" + addr
		}
	}
	log := startDaemon(t, nil, append([]string{bin}, args...)...)
	cfg := tt.client(t)
	cfg.ServerName = "monitor-1"
	_, err = waitTLSGet(cfg, "https://"+addr+"/-/ready")
	require.NoError(t, err, log.String())
	// Anonymous clients are refused, as by Prometheus.
	_, err = tlsGet(&tls.Config{RootCAs: cfg.RootCAs, ServerName: "monitor-1"}, "https://"+addr+"/-/ready")
	require.Error(t, err)

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	alert := func(name, severity string) map[string]any {
		return map[string]any{"labels": map[string]string{"alertname": name, "cluster": "pgha", "severity": severity},
			"startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339)}
	}
	body, err := json.Marshal([]any{alert("PatroniNoLeader", "critical"), alert("HAProxyNoPrimary", "critical"),
		alert("PatroniNoSyncStandby", "warning"), alert("EtcdQuorumLost", "critical"), alert("EtcdMemberDown", "warning"),
		alert("TargetDown", "warning")})
	require.NoError(t, err)
	resp, err := hc.Post("https://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	want := map[string]string{"PatroniNoLeader": "active", "HAProxyNoPrimary": "suppressed", "PatroniNoSyncStandby": "suppressed",
		"EtcdQuorumLost": "active", "EtcdMemberDown": "suppressed", "TargetDown": "active"}
	got := map[string]string{}
	require.Eventually(t, func() bool {
		resp, err := hc.Get("https://" + addr + "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var alerts []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if json.NewDecoder(resp.Body).Decode(&alerts) != nil {
			return false
		}
		got = map[string]string{}
		for _, a := range alerts {
			got[a.Labels["alertname"]] = a.Status.State
		}
		return assert.ObjectsAreEqual(want, got)
	}, 20*time.Second, 200*time.Millisecond, "got %v\n%s", got, log)
}
