// Package userdata renders every file a pgha node receives at boot: etcd's
// config, patroni.yml, haproxy.cfg and the #cloud-config documents that carry
// them to EC2. Renderers are pure functions of a Cluster spec, a node name and
// a Paths layout: the AWS program calls them with CloudPaths(), the lab with
// its own directories, and nothing else differs.
//
// Tests: `go test ./userdata`. They hand every rendered file to the real
// consumers (haproxy -c, cloud-init schema, systemd-analyze verify, bash -n,
// patroni --validate-config, and, as root, a live etcd + Patroni + HAProxy
// cluster in a throwaway network namespace). `go test ./userdata -update`
// rewrites the golden files under testdata/golden for review.
package userdata

import (
	"net/netip"
	"os"

	"github.com/pgha/pgha/internal/topology"
)

// Users are the fixed role names. Passwords are never part of a spec.
type Users struct {
	Superuser   string // PostgreSQL superuser, Patroni's own connections
	Replication string // streaming replication
	Rewind      string // pg_rewind of a former leader
	App         string // the application; owns AppDatabase
	AppDatabase string
	RestAPI     string // Patroni REST API basic auth for unsafe endpoints
	Stats       string // HAProxy stats page basic auth
	// Exporter is postgres_exporter's login: pg_monitor only, no password,
	// admitted on the node's socket for the OS user ExporterUser alone.
	Exporter string
	// Monitor is pgha's own checks (validate, the lab's probe): a login
	// in pg_monitor with CONNECT on AppDatabase and EXECUTE on
	// pg_switch_wal(), nothing that writes.
	Monitor string
	// Pooler is PgBouncer's auth_user: a login with EXECUTE on the one
	// function that returns a client role's SCRAM secret (its auth_query),
	// CONNECT on AppDatabase, and nothing else.
	Pooler string
	// PoolerAdmin is the PgBouncer admin console's user (admin_users):
	// PAUSE, RESUME and RECONNECT for pgha's switchover. It exists only in
	// PgBouncer's auth_file, never in PostgreSQL.
	PoolerAdmin string
}

// DefaultUsers is what the AWS program and the lab use.
func DefaultUsers() Users {
	return Users{
		Superuser: "postgres", Replication: "replicator", Rewind: "rewinder",
		App: "app", AppDatabase: "app", RestAPI: "patroni", Stats: "stats",
		Monitor: "pgha_monitor", Exporter: "pgha_exporter",
		Pooler: "pgha_pooler", PoolerAdmin: "pgha_pooler_admin",
	}
}

// Cluster is everything the renderers need to know about one cluster.
type Cluster struct {
	Name            string        // Patroni scope; also the etcd cluster token
	Plan            topology.Plan // every node and its address
	Profile         string        // failure-time profile name, see Profiles()
	SynchronousMode bool
	Region          string // AWS region, for fetching SSM parameters at boot
	Users           Users
	Secrets         SecretParams
	// TLS names the SSM parameters of the nodes' TLS material, which the
	// boot script fetches on AWS (and in the booted lab). The namespace lab
	// writes the files itself and leaves it empty.
	TLS TLSParams
	// Monitoring, when set, runs the exporters on every node and
	// Prometheus on the monitoring node (Plan.Monitor).
	Monitoring *Monitoring
	// Backup, when set, makes the PostgreSQL nodes archive their WAL to and
	// back up into a pgBackRest repository.
	Backup *Backup
	// Watchdog is Patroni's watchdog mode: WatchdogAutomatic (the node
	// loads softdog at boot and Patroni uses it where the platform lets it),
	// WatchdogRequired (no leader without it) or WatchdogOff. Empty means
	// off: the labs, whose daemons share this machine's kernel, leave it so.
	Watchdog string
	// PostgresSize is the PostgreSQL nodes' memory and vCPUs, and Workload
	// the profile (Workload*) their parameters are tuned for (Tune). A zero
	// size means DefaultSize, an empty workload DefaultWorkload.
	PostgresSize Size
	Workload     string
	// SlotWALKeepGB bounds the WAL the leader keeps for a replica that is
	// behind (max_slot_wal_keep_size), so a replica down for days cannot
	// fill the leader's disk through its replication slot. Past it the
	// replica catches up from the archive (with Backup) or needs
	// `patronictl reinit`. 0 means DefaultSlotWALKeepGB.
	SlotWALKeepGB int
	// Unprivileged is for the lab run without root, where every daemon runs
	// as the invoking user: HAProxy then must not switch to user haproxy
	// (a non-root process cannot), so its user/group lines are left out.
	// The cloud never sets it.
	Unprivileged bool
	// BindNodeAddress makes HAProxy listen on the node's own address instead
	// of every address. The loopback lab needs it: its HAProxy nodes share
	// one network stack, where two "bind *:5000" would both take every
	// address. The cloud never sets it.
	BindNodeAddress bool
	// MonitorFrom are further addresses pg_hba admits the Monitor role
	// from, besides the HAProxy and PostgreSQL nodes: in the namespace lab,
	// its client, where validate connects from. The cloud never sets it
	// (validate comes through the jump host, an HAProxy node).
	MonitorFrom []netip.Prefix
	// SharedStack is for nodes that share one network stack (the loopback
	// lab, where every connection leaves from 127.0.0.1, lo's preferred
	// source; a test's single namespace): a connection's source address
	// then does not say which node made it, so pg_hba admits each
	// node-address rule from these prefixes as well. The cloud never sets
	// it.
	SharedStack []netip.Prefix
	// PoolMode is PgBouncer's pool_mode on the HAProxy nodes:
	// PoolTransaction (empty means it) or PoolSession.
	PoolMode string
}

// PgBouncer's pool modes pgha offers. Transaction pooling shares a server
// connection between clients between their transactions, so a client must
// not rely on session state (PgBouncer 1.18: no prepared statements, SET,
// advisory locks or LISTEN across transactions); session pooling gives
// each client a server connection for its whole session and holds clients
// only while none is free.
const (
	PoolTransaction = "transaction"
	PoolSession     = "session"
)

// ValidPoolMode reports whether m is a pool mode pgha offers.
func ValidPoolMode(m string) bool { return m == PoolTransaction || m == PoolSession }

// Pooling is the pool mode PgBouncer is given (transaction when unset).
func (c Cluster) Pooling() string {
	if c.PoolMode == "" {
		return PoolTransaction
	}
	return c.PoolMode
}

// Patroni's watchdog modes.
const (
	WatchdogOff       = "off"
	WatchdogAutomatic = "automatic"
	WatchdogRequired  = "required"
)

// ValidWatchdog reports whether m is a watchdog mode.
func ValidWatchdog(m string) bool {
	return m == WatchdogOff || m == WatchdogAutomatic || m == WatchdogRequired
}

// WatchdogMode is the mode Patroni is given ("off" when unset).
func (c Cluster) WatchdogMode() string {
	if c.Watchdog == "" {
		return WatchdogOff
	}
	return c.Watchdog
}

// DefaultSize is PostgresSize when the cluster does not say: the default
// PostgreSQL instance type's (t3.medium).
var DefaultSize = Size{MemoryMiB: 4096, VCPUs: 2}

// Tuning is what the cluster's workload sets on its PostgreSQL nodes.
func (c Cluster) Tuning() (Tuning, error) {
	s := c.PostgresSize
	if s == (Size{}) {
		s = DefaultSize
	}
	return Tune(s, c.Workload)
}

// DefaultSlotWALKeepGB is SlotWALKeepGB when the cluster does not say.
const DefaultSlotWALKeepGB = 4

// SlotWALKeep is max_slot_wal_keep_size in GB.
func (c Cluster) SlotWALKeep() int {
	if c.SlotWALKeepGB == 0 {
		return DefaultSlotWALKeepGB
	}
	return c.SlotWALKeepGB
}

// Paths is the filesystem layout of one node. Only these differ between the
// cloud (CloudPaths) and the lab.
type Paths struct {
	EtcdConfigFile string // etcd --config-file YAML
	EtcdDataDir    string

	PatroniConfigFile string // patroni.yml
	// SecretsEnvFile holds PATRONI_*_PASSWORD, PGHA_APP_PASSWORD,
	// PGHA_MONITOR_PASSWORD and HAPROXY_STATS_PASSWORD as KEY=VALUE lines,
	// mode 0600. On AWS a boot
	// script writes it from SSM; the lab writes it from its secret files.
	SecretsEnvFile string
	PostBootstrap  string // script Patroni runs once after initdb
	PGDataDir      string
	PGSocketDir    string
	PGPassFile     string
	PGLogDir       string // PostgreSQL's logging_collector directory
	// The node's TLS material: the cluster CA (what every client on the
	// node verifies servers with), and the node's certificate and key,
	// which every daemon of the node serves and presents. HAProxy finds
	// the key next to the certificate by its name (<certificate>.key), so
	// TLSKeyFile must be TLSCertFile + ".key".
	TLSCAFile         string
	TLSCertFile       string
	TLSKeyFile        string
	HAProxyConfigFile string
	// PgBouncer on the HAProxy nodes: its configuration, its auth_file
	// (the auth user's and the admin's passwords, readable by PgBouncer's
	// user only), and its copy of the node's key, which PgBouncer (run as
	// postgres) reads itself where HAProxy reads its own as root.
	PgBouncerConfigFile string
	PgBouncerAuthFile   string
	PgBouncerKeyFile    string
	// Monitoring (Cluster.Monitoring): the exporters' web configuration
	// and their copy of the node's key (ExporterUser's), and on the
	// monitoring node Prometheus's files.
	ExporterKeyFile     string
	ExporterWebConfig   string
	PrometheusConfig    string
	PrometheusWebConfig string
	PrometheusRules     string
	PrometheusDataDir   string
	AlertmanagerConfig  string
	AlertmanagerDataDir string
	// PythonPath is where Patroni's Python finds pgha's fix to Patroni
	// 3.0.2 (sitecustomize.py; PYTHONPATH of Patroni's service).
	PythonPath string

	// pgBackRest (nodes of a cluster with a Backup only).
	PgBackRestConfig string
	PgBackRestSpool  string // the asynchronous archive's queue
	PgBackRestLog    string
	PgBackRestLock   string
}

// File is one rendered file and how it is installed.
type File struct {
	Path    string
	Content []byte
	Owner   string // user:group
	Mode    os.FileMode
}

// Environment variable names in the secrets file. Patroni 3.0.2 reads the
// PATRONI_* ones itself (config.py, _build_environment_configuration);
// PGHA_APP_PASSWORD and PGHA_MONITOR_PASSWORD are read by the
// post-bootstrap script and
// HAPROXY_STATS_PASSWORD is expanded by HAProxy inside haproxy.cfg.
const (
	EnvSuperuserUsername   = "PATRONI_SUPERUSER_USERNAME"
	EnvSuperuserPassword   = "PATRONI_SUPERUSER_PASSWORD"
	EnvReplicationUsername = "PATRONI_REPLICATION_USERNAME"
	EnvReplicationPassword = "PATRONI_REPLICATION_PASSWORD"
	EnvRewindUsername      = "PATRONI_REWIND_USERNAME"
	EnvRewindPassword      = "PATRONI_REWIND_PASSWORD"
	EnvRestAPIUsername     = "PATRONI_RESTAPI_USERNAME"
	EnvRestAPIPassword     = "PATRONI_RESTAPI_PASSWORD"
	EnvAppPassword         = "PGHA_APP_PASSWORD"
	EnvStatsPassword       = "HAPROXY_STATS_PASSWORD"
	EnvMonitorPassword     = "PGHA_MONITOR_PASSWORD"
	EnvPoolerPassword      = "PGHA_POOLER_PASSWORD"
	EnvPoolerAdminPassword = "PGHA_POOLER_ADMIN_PASSWORD"
)

// CloudPaths is the layout of an EC2 node running Debian 12's packages.
func CloudPaths() Paths {
	return Paths{
		EtcdConfigFile:    "/etc/etcd/etcd.conf.yml",
		EtcdDataDir:       "/var/lib/etcd/pgha",
		PatroniConfigFile: "/etc/patroni/config.yml",
		SecretsEnvFile:    "/etc/patroni/secrets.env",
		PostBootstrap:     "/etc/patroni/post-bootstrap.sh",
		PGDataDir:         "/var/lib/postgresql/15/pgha",
		PGSocketDir:       "/var/run/postgresql",
		PGPassFile:        "/var/lib/postgresql/.pgpass_patroni",
		PGLogDir:          "/var/log/postgresql",
		TLSCAFile:         "/etc/pgha/tls/ca.crt",
		TLSCertFile:       "/etc/pgha/tls/node.crt",
		TLSKeyFile:        "/etc/pgha/tls/node.crt.key",
		HAProxyConfigFile: "/etc/haproxy/haproxy.cfg",
		// Debian's pgbouncer.service runs /etc/pgbouncer/pgbouncer.ini.
		PgBouncerConfigFile: "/etc/pgbouncer/pgbouncer.ini",
		PgBouncerAuthFile:   "/etc/pgbouncer/userlist.txt",
		PgBouncerKeyFile:    "/etc/pgha/tls/pgbouncer.key",
		PythonPath:          "/usr/local/lib/pgha/python",
		// Debian's prometheus package reads /etc/prometheus and keeps its
		// data in /var/lib/prometheus/metrics2.
		ExporterKeyFile:     "/etc/pgha/tls/exporter.key",
		ExporterWebConfig:   "/etc/pgha/exporter-web.yml",
		PrometheusConfig:    "/etc/prometheus/prometheus.yml",
		PrometheusWebConfig: "/etc/prometheus/web.yml",
		PrometheusRules:     "/etc/prometheus/pgha.rules.yml",
		PrometheusDataDir:   "/var/lib/prometheus/metrics2",
		AlertmanagerConfig:  "/etc/prometheus/alertmanager.yml",
		AlertmanagerDataDir: "/var/lib/prometheus/alertmanager",
		PgBackRestConfig:    "/etc/pgbackrest.conf",
		PgBackRestSpool:     "/var/spool/pgbackrest",
		PgBackRestLog:       "/var/log/pgbackrest",
		PgBackRestLock:      "/tmp/pgbackrest",
	}
}
