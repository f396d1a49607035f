package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/mountinfo"
)

// LabPackages is what the nodes' user data installs today (the union of
// the roles' package lists); the integration tests build the image with it
// so that they share the lab's cache entry.
var LabPackages = []string{
	"postgresql-15", "patroni", "python3-etcd", "ssl-cert", "awscli", "curl",
	"etcd-server", "etcd-client", "haproxy",
}

// needRoot skips unless the test can build an image.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if err := checkTools(); err != nil {
		t.Skip(err)
	}
}

// TestBuildCached builds the lab's image (minutes, once) or finds it in the
// cache, and checks what the AMI stand-in must carry. With
// PGHA_IMAGE_COLD=1 it builds into an empty cache, to time a cold build.
func TestBuildCached(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cache := ""
	if os.Getenv("PGHA_IMAGE_COLD") != "" {
		cache = t.TempDir()
	}
	t0 := time.Now()
	im, err := Build(ctx, Options{Packages: LabPackages, CacheDir: cache, Progress: testWriter{t}, Verbose: testing.Verbose()})
	require.NoError(t, err)
	t.Logf("TIMING first Build: %s (cached=%v)", time.Since(t0), im.Cached)

	t1 := time.Now()
	again, err := Build(ctx, Options{Packages: LabPackages, CacheDir: cache})
	require.NoError(t, err)
	require.True(t, again.Cached)
	require.Equal(t, im.Dir, again.Dir)
	t.Logf("TIMING cached Build: %s", time.Since(t1))

	for _, p := range []string{
		"usr/bin/cloud-init", "lib/systemd/systemd", "usr/sbin/sshd", "usr/bin/sudo", "usr/bin/curl",
		"etc/ssl/certs/ca-certificates.crt", "etc/cloud/cloud.cfg.d/95_pgha_lab.cfg",
		"etc/apt/sources.list.d/debian.sources", "usr/sbin/update-ca-certificates",
	} {
		require.FileExists(t, filepath.Join(im.RootFS, p))
	}
	for _, p := range []string{"etc/apt/sources.list", "etc/apt/sources.list.d/pgha-build.sources", "var/lib/cloud/instance"} {
		require.NoFileExists(t, filepath.Join(im.RootFS, p))
	}
	keys, _ := filepath.Glob(filepath.Join(im.RootFS, "etc/ssh/ssh_host_*"))
	require.Empty(t, keys, "SSH host keys belong to each instance")
	mid, err := os.ReadFile(filepath.Join(im.RootFS, "etc/machine-id"))
	require.NoError(t, err)
	require.Empty(t, mid)

	// The repository holds the packages, not the ones the image has.
	for _, p := range []string{"postgresql-15_", "patroni_", "haproxy_", "etcd-server_", "awscli_"} {
		m, _ := filepath.Glob(filepath.Join(im.Repo, "pool", Component, p+"*.deb"))
		require.NotEmpty(t, m, p)
	}
	m, _ := filepath.Glob(filepath.Join(im.Repo, "pool", Component, "cloud-init_*.deb"))
	require.Empty(t, m, "the image's own packages stay out of the repository")
	require.FileExists(t, filepath.Join(im.Repo, "dists", DefaultSuite, "Release"))

	// The mirror this host uses is nowhere in the image's apt config.
	srcs, err := HostSources("/")
	require.NoError(t, err)
	mirror, _, err := Mirror(srcs, DefaultSuite)
	require.NoError(t, err)
	out, _ := exec.Command("grep", "-rl", mirror, filepath.Join(im.RootFS, "etc/apt"), filepath.Join(im.RootFS, "etc/cloud/cloud.cfg.d")).Output()
	require.Empty(t, strings.TrimSpace(string(out)))
}

// TestBuildFailureLeavesNothing points the build at a mirror that does not
// answer: debootstrap fails within seconds, and the error must say what
// failed and what to do, and the cache must hold no image.
func TestBuildFailureLeavesNothing(t *testing.T) {
	needRoot(t)
	host := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(host, "etc/apt"), 0o755))
	// Port 9 (discard) on loopback: nothing listens there.
	require.NoError(t, os.WriteFile(filepath.Join(host, "etc/apt/sources.list"),
		[]byte("deb http://127.0.0.1:9/debian bookworm main\n"), 0o644))
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := Build(ctx, Options{Packages: []string{"curl"}, CacheDir: cache, HostRoot: host})
	require.Error(t, err)
	msg := err.Error()
	t.Log(msg)
	require.Contains(t, msg, "debootstrap of Debian bookworm from http://127.0.0.1:9/debian failed (exit status 1)")
	require.Contains(t, msg, "E: Failed getting release file")
	require.Contains(t, msg, "Check that this machine reaches the mirror")
	require.Contains(t, msg, "Nothing was cached")

	ents, err := os.ReadDir(filepath.Join(cache, "images"))
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	r := NewRecipe(DefaultSuite, mustArch(t), []string{"curl"})
	require.ElementsMatch(t, []string{".build.lock", "failed-" + r.Hash() + ".log"}, names)
	mps, err := mountinfo.Under(mountinfo.Self, cache)
	require.NoError(t, err)
	require.Empty(t, mps)
}

func mustArch(t *testing.T) string {
	a, err := hostArch()
	require.NoError(t, err)
	return a
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
