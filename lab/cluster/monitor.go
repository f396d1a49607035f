package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/userdata"
)

// The namespace lab watches itself as a stack with pgha:monitoring does:
// node_exporter on every node, postgres_exporter on the PostgreSQL nodes,
// and Prometheus on the monitoring node (its own namespace at the plan's
// address), scraping them, Patroni, etcd and HAProxy over TLS, and sending
// its alerts to Alertmanager there. The lab has no SNS topic: Alertmanager
// holds the alerts (lab status and the tests read them) and pages nobody.

// labScrapeInterval: every second, so that a failover of a few seconds
// shows in validate's graphs (AWS keeps Prometheus's 15 s). labGroupWait:
// a new alert reaches Alertmanager's notification stage within a second.
const (
	labScrapeInterval = "1s"
	labRetention      = "2d"
	labGroupWait      = "1s"
)

// Monitored reports whether the lab runs the exporters and Prometheus: the
// namespace lab does. (The loopback lab's nodes share one stack, where
// every exporter would want the same port; the booted lab's monitoring
// node comes with the stack's.)
func (l *Lab) Monitored() bool { return l.Settings.Net == NetNetns }

func (l *Lab) monitoringSpec() *userdata.Monitoring {
	if !l.Monitored() {
		return nil
	}
	return &userdata.Monitoring{ScrapeInterval: labScrapeInterval, Retention: labRetention, GroupWait: labGroupWait}
}

// PrometheusURL is the lab's Prometheus, "" without monitoring.
func (l *Lab) PrometheusURL() string {
	if !l.Monitored() {
		return ""
	}
	m := l.Plan.Monitor()
	return "https://" + hostPort(m.IP.String(), topology.PortPrometheus)
}

// AlertmanagerURL is the lab's Alertmanager, "" without monitoring.
func (l *Lab) AlertmanagerURL() string {
	if !l.Monitored() {
		return ""
	}
	m := l.Plan.Monitor()
	return "https://" + hostPort(m.IP.String(), topology.PortAlertmanager)
}

func hostPort(host string, port int) string { return fmt.Sprintf("%s:%d", host, port) }

// monitorRecord names the lab's record of a monitoring process.
func monitorRecord(node, what string) string { return "monitoring:" + node + ":" + what }

// writeMonitorFiles writes the monitoring node's certificate, Prometheus's
// files and data directory, and the exporters' copy of each node's key.
func (l *Lab) writeMonitorFiles() error {
	m := l.Plan.Monitor()
	p := l.Paths(m.Name)
	dir := l.NodeDir(m.Name)
	for _, d := range []string{dir, filepath.Dir(p.PrometheusConfig), filepath.Dir(p.TLSCertFile), filepath.Join(dir, "log")} {
		if err := mkdirOwned(d, "root", 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{p.PrometheusDataDir, p.AlertmanagerDataDir} {
		if err := mkdirOwned(d, userdata.ExporterUser, 0o700); err != nil {
			return err
		}
	}
	if err := l.writeNodeTLS(m, userdata.ExporterUser); err != nil {
		return err
	}
	// node_exporter runs on the monitoring node too.
	if err := l.writeExporterFiles(m); err != nil {
		return err
	}
	files, err := userdata.MonitorFiles(l.Spec(), p)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := writeOwned(f.Path, f.Content, f.Owner, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// writeExporterFiles gives the exporters of a node their copy of its key
// and, on the monitoring node (whose NodeFiles there are none), their web
// configuration.
func (l *Lab) writeExporterFiles(n topology.Node) error {
	p := l.Paths(n.Name)
	_, keyFile := l.NodeTLSFiles(n.Name)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return missingTLS(err)
	}
	if err := writeOwned(p.ExporterKeyFile, key, userdata.ExporterUser+":"+userdata.ExporterUser, 0o600); err != nil {
		return err
	}
	if n.Role != topology.RoleMonitor {
		return nil
	}
	web, err := userdata.RenderExporterWebConfig(p)
	if err != nil {
		return err
	}
	return writeOwned(p.ExporterWebConfig, web, "root:root", 0o644)
}

// monitorSpecs are the monitoring processes, by record name.
func (l *Lab) monitorSpecs() map[string]proc.Spec {
	spec := l.Spec()
	env := []string{"PATH=" + basePath, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=/"}
	as := []string{"setpriv", "--reuid=" + userdata.ExporterUser, "--regid=" + userdata.ExporterUser, "--init-groups", "--"}
	run := func(node, what, logName string, env []string, argv ...string) (string, proc.Spec) {
		in := []string{"ip", "netns", "exec", l.Namespace(node)}
		return monitorRecord(node, what), proc.Spec{
			Argv: append(append(in, as...), argv...), Env: env, Dir: "/",
			Log:    filepath.Join(l.NodeDir(node), "log", logName),
			Marker: l.Paths(node).ExporterWebConfig,
		}
	}
	out := map[string]proc.Spec{}
	add := func(name string, s proc.Spec) { out[name] = s }
	for _, n := range append(append([]topology.Node(nil), l.Plan.Nodes...), l.Plan.Monitor()) {
		p := l.Paths(n.Name)
		add(run(n.Name, "node_exporter", "node-exporter.log", env,
			append([]string{"prometheus-node-exporter"}, userdata.NodeExporterArgs(n, p)...)...))
		if n.Role == topology.RolePatroni {
			pgEnv := append(append([]string(nil), env...), "DATA_SOURCE_NAME="+userdata.PostgresExporterDSN(spec, p))
			add(run(n.Name, "postgres_exporter", "postgres-exporter.log", pgEnv,
				append([]string{"prometheus-postgres-exporter"}, userdata.PostgresExporterArgs(n, p)...)...))
		}
	}
	m := l.Plan.Monitor()
	name, s := run(m.Name, "prometheus", "prometheus.log", env, append([]string{"prometheus"}, userdata.PrometheusArgs(spec, l.Paths(m.Name))...)...)
	s.Marker = l.Paths(m.Name).PrometheusConfig
	add(name, s)
	name, s = run(m.Name, "alertmanager", "alertmanager.log", env, append([]string{"prometheus-alertmanager"}, userdata.AlertmanagerArgs(spec, l.Paths(m.Name))...)...)
	s.Marker = l.Paths(m.Name).AlertmanagerConfig
	add(name, s)
	return out
}

// startMonitoring starts every exporter and Prometheus, then waits until
// Prometheus has scraped every target successfully.
func (l *Lab) startMonitoring(ctx context.Context) error {
	specs := l.monitorSpecs()
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	recs, err := l.records()
	if err != nil {
		unlock()
		return err
	}
	for _, name := range names {
		if r, ok := recs[name]; ok && r.Alive() {
			continue
		}
		s := specs[name]
		if p, err := lookBin(s.Argv[0]); err == nil {
			s.Argv[0] = p
		}
		fmt.Fprintf(logAppender(s.Log), "---- %s lab: starting %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(s.Argv, " "))
		r, err := proc.Start(s)
		if err == nil {
			err = l.saveRecord(name, r)
		}
		if err != nil {
			unlock()
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	unlock()
	return waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		down, err := l.TargetsDown(ctx)
		if err != nil {
			return err
		}
		if len(down) > 0 {
			return fmt.Errorf("Prometheus does not reach %s yet", strings.Join(down, ", "))
		}
		return nil
	})
}

// stopMonitoring stops the exporters, Prometheus and Alertmanager.
func (l *Lab) stopMonitoring() int {
	recs, err := l.records()
	if err != nil {
		return 0
	}
	stopped := 0
	for name, r := range recs {
		if strings.HasPrefix(name, "monitoring:") && r.Alive() {
			_ = r.Stop(10 * time.Second)
			stopped++
		}
	}
	return stopped
}

// PrometheusClient is an HTTPS client of the lab's Prometheus, from the
// lab's client namespace as validate reaches it: it verifies the
// monitoring node's certificate and presents pgha's client certificate
// (Prometheus admits no other).
func (l *Lab) PrometheusClient() (*http.Client, error) {
	dial, err := l.Dialer()
	if err != nil {
		return nil, err
	}
	s, err := l.stack()
	if err != nil {
		return nil, err
	}
	return access.HTTPSClient(dial, 5*time.Second, probe.TLSConfig(s)), nil
}

// promGet GETs a path of the lab's Prometheus API and returns the body of
// a 200 answer.
func (l *Lab) promGet(ctx context.Context, path string) ([]byte, error) {
	return l.monitorGet(ctx, l.PrometheusURL(), "Prometheus", path)
}

// monitorGet GETs a path of the monitoring node's base URL (Prometheus or
// Alertmanager, which admit the same clients).
func (l *Lab) monitorGet(ctx context.Context, base, what, path string) ([]byte, error) {
	hc, err := l.PrometheusClient()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", what, resp.StatusCode, body)
	}
	return body, nil
}

// TargetsDown lists the scrape targets whose last scrape failed or that
// were not scraped yet, as job/node.
func (l *Lab) TargetsDown(ctx context.Context) ([]string, error) {
	body, err := l.promGet(ctx, "/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("Prometheus's targets: %w", err)
	}
	var down []string
	for _, t := range doc.Data.ActiveTargets {
		if t.Health != "up" {
			s := t.Labels["job"] + "/" + t.Labels["node"]
			if t.LastError != "" {
				s += " (" + t.LastError + ")"
			}
			down = append(down, s)
		}
	}
	if len(doc.Data.ActiveTargets) == 0 {
		return []string{"every target (none known yet)"}, nil
	}
	sort.Strings(down)
	return down, nil
}

// Query runs a PromQL instant query on the lab's Prometheus and returns
// its result vector as label sets with values.
func (l *Lab) Query(ctx context.Context, q string) ([]Sample, error) {
	body, err := l.promGet(ctx, "/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("Prometheus's answer to %q: %w", q, err)
	}
	if doc.Status != "success" {
		return nil, fmt.Errorf("Prometheus: %s", doc.Error)
	}
	out := make([]Sample, 0, len(doc.Data.Result))
	for _, r := range doc.Data.Result {
		v, _ := r.Value[1].(string)
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Sample is one element of a query's result vector.
type Sample struct {
	Labels map[string]string
	Value  string
}

// HeldAlert is an alert as Alertmanager holds it: active (it would page),
// or suppressed by an inhibition or a silence.
type HeldAlert struct {
	Name, Severity, State string
	InhibitedBy           []string
}

// HeldAlerts are the alerts the lab's Alertmanager holds, sorted by name.
func (l *Lab) HeldAlerts(ctx context.Context) ([]HeldAlert, error) {
	body, err := l.monitorGet(ctx, l.AlertmanagerURL(), "Alertmanager", "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	var doc []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("Alertmanager's alerts: %w", err)
	}
	out := make([]HeldAlert, 0, len(doc))
	for _, a := range doc {
		out = append(out, HeldAlert{Name: a.Labels["alertname"], Severity: a.Labels["severity"], State: a.Status.State, InhibitedBy: a.Status.InhibitedBy})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
