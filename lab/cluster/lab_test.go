package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/userdata"
)

// The IP plan maps one to one onto namespaces: every node of the plan gets
// a namespace named after the lab and the node, holding the node's planned
// address; the client's address is in the VPC and taken by no node.
func TestHostsFollowThePlan(t *testing.T) {
	l, err := New("pghaunit")
	require.NoError(t, err)
	require.NoError(t, l.SetNet(NetNetns))
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)

	want := map[string]string{
		"etcd-1": "10.42.4.10", "etcd-2": "10.42.5.10", "etcd-3": "10.42.6.10",
		"pg-1": "10.42.4.20", "pg-2": "10.42.5.20", "pg-3": "10.42.6.20",
		"haproxy-1": "10.42.0.30", "haproxy-2": "10.42.1.30",
		"monitor-1": "10.42.4.40", // the monitoring node (Plan.Monitor)
		ClientHost:  ClientIP.String(),
	}
	got := map[string]string{}
	seenIP := map[string]string{}
	for _, h := range l.Net.Hosts {
		got[h.Name] = h.IP.String()
		assert.Empty(t, seenIP[h.IP.String()], "%s and %s share %s", h.Name, seenIP[h.IP.String()], h.IP)
		seenIP[h.IP.String()] = h.Name
		assert.True(t, plan.VPC.Contains(h.IP), "%s (%s) is outside the VPC", h.Name, h.IP)
		if n, ok := plan.Node(h.Name); ok {
			assert.Equal(t, n.IP, h.IP, h.Name)
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, plan.VPC, l.Net.Prefix, "the lab segment is the whole VPC")

	assert.Equal(t, "pghaunit-pg-1", l.Namespace("pg-1"))
	assert.Equal(t, "pghaunit-client", l.ClientNamespace())
	ns := l.Net.Namespaces()
	assert.Len(t, ns, len(plan.Nodes)+3, "the nodes, the monitoring node, the client, the bridge")
	assert.Contains(t, ns, netlab.BridgeNamespace("pghaunit"))
	for _, n := range ns {
		assert.True(t, strings.HasPrefix(n, "pghaunit-"), n)
	}
	assert.Equal(t, filepath.Join(l.Root, "pghaunit"), l.Dir)
	if os.Geteuid() == 0 {
		assert.Equal(t, filepath.Join(StateRoot, "pghaunit"), l.Dir)
	}
}

// Without root a lab lives under the user's state directory.
func TestUserStateRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		r, err := UserStateRoot()
		require.NoError(t, err)
		assert.Equal(t, StateRoot, r)
		return
	}
	t.Setenv("XDG_STATE_HOME", "/somewhere/state")
	r, err := UserStateRoot()
	require.NoError(t, err)
	assert.Equal(t, "/somewhere/state/pgha-lab", r)
}

func TestNetModes(t *testing.T) {
	require.NoError(t, CheckNet(NetNetns))
	require.NoError(t, CheckNet(NetLoopback))
	err := CheckNet("bridge")
	require.ErrorContains(t, err, "--net netns")
	mode, why := DefaultNet()
	assert.NoError(t, CheckNet(mode))
	assert.NotEmpty(t, why)
	assert.NotContains(t, why, "\n", "one line")
}

func TestLabNames(t *testing.T) {
	for _, ok := range []string{"pgha", "pghatest123", "a"} {
		assert.NoError(t, CheckName(ok), ok)
	}
	for _, bad := range []string{"", "PGHA", "pg-ha", "../etc", "1pgha", "pgha/x", "averyveryverylonglabname"} {
		err := CheckName(bad)
		if assert.Error(t, err, bad) {
			assert.Contains(t, err.Error(), "--name", "the error says what to change")
		}
	}
}

// pathPairs lists (lab, cloud) for every field of Paths.
func pathPairs(lab, cloud userdata.Paths) [][2]string {
	lv, cv := reflect.ValueOf(lab), reflect.ValueOf(cloud)
	var out [][2]string
	for i := 0; i < lv.NumField(); i++ {
		out = append(out, [2]string{lv.Field(i).String(), cv.Field(i).String()})
	}
	// Longest first, so a path that is a prefix of another is mapped last.
	sort.Slice(out, func(i, j int) bool { return len(out[i][0]) > len(out[j][0]) })
	return out
}

// Every lab path is set, sits in the node's own directory and belongs to
// that node alone; nodes sharing one filesystem must not share a socket,
// pgpass or data directory.
func TestNodePaths(t *testing.T) {
	dir := filepath.Join(StateRoot, "pghaunit")
	owner := map[string]string{}
	for _, node := range []string{"etcd-1", "pg-1", "pg-2", "haproxy-1"} {
		p := NodePaths(dir, node)
		v := reflect.ValueOf(p)
		for i := 0; i < v.NumField(); i++ {
			f, s := v.Type().Field(i).Name, v.Field(i).String()
			require.NotEmpty(t, s, "%s.%s", node, f)
			assert.True(t, strings.HasPrefix(s, filepath.Join(dir, "nodes", node)+"/"), "%s.%s = %s", node, f, s)
			assert.Empty(t, owner[s], "%s.%s = %s is also %s", node, f, s, owner[s])
			owner[s] = node + "." + f
		}
	}
	// Every field has a cloud counterpart, so the mapping is total.
	for _, pr := range pathPairs(NodePaths(dir, "pg-1"), userdata.CloudPaths()) {
		assert.NotEmpty(t, pr[1], "cloud path for %s", pr[0])
	}
}

// What the lab runs is what the cloud-init documents carry, except for the
// filesystem paths: render every node's files with the lab's paths and with
// the cloud's, map the lab path strings to the cloud ones, and the bytes
// must be identical. Then check the cloud-init document embeds exactly the
// cloud render of each file, with the same owner and mode.
func TestLabFilesDifferFromCloudOnlyInPaths(t *testing.T) {
	l, err := New("pghaunit")
	require.NoError(t, err)
	require.NoError(t, l.SetNet(NetNetns))
	spec := l.Spec()
	// What root runs; the unprivileged variant is tested with loopback.
	spec.Unprivileged = false
	require.NoError(t, spec.Validate())
	filesDifferOnlyIn(t, l, spec, spec, func(b []byte, _ string) []byte { return b })
}

// A loopback lab's files come from the plan moved into 127.0.0.0/16, so
// they differ from the cloud's in paths and addresses; HAProxy binds its
// node's address instead of "*" (its nodes share one network stack), and
// without root it has no user/group lines. Map all that onto the cloud
// render, and nothing else may differ.
func TestLoopbackLabFilesDifferFromCloudOnlyInPathsAndAddresses(t *testing.T) {
	for _, unprivileged := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprivileged=%v", unprivileged), func(t *testing.T) {
			l, err := New("pghaunit")
			require.NoError(t, err)
			require.NoError(t, l.SetNet(NetLoopback))
			labSpec := l.Spec()
			labSpec.Unprivileged = unprivileged
			require.True(t, labSpec.BindNodeAddress)
			cloudPlan, err := topology.New(topology.DefaultVPCCIDR)
			require.NoError(t, err)
			cloudSpec := labSpec
			cloudSpec.Plan, cloudSpec.Unprivileged, cloudSpec.BindNodeAddress = cloudPlan, false, false
			require.NoError(t, cloudSpec.Validate())

			// Cloud → loopback: 10.42.a.b becomes 127.0.a.b (the VPC
			// CIDR included); nothing else in a cloud file is an address
			// of the plan, so this cannot hide a real difference.
			vpcAddr := regexp.MustCompile(`\b10\.42\.(\d+)\.(\d+)\b`)
			peerLine := regexp.MustCompile(`(?m)^    # The OS user postgres .*\n(    # .*\n)*    - local all postgres peer\n`)
			toLoopback := func(b []byte, node string) []byte {
				b = vpcAddr.ReplaceAll(b, []byte("127.0.$1.$2"))
				if n, ok := l.Plan.Node(node); ok && n.Role == topology.RoleHAProxy {
					b = bytes.ReplaceAll(b, []byte("    bind *:"), []byte("    bind "+n.IP.String()+":"))
					if unprivileged {
						b = bytes.Replace(b, []byte("    user haproxy\n    group haproxy\n"), nil, 1)
					}
				}
				if unprivileged {
					// The daemons run as the invoking user, not postgres:
					// no peer line for the superuser.
					b = peerLine.ReplaceAll(b, nil)
				}
				return b
			}
			filesDifferOnlyIn(t, l, labSpec, cloudSpec, toLoopback)
		})
	}
	// The addresses really are the loopback ones, each inside 127/8 and
	// the plan's 127.0.0.0/16, and 127.0.0.1 (the source of every
	// connection between them) is inside the VPC that pg_hba admits.
	l, err := New("pghaunit")
	require.NoError(t, err)
	require.NoError(t, l.SetNet(NetLoopback))
	for _, n := range l.Plan.Nodes {
		assert.True(t, netip.MustParsePrefix("127.0.0.0/8").Contains(n.IP), "%s %s", n.Name, n.IP)
	}
	assert.True(t, l.Plan.VPC.Contains(netip.MustParseAddr("127.0.0.1")))
	assert.Equal(t, "127.0.4.20", mustNode(t, l, "pg-1").IP.String())
	assert.Equal(t, "127.0.1.30", mustNode(t, l, "haproxy-2").IP.String())
}

func mustNode(t *testing.T, l *Lab, name string) topology.Node {
	n, ok := l.Plan.Node(name)
	require.True(t, ok, name)
	return n
}

// filesDifferOnlyIn renders every node's files for the lab (labSpec, lab
// paths) and for the cloud (cloudSpec, cloud paths), maps the lab paths to
// the cloud ones and the cloud render through adapt, and requires the
// bytes to be identical. Then it checks the cloud-init document embeds
// exactly the cloud render of each file, with the same owner and mode.
func filesDifferOnlyIn(t *testing.T, l *Lab, labSpec, cloudSpec userdata.Cluster, adapt func(b []byte, node string) []byte) {
	cloud := userdata.CloudPaths()
	// On AWS the nodes fetch their certificates from SSM; the namespace
	// lab installs them itself. Neither changes a rendered node file.
	cloudSpec.TLS = userdata.TLSParams{Prefix: "/pgha/" + l.Name + "/tls/"}
	for _, n := range l.Plan.Nodes {
		t.Run(n.Name, func(t *testing.T) {
			labPaths := l.Paths(n.Name)
			labFiles, err := userdata.NodeFiles(labSpec, n.Name, labPaths)
			require.NoError(t, err)
			cloudFiles, err := userdata.NodeFiles(cloudSpec, n.Name, cloud)
			require.NoError(t, err)
			require.Equal(t, len(cloudFiles), len(labFiles))
			require.NotEmpty(t, labFiles)

			mapPaths := func(b []byte) []byte {
				for _, pr := range pathPairs(labPaths, cloud) {
					b = bytes.ReplaceAll(b, []byte(pr[0]), []byte(pr[1]))
				}
				return b
			}
			differed := false
			for i, lf := range labFiles {
				cf := cloudFiles[i]
				assert.Equal(t, cf.Path, string(mapPaths([]byte(lf.Path))), "file %d's path", i)
				assert.Equal(t, cf.Owner, lf.Owner, cf.Path)
				assert.Equal(t, cf.Mode, lf.Mode, cf.Path)
				assert.Equal(t, string(adapt(cf.Content, n.Name)), string(mapPaths(lf.Content)), "%s differs beyond paths", cf.Path)
				assert.NotContains(t, string(mapPaths(lf.Content)), l.Dir, "%s still names the lab directory after mapping", cf.Path)
				if lf.Path != cf.Path || !bytes.Equal(lf.Content, cf.Content) {
					differed = true
				}
			}
			// Guard against a vacuous pass: lab and cloud paths really differ.
			assert.True(t, differed, "lab and cloud files of %s are equal before mapping; the comparison proved nothing", n.Name)

			doc, err := userdata.RenderCloudInit(cloudSpec, n.Name)
			require.NoError(t, err)
			require.True(t, bytes.HasPrefix(doc, []byte("#cloud-config\n")))
			var cc struct {
				WriteFiles []struct {
					Path        string `yaml:"path"`
					Content     string `yaml:"content"`
					Owner       string `yaml:"owner"`
					Permissions string `yaml:"permissions"`
				} `yaml:"write_files"`
			}
			require.NoError(t, yaml.Unmarshal(doc, &cc))
			embedded := map[string]string{}
			for _, w := range cc.WriteFiles {
				embedded[w.Path] = w.Content
			}
			for _, cf := range cloudFiles {
				got, ok := embedded[cf.Path]
				if assert.True(t, ok, "cloud-init of %s does not carry %s", n.Name, cf.Path) {
					assert.Equal(t, string(userdata.AsCarried(cf.Content)), got, "cloud-init's %s is not the rendered file", cf.Path)
				}
			}
		})
	}
}

// Each node's secrets file holds only what its daemon reads.
func TestSecretsForRole(t *testing.T) {
	l, err := New("pghaunit")
	require.NoError(t, err)
	pw := userdata.Passwords{"superuser": "su1", "replication": "re2", "rewind": "rw3", "app": "ap4", "restapi": "ra5", "stats": "st6", "monitor": "mo7",
		"pooler": "po8", "pooler-admin": "pa9"}
	env, err := userdata.RenderSecretsEnv(l.Spec(), pw)
	require.NoError(t, err)

	etcd := string(forRole(env, topology.RoleEtcd))
	for _, v := range []string{"su1", "re2", "rw3", "ap4", "ra5", "st6", "mo7", "po8", "pa9"} {
		assert.NotContains(t, etcd, v)
	}
	ha := string(forRole(env, topology.RoleHAProxy))
	assert.Contains(t, ha, userdata.EnvStatsPassword+"=st6\n")
	// PgBouncer's auth user and console user (its auth_file is made from
	// the same passwords).
	assert.Contains(t, ha, userdata.EnvPoolerPassword+"=po8\n")
	assert.Contains(t, ha, userdata.EnvPoolerAdminPassword+"=pa9\n")
	for _, v := range []string{"su1", "re2", "rw3", "ap4", "ra5", "mo7"} {
		assert.NotContains(t, ha, v)
	}
	pg := string(forRole(env, topology.RolePatroni))
	for _, kv := range []string{userdata.EnvSuperuserPassword + "=su1", userdata.EnvReplicationPassword + "=re2",
		userdata.EnvRewindPassword + "=rw3", userdata.EnvAppPassword + "=ap4", userdata.EnvRestAPIPassword + "=ra5",
		userdata.EnvMonitorPassword + "=mo7", userdata.EnvPoolerPassword + "=po8"} {
		assert.Contains(t, pg, kv+"\n")
	}
	assert.NotContains(t, pg, "st6")
	assert.NotContains(t, pg, "pa9", "the console's password stays on the HAProxy nodes")
}

// probeOf is the lab's probe, for tests.
func probeOf(t *testing.T, l *Lab) *probe.Probe {
	t.Helper()
	p, err := l.Probe()
	require.NoError(t, err)
	return p
}

// appConn opens a session as the application user at host:port.
func appConn(ctx context.Context, t *testing.T, l *Lab, host string, port int) (*pgx.Conn, error) {
	return probeOf(t, l).App(host, port).Connect(ctx)
}

// TestCopyLogs: `lab down --keep-logs` keeps every node's logs.
func TestCopyLogs(t *testing.T) {
	l, err := New("copylogs")
	require.NoError(t, err)
	l.Dir = t.TempDir()
	for _, node := range []string{"pg-1", "etcd-2"} {
		p := l.DaemonLog(node)
		require.NoError(t, os.MkdirAll(filepath.Join(filepath.Dir(p), "postgresql"), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(node+" log\n"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(l.DaemonLog("pg-1")), "postgresql", "pg.log"), []byte("pg\n"), 0o644))
	dst := filepath.Join(t.TempDir(), "kept")
	require.NoError(t, l.CopyLogs(dst))
	b, err := os.ReadFile(filepath.Join(dst, "pg-1", filepath.Base(l.DaemonLog("pg-1"))))
	require.NoError(t, err)
	assert.Equal(t, "pg-1 log\n", string(b))
	b, err = os.ReadFile(filepath.Join(dst, "pg-1", "postgresql", "pg.log"))
	require.NoError(t, err)
	assert.Equal(t, "pg\n", string(b))
	_, err = os.Stat(filepath.Join(dst, "etcd-2"))
	assert.NoError(t, err)
	_, err = os.Stat(filepath.Join(dst, "pg-2"))
	assert.True(t, os.IsNotExist(err), "a node without logs is skipped")
}

// Only the namespace lab widens the monitor's pg_hba rules, by exactly its
// client and the PostgreSQL nodes (validate's vantage points there); the
// loopback lab admits its one source address instead; nobody else is
// admitted from anywhere new.
func TestSpecMonitorFromAndSharedStack(t *testing.T) {
	l, err := New("pghaunit")
	require.NoError(t, err)
	require.NoError(t, l.SetNet(NetNetns))
	assert.Equal(t, []string{"10.42.0.200/32"}, prefixStrings(l.Spec().MonitorFrom))
	assert.Empty(t, l.Spec().SharedStack)
	require.NoError(t, l.SetNet(NetLoopback))
	assert.Empty(t, l.Spec().MonitorFrom)
	assert.Equal(t, []string{"127.0.0.1/32"}, prefixStrings(l.Spec().SharedStack))
}

func prefixStrings[T fmt.Stringer](ps []T) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
