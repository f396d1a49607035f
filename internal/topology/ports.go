package topology

// Service ports. Every rendered file, security group rule, endpoint and
// probe takes its port from here, so a port is changed in one place.
const (
	PortSSH        = 22
	PortEtcdClient = 2379
	PortEtcdPeer   = 2380
	PortPostgres   = 5432
	PortPatroniAPI = 8008
	PortWrite      = 5000 // HAProxy → the leader
	PortRead       = 5001 // HAProxy → the replicas
	PortStats      = 7000 // HAProxy's stats page
	// PortPooler is PgBouncer on the HAProxy nodes, in front of PortWrite:
	// the clients' entry point, which holds them while the leader changes.
	PortPooler = 6432

	// Metrics, scraped by the monitoring node only.
	PortNodeExporter     = 9100 // prometheus-node-exporter, every node
	PortPostgresExporter = 9187 // prometheus-postgres-exporter, PostgreSQL nodes
	PortHAProxyMetrics   = 8405 // HAProxy's built-in exporter
	PortPrometheus       = 9090 // the monitoring node's Prometheus
	PortAlertmanager     = 9093 // the monitoring node's Alertmanager
)

// MetricsPorts lists what the monitoring node scrapes on a node of the role
// besides the ports in Ports (Patroni's REST API and etcd's client port
// serve /metrics too).
func (r Role) MetricsPorts() []int {
	switch r {
	case RoleEtcd:
		return []int{PortNodeExporter}
	case RolePatroni:
		return []int{PortNodeExporter, PortPostgresExporter}
	case RoleHAProxy:
		return []int{PortNodeExporter, PortHAProxyMetrics}
	}
	return nil
}

// Ports lists what a node of the role listens on (SSH aside).
func (r Role) Ports() []int {
	switch r {
	case RoleEtcd:
		return []int{PortEtcdClient, PortEtcdPeer}
	case RolePatroni:
		return []int{PortPostgres, PortPatroniAPI}
	case RoleHAProxy:
		return []int{PortWrite, PortRead, PortStats, PortPooler}
	case RoleMonitor:
		return []int{PortPrometheus, PortAlertmanager}
	}
	return nil
}
