package machine

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSystemdHierarchies(t *testing.T) {
	const hybridMounts = `25 20 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
29 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	cases := []struct {
		name, mounts, cgroup string
		want                 []cgroupHierarchy
		err                  string
	}{{
		name:   "hybrid host without systemd: both, from the root",
		mounts: hybridMounts,
		cgroup: "9:name=systemd:/\n4:memory:/some/where\n1:cpu:/\n0::/\n",
		want:   []cgroupHierarchy{{"/sys/fs/cgroup/systemd", "/"}, {"/sys/fs/cgroup/unified", "/"}},
	}, {
		name:   "unified host with systemd: inside the caller's scope",
		mounts: "30 20 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
		cgroup: "0::/user.slice/user-0.slice/session-4.scope\n",
		want:   []cgroupHierarchy{{"/sys/fs/cgroup", "/user.slice/user-0.slice/session-4.scope"}},
	}, {
		name:   "legacy host: name=systemd only",
		mounts: "28 25 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n",
		cgroup: "3:name=systemd:/system.slice/ci.service\n2:cpu:/\n",
		want:   []cgroupHierarchy{{"/sys/fs/cgroup/systemd", "/system.slice/ci.service"}},
	}, {
		name:   "a subtree mounted: paths below its root",
		mounts: "30 20 0:27 /lab /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		cgroup: "0::/lab/runner\n",
		want:   []cgroupHierarchy{{"/sys/fs/cgroup", "/runner"}},
	}, {
		name:   "in a hierarchy outside the mounted subtree",
		mounts: "30 20 0:27 /lab /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		cgroup: "0::/laboratory\n",
		err:    "outside its mount",
	}, {
		name:   "controllers only",
		mounts: "26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n",
		cgroup: "1:cpu:/\n",
		err:    "no cgroup hierarchy for systemd",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := systemdHierarchies(strings.NewReader(c.mounts), strings.NewReader(c.cgroup))
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

// The wrapper joins every cgroup with its own PID and then becomes the
// command, keeping that PID: regular files stand in for cgroup.procs.
func TestInCgroupsJoinsThenExecs(t *testing.T) {
	dir := t.TempDir()
	dirs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	for _, d := range dirs {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	argv := inCgroups(dirs, []string{"/bin/sh", "-c", `echo "$$ $1"`, "sh", "an argument"})
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	require.NoError(t, err)
	fields := strings.SplitN(strings.TrimSpace(string(out)), " ", 2)
	require.Len(t, fields, 2)
	assert.Equal(t, "an argument", fields[1])
	pid, err := strconv.Atoi(fields[0])
	require.NoError(t, err)
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(pid), strings.TrimSpace(string(b)), "joined %s with another PID than the command's", d)
	}

	// A cgroup it cannot join stops it before the command runs.
	argv = inCgroups([]string{filepath.Join(dir, "missing")}, []string{"/bin/sh", "-c", "echo ran"})
	out, err = exec.Command(argv[0], argv[1:]...).Output()
	require.Error(t, err)
	assert.NotContains(t, string(out), "ran")
}

func TestRemoveCgroupTreeDeepestFirst(t *testing.T) {
	top := filepath.Join(t.TempDir(), "pgha-pg-1-abcdef")
	require.NoError(t, os.MkdirAll(filepath.Join(top, "payload", "system.slice", "ssh.service"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(top, "supervisor"), 0o755))
	require.NoError(t, removeCgroups([]string{top, filepath.Join(t.TempDir(), "never-made")}))
	assert.NoDirExists(t, top)
}
