package userdata

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/topology"
)

// TestPostgresHostSettings reads the kernel settings a PostgreSQL node
// applies against the kernel itself: every sysctl key and every tmpfiles
// path must exist here (Debian 12's kernel, as on EC2), so a misspelt key
// cannot go unnoticed until a node boots.
func TestPostgresHostSettings(t *testing.T) {
	for _, sz := range tuningSizes {
		c := defaultCluster(t)
		c.PostgresSize = sz.size
		sysctl := cloudFileContent(t, c, "pg-1", sysctlFile)
		keys := map[string]string{}
		for _, line := range strings.Split(sysctl, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, " = ")
			require.True(t, ok, "%q is not key = value", line)
			keys[k] = v
			_, err := os.Stat(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")))
			assert.NoError(t, err, "sysctl %s does not exist in this kernel", k)
		}
		assert.Equal(t, "1", keys["vm.swappiness"])
		tu, err := c.Tuning()
		require.NoError(t, err)
		if tu.HugePages > 0 {
			assert.Equal(t, strings.TrimSpace(keys["vm.nr_hugepages"]), strconv.Itoa(tu.HugePages), sz.name)
		} else {
			assert.NotContains(t, keys, "vm.nr_hugepages", sz.name)
		}
	}
	thp := cloudFileContent(t, defaultCluster(t), "pg-1", thpFile)
	n := 0
	for _, line := range strings.Split(thp, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		require.Len(t, f, 7, line)
		assert.Equal(t, "w", f[0])
		assert.Equal(t, "never", f[6])
		_, err := os.Stat(f[1])
		assert.NoError(t, err, "%s does not exist in this kernel", f[1])
		n++
	}
	assert.Equal(t, 2, n)
}

// TestHeldPackages: each role holds the packages that run the cluster, and
// only packages its user data installs.
func TestHeldPackages(t *testing.T) {
	c := defaultCluster(t)
	c.Backup = testBackup()
	for _, n := range c.Plan.Nodes {
		boot := cloudFileContent(t, c, n.Name, bootScript)
		held := HeldPackages(n.Role, true)
		require.NotEmpty(t, held)
		assert.Contains(t, boot, "\napt-mark hold "+strings.Join(held, " ")+" >/dev/null\n", n.Name)
		installed := append(slices.Clone(rolePackages[n.Role]), optionalPackages...)
		for _, p := range held {
			if p == "postgresql-client-15" || p == "postgresql-common" {
				continue // installed with postgresql-15
			}
			assert.Contains(t, installed, p, "%s holds %s, which it does not install", n.Name, p)
		}
	}
	assert.Equal(t, []string{"haproxy", "pgbouncer"}, HeldPackages(topology.RoleHAProxy, true))
	assert.NotContains(t, HeldPackages(topology.RolePatroni, false), "pgbackrest")
}

// TestChronyConfig has chronyd itself parse every node's time
// configuration (chronyd -p refuses an unknown directive): the Amazon Time
// Sync Service as the one source, no public pool the nodes cannot reach,
// and no leap-second table against a smeared source.
func TestChronyConfig(t *testing.T) {
	chronyd, err := exec.LookPath("chronyd")
	if err != nil && os.Geteuid() != 0 {
		t.Skip("chronyd is not installed (scripts/install-deps.sh installs it)")
	}
	require.NoError(t, err)
	c := defaultCluster(t)
	dir := t.TempDir()
	for _, n := range c.Plan.Nodes {
		f := filepath.Join(dir, n.Name+".conf")
		require.NoError(t, os.WriteFile(f, []byte(cloudFileContent(t, c, n.Name, ChronyConf)), 0o644))
		out, err := exec.Command(chronyd, "-p", "-f", f).CombinedOutput()
		require.NoError(t, err, "%s: %s", n.Name, out)
		parsed := string(out)
		assert.Contains(t, "\n"+parsed, "\nserver 169.254.169.123 prefer iburst", parsed)
		assert.Equal(t, 1, strings.Count(parsed, "server ")+strings.Count(parsed, "pool "), "one source: %s", parsed)
		assert.NotContains(t, parsed, "leapsectz")
		assert.Contains(t, cloudFileContent(t, c, n.Name, bootScript), "\nsystemctl try-restart chrony.service\n")
	}
}

// TestPatroniFixLoads: with the node's PYTHONPATH, Debian's Patroni 3.0.2
// runs pgha's etcd3 leader-key update; without it, its own. (The scenario
// leader-partition proves what the fix prevents, on the labs.)
func TestPatroniFixLoads(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sitecustomize.py"), PatroniFix, 0o644))
	where := func(env ...string) string {
		cmd := exec.Command("/usr/bin/python3", "-c", "import patroni.dcs.etcd3 as e; print(e.Etcd3._update_leader.__closure__[0].cell_contents.__code__.co_filename)")
		cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	assert.Equal(t, filepath.Join(dir, "sitecustomize.py"), where("PYTHONPATH="+dir))
	assert.Equal(t, "/usr/lib/python3/dist-packages/patroni/dcs/etcd3.py", where())
}
