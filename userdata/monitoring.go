package userdata

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pgha/pgha/internal/topology"
)

// Monitoring is the stack's monitoring node (Plan.Monitor): a Prometheus
// that scrapes every node's exporters over TLS with its certificate of the
// cluster CA and evaluates AlertRules, and an Alertmanager that pages
// through an SNS topic.
type Monitoring struct {
	// Retention is how long Prometheus keeps samples (its
	// --storage.tsdb.retention.time, e.g. "15d").
	Retention string
	// ScrapeInterval is how often every target is scraped. AWS keeps
	// Prometheus's 15 s, which AlertRules' `for:` clauses assume; the labs
	// scrape every second or two so a failover shows in validate's graphs.
	ScrapeInterval string
	// AlertTopicARN is the SNS topic Alertmanager publishes every firing
	// and resolved alert to, signing with the node's instance role (no
	// key anywhere) in Cluster.Region. Empty: Alertmanager keeps the
	// alerts (its UI and amtool show them) and sends them nowhere.
	AlertTopicARN string
	// AlertSNSEndpoint replaces SNS's regional endpoint: the namespace
	// lab's stand-in. Empty on AWS and in the booted lab, whose nodes
	// resolve SNS's own name to the stand-in.
	AlertSNSEndpoint string
	// GroupWait is how long Alertmanager gathers a new group's alerts
	// before its first notification (Alertmanager's 30 s by default; the
	// labs shorten it so that a test sees the page).
	GroupWait string
}

// DefaultRetention, DefaultScrapeInterval and DefaultGroupWait are
// Monitoring's defaults.
const (
	DefaultRetention      = "15d"
	DefaultScrapeInterval = "15s"
	DefaultGroupWait      = "30s"
)

// promDuration is Prometheus's duration syntax, as its flags and
// configuration take it.
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// ValidDuration reports whether d is a duration Prometheus takes (15s,
// 15d, 1h30m).
func ValidDuration(d string) bool { return promDuration.MatchString(d) }

func (m Monitoring) retention() string {
	if m.Retention == "" {
		return DefaultRetention
	}
	return m.Retention
}

func (m Monitoring) interval() string {
	if m.ScrapeInterval == "" {
		return DefaultScrapeInterval
	}
	return m.ScrapeInterval
}

func (m Monitoring) groupWait() string {
	if m.GroupWait == "" {
		return DefaultGroupWait
	}
	return m.GroupWait
}

// snsTopicARN is what an SNS topic's ARN looks like:
// arn:PARTITION:sns:REGION:ACCOUNT:NAME.
var snsTopicARN = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)

func (m Monitoring) validate() error {
	if !promDuration.MatchString(m.retention()) {
		return fmt.Errorf("monitoring retention %q is not a duration such as 15d or 12h", m.Retention)
	}
	if !promDuration.MatchString(m.interval()) {
		return fmt.Errorf("monitoring scrape interval %q is not a duration such as 15s", m.ScrapeInterval)
	}
	if !promDuration.MatchString(m.groupWait()) {
		return fmt.Errorf("alert group wait %q is not a duration such as 30s", m.GroupWait)
	}
	if m.AlertTopicARN != "" && !snsTopicARN.MatchString(m.AlertTopicARN) {
		return fmt.Errorf("alert topic %q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", m.AlertTopicARN)
	}
	if m.AlertSNSEndpoint != "" && !strings.HasPrefix(m.AlertSNSEndpoint, "https://") {
		return fmt.Errorf("SNS endpoint %q is not an https:// URL", m.AlertSNSEndpoint)
	}
	return nil
}

// ExporterUser is the OS user the exporters and Prometheus run as (Debian's
// packages create it). PostgreSQL maps it to Users.Exporter on the node's
// socket (peer), so the exporter holds no password.
const ExporterUser = "prometheus"

// exporterIdentMap is the pg_ident map name of that mapping.
const exporterIdentMap = "pgha-exporter"

func hostPort(ip fmt.Stringer, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// NodeExporterArgs is how node_exporter runs on a node: on its private
// address only, HTTPS with client certificates of the cluster CA.
func NodeExporterArgs(n topology.Node, p Paths) []string {
	return []string{"--web.listen-address=" + hostPort(n.IP, topology.PortNodeExporter), "--web.config.file=" + p.ExporterWebConfig}
}

// PostgresExporterArgs is how postgres_exporter runs on a PostgreSQL node.
// Its connection (PostgresExporterDSN) is the node's own socket.
func PostgresExporterArgs(n topology.Node, p Paths) []string {
	return []string{"--web.listen-address=" + hostPort(n.IP, topology.PortPostgresExporter), "--web.config.file=" + p.ExporterWebConfig}
}

// PostgresExporterDSN is postgres_exporter's DATA_SOURCE_NAME: the local
// socket, as Users.Exporter by peer authentication (no password anywhere).
func PostgresExporterDSN(c Cluster, p Paths) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", p.PGSocketDir, topology.PortPostgres, c.Users.Exporter)
}

// PrometheusArgs is how the monitoring node's Prometheus runs.
func PrometheusArgs(c Cluster, p Paths) []string {
	m := c.Plan.Monitor()
	return []string{
		"--config.file=" + p.PrometheusConfig,
		"--web.config.file=" + p.PrometheusWebConfig,
		"--web.listen-address=" + hostPort(m.IP, topology.PortPrometheus),
		"--storage.tsdb.path=" + p.PrometheusDataDir,
		"--storage.tsdb.retention.time=" + c.Monitoring.retention(),
	}
}

// AlertmanagerArgs is how the monitoring node's Alertmanager runs: on the
// private address behind the same TLS as Prometheus (the node's
// certificate, clients of the cluster CA only), and alone: an empty
// --cluster.listen-address turns off the gossip Debian's default would
// open on every interface (0.0.0.0:9094) for a peer there is not.
func AlertmanagerArgs(c Cluster, p Paths) []string {
	addr := hostPort(c.Plan.Monitor().IP, topology.PortAlertmanager)
	return []string{
		"--config.file=" + p.AlertmanagerConfig,
		"--web.config.file=" + p.PrometheusWebConfig,
		"--web.listen-address=" + addr,
		"--web.external-url=https://" + addr,
		"--storage.path=" + p.AlertmanagerDataDir,
		"--cluster.listen-address=",
	}
}

// scrapeJob is one scrape_configs entry: a job, its port and path, and the
// nodes that serve it.
type scrapeJob struct {
	Name, Path string
	Port       int
	Nodes      []topology.Node
}

func (c Cluster) scrapeJobs() []scrapeJob {
	pg, etcd, ha := c.Plan.ByRole(topology.RolePatroni), c.Plan.ByRole(topology.RoleEtcd), c.Plan.ByRole(topology.RoleHAProxy)
	return []scrapeJob{
		{Name: "node", Path: "/metrics", Port: topology.PortNodeExporter, Nodes: append(slices.Clone(c.Plan.Nodes), c.Plan.Monitor())},
		{Name: "postgres", Path: "/metrics", Port: topology.PortPostgresExporter, Nodes: pg},
		{Name: "patroni", Path: "/metrics", Port: topology.PortPatroniAPI, Nodes: pg},
		{Name: "etcd", Path: "/metrics", Port: topology.PortEtcdClient, Nodes: etcd},
		{Name: "haproxy", Path: "/metrics", Port: topology.PortHAProxyMetrics, Nodes: ha},
		{Name: "prometheus", Path: "/metrics", Port: topology.PortPrometheus, Nodes: []topology.Node{c.Plan.Monitor()}},
		// Whether the pages leave: AlertmanagerNotificationsFailing.
		{Name: "alertmanager", Path: "/metrics", Port: topology.PortAlertmanager, Nodes: []topology.Node{c.Plan.Monitor()}},
	}
}

// monitorData is what the monitoring templates see.
// alertSubject is the SNS subject of a page, an Alertmanager template:
// "[FIRING] pgha PatroniNoLeader".
const alertSubject = `[{{ .Status | toUpper }}] {{ .CommonLabels.cluster }} {{ .CommonLabels.alertname }}`

type monitorData struct {
	data
	Jobs         []scrapeJob
	Interval     string
	KeyFile      string // the key the web config serves with
	RulesFile    string
	Alertmanager string // host:port
	Alerting     Monitoring
}

// AlertSubject is alertSubject quoted for YAML.
func (monitorData) AlertSubject() string { return "'" + alertSubject + "'" }

// RenderExporterWebConfig is the exporters' --web.config.file on a node:
// the node's certificate, served with the exporters' copy of its key (they
// run as ExporterUser, who may not read the daemons' copy).
func RenderExporterWebConfig(p Paths) ([]byte, error) {
	return execute("web-config.yml.tmpl", data{Paths: p})
}

// RenderPrometheusConfig is the monitoring node's prometheus.yml, from the
// IP plan: every exporter of every node, over TLS, each target labelled
// with its node's name and role.
func RenderPrometheusConfig(c Cluster, p Paths) ([]byte, error) {
	d, err := monitorPrepare(c, p)
	if err != nil {
		return nil, err
	}
	return executeMonitor("prometheus.yml.tmpl", d)
}

// RenderAlertmanagerConfig is the monitoring node's alertmanager.yml: one
// route to the SNS topic (or to nowhere without one), grouped by cluster
// and alert, and the inhibitions that keep one fault to one page.
func RenderAlertmanagerConfig(c Cluster, p Paths) ([]byte, error) {
	d, err := monitorPrepare(c, p)
	if err != nil {
		return nil, err
	}
	return executeMonitor("alertmanager.yml.tmpl", d)
}

// MonitorFiles are the files of the monitoring node: Prometheus's
// configuration, its web (TLS) configuration, which Alertmanager serves
// with too, the alert rules and Alertmanager's configuration.
func MonitorFiles(c Cluster, p Paths) ([]File, error) {
	d, err := monitorPrepare(c, p)
	if err != nil {
		return nil, err
	}
	cfg, err := executeMonitor("prometheus.yml.tmpl", d)
	if err != nil {
		return nil, err
	}
	am, err := executeMonitor("alertmanager.yml.tmpl", d)
	if err != nil {
		return nil, err
	}
	web, err := execute("web-config.yml.tmpl", data{Paths: Paths{TLSCertFile: p.TLSCertFile, TLSCAFile: p.TLSCAFile, ExporterKeyFile: p.TLSKeyFile}})
	if err != nil {
		return nil, err
	}
	return []File{
		{Path: p.PrometheusConfig, Content: cfg, Owner: "root:root", Mode: 0o644},
		{Path: p.PrometheusWebConfig, Content: web, Owner: "root:root", Mode: 0o644},
		{Path: p.PrometheusRules, Content: AlertRules, Owner: "root:root", Mode: 0o644},
		{Path: p.AlertmanagerConfig, Content: am, Owner: "root:root", Mode: 0o644},
	}, nil
}

func monitorPrepare(c Cluster, p Paths) (monitorData, error) {
	if c.Monitoring == nil {
		return monitorData{}, fmt.Errorf("cluster %s has no monitoring node (Cluster.Monitoring is nil)", c.Name)
	}
	d, err := prepare(c, "", p, nil,
		[2]string{"PrometheusConfig", p.PrometheusConfig}, [2]string{"PrometheusRules", p.PrometheusRules},
		[2]string{"PrometheusWebConfig", p.PrometheusWebConfig}, [2]string{"PrometheusDataDir", p.PrometheusDataDir},
		[2]string{"AlertmanagerConfig", p.AlertmanagerConfig}, [2]string{"AlertmanagerDataDir", p.AlertmanagerDataDir},
		[2]string{"TLSCAFile", p.TLSCAFile}, [2]string{"TLSCertFile", p.TLSCertFile}, [2]string{"TLSKeyFile", p.TLSKeyFile})
	if err != nil {
		return monitorData{}, err
	}
	d.Node = c.Plan.Monitor()
	alerting := *c.Monitoring
	alerting.GroupWait = alerting.groupWait()
	return monitorData{data: d, Jobs: c.scrapeJobs(), Interval: c.Monitoring.interval(), RulesFile: p.PrometheusRules,
		Alertmanager: hostPort(c.Plan.Monitor().IP, topology.PortAlertmanager), Alerting: alerting}, nil
}

func executeMonitor(name string, d monitorData) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, d); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}
