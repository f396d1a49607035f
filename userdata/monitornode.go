package userdata

import (
	"fmt"
	"strings"

	"github.com/pgha/pgha/internal/topology"
)

// The cloud side of monitoring: what the user data adds to every node when
// Cluster.Monitoring is set, and the monitoring node's own user data.

// Debian's units of the monitoring packages read their flags from these
// files (EnvironmentFile=, then ExecStart=/usr/bin/<daemon> $ARGS, which
// systemd splits at whitespace); postgres_exporter also its
// DATA_SOURCE_NAME.
const (
	nodeExporterDefaults     = "/etc/default/prometheus-node-exporter"
	postgresExporterDefaults = "/etc/default/prometheus-postgres-exporter"
	prometheusDefaults       = "/etc/default/prometheus"
	alertmanagerDefaults     = "/etc/default/prometheus-alertmanager"
)

// monitoredUnit is a monitoring daemon of a node, and what the boot script
// asks of it over TLS to know it serves.
type monitoredUnit struct {
	Unit string
	Port int
	Path string
}

// monitoredUnits are the monitoring daemons a node of the role runs: none
// without monitoring.
func monitoredUnits(c Cluster, role topology.Role) []monitoredUnit {
	if c.Monitoring == nil {
		return nil
	}
	units := []monitoredUnit{{"prometheus-node-exporter.service", topology.PortNodeExporter, "/metrics"}}
	switch role {
	case topology.RolePatroni:
		units = append(units, monitoredUnit{"prometheus-postgres-exporter.service", topology.PortPostgresExporter, "/metrics"})
	case topology.RoleMonitor:
		// /-/ready: 200 once the TSDB is open and the configuration loaded.
		units = append(units, monitoredUnit{"prometheus.service", topology.PortPrometheus, "/-/ready"},
			monitoredUnit{"prometheus-alertmanager.service", topology.PortAlertmanager, "/-/ready"})
	}
	return units
}

// defaultsFiles are the /etc/default files of a node's monitoring daemons:
// node_exporter's on every node, postgres_exporter's on a PostgreSQL node,
// Prometheus's on the monitoring node.
func defaultsFiles(c Cluster, n topology.Node, p Paths) ([]File, error) {
	if c.Monitoring == nil {
		return nil, fmt.Errorf("cluster %s has no monitoring (Cluster.Monitoring is nil): no exporter runs", c.Name)
	}
	if err := checkPaths([2]string{"ExporterWebConfig", p.ExporterWebConfig}); err != nil {
		return nil, err
	}
	b, err := envFile("# pgha: node_exporter on this node's private address, HTTPS for clients of the\n# cluster CA only.\n",
		envVar{"ARGS", NodeExporterArgs(n, p)})
	if err != nil {
		return nil, err
	}
	files := []File{{Path: nodeExporterDefaults, Content: b, Owner: "root:root", Mode: 0o644}}
	switch n.Role {
	case topology.RolePatroni:
		if err := checkPaths([2]string{"PGSocketDir", p.PGSocketDir}); err != nil {
			return nil, err
		}
		// No password in it; the package's postinst makes it prometheus's
		// 0640 anyway.
		b, err := envFile("# pgha: postgres_exporter logs in on the node's socket by peer: no password.\n",
			envVar{"DATA_SOURCE_NAME", []string{PostgresExporterDSN(c, p)}}, envVar{"ARGS", PostgresExporterArgs(n, p)})
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: postgresExporterDefaults, Content: b, Owner: "root:root", Mode: 0o644})
	case topology.RoleMonitor:
		if err := checkPaths([2]string{"PrometheusConfig", p.PrometheusConfig}, [2]string{"PrometheusWebConfig", p.PrometheusWebConfig},
			[2]string{"PrometheusDataDir", p.PrometheusDataDir}); err != nil {
			return nil, err
		}
		// Debian's unit passes nothing but $ARGS, so each flag is given
		// once, here.
		b, err := envFile("# pgha: Prometheus of cluster "+c.Name+" (Debian's unit passes these flags alone).\n",
			envVar{"ARGS", PrometheusArgs(c, p)})
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: prometheusDefaults, Content: b, Owner: "root:root", Mode: 0o644})
		if err := checkPaths([2]string{"AlertmanagerConfig", p.AlertmanagerConfig}, [2]string{"AlertmanagerDataDir", p.AlertmanagerDataDir}); err != nil {
			return nil, err
		}
		b, err = envFile("# pgha: Alertmanager of cluster "+c.Name+", alone, on the private address, TLS.\n",
			envVar{"ARGS", AlertmanagerArgs(c, p)})
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: alertmanagerDefaults, Content: b, Owner: "root:root", Mode: 0o644})
	}
	return files, nil
}

// envFile renders KEY="VALUE" lines that systemd's EnvironmentFile= and a
// shell read alike. A value is one string, or a command line's words that
// $ARGS will split at whitespace. What either reader would interpret (a
// quote, $, a backslash, a newline) is refused, and so is whitespace
// inside one word.
func envFile(comment string, vars ...envVar) ([]byte, error) {
	var b strings.Builder
	b.WriteString(comment)
	for _, v := range vars {
		for _, w := range v.Words {
			if strings.ContainsAny(w, "\"'$\\`\n") || (len(v.Words) > 1 && strings.ContainsAny(w, " \t")) {
				return nil, fmt.Errorf("%s: %q would need quoting", v.Key, w)
			}
		}
		fmt.Fprintf(&b, "%s=\"%s\"\n", v.Key, strings.Join(v.Words, " "))
	}
	return []byte(b.String()), nil
}

// envVar is one line of an envFile.
type envVar struct {
	Key   string
	Words []string
}

// monitorNodeFiles are the monitoring node's files: Prometheus's
// configuration, web configuration and rules, and node_exporter's web
// configuration.
func monitorNodeFiles(c Cluster, p Paths) ([]File, error) {
	files, err := MonitorFiles(c, p)
	if err != nil {
		return nil, err
	}
	return withExporterWebConfig(files, p)
}

// MonitoredUnits are the node's monitoring units, separated by spaces, for
// one systemctl command.
func (d data) MonitoredUnits() string {
	var units []string
	for _, u := range d.Monitored {
		units = append(units, u.Unit)
	}
	return strings.Join(units, " ")
}
