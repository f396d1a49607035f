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
)

// Ports lists what a node of the role listens on (SSH aside).
func (r Role) Ports() []int {
	switch r {
	case RoleEtcd:
		return []int{PortEtcdClient, PortEtcdPeer}
	case RolePatroni:
		return []int{PortPostgres, PortPatroniAPI}
	case RoleHAProxy:
		return []int{PortWrite, PortRead, PortStats}
	}
	return nil
}
