// Package outputs is the one contract between whatever builds a cluster (the
// Pulumi program on AWS, or the lab) and validate, which checks it.
//
// Each field is one top-level stack output. The JSON form is exactly what
// `pulumi stack output --json --show-secrets` prints for the stack, and what
// the lab writes to its outputs file.
package outputs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// Output keys. The Pulumi program exports these names; nothing else may.
const (
	KeyTarget          = "target"
	KeyClusterName     = "clusterName"
	KeyRegion          = "region"
	KeyProfile         = "profile"
	KeySynchronousMode = "synchronousMode"
	KeyVPCCIDR         = "vpcCidr"
	KeyWriteEndpoint   = "writeEndpoint"
	KeyReadEndpoint    = "readEndpoint"
	KeyStatsEndpoint   = "statsEndpoint"
	KeyNodes           = "nodes"
	KeyAccess          = "access"
	KeyCredentials     = "credentials"   // secret
	KeySSHPrivateKey   = "sshPrivateKey" // secret, AWS only
	KeyClusterState    = "clusterState"  // Patroni's /cluster at readiness time
	KeyPlacement       = "placement"     // AWS only: the image and zones, kept across runs
	KeyConnection      = "connection"    // libpq URIs over every entry point, no password
	KeyBackups         = "backups"       // the pgBackRest repository: bucket, path, region, key (with pgha:backups)
	KeyCACertificate   = "caCertificate" // the cluster CA (PEM): clients verify every server with it
	KeyClientTLS       = "clientTls"     // secret: the certificate and key pgha's tools present to etcd
	// KeyPrometheusEndpoint is the cluster's Prometheus (https base URL),
	// absent when monitoring is off.
	KeyPrometheusEndpoint = "prometheusEndpoint"
	// KeyPoolerEndpoint is PgBouncer, the clients' entry point in front of
	// the write endpoint (pooled, held through a leader change). The
	// program and the labs write it; absent where no pooler serves clients
	// (a stack not updated since the program first exported it).
	KeyPoolerEndpoint = "poolerEndpoint"
	// KeyAlertTopic is the SNS topic Alertmanager pages through (its ARN),
	// absent when monitoring is off.
	KeyAlertTopic = "alertTopicArn"
)

// Tags every AWS resource of a stack carries. The teardown check finds
// leftovers by project and stack; role says which tier a resource serves.
const (
	TagProject = "pgha:project"
	TagStack   = "pgha:stack"
	TagRole    = "pgha:role"
	// TagKeep is "true" on a data volume the stack protects from `pulumi
	// destroy`: the teardown check reports it as kept, not as left over.
	TagKeep = "pgha:keep"
)

// SecretKeys are the outputs that must only ever be exported as secrets.
var SecretKeys = []string{KeyCredentials, KeySSHPrivateKey, KeyClientTLS}

// Target says what built the cluster.
const (
	TargetAWS = "aws"
	TargetLab = "lab"
)

// Access kinds: how validate reaches private addresses.
const (
	AccessSSH    = "ssh"    // jump through a public node (AWS, or the lab's sshd)
	AccessNetns  = "netns"  // dial from inside the lab's client network namespace
	AccessDirect = "direct" // the addresses are routable from here (loopback lab)
)

// Stack is every output of one cluster.
type Stack struct {
	Target          string      `json:"target"`
	ClusterName     string      `json:"clusterName"`
	Region          string      `json:"region"`
	Profile         string      `json:"profile"`
	SynchronousMode bool        `json:"synchronousMode"`
	VPCCIDR         string      `json:"vpcCidr"`
	WriteEndpoint   Endpoint    `json:"writeEndpoint"`
	ReadEndpoint    Endpoint    `json:"readEndpoint"`
	StatsEndpoint   Endpoint    `json:"statsEndpoint"`
	Nodes           []Node      `json:"nodes"`
	Access          Access      `json:"access"`
	Credentials     Credentials `json:"credentials"`
	SSHPrivateKey   string      `json:"sshPrivateKey,omitempty"`
	ClusterState    any         `json:"clusterState,omitempty"`
	Placement       *Placement  `json:"placement,omitempty"`
	Connection      *Connection `json:"connection,omitempty"`
	Backups         *Backups    `json:"backups,omitempty"`
	CACertificate   string      `json:"caCertificate,omitempty"`
	ClientTLS       *ClientTLS  `json:"clientTls,omitempty"`
	// PrometheusEndpoint is reached through the access path with the
	// cluster CA and the clientTls certificate.
	PrometheusEndpoint string `json:"prometheusEndpoint,omitempty"`
	// PoolerEndpoint is PgBouncer (each HAProxy node runs one, on the same
	// port) on the write endpoint's host: the load balancer's name or the
	// jump host's address on AWS, the first HAProxy node in the labs. TLS
	// verified with caCertificate, SCRAM as the application user, the
	// application database only.
	PoolerEndpoint *Endpoint `json:"poolerEndpoint,omitempty"`
	// AlertTopicARN is the SNS topic the monitoring node pages through.
	AlertTopicARN string `json:"alertTopicArn,omitempty"`
}

// ClientTLS is the client certificate of pgha's own tools (validate, the
// labs' probes): etcd admits no client without one.
type ClientTLS struct {
	Certificate string `json:"certificate"` // PEM
	PrivateKey  string `json:"privateKey"`  // PEM
}

// Trust is what a client of this stack verifies servers with and, for
// etcd, presents.
func (s Stack) Trust() pki.Trust {
	t := pki.Trust{CA: []byte(s.CACertificate)}
	if s.ClientTLS != nil {
		t.Cert, t.Key = []byte(s.ClientTLS.Certificate), []byte(s.ClientTLS.PrivateKey)
	}
	return t
}

// Connection is how clients reach the cluster with no single entry point:
// libpq connection URIs (the password is not in them: it is in
// credentials) that list every entry point, both HAProxy nodes or the load
// balancer. libpq and pgx try the hosts in order, so a client whose first
// HAProxy node is gone connects through the next.
type Connection struct {
	Write string `json:"write"` // target_session_attrs=read-write
	Read  string `json:"read"`
	// Pooled is PgBouncer's side (6432), in front of the write side.
	// Absent from the outputs of a stack not updated since it was added.
	Pooled string `json:"pooled,omitempty"`
}

// NewConnection lists hosts (the HAProxy nodes, or the load balancer) for
// the write side (5000, read-write), the read side (5001) and the pooled
// side (PgBouncer's 6432). The pooled side asks for no
// target_session_attrs: PgBouncer serves only the leader, and a check at
// connect would wait for a server while there is no leader, which is
// when the pooler is meant to hold the client instead.
func NewConnection(user, database string, hosts []string) *Connection {
	return &Connection{
		Write:  ConnectionURI(user, database, hosts, topology.PortWrite, "read-write"),
		Read:   ConnectionURI(user, database, hosts, topology.PortRead, ""),
		Pooled: ConnectionURI(user, database, hosts, topology.PortPooler, ""),
	}
}

// ConnectionURI is a libpq URI for user and database over hosts, all on
// port, with TLS verified (sslmode=verify-full) and, when attrs is set,
// target_session_attrs.
func ConnectionURI(user, database string, hosts []string, port int, attrs string) string {
	var hp []string
	for _, h := range hosts {
		hp = append(hp, net.JoinHostPort(h, fmt.Sprint(port)))
	}
	// verify-full: the servers' certificates name every entry point; the
	// client needs the cluster CA (the caCertificate output) as its
	// sslrootcert (libpq's default: ~/.postgresql/root.crt).
	q := url.Values{"sslmode": {"verify-full"}, "connect_timeout": {"5"}}
	if attrs != "" {
		q.Set("target_session_attrs", attrs)
	}
	u := url.URL{Scheme: "postgresql", User: url.User(user), Host: strings.Join(hp, ","), Path: "/" + database, RawQuery: q.Encode()}
	return u.String()
}

// ParseConnectionURI reads back what ConnectionURI wrote: the hosts as
// host:port, in order, the user, the database and target_session_attrs.
func ParseConnectionURI(uri string) (hosts []string, user, database, attrs string, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, "", "", "", err
	}
	if u.Scheme != "postgresql" && u.Scheme != "postgres" {
		return nil, "", "", "", fmt.Errorf("%q is not a postgresql:// URI", uri)
	}
	for _, hp := range strings.Split(u.Host, ",") {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, "", "", "", fmt.Errorf("%q: host %q: %w", uri, hp, err)
		}
		hosts = append(hosts, hp)
	}
	return hosts, u.User.Username(), strings.TrimPrefix(u.Path, "/"), u.Query().Get("target_session_attrs"), nil
}

// Placement is what a stack's nodes were first placed on: the machine image
// and the three Availability Zones. The Pulumi program reads it back from
// the stack's previous outputs and keeps it, so a newer AMI or a change in
// a zone's state never replaces running nodes by itself.
type Placement struct {
	Region string   `json:"region"`
	AMI    string   `json:"ami"`
	Zones  []string `json:"zones"` // by plan AZ index
}

// Backups is where the cluster's pgBackRest repository lives (pgha:backups).
type Backups struct {
	Bucket string `json:"bucket"`
	Path   string `json:"path"` // repo1-path
	Region string `json:"region"`
	KeyARN string `json:"keyArn,omitempty"` // the bucket's KMS key (AWS)
}

// Endpoint is a host and port clients connect to. On AWS the host is the
// network load balancer's DNS name or an HAProxy node's public address.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

func (e Endpoint) String() string { return fmt.Sprintf("%s:%d", e.Host, e.Port) }

// Node is one host of the cluster.
type Node struct {
	Name       string        `json:"name"`
	Role       topology.Role `json:"role"` // etcd | patroni | haproxy
	AZ         string        `json:"az"`
	PrivateIP  string        `json:"privateIp"`
	PublicIP   string        `json:"publicIp,omitempty"`
	InstanceID string        `json:"instanceId,omitempty"` // lab: empty
	// DataVolumeID is the EBS volume an etcd or PostgreSQL node keeps its
	// data on (lab: empty).
	DataVolumeID string `json:"dataVolumeId,omitempty"`
	// Namespace is, in a namespace lab, the node's network namespace on
	// the lab's machine: validate observes a partitioned node from there.
	Namespace string `json:"namespace,omitempty"`
	// HostKeys are the node's SSH host keys (authorized_keys format), as
	// recorded at readiness time; faults that log in to the node check them.
	HostKeys []string `json:"hostKeys,omitempty"`
}

// Access is the path from validate to private addresses.
type Access struct {
	Kind string `json:"kind"`
	// SSH (Kind == "ssh").
	JumpHost     string   `json:"jumpHost,omitempty"` // host:port
	JumpUser     string   `json:"jumpUser,omitempty"`
	JumpHostKeys []string `json:"jumpHostKeys,omitempty"` // authorized_keys format
	// Lab (Kind == "netns"): the namespace validate dials from.
	Namespace string `json:"namespace,omitempty"`
	// Lab: the lab's state directory, for faults that act on its processes.
	LabDir string `json:"labDir,omitempty"`
	// AWSAPI is where a booted lab's stand-in for the AWS APIs answers
	// (validate's stop fault calls EC2 there). Absent on AWS, where the
	// SDK's own configuration applies.
	AWSAPI *AWSAPI `json:"awsApi,omitempty"`
}

// AWSAPI is an AWS API endpoint other than AWS's own, and who to call it
// as: the booted lab's stand-in, with the lab operator's key (which holds
// the IAM policy docs/validate-aws.md gives validate).
type AWSAPI struct {
	Endpoint        string `json:"endpoint"` // https://host:port
	CABundle        string `json:"caBundle"` // PEM of the CA its certificate is signed by
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

// Credentials are all secret: every password of the cluster (one per
// userdata.Secrets entry) with its user name, and the application database.
type Credentials struct {
	SuperuserName       string `json:"superuserName"`
	SuperuserPassword   string `json:"superuserPassword"`
	ReplicationName     string `json:"replicationName"`
	ReplicationPassword string `json:"replicationPassword"`
	RewindName          string `json:"rewindName"`
	RewindPassword      string `json:"rewindPassword"`
	AppName             string `json:"appName"`
	AppPassword         string `json:"appPassword"`
	AppDatabase         string `json:"appDatabase"`
	RestAPIName         string `json:"restApiName"`
	RestAPIPassword     string `json:"restApiPassword"`
	StatsName           string `json:"statsName"`
	StatsPassword       string `json:"statsPassword"`
	// Monitor is pgha's own checks' role (pg_monitor), which validate
	// connects to each node as.
	MonitorName     string `json:"monitorName"`
	MonitorPassword string `json:"monitorPassword"`
	// Pooler is PgBouncer's auth user (auth_query); nothing but PgBouncer
	// logs in as it.
	PoolerName     string `json:"poolerName"`
	PoolerPassword string `json:"poolerPassword"`
	// PoolerAdmin is PgBouncer's admin console user, which pgha's planned
	// switchover pauses and resumes the poolers as.
	PoolerAdminName     string `json:"poolerAdminName"`
	PoolerAdminPassword string `json:"poolerAdminPassword"`
}

// Parse reads and checks the JSON form. Every problem names the output.
func Parse(data []byte) (Stack, error) {
	var s Stack
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&s); err != nil {
		return Stack{}, fmt.Errorf("stack outputs are not valid JSON in the expected shape: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Stack{}, err
	}
	return s, nil
}

// Load reads an outputs file.
func Load(path string) (Stack, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stack{}, fmt.Errorf("reading stack outputs: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return Stack{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Write stores the JSON form with mode 0600: it holds secrets.
func (s Stack) Write(path string) error {
	b, err := s.JSON()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// JSON is the outputs indented as `pulumi stack output --json` prints
// them: the connection URIs keep their "&" (no HTML escaping).
func (s Stack) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ByRole returns the nodes of one role, in output order.
func (s Stack) ByRole(role topology.Role) []Node {
	var out []Node
	for _, n := range s.Nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// NodeByIP finds a node by private address.
func (s Stack) NodeByIP(ip string) (Node, bool) {
	for _, n := range s.Nodes {
		if n.PrivateIP == ip {
			return n, true
		}
	}
	return Node{}, false
}

// NodeByName finds a node by name.
func (s Stack) NodeByName(name string) (Node, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Validate checks every output that validate relies on.
func (s Stack) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("output %q: %s", key, fmt.Sprintf(format, a...)))
	}
	switch s.Target {
	case TargetAWS, TargetLab:
	default:
		bad(KeyTarget, "is %q; want %q or %q", s.Target, TargetAWS, TargetLab)
	}
	if s.ClusterName == "" {
		bad(KeyClusterName, "is empty")
	}
	if _, err := netip.ParsePrefix(s.VPCCIDR); err != nil {
		bad(KeyVPCCIDR, "%q is not a CIDR", s.VPCCIDR)
	}
	// Slices, not maps, so the same input always gives the same message.
	for _, ep := range []struct {
		key string
		e   Endpoint
	}{{KeyWriteEndpoint, s.WriteEndpoint}, {KeyReadEndpoint, s.ReadEndpoint}} {
		if ep.e.Host == "" || ep.e.Port <= 0 || ep.e.Port > 65535 {
			bad(ep.key, "needs a host and a port in 1-65535, got %q", ep.e.String())
		}
	}
	if p := s.PoolerEndpoint; p != nil && (p.Host == "" || p.Port <= 0 || p.Port > 65535) {
		bad(KeyPoolerEndpoint, "needs a host and a port in 1-65535, got %q", p.String())
	}
	if c := s.Connection; c != nil {
		uris := []string{c.Write, c.Read}
		if c.Pooled != "" {
			uris = append(uris, c.Pooled)
		}
		for _, uri := range uris {
			if hosts, _, _, _, err := ParseConnectionURI(uri); err != nil || len(hosts) == 0 {
				bad(KeyConnection, "%q is not a libpq URI with at least one host:port (%v)", uri, err)
			}
		}
	}
	counts := map[topology.Role]int{}
	names := map[string]bool{}
	for i, n := range s.Nodes {
		counts[n.Role]++
		if n.Name == "" {
			bad(KeyNodes, "node %d has no name", i)
		} else if names[n.Name] {
			bad(KeyNodes, "node name %q appears twice", n.Name)
		}
		names[n.Name] = true
		if _, err := netip.ParseAddr(n.PrivateIP); err != nil {
			bad(KeyNodes, "node %q has privateIp %q, which is not an IP address", n.Name, n.PrivateIP)
		}
	}
	for _, rc := range []struct {
		role topology.Role
		want int
	}{{topology.RoleEtcd, 3}, {topology.RolePatroni, 3}, {topology.RoleHAProxy, 2}} {
		if counts[rc.role] != rc.want {
			bad(KeyNodes, "has %d %s nodes; want %d", counts[rc.role], rc.role, rc.want)
		}
	}
	switch s.Access.Kind {
	case AccessSSH:
		if s.Access.JumpHost == "" || s.Access.JumpUser == "" {
			bad(KeyAccess, "ssh access needs jumpHost and jumpUser")
		}
		if len(s.Access.JumpHostKeys) == 0 {
			bad(KeyAccess, "ssh access needs jumpHostKeys; host keys are never accepted blindly")
		}
	case AccessNetns:
		if s.Access.Namespace == "" {
			bad(KeyAccess, "netns access needs a namespace")
		}
	case AccessDirect:
	default:
		bad(KeyAccess, "kind is %q; want %q, %q or %q", s.Access.Kind, AccessSSH, AccessNetns, AccessDirect)
	}
	if _, err := s.Trust().Config(""); err != nil {
		bad(KeyCACertificate, "%v", err)
	} else if s.ClientTLS == nil || s.ClientTLS.Certificate == "" || s.ClientTLS.PrivateKey == "" {
		bad(KeyClientTLS, "needs certificate and privateKey: etcd admits no client without one")
	}
	if p := s.PrometheusEndpoint; p != "" {
		if u, err := url.Parse(p); err != nil || u.Scheme != "https" || u.Host == "" {
			bad(KeyPrometheusEndpoint, "%q is not an https:// URL", p)
		}
	}
	if a := s.Access.AWSAPI; a != nil {
		if u, err := url.Parse(a.Endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
			bad(KeyAccess, "awsApi.endpoint %q is not an https:// URL", a.Endpoint)
		}
		if a.AccessKeyID == "" || a.SecretAccessKey == "" {
			bad(KeyAccess, "awsApi needs accessKeyId and secretAccessKey")
		}
	}
	c := s.Credentials
	for _, fv := range [][2]string{
		{"superuserName", c.SuperuserName}, {"superuserPassword", c.SuperuserPassword},
		{"appName", c.AppName}, {"appPassword", c.AppPassword}, {"appDatabase", c.AppDatabase},
		{"restApiName", c.RestAPIName}, {"restApiPassword", c.RestAPIPassword},
		{"monitorName", c.MonitorName}, {"monitorPassword", c.MonitorPassword},
	} {
		if fv[1] == "" {
			bad(KeyCredentials, "%s is empty (read the outputs with --show-secrets)", fv[0])
		}
	}
	if c.SuperuserPassword == "[secret]" || c.AppPassword == "[secret]" {
		bad(KeyCredentials, "passwords read as \"[secret]\"; export the outputs with --show-secrets")
	}
	return errors.Join(errs...)
}
