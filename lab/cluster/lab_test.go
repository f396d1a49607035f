package cluster

import (
	"bytes"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/topology"
	"github.com/pgha/pgha/userdata"
)

// The IP plan maps one to one onto namespaces: every node of the plan gets
// a namespace named after the lab and the node, holding the node's planned
// address; the client's address is in the VPC and taken by no node.
func TestHostsFollowThePlan(t *testing.T) {
	l, err := New("pghaunit")
	require.NoError(t, err)
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)

	want := map[string]string{
		"etcd-1": "10.42.4.10", "etcd-2": "10.42.5.10", "etcd-3": "10.42.6.10",
		"pg-1": "10.42.4.20", "pg-2": "10.42.5.20", "pg-3": "10.42.6.20",
		"haproxy-1": "10.42.0.30", "haproxy-2": "10.42.1.30",
		ClientHost: ClientIP.String(),
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
	assert.Len(t, ns, len(plan.Nodes)+2)
	assert.Contains(t, ns, netlab.BridgeNamespace("pghaunit"))
	for _, n := range ns {
		assert.True(t, strings.HasPrefix(n, "pghaunit-"), n)
	}
	assert.Equal(t, filepath.Join(StateRoot, "pghaunit"), l.Dir)
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
	spec := l.Spec()
	require.NoError(t, spec.Validate())
	cloud := userdata.CloudPaths()
	for _, n := range l.Plan.Nodes {
		t.Run(n.Name, func(t *testing.T) {
			labPaths := l.Paths(n.Name)
			labFiles, err := userdata.NodeFiles(spec, n.Name, labPaths)
			require.NoError(t, err)
			cloudFiles, err := userdata.NodeFiles(spec, n.Name, cloud)
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
				assert.Equal(t, string(cf.Content), string(mapPaths(lf.Content)), "%s differs beyond paths", cf.Path)
				assert.NotContains(t, string(mapPaths(lf.Content)), l.Dir, "%s still names the lab directory after mapping", cf.Path)
				if lf.Path != cf.Path || !bytes.Equal(lf.Content, cf.Content) {
					differed = true
				}
			}
			// Guard against a vacuous pass: lab and cloud paths really differ.
			assert.True(t, differed, "lab and cloud files of %s are equal before mapping; the comparison proved nothing", n.Name)

			doc, err := userdata.RenderCloudInit(spec, n.Name)
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
					assert.Equal(t, string(cf.Content), got, "cloud-init's %s is not the rendered file", cf.Path)
				}
			}
		})
	}
}

// Each node's secrets file holds only what its daemon reads.
func TestSecretsForRole(t *testing.T) {
	l, err := New("pghaunit")
	require.NoError(t, err)
	pw := userdata.Passwords{Superuser: "su1", Replication: "re2", Rewind: "rw3", App: "ap4", RestAPI: "ra5", Stats: "st6"}
	env, err := userdata.RenderSecretsEnv(l.Spec(), pw)
	require.NoError(t, err)

	etcd := string(forRole(env, topology.RoleEtcd))
	for _, v := range []string{"su1", "re2", "rw3", "ap4", "ra5", "st6"} {
		assert.NotContains(t, etcd, v)
	}
	ha := string(forRole(env, topology.RoleHAProxy))
	assert.Contains(t, ha, userdata.EnvStatsPassword+"=st6\n")
	for _, v := range []string{"su1", "re2", "rw3", "ap4", "ra5"} {
		assert.NotContains(t, ha, v)
	}
	pg := string(forRole(env, topology.RolePatroni))
	for _, kv := range []string{userdata.EnvSuperuserPassword + "=su1", userdata.EnvReplicationPassword + "=re2",
		userdata.EnvRewindPassword + "=rw3", userdata.EnvAppPassword + "=ap4", userdata.EnvRestAPIPassword + "=ra5"} {
		assert.Contains(t, pg, kv+"\n")
	}
	assert.NotContains(t, pg, "st6")
}
