package userdata

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"

	"github.com/pgha/pgha/internal/topology"
)

var (
	// clusterNameRe: Patroni scope, etcd cluster token and key prefix; keep
	// it to characters that need no quoting anywhere.
	clusterNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	nodeNameRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	regionRe      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	// roleNameRe: PostgreSQL identifiers that need no quoting in pg_hba.conf
	// or SQL.
	roleNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	// ssmNameRe is the character set SSM allows in parameter names; it also
	// keeps the names safe inside the boot script.
	ssmNameRe = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,1000}$`)
	// pathRe keeps paths safe unquoted in YAML, shell and systemd units.
	pathRe = regexp.MustCompile(`^[A-Za-z0-9_./@+-]+$`)
)

// Validate reports every problem of the spec at once, each naming the field
// and what to change, in a fixed order.
func (c Cluster) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.Name == "" {
		add("cluster Name is empty: set it, e.g. %q", "pgha")
	} else if !clusterNameRe.MatchString(c.Name) {
		add("cluster Name %q is invalid: use 1-40 lower-case letters, digits or '-', starting with a letter", c.Name)
	}
	if _, err := LookupProfile(c.Profile); err != nil {
		add("cluster Profile: %v", err)
	}
	if c.Region == "" {
		add("cluster Region is empty: set the AWS region, e.g. %q", "eu-west-1")
	} else if !regionRe.MatchString(c.Region) {
		add("cluster Region %q is not an AWS region name: use e.g. %q", c.Region, "eu-west-1")
	}

	if c.Watchdog != "" && !ValidWatchdog(c.Watchdog) {
		add("cluster Watchdog %q: use %s, %s or %s", c.Watchdog, WatchdogAutomatic, WatchdogRequired, WatchdogOff)
	}
	if _, err := c.Tuning(); err != nil {
		add("cluster PostgresSize/Workload: %v", err)
	}
	if c.SlotWALKeepGB < 0 || c.SlotWALKeepGB > 16384 {
		add("cluster SlotWALKeepGB %d: keep 1-16384 GB of WAL for lagging replicas (0 means %d)", c.SlotWALKeepGB, DefaultSlotWALKeepGB)
	}
	errs = append(errs, c.validatePlan()...)
	errs = append(errs, c.Backup.validate()...)

	users := []struct{ field, value string }{
		{"Users.Superuser", c.Users.Superuser},
		{"Users.Replication", c.Users.Replication},
		{"Users.Rewind", c.Users.Rewind},
		{"Users.App", c.Users.App},
		{"Users.AppDatabase", c.Users.AppDatabase},
		{"Users.RestAPI", c.Users.RestAPI},
		{"Users.Stats", c.Users.Stats},
		{"Users.Exporter", c.Users.Exporter},
		{"Users.Monitor", c.Users.Monitor},
		{"Users.Pooler", c.Users.Pooler},
		{"Users.PoolerAdmin", c.Users.PoolerAdmin},
	}
	for _, u := range users {
		switch {
		case u.value == "":
			add("%s is empty: set a user name (DefaultUsers() has one)", u.field)
		case !roleNameRe.MatchString(u.value):
			add("%s %q is invalid: use lower-case letters, digits and '_', starting with a letter or '_'", u.field, u.value)
		}
	}
	// PostgreSQL roles must be distinct: Patroni gives each one different
	// privileges, and sharing a role would silently merge them. They are
	// the first four users, Exporter, Monitor and Pooler; PoolerAdmin is
	// PgBouncer's alone, and must be no role a client logs in as, or that
	// client would get the console.
	seenRole := map[string]string{}
	for _, u := range append(users[:4:4], users[len(users)-4:]...) {
		if u.value == "" {
			continue
		}
		if prev, ok := seenRole[u.value]; ok {
			add("%s %q is the same role as %s: give each PostgreSQL role its own name", u.field, u.value, prev)
			continue
		}
		seenRole[u.value] = u.field
	}

	if c.PoolMode != "" && !ValidPoolMode(c.PoolMode) {
		add("cluster PoolMode %q: use %s (the default) or %s", c.PoolMode, PoolTransaction, PoolSession)
	}
	if c.Monitoring != nil {
		if err := c.Monitoring.validate(); err != nil {
			add("%v", err)
		}
	}
	for i, p := range c.MonitorFrom {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
			add("MonitorFrom[%d] %q is not an IPv4 prefix without host bits (e.g. %q)", i, p, "10.42.0.200/32")
		}
	}
	for i, p := range c.SharedStack {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
			add("SharedStack[%d] %q is not an IPv4 prefix without host bits (e.g. %q)", i, p, "127.0.0.1/32")
		}
	}

	for _, s := range Secrets {
		field, value := fmt.Sprintf("Secrets[%q]", s.Name), c.Secrets[s.Name]
		switch {
		case value == "":
			add("%s is empty: set the name of the SSM SecureString parameter, e.g. %q", field, "/pgha/dev/"+s.ParamName())
		case !ssmNameRe.MatchString(value):
			add("%s %q is not a valid SSM parameter name: use letters, digits and _.-/ only", field, value)
		}
	}
	var unknown []string
	for name := range c.Secrets {
		if _, ok := SecretByName(name); !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		add("Secrets[%q] names no secret of the cluster (see userdata.Secrets)", name)
	}
	return errors.Join(errs...)
}

// wantCount is how many nodes of each role the renderers can wire together.
var wantCount = []struct {
	role     topology.Role
	min, max int
}{
	{topology.RoleEtcd, 3, 3},
	{topology.RolePatroni, 3, 3},
	{topology.RoleHAProxy, 1, 16},
}

func (c Cluster) validatePlan() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	vpcOK := c.Plan.VPC.IsValid() && c.Plan.VPC.Addr().Is4()
	if !vpcOK {
		add("Plan.VPC %q is not an IPv4 CIDR: build the plan with topology.New(%q)", c.Plan.VPC, topology.DefaultVPCCIDR)
	}
	names := map[string]bool{}
	ips := map[string]string{}
	for i, n := range c.Plan.Nodes {
		field := fmt.Sprintf("Plan.Nodes[%d]", i)
		switch {
		case n.Name == "":
			add("%s.Name is empty: give the node a name such as %q", field, "pg-1")
		case !nodeNameRe.MatchString(n.Name):
			add("%s.Name %q is invalid: use lower-case letters, digits or '-', starting with a letter", field, n.Name)
		case names[n.Name]:
			add("%s.Name %q is a duplicate: node names must be unique", field, n.Name)
		}
		names[n.Name] = true

		switch n.Role {
		case topology.RoleEtcd, topology.RolePatroni, topology.RoleHAProxy:
		default:
			add("%s (%s).Role %q is unknown: use etcd, patroni or haproxy", field, n.Name, n.Role)
		}

		if !n.IP.IsValid() || !n.IP.Is4() {
			add("%s (%s).IP is not an IPv4 address: take it from the topology plan", field, n.Name)
			continue
		}
		if prev, ok := ips[n.IP.String()]; ok {
			add("%s (%s).IP %s is already used by %s: every node needs its own address", field, n.Name, n.IP, prev)
		} else {
			ips[n.IP.String()] = n.Name
		}
		if !vpcOK {
			continue
		}
		if !c.Plan.VPC.Contains(n.IP) {
			add("%s (%s).IP %s is outside the VPC %s: pick an address inside it", field, n.Name, n.IP, c.Plan.VPC)
			continue
		}
		sub, ok := c.Plan.Subnet(n.Tier, n.AZIndex)
		if !ok {
			add("%s (%s) has no %s subnet in AZ index %d: add the subnet to Plan.Subnets or fix Tier/AZIndex", field, n.Name, n.Tier, n.AZIndex)
			continue
		}
		if !sub.CIDR.Contains(n.IP) {
			add("%s (%s).IP %s is outside its subnet %s (%s): pick an address in %s", field, n.Name, n.IP, sub.Name, sub.CIDR, sub.CIDR)
		}
	}
	for _, w := range wantCount {
		got := len(c.Plan.ByRole(w.role))
		switch {
		case got < w.min && w.min == w.max:
			add("Plan.Nodes has %d %s node(s): a peer is missing, exactly %d are needed", got, w.role, w.min)
		case got > w.max && w.min == w.max:
			add("Plan.Nodes has %d %s nodes: exactly %d are needed, remove %d", got, w.role, w.min, got-w.max)
		case got < w.min:
			add("Plan.Nodes has %d %s node(s): at least %d is needed", got, w.role, w.min)
		case got > w.max:
			add("Plan.Nodes has %d %s nodes: at most %d are supported", got, w.role, w.max)
		}
	}
	return errs
}

// node finds a node of the given role, with an error that says what exists.
// The monitoring node is not in Plan.Nodes: only a caller that names
// RoleMonitor finds it, and only in a cluster with monitoring.
func (c Cluster) node(name string, roles ...topology.Role) (topology.Node, error) {
	n, ok := c.Plan.Node(name)
	withMonitor := slices.Contains(roles, topology.RoleMonitor)
	if !ok && withMonitor && name == c.Plan.Monitor().Name {
		if c.Monitoring == nil {
			return topology.Node{}, fmt.Errorf("node %q is the monitoring node, but cluster %s has no monitoring (Cluster.Monitoring is nil)", name, c.Name)
		}
		return c.Plan.Monitor(), nil
	}
	if !ok {
		var known []string
		for _, k := range c.Plan.Nodes {
			known = append(known, k.Name)
		}
		if withMonitor && c.Monitoring != nil {
			known = append(known, c.Plan.Monitor().Name)
		}
		return topology.Node{}, fmt.Errorf("node %q is not in the plan: use one of %v", name, known)
	}
	for _, r := range roles {
		if n.Role == r {
			return n, nil
		}
	}
	return topology.Node{}, fmt.Errorf("node %q has role %s, but this file is for role %v: pick a %v node", name, n.Role, roles, roles)
}

// checkPaths rejects empty or relative paths among the ones a renderer uses.
func checkPaths(fields ...[2]string) error {
	var errs []error
	for _, f := range fields {
		switch {
		case f[1] == "":
			errs = append(errs, fmt.Errorf("Paths.%s is empty: set an absolute path (CloudPaths() has one)", f[0]))
		case !path.IsAbs(f[1]):
			errs = append(errs, fmt.Errorf("Paths.%s %q is relative: use an absolute path", f[0], f[1]))
		case !pathRe.MatchString(f[1]):
			errs = append(errs, fmt.Errorf("Paths.%s %q has characters that would need quoting: use letters, digits and _.-/@+ only", f[0], f[1]))
		case path.Clean(f[1]) != f[1]:
			errs = append(errs, fmt.Errorf("Paths.%s %q is not clean: use %q", f[0], f[1], path.Clean(f[1])))
		}
	}
	return errors.Join(errs...)
}
