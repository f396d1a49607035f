package userdata

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/topology"
)

// TestEtcdMemberRejoins acts out the replacement of an etcd node with the
// real etcd 3.4 and the rendered join script, in a namespace of its own:
// the script leaves a first bootstrap alone, a member restarted empty with
// the rendered config exits ("already bootstrapped": the defect the
// script exists for), and after the script the empty member joins the
// running cluster as a new member, with data written before it visible.
func TestEtcdMemberRejoins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	for _, tool := range []string{"ip", "etcd", "etcdctl", "bash"} {
		lookTool(t, tool)
	}
	c := defaultCluster(t)
	base := rootDir(t)
	ns := netns(t, c)
	tt := newTestTLS(t, base)
	etcds := c.Plan.ByRole(topology.RoleEtcd)
	var endpoints []string
	for _, n := range etcds {
		endpoints = append(endpoints, fmt.Sprintf("https://%s:2379", n.IP))
	}
	ctl := func(args ...string) (string, error) {
		return run(ns, nil, "etcdctl", append(append(tt.etcdctlTLS(), "--endpoints="+strings.Join(endpoints, ","), "--command-timeout=5s"), args...)...)
	}
	installNode := func(n topology.Node) (join string, p Paths) {
		p = labPaths(base, n.Name)
		require.NoError(t, os.RemoveAll(p.EtcdDataDir))
		files, err := NodeFiles(c, n.Name, p)
		require.NoError(t, err)
		install(t, files, "")
		tt.install(t, c, n.Name, p, "")
		script, err := RenderEtcdJoin(c, n.Name, p)
		require.NoError(t, err)
		join = filepath.Join(base, n.Name, "pgha-etcd-join")
		require.NoError(t, os.WriteFile(join, script, 0o755))
		return join, p
	}
	state := func(p Paths) string {
		b, err := os.ReadFile(p.EtcdConfigFile)
		require.NoError(t, err)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "initial-cluster-state: "); ok {
				return v
			}
		}
		return ""
	}

	// First bootstrap, the three booting together: nobody answers, every
	// member starts "new".
	daemons := map[string]*daemon{}
	paths := map[string]Paths{}
	for _, n := range etcds {
		join, p := installNode(n)
		paths[n.Name] = p
		start0 := time.Now()
		out, err := run(ns, nil, "bash", join)
		require.NoError(t, err, out)
		assert.Contains(t, out, "the cluster is being created", n.Name)
		assert.Less(t, time.Since(start0), 30*time.Second, "the first bootstrap must not wait long on absent peers")
		require.Equal(t, "new", state(p), n.Name)
	}
	for _, n := range etcds {
		daemons[n.Name] = start(t, base, n.Name, ns, nil, "etcd", "--config-file", paths[n.Name].EtcdConfigFile)
	}
	eventually(t, 60*time.Second, "etcd health", func() error { _, err := ctl("endpoint", "health"); return err })
	out, err := ctl("put", "/before-replacement", "kept")
	require.NoError(t, err, out)

	// etcd-2's instance is replaced: its process and data are gone.
	victim := etcds[1]
	stop(t, daemons[victim.Name].pid, daemons[victim.Name].done)
	join, p := installNode(victim)

	// Restarted empty with the rendered config, etcd refuses to start.
	out, err = run(ns, nil, "timeout", "20", "etcd", "--config-file", p.EtcdConfigFile)
	require.Error(t, err, "an empty member with initial-cluster-state new must not start")
	assert.Contains(t, out, "already been bootstrapped")
	require.NoError(t, os.RemoveAll(p.EtcdDataDir))

	// The join script removes the old entry and adds the node again.
	before, err := ctl("member", "list", "-w", "simple")
	require.NoError(t, err, before)
	out, err = run(ns, nil, "bash", join)
	require.NoError(t, err, out)
	assert.Contains(t, out, "removing it")
	assert.Contains(t, out, "adding itself to the existing cluster")
	require.Equal(t, "existing", state(p))
	start(t, base, victim.Name+"-replaced", ns, nil, "etcd", "--config-file", p.EtcdConfigFile)
	eventually(t, 60*time.Second, "3 healthy members after the replacement", func() error {
		out, err := ctl("endpoint", "health")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		list, err := ctl("member", "list", "-w", "simple")
		if err != nil || strings.Count(list, ", started, ") != 3 {
			return fmt.Errorf("members: %v %s", err, list)
		}
		return nil
	})
	after, err := ctl("member", "list", "-w", "simple")
	require.NoError(t, err)
	assert.Contains(t, after, fmt.Sprintf(", started, %s, https://%s:2380,", victim.Name, victim.IP))
	oldID := before[:strings.Index(before, ",")]
	for _, l := range strings.Split(before, "\n") {
		if strings.Contains(l, ", "+victim.Name+", ") {
			oldID = l[:strings.Index(l, ",")]
		}
	}
	assert.NotContains(t, after, oldID+",", "the old member entry is gone")
	got, err := run(ns, nil, "etcdctl", append(tt.etcdctlTLS(), "--endpoints="+fmt.Sprintf("https://%s:2379", victim.IP), "get", "--print-value-only", "/before-replacement")...)
	require.NoError(t, err, got)
	assert.Equal(t, "kept\n", got, "the new member holds the cluster's data")

	// Started again with its data, the script changes nothing.
	out, err = run(ns, nil, "bash", join)
	require.NoError(t, err, out)
	assert.Contains(t, out, "starts from its data")

	// An entry that never started (an earlier attempt added it, then its
	// instance died) is joined as it is, without another change.
	last := etcds[2]
	stop(t, daemons[last.Name].pid, daemons[last.Name].done)
	list, err := ctl("member", "list", "-w", "simple")
	require.NoError(t, err, list)
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, ", "+last.Name+", ") {
			eventually(t, 60*time.Second, "removing "+last.Name, func() error {
				out, err := ctl("member", "remove", l[:strings.Index(l, ",")])
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		}
	}
	eventually(t, 60*time.Second, "adding "+last.Name+" by hand", func() error {
		out, err := ctl("member", "add", last.Name, "--peer-urls", fmt.Sprintf("https://%s:2380", last.IP))
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	join, p = installNode(last)
	out, err = run(ns, nil, "bash", join)
	require.NoError(t, err, out)
	assert.Contains(t, out, "never started: joining the existing cluster as it")
	assert.NotContains(t, out, "adding itself")
	require.Equal(t, "existing", state(p))
	start(t, base, last.Name+"-late", ns, nil, "etcd", "--config-file", p.EtcdConfigFile)
	eventually(t, 60*time.Second, "3 started members after the late join", func() error {
		list, err := ctl("member", "list", "-w", "simple")
		if err != nil || strings.Count(list, ", started, ") != 3 {
			return fmt.Errorf("members: %v %s", err, list)
		}
		_, err = ctl("endpoint", "health")
		return err
	})
}
