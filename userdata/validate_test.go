package userdata

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/topology"
)

func TestDefaultClusterIsValid(t *testing.T) {
	require.NoError(t, defaultCluster(t).Validate())
}

func TestValidateRejectsBadSpecs(t *testing.T) {
	setIP := func(name, ip string) func(*Cluster) {
		return func(c *Cluster) {
			for i := range c.Plan.Nodes {
				if c.Plan.Nodes[i].Name == name {
					c.Plan.Nodes[i].IP = netip.MustParseAddr(ip)
				}
			}
		}
	}
	drop := func(name string) func(*Cluster) {
		return func(c *Cluster) {
			var keep []topology.Node
			for _, n := range c.Plan.Nodes {
				if n.Name != name {
					keep = append(keep, n)
				}
			}
			c.Plan.Nodes = keep
		}
	}
	cases := []struct {
		name   string
		change func(*Cluster)
		want   []string // every line of the error, in order
	}{
		{"empty name", func(c *Cluster) { c.Name = "" },
			[]string{`cluster Name is empty: set it, e.g. "pgha"`}},
		{"invalid name", func(c *Cluster) { c.Name = "PG HA" },
			[]string{`cluster Name "PG HA" is invalid: use 1-40 lower-case letters, digits or '-', starting with a letter`}},
		{"unknown profile", func(c *Cluster) { c.Profile = "turbo" },
			[]string{`cluster Profile: unknown profile "turbo": use one of fast, balanced, safe`}},
		{"empty profile", func(c *Cluster) { c.Profile = "" },
			[]string{`cluster Profile: unknown profile "": use one of fast, balanced, safe`}},
		{"missing region", func(c *Cluster) { c.Region = "" },
			[]string{`cluster Region is empty: set the AWS region, e.g. "eu-west-1"`}},
		{"bad region", func(c *Cluster) { c.Region = "Ireland" },
			[]string{`cluster Region "Ireland" is not an AWS region name: use e.g. "eu-west-1"`}},
		{"duplicate node name", func(c *Cluster) { c.Plan.Nodes[4].Name = "pg-1" },
			[]string{`Plan.Nodes[4].Name "pg-1" is a duplicate: node names must be unique`}},
		{"empty node name", func(c *Cluster) { c.Plan.Nodes[0].Name = "" },
			[]string{`Plan.Nodes[0].Name is empty: give the node a name such as "pg-1"`}},
		{"duplicate IP", setIP("pg-2", "10.42.5.10"),
			[]string{`Plan.Nodes[4] (pg-2).IP 10.42.5.10 is already used by etcd-2: every node needs its own address`}},
		{"IP outside the VPC", setIP("pg-3", "10.43.6.20"),
			[]string{`Plan.Nodes[5] (pg-3).IP 10.43.6.20 is outside the VPC 10.42.0.0/16: pick an address inside it`}},
		{"IP outside its subnet", setIP("haproxy-1", "10.42.4.30"),
			[]string{`Plan.Nodes[6] (haproxy-1).IP 10.42.4.30 is outside its subnet public-1 (10.42.0.0/24): pick an address in 10.42.0.0/24`}},
		{"invalid IP", func(c *Cluster) { c.Plan.Nodes[1].IP = netip.Addr{} },
			[]string{`Plan.Nodes[1] (etcd-2).IP is not an IPv4 address: take it from the topology plan`}},
		{"missing etcd peer", drop("etcd-3"),
			[]string{`Plan.Nodes has 2 etcd node(s): a peer is missing, exactly 3 are needed`}},
		{"missing patroni peer", drop("pg-1"),
			[]string{`Plan.Nodes has 2 patroni node(s): a peer is missing, exactly 3 are needed`}},
		{"extra patroni node", func(c *Cluster) {
			c.Plan.Nodes = append(c.Plan.Nodes, topology.Node{Name: "pg-4", Role: topology.RolePatroni, Tier: topology.Private, AZIndex: 0, IP: netip.MustParseAddr("10.42.4.21")})
		}, []string{`Plan.Nodes has 4 patroni nodes: exactly 3 are needed, remove 1`}},
		{"no haproxy", func(c *Cluster) { drop("haproxy-1")(c); drop("haproxy-2")(c) },
			[]string{`Plan.Nodes has 0 haproxy node(s): at least 1 is needed`}},
		{"unknown role", func(c *Cluster) { c.Plan.Nodes[5].Role = "pgbouncer" }, []string{
			`Plan.Nodes[5] (pg-3).Role "pgbouncer" is unknown: use etcd, patroni or haproxy`,
			`Plan.Nodes has 2 patroni node(s): a peer is missing, exactly 3 are needed`,
		}},
		{"no VPC", func(c *Cluster) { c.Plan.VPC = netip.Prefix{} },
			[]string{`Plan.VPC "invalid Prefix" is not an IPv4 CIDR: build the plan with topology.New("10.42.0.0/16")`}},
		{"node without subnet", func(c *Cluster) { c.Plan.Nodes[0].AZIndex = 5 },
			[]string{`Plan.Nodes[0] (etcd-1) has no private subnet in AZ index 5: add the subnet to Plan.Subnets or fix Tier/AZIndex`}},
		{"empty superuser", func(c *Cluster) { c.Users.Superuser = "" },
			[]string{`Users.Superuser is empty: set a user name (DefaultUsers() has one)`}},
		{"empty replication user", func(c *Cluster) { c.Users.Replication = "" },
			[]string{`Users.Replication is empty: set a user name (DefaultUsers() has one)`}},
		{"empty rewind user", func(c *Cluster) { c.Users.Rewind = "" },
			[]string{`Users.Rewind is empty: set a user name (DefaultUsers() has one)`}},
		{"empty app user", func(c *Cluster) { c.Users.App = "" },
			[]string{`Users.App is empty: set a user name (DefaultUsers() has one)`}},
		{"empty app database", func(c *Cluster) { c.Users.AppDatabase = "" },
			[]string{`Users.AppDatabase is empty: set a user name (DefaultUsers() has one)`}},
		{"empty REST API user", func(c *Cluster) { c.Users.RestAPI = "" },
			[]string{`Users.RestAPI is empty: set a user name (DefaultUsers() has one)`}},
		{"empty stats user", func(c *Cluster) { c.Users.Stats = "" },
			[]string{`Users.Stats is empty: set a user name (DefaultUsers() has one)`}},
		{"empty monitor user", func(c *Cluster) { c.Users.Monitor = "" },
			[]string{`Users.Monitor is empty: set a user name (DefaultUsers() has one)`}},
		{"monitor shares a role", func(c *Cluster) { c.Users.Monitor = "app" },
			[]string{`Users.Monitor "app" is the same role as Users.App: give each PostgreSQL role its own name`}},
		{"monitor from a host address", func(c *Cluster) {
			c.MonitorFrom = []netip.Prefix{netip.MustParsePrefix("10.42.0.200/24")}
		}, []string{`MonitorFrom[0] "10.42.0.200/24" is not an IPv4 prefix without host bits (e.g. "10.42.0.200/32")`}},
		{"quoted user name", func(c *Cluster) { c.Users.App = `app"; DROP` },
			[]string{`Users.App "app\"; DROP" is invalid: use lower-case letters, digits and '_', starting with a letter or '_'`}},
		{"shared role", func(c *Cluster) { c.Users.Rewind = "postgres" },
			[]string{`Users.Rewind "postgres" is the same role as Users.Superuser: give each PostgreSQL role its own name`}},
		{"empty superuser parameter", func(c *Cluster) { c.Secrets["superuser"] = "" },
			[]string{`Secrets["superuser"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/superuser-password"`}},
		{"empty replication parameter", func(c *Cluster) { c.Secrets["replication"] = "" },
			[]string{`Secrets["replication"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/replication-password"`}},
		{"empty rewind parameter", func(c *Cluster) { c.Secrets["rewind"] = "" },
			[]string{`Secrets["rewind"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/rewind-password"`}},
		{"empty app parameter", func(c *Cluster) { c.Secrets["app"] = "" },
			[]string{`Secrets["app"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/app-password"`}},
		{"empty REST API parameter", func(c *Cluster) { c.Secrets["restapi"] = "" },
			[]string{`Secrets["restapi"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/restapi-password"`}},
		{"empty stats parameter", func(c *Cluster) { c.Secrets["stats"] = "" },
			[]string{`Secrets["stats"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/stats-password"`}},
		{"unknown secret", func(c *Cluster) { c.Secrets["vault"] = "/pgha/dev/vault-password" },
			[]string{`Secrets["vault"] names no secret of the cluster (see userdata.Secrets)`}},
		{"parameter name with a space", func(c *Cluster) { c.Secrets["app"] = "/pgha/dev/app password" },
			[]string{`Secrets["app"] "/pgha/dev/app password" is not a valid SSM parameter name: use letters, digits and _.-/ only`}},
		{"several problems at once, in field order", func(c *Cluster) {
			c.Secrets["stats"] = ""
			c.Region = ""
			c.Name = ""
			drop("etcd-1")(c)
		}, []string{
			`cluster Name is empty: set it, e.g. "pgha"`,
			`cluster Region is empty: set the AWS region, e.g. "eu-west-1"`,
			`Plan.Nodes has 2 etcd node(s): a peer is missing, exactly 3 are needed`,
			`Secrets["stats"] is empty: set the name of the SSM SecureString parameter, e.g. "/pgha/dev/stats-password"`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultCluster(t)
			tc.change(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Equal(t, tc.want, strings.Split(err.Error(), "\n"))

			// Nothing is rendered half-way: every renderer refuses the spec
			// with the same error and returns no bytes.
			for _, n := range []string{"etcd-2", "pg-2", "haproxy-2"} {
				files, ferr := NodeFiles(c, n, CloudPaths())
				assert.Nil(t, files)
				assert.EqualError(t, ferr, err.Error())
				ci, cerr := RenderCloudInit(c, n)
				assert.Nil(t, ci)
				assert.EqualError(t, cerr, err.Error())
			}
			for _, r := range []func() ([]byte, error){
				func() ([]byte, error) { return RenderEtcdConfig(c, "etcd-2", CloudPaths()) },
				func() ([]byte, error) { return RenderPatroniConfig(c, "pg-2", CloudPaths()) },
				func() ([]byte, error) { return RenderPostBootstrap(c, CloudPaths()) },
				func() ([]byte, error) { return RenderHAProxyConfig(c, "haproxy-2", CloudPaths()) },
				func() ([]byte, error) { return RenderSecretsEnv(c, testPasswords()) },
			} {
				b, rerr := r()
				assert.Nil(t, b)
				assert.EqualError(t, rerr, err.Error())
			}
		})
	}
}

func TestRenderRejectsWrongNode(t *testing.T) {
	c := defaultCluster(t)
	p := CloudPaths()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"unknown node", second(NodeFiles(c, "pg-9", p)),
			`node "pg-9" is not in the plan: use one of [etcd-1 etcd-2 etcd-3 pg-1 pg-2 pg-3 haproxy-1 haproxy-2]`},
		{"unknown node, cloud-init", second(RenderCloudInit(c, "db-1")),
			`node "db-1" is not in the plan: use one of [etcd-1 etcd-2 etcd-3 pg-1 pg-2 pg-3 haproxy-1 haproxy-2]`},
		{"etcd config for a patroni node", second(RenderEtcdConfig(c, "pg-1", p)),
			`node "pg-1" has role patroni, but this file is for role [etcd]: pick a [etcd] node`},
		{"patroni config for an haproxy node", second(RenderPatroniConfig(c, "haproxy-1", p)),
			`node "haproxy-1" has role haproxy, but this file is for role [patroni]: pick a [patroni] node`},
		{"haproxy config for an etcd node", second(RenderHAProxyConfig(c, "etcd-1", p)),
			`node "etcd-1" has role etcd, but this file is for role [haproxy]: pick a [haproxy] node`},
	}
	for _, tc := range cases {
		assert.EqualError(t, tc.err, tc.want, tc.name)
	}
}

func second[T any](_ T, err error) error { return err }

func TestRenderRejectsBadPaths(t *testing.T) {
	c := defaultCluster(t)
	p := CloudPaths()
	p.PGDataDir = ""
	p.PGPassFile = "pgpass"
	p.PGLogDir = "/var/log/post gres"
	p.TLSKeyFile = "/etc/ssl/../key"
	b, err := RenderPatroniConfig(c, "pg-1", p)
	assert.Nil(t, b)
	assert.EqualError(t, err, strings.Join([]string{
		`Paths.PGDataDir is empty: set an absolute path (CloudPaths() has one)`,
		`Paths.PGPassFile "pgpass" is relative: use an absolute path`,
		`Paths.PGLogDir "/var/log/post gres" has characters that would need quoting: use letters, digits and _.-/@+ only`,
		`Paths.TLSKeyFile "/etc/ssl/../key" is not clean: use "/etc/key"`,
	}, "\n"))

	p = CloudPaths()
	p.EtcdConfigFile = ""
	_, err = NodeFiles(c, "etcd-1", p)
	assert.EqualError(t, err, `Paths.EtcdConfigFile is empty: set an absolute path (CloudPaths() has one)`)
	p = CloudPaths()
	p.HAProxyConfigFile = "haproxy.cfg"
	_, err = NodeFiles(c, "haproxy-1", p)
	assert.EqualError(t, err, `Paths.HAProxyConfigFile "haproxy.cfg" is relative: use an absolute path`)
}

func TestSecretsEnvRejectsBadPasswords(t *testing.T) {
	c := defaultCluster(t)
	pw := testPasswords()
	pw["rewind"] = ""
	pw["stats"] = `has "quotes" and $vars`
	pw["app"] = "new\nline"
	b, err := RenderSecretsEnv(c, pw)
	assert.Nil(t, b)
	require.Error(t, err)
	assert.Equal(t, []string{
		`Passwords["rewind"] is empty: set a password`,
		`Passwords["app"] has characters outside [A-Za-z0-9._~+=@%,:/^-]: generate it from that set`,
		`Passwords["stats"] has characters outside [A-Za-z0-9._~+=@%,:/^-]: generate it from that set`,
	}, strings.Split(err.Error(), "\n"))
	// The error never repeats a secret.
	assert.NotContains(t, err.Error(), "quotes")
	assert.NotContains(t, err.Error(), "line")
}
