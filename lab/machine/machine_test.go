package machine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pgha/pgha/internal/nstest"
)

func TestSpecCheck(t *testing.T) {
	img := fakeImage(t)
	ns := filepath.Join(t.TempDir(), "netns") // any existing file will do here
	require.NoError(t, os.WriteFile(ns, nil, 0o644))
	ok := Spec{Name: "pg-1", Image: img, StateDir: t.TempDir(), Netns: ns}
	require.NoError(t, ok.check())

	for name, s := range map[string]Spec{
		"upper case":    {Name: "PG-1", Image: img, StateDir: ok.StateDir, Netns: ns},
		"underscore":    {Name: "pg_1", Image: img, StateDir: ok.StateDir, Netns: ns},
		"empty":         {Name: "", Image: img, StateDir: ok.StateDir, Netns: ns},
		"comma in path": {Name: "pg-1", Image: img, StateDir: ok.StateDir + "/a,b", Netns: ns},
		"no systemd":    {Name: "pg-1", Image: t.TempDir(), StateDir: ok.StateDir, Netns: ns},
		"no netns":      {Name: "pg-1", Image: img, StateDir: ok.StateDir, Netns: ns + "-gone"},
		"disk no device": {Name: "pg-1", Image: img, StateDir: ok.StateDir, Netns: ns,
			Disks: []Disk{{Device: filepath.Join(t.TempDir(), "file"), Path: "/dev/xvdf"}}},
		"disk outside dev": {Name: "pg-1", Image: img, StateDir: ok.StateDir, Netns: ns,
			Disks: []Disk{{Device: "/dev/null", Path: "/var/lib/postgresql"}}},
	} {
		require.Error(t, s.check(), name)
	}
}

func TestNspawnArgsAreTheVerifiedOnes(t *testing.T) {
	m := &Machine{spec: Spec{Name: "pg-1", StateDir: "/state/pg-1", Netns: "/run/netns/lab-pg-1"}}
	args := strings.Join(m.nspawnArgs(), " ")
	for _, want := range []string{
		"-D /state/pg-1/root", "-M pg-1-", "--hostname=pg-1", "-b", "--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/lab-pg-1", "--resolv-conf=off", "--kill-signal=SIGRTMIN+4",
	} {
		require.Contains(t, args, want)
	}
	require.NotContains(t, args, "--private-network", "fails without machined on this host")

	m.spec.Disks = []Disk{{Device: "/dev/loop3", Path: "/dev/xvdf"}}
	require.Contains(t, m.nspawnArgs(), "--bind=/dev/loop3:/dev/xvdf", "a volume is the machine's disk at every boot")
}

func TestWriteInRootStaysInside(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	// Absolute symlinks as an image may hold them: they point into the
	// machine, not at the host's files of the same name.
	require.NoError(t, os.Symlink(filepath.Join(outside, "resolv.conf"), filepath.Join(root, "etc/resolv.conf")))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "etc/out")))

	require.NoError(t, writeInRoot(root, "/etc/resolv.conf", []byte("x\n"), 0o644))
	fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf"))
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular(), "the link is replaced, its target untouched")
	require.NoFileExists(t, filepath.Join(outside, "resolv.conf"))

	err = writeInRoot(root, "/etc/out/evil", []byte("x"), 0o644)
	require.Error(t, err)
	require.NoFileExists(t, filepath.Join(outside, "evil"))
	require.Error(t, writeInRoot(root, "relative/path", nil, 0o644))

	require.NoError(t, writeInRoot(root, "/a/b/c/file", []byte("deep"), 0o600))
	b, err := os.ReadFile(filepath.Join(root, "a/b/c/file"))
	require.NoError(t, err)
	require.Equal(t, "deep", string(b))
	fi, err = os.Stat(filepath.Join(root, "a/b/c/file"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, appendInRoot(root, "/a/b/c/file", "more\n"))
	b, _ = os.ReadFile(filepath.Join(root, "a/b/c/file"))
	require.Equal(t, "deep\nmore\n", string(b))
}

func TestTrustCAsRejectsNonCertificates(t *testing.T) {
	require.NoError(t, trustCAs(t.TempDir(), nil))
	require.ErrorContains(t, trustCAs(t.TempDir(), [][]byte{[]byte("not pem")}), "no PEM CERTIFICATE")
	bad := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	require.Error(t, trustCAs(t.TempDir(), [][]byte{bad}))
}

func TestNspawnFor(t *testing.T) {
	require.NotEmpty(t, nspawnFor([]string{"/usr/bin/systemd-nspawn", "-D", "/lab/pg-1/root", "-b"}, "/lab"))
	require.NotEmpty(t, nspawnFor([]string{"systemd-nspawn", "--directory=/lab/pg-1/root"}, "/lab"))
	require.Empty(t, nspawnFor([]string{"systemd-nspawn", "-D", "/other/root"}, "/lab"))
	require.Empty(t, nspawnFor([]string{"sleep", "-D", "/lab/x"}, "/lab"))
}

func TestFindLeftoversOfAnUnusedDirectory(t *testing.T) {
	l, err := FindLeftovers(t.TempDir())
	require.NoError(t, err)
	require.True(t, l.Empty(), "%s", l)
	require.Equal(t, "nothing left", l.String())
	require.Equal(t, "mount /x; process 7 (sleep 1; in a container on /x/upper)",
		Leftovers{Mounts: []string{"/x"}, Processes: []Process{{PID: 7, Command: "sleep 1", Why: "in a container on /x/upper"}}}.String())
}

// fakeImage is just enough of an image for Create: systemd's path, the
// files Hosts appends to.
func fakeImage(t *testing.T) string {
	img := t.TempDir()
	for p, data := range map[string]string{
		"usr/lib/systemd/systemd":               "",
		"etc/hosts":                             "127.0.0.1\tlocalhost\n",
		"etc/cloud/templates/hosts.debian.tmpl": "## template:jinja\n127.0.1.1 {{fqdn}} {{hostname}}\n",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(img, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(img, p), []byte(data), 0o644))
	}
	return img
}

// TestCreateAndRemoveWithoutBoot checks the overlay, the files placed
// before the first boot, reuse of an existing disk, and that removal and
// a failed Create leave nothing (root: it mounts).
func TestCreateAndRemoveWithoutBoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (overlayfs)")
	}
	img := fakeImage(t)
	nstest.New(t, "pgha-mt-create")
	state := filepath.Join(t.TempDir(), "pg-1")
	spec := Spec{
		Name: "pg-1", Image: img, StateDir: state, Netns: "/run/netns/pgha-mt-create",
		Hosts: []string{"10.0.0.1 pgha-mirror"},
		Files: []File{{Path: "/etc/pgha/placed", Mode: 0o640, Data: []byte("v1")}},
	}
	m, err := Create(spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = RemoveState(state) })

	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(m.Root(), p))
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "v1", read("etc/pgha/placed"))
	require.Equal(t, "pg-1\n", read("etc/hostname"))
	require.Len(t, strings.TrimSpace(read("etc/machine-id")), 32)
	require.Contains(t, read("etc/hosts"), "\n10.0.0.1 pgha-mirror\n")
	require.Contains(t, read("etc/cloud/templates/hosts.debian.tmpl"), "\n10.0.0.1 pgha-mirror\n")
	require.FileExists(t, filepath.Join(state, "upper/etc/pgha/placed"), "writes land in the machine's upper layer")
	require.NoFileExists(t, filepath.Join(img, "etc/pgha/placed"), "the image is never written")
	require.NoError(t, m.WriteFile("/etc/pgha/later", []byte("later"), 0o644))
	require.Equal(t, "later", read("etc/pgha/later"))
	require.False(t, m.Running())
	require.Zero(t, m.PID())
	_, err = m.Exec(t.Context(), "true")
	require.ErrorIs(t, err, errNotRunning)

	// The disk persists: a second Create places nothing over it.
	require.NoError(t, os.WriteFile(filepath.Join(m.Root(), "etc/pgha/placed"), []byte("changed"), 0o640))
	again, err := Create(spec)
	require.NoError(t, err)
	require.Equal(t, "changed", read("etc/pgha/placed"))
	opened, err := Open(state)
	require.NoError(t, err)
	require.Equal(t, "pg-1", opened.Name())

	l, err := FindLeftovers(filepath.Dir(state))
	require.NoError(t, err)
	require.Equal(t, []string{m.Root()}, l.Mounts)
	require.NoError(t, again.Remove())
	require.NoDirExists(t, state)
	l, err = FindLeftovers(filepath.Dir(state))
	require.NoError(t, err)
	require.True(t, l.Empty(), "%s", l)

	// A Create that fails halfway (here: a file outside the rules)
	// removes what it made.
	bad := spec
	bad.Files = []File{{Path: "relative", Data: nil}}
	_, err = Create(bad)
	require.Error(t, err)
	require.NoDirExists(t, state)

	// RemoveState copes with a half-made state: a mount, no record.
	require.NoError(t, os.MkdirAll(filepath.Join(state, "root"), 0o755))
	require.NoError(t, unix.Mount("tmpfs", filepath.Join(state, "root"), "tmpfs", 0, "size=1m"))
	require.NoError(t, RemoveState(state))
	require.NoDirExists(t, state)
}
