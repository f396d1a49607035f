package userdata

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/internal/topology"
)

// cloudDoc is a node's #cloud-config as cloud-init reads it.
type cloudDoc struct {
	Packages   []string `yaml:"packages"`
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Owner       string `yaml:"owner"`
		Permissions string `yaml:"permissions"`
		Defer       bool   `yaml:"defer"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
}

func parseCloudInit(t *testing.T, c Cluster, node string) (cloudDoc, map[string]int) {
	t.Helper()
	b, err := RenderCloudInit(c, node)
	require.NoError(t, err, node)
	var doc cloudDoc
	require.NoError(t, yaml.Unmarshal(b, &doc), node)
	byPath := map[string]int{}
	for i, f := range doc.WriteFiles {
		byPath[f.Path] = i
	}
	return doc, byPath
}

// TestMonitoringUserData: with monitoring, every node installs
// node_exporter (the PostgreSQL nodes postgres_exporter too) with its
// /etc/default file written before the packages, fetches the exporters'
// copy of its key, and its boot script starts the exporters and checks
// them over TLS before it marks the node ready; without monitoring, none
// of it appears.
func TestMonitoringUserData(t *testing.T) {
	off := defaultCluster(t)
	on := off
	on.Monitoring = &Monitoring{}
	p := CloudPaths()
	exporterUnits := map[topology.Role][]string{
		topology.RoleEtcd:    {"prometheus-node-exporter.service"},
		topology.RoleHAProxy: {"prometheus-node-exporter.service"},
		topology.RolePatroni: {"prometheus-node-exporter.service", "prometheus-postgres-exporter.service"},
	}
	for _, n := range on.Plan.Nodes {
		doc, byPath := parseCloudInit(t, on, n.Name)
		want := slices.Clone(rolePackages[n.Role])
		want = append(want, "prometheus-node-exporter")
		if n.Role == topology.RolePatroni {
			want = append(want, "prometheus-postgres-exporter")
		}
		assert.Equal(t, want, doc.Packages, n.Name)

		defaults, err := defaultsFiles(on, n, p)
		require.NoError(t, err)
		require.Len(t, defaults, len(exporterUnits[n.Role]), n.Name)
		for _, f := range defaults {
			i, ok := byPath[f.Path]
			require.True(t, ok, "%s: %s missing", n.Name, f.Path)
			w := doc.WriteFiles[i]
			assert.False(t, w.Defer, "%s: %s is the package's conffile: written before it installs, so dpkg keeps it", n.Name, f.Path)
			assert.Equal(t, string(f.Content), w.Content)
			assert.Equal(t, "root:root", w.Owner)
		}
		i, ok := byPath[p.ExporterWebConfig]
		require.True(t, ok, n.Name)
		assert.True(t, doc.WriteFiles[i].Defer)

		fetch := doc.WriteFiles[byPath[fetchSecrets]].Content
		assert.Contains(t, fetch, "\ninstall_pem "+on.TLS.Key(n.Name)+" "+p.ExporterKeyFile+" prometheus:prometheus 0600 \"PRIVATE KEY\"\n", n.Name)
		boot := doc.WriteFiles[byPath[bootScript]].Content
		units := strings.Join(exporterUnits[n.Role], " ")
		for _, want := range []string{"\nsystemctl reset-failed " + units + "\n", "\nsystemctl restart " + units + "\n"} {
			assert.Contains(t, boot, want, n.Name)
		}
		// Each exporter is checked, over TLS with the node's certificate,
		// before the node is marked ready.
		assert.Contains(t, boot, "curl -fsS --max-time 5 -o /dev/null --cacert "+p.TLSCAFile+" --cert "+p.TLSCertFile+" --key "+p.TLSKeyFile+" \"https://"+n.IP.String()+":$2$3\"")
		last := strings.LastIndex(boot, "\nserves ")
		require.Positive(t, last, n.Name)
		assert.Equal(t, "\nready\n", boot[strings.Index(boot[last+1:], "\n")+last+1:], "%s: ready comes right after the last check", n.Name)
		for _, u := range exporterUnits[n.Role] {
			assert.Contains(t, boot, "\nserves "+u+" ", n.Name)
			_, ok := byPath["/etc/systemd/system/"+u+".d/pgha.conf"]
			assert.True(t, ok, "%s: %s's drop-in", n.Name, u)
		}

		offDoc, _ := parseCloudInit(t, off, n.Name)
		offText, err := RenderCloudInit(off, n.Name)
		require.NoError(t, err)
		assert.Equal(t, rolePackages[n.Role], offDoc.Packages, n.Name)
		// (The exporter's database role exists either way: post-bootstrap
		// creates it, and pg_hba admits it only with monitoring.)
		for _, absent := range []string{"prometheus", "/etc/default/", "exporter.key", "exporter-web", ":9100", ":9187"} {
			assert.False(t, strings.Contains(string(offText), absent), "%s without monitoring has %q", n.Name, absent)
		}
	}
}

// TestMonitorNodeUserData: the monitoring node's user data, which exists
// only in a cluster with monitoring, and which no other renderer takes.
func TestMonitorNodeUserData(t *testing.T) {
	c := defaultCluster(t)
	m := c.Plan.Monitor()
	_, err := RenderCloudInit(c, m.Name)
	require.EqualError(t, err, `node "monitor-1" is the monitoring node, but cluster pgha has no monitoring (Cluster.Monitoring is nil)`)

	c.Monitoring = &Monitoring{Retention: "30d"}
	p := CloudPaths()
	doc, byPath := parseCloudInit(t, c, m.Name)
	assert.Equal(t, []string{"prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "awscli", "curl", "nftables", "chrony"}, doc.Packages)
	assert.Equal(t, []string{"prometheus", "prometheus-alertmanager"}, HeldPackages(topology.RoleMonitor, true))

	files, err := MonitorFiles(c, p)
	require.NoError(t, err)
	web, err := RenderExporterWebConfig(p)
	require.NoError(t, err)
	files = append(files, File{Path: p.ExporterWebConfig, Content: web, Owner: "root:root", Mode: 0o644})
	for _, f := range files {
		i, ok := byPath[f.Path]
		require.True(t, ok, f.Path)
		assert.Equal(t, string(f.Content), doc.WriteFiles[i].Content, f.Path)
		assert.True(t, doc.WriteFiles[i].Defer, f.Path)
	}
	defaults := doc.WriteFiles[byPath[prometheusDefaults]]
	assert.False(t, defaults.Defer)
	assert.Equal(t, "ARGS=\""+strings.Join(PrometheusArgs(c, p), " ")+"\"\n", defaults.Content[strings.Index(defaults.Content, "ARGS="):])
	assert.Contains(t, defaults.Content, "--storage.tsdb.retention.time=30d")
	// Written before the package step, like Prometheus's: Debian's
	// default would open the cluster gossip port on every interface.
	amDefaults := doc.WriteFiles[byPath[alertmanagerDefaults]]
	assert.False(t, amDefaults.Defer)
	assert.Contains(t, amDefaults.Content, " --cluster.listen-address=\"\n")
	for _, f := range []string{aptConf, ChronyConf, nodeExporterDefaults, fetchSecrets, bootScript,
		"/etc/systemd/system/prometheus.service.d/pgha.conf", "/etc/systemd/system/prometheus-node-exporter.service.d/pgha.conf",
		"/etc/systemd/system/prometheus-alertmanager.service.d/pgha.conf"} {
		_, ok := byPath[f]
		assert.True(t, ok, f)
	}
	// No passwords, no data volume, nothing of the cluster's roles.
	for _, f := range []string{p.SecretsEnvFile, createCluster, dataScript, "/etc/systemd/system/" + DataUnit} {
		_, ok := byPath[f]
		assert.False(t, ok, f)
	}
	_, hasData := DataVolumeOf(topology.RoleMonitor)
	assert.False(t, hasData)

	// Prometheus presents the node's key itself: it is prometheus's.
	fetch := doc.WriteFiles[byPath[fetchSecrets]].Content
	assert.Contains(t, fetch, "\ninstall_pem "+c.TLS.Key(m.Name)+" "+p.TLSKeyFile+" prometheus:prometheus 0600 \"PRIVATE KEY\"\n")
	assert.NotContains(t, fetch, "fetch ")
	boot := doc.WriteFiles[byPath[bootScript]].Content
	for _, want := range []string{
		"\napt-mark hold prometheus prometheus-alertmanager >/dev/null\n",
		"promtool check config " + p.PrometheusConfig,
		"amtool check-config " + p.AlertmanagerConfig,
		"\nsystemctl restart prometheus-node-exporter.service prometheus.service prometheus-alertmanager.service\n",
		"\nserves prometheus-node-exporter.service 9100 /metrics\nserves prometheus.service 9090 /-/ready\nserves prometheus-alertmanager.service 9093 /-/ready\nready\n",
	} {
		assert.Contains(t, boot, want)
	}

	// Nothing else takes the monitoring node by name.
	_, err = NodeFiles(c, m.Name, p)
	assert.EqualError(t, err, `node "monitor-1" is not in the plan: use one of [etcd-1 etcd-2 etcd-3 pg-1 pg-2 pg-3 haproxy-1 haproxy-2]`)
	_, err = RenderHAProxyConfig(c, m.Name, p)
	assert.ErrorContains(t, err, "is not in the plan")
	_, err = RenderCloudInit(c, "monitor-2")
	assert.EqualError(t, err, `node "monitor-2" is not in the plan: use one of [etcd-1 etcd-2 etcd-3 pg-1 pg-2 pg-3 haproxy-1 haproxy-2 monitor-1]`)
	assert.Contains(t, AllPackages(), "prometheus")
	assert.Contains(t, AllPackages(), "prometheus-postgres-exporter")
	assert.Contains(t, AllPackages(), "prometheus-node-exporter")
}

// TestMonitoringDefaultsFiles reads each /etc/default file as the units'
// EnvironmentFile= and a shell read it (bash sources it), and starts the
// daemon with the ARGS read, its listen address moved to a free loopback
// port: node_exporter, postgres_exporter and Prometheus must accept every
// flag (one of them twice would stop Prometheus) and serve over TLS.
func TestMonitoringDefaultsFiles(t *testing.T) {
	base := t.TempDir()
	tt := newTestTLS(t, base)
	c := defaultCluster(t)
	c.Monitoring = &Monitoring{Retention: "2d"}
	bins := map[string]string{
		nodeExporterDefaults:     lookTool(t, "prometheus-node-exporter"),
		postgresExporterDefaults: lookTool(t, "prometheus-postgres-exporter"),
		prometheusDefaults:       lookTool(t, "prometheus"),
		alertmanagerDefaults:     lookTool(t, "prometheus-alertmanager"),
	}
	// Debian's units read these very files, and pass $ARGS.
	for file, unit := range map[string]string{nodeExporterDefaults: "prometheus-node-exporter.service",
		postgresExporterDefaults: "prometheus-postgres-exporter.service", prometheusDefaults: "prometheus.service",
		alertmanagerDefaults: "prometheus-alertmanager.service"} {
		b, err := os.ReadFile(filepath.Join("/lib/systemd/system", unit))
		require.NoError(t, err, "the package that ships %s is not installed", unit)
		assert.Contains(t, string(b), "\nEnvironmentFile="+file+"\n", unit)
		assert.Regexp(t, `\nExecStart=/usr/bin/\S+ \$ARGS\n`, string(b), unit)
	}
	started := 0
	for _, n := range []topology.Node{c.Plan.ByRole(topology.RolePatroni)[0], c.Plan.ByRole(topology.RoleHAProxy)[0], c.Plan.Monitor()} {
		p := monitorPaths(base, n.Name)
		if n.Role == topology.RoleMonitor {
			tt.installMonitor(t, c, p)
			files, err := MonitorFiles(c, p)
			require.NoError(t, err)
			for _, f := range files {
				require.NoError(t, os.WriteFile(f.Path, f.Content, 0o644))
			}
			require.NoError(t, os.MkdirAll(p.PrometheusDataDir, 0o700))
			require.NoError(t, os.MkdirAll(p.AlertmanagerDataDir, 0o700))
		} else {
			tt.install(t, c, n.Name, p, "")
		}
		key, err := os.ReadFile(p.TLSKeyFile)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p.ExporterKeyFile, key, 0o600))
		web, err := RenderExporterWebConfig(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p.ExporterWebConfig, web, 0o644))

		files, err := defaultsFiles(c, n, p)
		require.NoError(t, err)
		for _, f := range files {
			name := n.Name + ":" + f.Path
			env := filepath.Join(t.TempDir(), "default")
			require.NoError(t, os.WriteFile(env, f.Content, 0o644))
			out, err := exec.Command("bash", "-c", `set -eu; . "$1"; printf '%s\n%s\n' "$ARGS" "${DATA_SOURCE_NAME-unset}"`, "bash", env).CombinedOutput()
			require.NoError(t, err, "%s: %s", name, out)
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			require.Len(t, lines, 2, name)
			args, dsn := strings.Fields(lines[0]), lines[1]
			var want []string
			var path string
			var port int
			switch f.Path {
			case nodeExporterDefaults:
				want, path, port = NodeExporterArgs(n, p), "/metrics", topology.PortNodeExporter
				assert.Equal(t, "unset", dsn, name)
			case postgresExporterDefaults:
				want, path, port = PostgresExporterArgs(n, p), "/metrics", topology.PortPostgresExporter
				assert.Equal(t, PostgresExporterDSN(c, p), dsn, name)
			case prometheusDefaults:
				want, path, port = PrometheusArgs(c, p), "/-/ready", topology.PortPrometheus
				assert.Equal(t, "unset", dsn, name)
			case alertmanagerDefaults:
				want, path, port = AlertmanagerArgs(c, p), "/-/ready", topology.PortAlertmanager
				assert.Equal(t, "unset", dsn, name)
			}
			require.Equal(t, want, args, name)

			addr := freeAddr(t)
			listen := "--web.listen-address=" + hostPort(n.IP, port)
			require.Contains(t, args, listen, name)
			for i := range args {
				if args[i] == listen {
					args[i] = "--web.listen-address=" + addr
				}
			}
			var daemonEnv []string
			if dsn != "unset" {
				// The socket directory exists but no server runs: the
				// exporter serves its own metrics all the same (pg_up 0).
				require.NoError(t, os.MkdirAll(p.PGSocketDir, 0o755))
				daemonEnv = []string{"DATA_SOURCE_NAME=" + dsn}
			}
			log := startDaemon(t, daemonEnv, append([]string{bins[f.Path]}, args...)...)
			client := tt.client(t)
			client.ServerName = n.Name
			_, err = waitTLSGet(client, "https://"+addr+path)
			require.NoError(t, err, "%s: %s", name, log.String())
			started++
		}
	}
	assert.Equal(t, 2+1+3, started, "pg-1's two exporters, haproxy-1's node_exporter, the monitoring node's node_exporter, Prometheus and Alertmanager")
}

// TestEnvFileRefusesQuoting: a value that systemd or a shell would
// interpret, or a word of ARGS that would split, is refused.
func TestEnvFileRefusesQuoting(t *testing.T) {
	b, err := envFile("# c\n", envVar{"DSN", []string{"host=/run user=x"}}, envVar{"ARGS", []string{"--a=1", "--b=2"}})
	require.NoError(t, err)
	assert.Equal(t, "# c\nDSN=\"host=/run user=x\"\nARGS=\"--a=1 --b=2\"\n", string(b))
	for _, bad := range [][]string{{`--a="x"`}, {"--a=$HOME"}, {"--a=`id`"}, {`--a=\\`}, {"--a=1\nB=2"}, {"--a=x y", "--b"}} {
		_, err := envFile("", envVar{"ARGS", bad})
		assert.ErrorContains(t, err, "would need quoting", "%q", bad)
	}
}
