package userdata

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"text/template"

	"github.com/pgha/pgha/internal/topology"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	// env names a secret's environment variable by the secret, so the
	// files and the secrets file can never disagree on a spelling.
	"env": func(name string) (string, error) {
		if s, ok := SecretByName(name); ok {
			return s.Env, nil
		}
		return "", fmt.Errorf("template names unknown secret %q", name)
	},
	"dir":           path.Dir,
	"etcdJoin":      func() string { return EtcdJoinScript },
	"backupTimers":  BackupTimers,
	"charset":       func() string { return PasswordCharset },
	"hugePagesFrom": func() int { return HugePagesFromMiB },
	"indent":        indent,
	"hba":           hbaYAML,
	"chomp":         blockHeader,
	"mode":          func(m os.FileMode) string { return fmt.Sprintf("%04o", m.Perm()) },
	// xvd is the name a Xen instance gives a device attached as /dev/sdX.
	"xvd": func(dev string) string { return strings.Replace(dev, "/dev/sd", "/dev/xvd", 1) },
}).ParseFS(templateFS, "templates/*.tmpl"))

// data is what every template sees.
type data struct {
	Cluster Cluster
	Node    topology.Node
	Paths   Paths
	Profile Profile
	Etcd    []topology.Node
	Patroni []topology.Node
	HAProxy []topology.Node
	Secrets []secretEntry // cloud-init only: what the boot script fetches
	TLS     tlsFetch      // cloud-init only
	// PoolerAuth is PgBouncer's auth_file as the fetch script writes it
	// (cloud-init, HAProxy nodes only).
	PoolerAuth *poolerAuth
	Files      []cloudFile // cloud-init only
	// Packages is the role's Debian packages (cloud-init only).
	Packages []string
	Ports    ports
	// The data volume (cloud-init, etcd and Patroni nodes only).
	DataVolume
	// A backup timer being rendered: its kind and calendar event.
	BackupKind, BackupCalendar string
	// Tuning is the PostgreSQL nodes' parameters (Cluster.Tuning).
	Tuning Tuning
	// HAProxyMaxConn is each HAProxy server line's maxconn.
	HAProxyMaxConn int
	// Pool is each PgBouncer's share of the leader's connections.
	Pool PoolSize
	// Held are the packages the node holds from upgrades (cloud-init only).
	Held []string
	// Monitored are the node's monitoring daemons (cloud-init, with
	// Cluster.Monitoring only).
	Monitored []monitoredUnit
}

// ports are the IP plan's service ports, by the names templates use.
type ports struct {
	EtcdClient, EtcdPeer, Postgres, PatroniAPI, Write, Read, Stats int
	HAProxyMetrics, Pooler                                         int
}

var planPorts = ports{
	EtcdClient: topology.PortEtcdClient, EtcdPeer: topology.PortEtcdPeer,
	Postgres: topology.PortPostgres, PatroniAPI: topology.PortPatroniAPI,
	Write: topology.PortWrite, Read: topology.PortRead, Stats: topology.PortStats,
	HAProxyMetrics: topology.PortHAProxyMetrics, Pooler: topology.PortPooler,
}

// prepare validates everything a renderer depends on before anything is
// rendered, so bad input never yields a half-written file.
func prepare(c Cluster, node string, p Paths, roles []topology.Role, paths ...[2]string) (data, error) {
	if err := c.Validate(); err != nil {
		return data{}, err
	}
	d := data{
		Cluster: c, Paths: p, Ports: planPorts,
		Etcd:    c.Plan.ByRole(topology.RoleEtcd),
		Patroni: c.Plan.ByRole(topology.RolePatroni),
		HAProxy: c.Plan.ByRole(topology.RoleHAProxy),
	}
	d.Profile, _ = LookupProfile(c.Profile) // Validate checked it
	d.Tuning, _ = c.Tuning()                // and this
	d.HAProxyMaxConn = d.Tuning.HAProxyMaxConn(len(d.HAProxy))
	d.Pool = d.Tuning.PoolSize(len(d.HAProxy)) // one pooler per HAProxy node
	var errs []error
	if roles != nil {
		n, err := c.node(node, roles...)
		errs = append(errs, err)
		d.Node = n
	}
	errs = append(errs, checkPaths(paths...))
	if err := errors.Join(errs...); err != nil {
		return data{}, err
	}
	return d, nil
}

func execute(name string, d data) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, d); err != nil {
		// Only a defect in a template gets here; input was validated.
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// RenderEtcdConfig renders the etcd 3.4 --config-file YAML of an etcd node.
func RenderEtcdConfig(c Cluster, node string, p Paths) ([]byte, error) {
	d, err := prepare(c, node, p, []topology.Role{topology.RoleEtcd},
		append([][2]string{{"EtcdDataDir", p.EtcdDataDir}}, tlsPaths(p)...)...)
	if err != nil {
		return nil, err
	}
	return execute("etcd.conf.yml.tmpl", d)
}

// RenderEtcdJoin renders the script an etcd node runs before etcd's first
// start: it keeps existing data, joins an existing cluster as a new member
// (a replaced node), or leaves the config to create the cluster.
func RenderEtcdJoin(c Cluster, node string, p Paths) ([]byte, error) {
	d, err := prepare(c, node, p, []topology.Role{topology.RoleEtcd},
		append([][2]string{{"EtcdDataDir", p.EtcdDataDir}, {"EtcdConfigFile", p.EtcdConfigFile}}, tlsPaths(p)...)...)
	if err != nil {
		return nil, err
	}
	return execute("etcd-join.sh.tmpl", d)
}

// PatroniFix is pgha's fix to Patroni 3.0.2's etcd3 leader key update
// (userdata/patroni/sitecustomize.py), which Patroni's Python loads at
// start from Paths.PythonPath.
//
//go:embed patroni/sitecustomize.py
var PatroniFix []byte

func patroniPaths(p Paths) [][2]string {
	return append([][2]string{
		{"PythonPath", p.PythonPath},
		{"SecretsEnvFile", p.SecretsEnvFile},
		{"PostBootstrap", p.PostBootstrap},
		{"PGDataDir", p.PGDataDir},
		{"PGSocketDir", p.PGSocketDir},
		{"PGPassFile", p.PGPassFile},
		{"PGLogDir", p.PGLogDir},
	}, tlsPaths(p)...)
}

// tlsPaths are the node's TLS files, which every role's daemons use.
func tlsPaths(p Paths) [][2]string {
	return [][2]string{{"TLSCAFile", p.TLSCAFile}, {"TLSCertFile", p.TLSCertFile}, {"TLSKeyFile", p.TLSKeyFile}}
}

// checkKeyBesideCert: HAProxy 2.6 loads a certificate's key from
// <certificate>.key, and from nowhere else it can be told.
func checkKeyBesideCert(p Paths) error {
	if p.TLSKeyFile != p.TLSCertFile+".key" {
		return fmt.Errorf("Paths.TLSKeyFile is %q; HAProxy reads the key from %q (TLSCertFile + \".key\")", p.TLSKeyFile, p.TLSCertFile+".key")
	}
	return nil
}

// RenderPatroniConfig renders patroni.yml of a Patroni node. It holds user
// names but no password; Patroni takes those from its environment.
func RenderPatroniConfig(c Cluster, node string, p Paths) ([]byte, error) {
	paths := patroniPaths(p)
	if c.Backup != nil {
		paths = append(paths, backupPaths(p)...)
	}
	d, err := prepare(c, node, p, []topology.Role{topology.RolePatroni}, paths...)
	if err != nil {
		return nil, err
	}
	return execute("patroni.yml.tmpl", d)
}

// RenderPostBootstrap renders the script Patroni runs once after initdb. It
// creates the application role and database, reading the role's password
// from PGHA_APP_PASSWORD in its environment.
func RenderPostBootstrap(c Cluster, p Paths) ([]byte, error) {
	d, err := prepare(c, "", p, nil, [2]string{"SecretsEnvFile", p.SecretsEnvFile})
	if err != nil {
		return nil, err
	}
	return execute("post-bootstrap.sh.tmpl", d)
}

// RenderHAProxyConfig renders haproxy.cfg of an HAProxy node. The stats
// password is left as "${HAPROXY_STATS_PASSWORD}", which HAProxy expands
// from its environment at start.
func RenderHAProxyConfig(c Cluster, node string, p Paths) ([]byte, error) {
	d, err := prepare(c, node, p, []topology.Role{topology.RoleHAProxy}, tlsPaths(p)...)
	if err != nil {
		return nil, err
	}
	if err := checkKeyBesideCert(p); err != nil {
		return nil, err
	}
	return execute("haproxy.cfg.tmpl", d)
}

// pgbouncerPaths are the files PgBouncer reads besides the node's
// certificate and the CA.
func pgbouncerPaths(p Paths) [][2]string {
	return append([][2]string{{"PgBouncerAuthFile", p.PgBouncerAuthFile}, {"PgBouncerKeyFile", p.PgBouncerKeyFile}}, tlsPaths(p)...)
}

// RenderPgBouncerConfig renders pgbouncer.ini of an HAProxy node: the
// clients' pooler in front of the node's HAProxy leader port. It names the
// auth_file but holds no password.
func RenderPgBouncerConfig(c Cluster, node string, p Paths) ([]byte, error) {
	d, err := prepare(c, node, p, []topology.Role{topology.RoleHAProxy}, pgbouncerPaths(p)...)
	if err != nil {
		return nil, err
	}
	return execute("pgbouncer.ini.tmpl", d)
}

// RenderPgBouncerAuthFile renders PgBouncer's auth_file: the auth user's
// and the console user's plain passwords (PgBouncer needs the auth user's
// password itself to log in with it; a SCRAM secret is refused there), to
// be installed root's and readable by PgBouncer's group only. On AWS the
// secrets fetch writes the same lines from SSM; the lab writes this.
func RenderPgBouncerAuthFile(c Cluster, pw Passwords) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b strings.Builder
	var errs []error
	for _, name := range poolerAuthSecrets {
		s, _ := SecretByName(name)
		v := pw[name]
		if !passwordRe.MatchString(v) {
			// Never echo the value: it is a secret.
			errs = append(errs, fmt.Errorf("Passwords[%q] is empty or has characters outside [%s]", name, PasswordCharset))
			continue
		}
		// "user" "password"; the charset has no '"', which would need
		// doubling.
		fmt.Fprintf(&b, "\"%s\" \"%s\"\n", s.User(c.Users), v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// poolerAuthSecrets are the users in PgBouncer's auth_file, in its order.
var poolerAuthSecrets = []string{"pooler", "pooler-admin"}

// secretEntry is one line of the secrets file. Either Value is fixed (a user
// name, not secret) or Param names the SSM parameter holding the password.
type secretEntry struct {
	Key    string
	Value  string
	Param  string
	Secret string // the password's Secret.Name
}

// secretEntries are the secrets file's lines for a role (every role when
// role is ""): each secret's user name line, where it has one, then its
// password line.
func secretEntries(c Cluster, role topology.Role) []secretEntry {
	var out []secretEntry
	for _, s := range Secrets {
		if role != "" && !s.ReadBy(role) {
			continue
		}
		if s.UserEnv != "" {
			out = append(out, secretEntry{Key: s.UserEnv, Value: s.User(c.Users)})
		}
		out = append(out, secretEntry{Key: s.Env, Param: c.Secrets[s.Name], Secret: s.Name})
	}
	return out
}

// PasswordCharset is what a password may contain: enough for 128+ bits in
// 24 characters, and nothing that needs quoting in a systemd EnvironmentFile,
// a shell, HAProxy or YAML. The boot script enforces the same set on values
// it reads from SSM.
const PasswordCharset = `A-Za-z0-9._~+=@%,:/^-`

var passwordRe = regexp.MustCompile(`^[` + PasswordCharset + `]+$`)

// RenderSecretsEnv renders the secrets file (KEY=VALUE lines, to be installed
// with mode 0600 at Paths.SecretsEnvFile) with every key any role needs. The
// lab writes it directly; on AWS the boot script writes the same keys, each
// node only its role's, from SSM.
func RenderSecretsEnv(c Cluster, pw Passwords) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	var b strings.Builder
	b.WriteString("# pgha secrets: mode 0600, never commit or log this file.\n")
	for _, e := range secretEntries(c, "") {
		v := e.Value
		if e.Secret != "" {
			v = pw[e.Secret]
			switch {
			case v == "":
				errs = append(errs, fmt.Errorf("Passwords[%q] is empty: set a password", e.Secret))
				continue
			case !passwordRe.MatchString(v):
				// Never echo the value: it is a secret.
				errs = append(errs, fmt.Errorf("Passwords[%q] has characters outside [%s]: generate it from that set", e.Secret, PasswordCharset))
				continue
			}
		}
		fmt.Fprintf(&b, "%s=%s\n", e.Key, v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// NodeFiles renders every non-secret file a node's role needs, with the owner
// and mode it must be installed with.
func NodeFiles(c Cluster, node string, p Paths) ([]File, error) {
	files, err := roleFiles(c, node, p)
	if err != nil || c.Monitoring == nil {
		return files, err
	}
	return withExporterWebConfig(files, p)
}

// withExporterWebConfig adds the exporters' web configuration to a
// monitored node's files.
func withExporterWebConfig(files []File, p Paths) ([]File, error) {
	if err := checkPaths([2]string{"ExporterWebConfig", p.ExporterWebConfig}, [2]string{"ExporterKeyFile", p.ExporterKeyFile}); err != nil {
		return nil, err
	}
	web, err := RenderExporterWebConfig(p)
	if err != nil {
		return nil, err
	}
	return append(files, File{Path: p.ExporterWebConfig, Content: web, Owner: "root:root", Mode: 0o644}), nil
}

// roleFiles are the files of a node's role (NodeFiles without monitoring).
func roleFiles(c Cluster, node string, p Paths) ([]File, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n, err := c.node(node, topology.RoleEtcd, topology.RolePatroni, topology.RoleHAProxy)
	if err != nil {
		return nil, err
	}
	switch n.Role {
	case topology.RoleEtcd:
		if err := checkPaths([2]string{"EtcdConfigFile", p.EtcdConfigFile}); err != nil {
			return nil, err
		}
		b, err := RenderEtcdConfig(c, node, p)
		if err != nil {
			return nil, err
		}
		return []File{{Path: p.EtcdConfigFile, Content: b, Owner: "root:root", Mode: 0o644}}, nil
	case topology.RolePatroni:
		if err := checkPaths([2]string{"PatroniConfigFile", p.PatroniConfigFile}); err != nil {
			return nil, err
		}
		cfg, err := RenderPatroniConfig(c, node, p)
		if err != nil {
			return nil, err
		}
		script, err := RenderPostBootstrap(c, p)
		if err != nil {
			return nil, err
		}
		files := []File{
			{Path: p.PatroniConfigFile, Content: cfg, Owner: "postgres:postgres", Mode: 0o640},
			{Path: p.PostBootstrap, Content: script, Owner: "root:root", Mode: 0o755},
			{Path: path.Join(p.PythonPath, "sitecustomize.py"), Content: PatroniFix, Owner: "root:root", Mode: 0o644},
		}
		if c.Backup != nil {
			b, err := RenderPgBackRest(c, node, p)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Path: p.PgBackRestConfig, Content: b, Owner: "postgres:postgres", Mode: 0o640})
		}
		return files, nil
	default:
		if err := checkPaths([2]string{"HAProxyConfigFile", p.HAProxyConfigFile}, [2]string{"PgBouncerConfigFile", p.PgBouncerConfigFile}); err != nil {
			return nil, err
		}
		b, err := RenderHAProxyConfig(c, node, p)
		if err != nil {
			return nil, err
		}
		ini, err := RenderPgBouncerConfig(c, node, p)
		if err != nil {
			return nil, err
		}
		return []File{
			{Path: p.HAProxyConfigFile, Content: b, Owner: "root:root", Mode: 0o644},
			{Path: p.PgBouncerConfigFile, Content: ini, Owner: "root:root", Mode: 0o644},
		}, nil
	}
}

// indent prefixes every non-empty line with n spaces and drops the final
// newline, which the template supplies.
func indent(n int, b []byte) string {
	pad := strings.Repeat(" ", n)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	var out strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		if l != "\n" {
			out.WriteString(pad)
		}
		out.WriteString(l)
	}
	return out.String()
}

// blockHeader picks the YAML literal block chomping that round-trips b.
func blockHeader(b []byte) string {
	s := string(b)
	switch {
	case !strings.HasSuffix(s, "\n"):
		return "|-"
	case strings.HasSuffix(s, "\n\n"):
		return "|+"
	default:
		return "|"
	}
}
