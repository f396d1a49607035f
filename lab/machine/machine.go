package machine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pgha/pgha/lab/mountinfo"
)

// Spec describes one machine.
type Spec struct {
	// Name is the node's name: the machine's hostname until cloud-init
	// sets the one the IMDS gives (local-hostname).
	Name string
	// Image is the read-only lower layer of the root (image.Image.RootFS).
	Image string
	// StateDir is this machine's own directory: the overlay's upper and
	// work layers, its mount point, the console log, the recorded PIDs.
	StateDir string
	// Netns is the network namespace the machine joins, e.g.
	// /run/netns/NAME, with its link, address and routes already set.
	Netns string

	// Disks are host block devices the machine sees as its own, at every
	// boot (as EBS volumes attached to an instance).
	Disks []Disk

	// Placed into the root before the first boot only (later starts keep
	// the disk as it is, as an EC2 stop/start keeps the root volume):

	// Files are written as root:root.
	Files []File
	// Hosts are /etc/hosts lines ("10.0.0.1 pgha-mirror"). They also go
	// into cloud-init's hosts template, because the AMI's cloud-init
	// config (manage_etc_hosts: true) rewrites /etc/hosts from it on
	// every boot.
	Hosts []string
	// CACerts are PEM certificates made trusted system wide before
	// cloud-init runs: update-ca-certificates puts them into
	// /etc/ssl/certs/ca-certificates.crt, which curl reads and Debian's
	// awscli reads too (its botocore asks python3-certifi, which Debian
	// patches to return that file).
	CACerts [][]byte
}

// Disk is a host block device and the path the machine sees it at.
type Disk struct {
	Device string `json:"device"` // on the host, e.g. /dev/loop3
	Path   string `json:"path"`   // inside the machine, e.g. /dev/xvdf
}

// File is a file to place into the machine's root.
type File struct {
	Path string // absolute path inside the machine
	Mode os.FileMode
	Data []byte
}

// Machine is one machine. Its methods are safe for concurrent use; another
// process can take it over with Open.
type Machine struct {
	spec Spec

	mu      sync.Mutex
	st      record
	started chan struct{} // closed when the nspawn this process started is reaped
}

// record is what the state directory remembers between processes.
type record struct {
	Name   string `json:"name"`
	Image  string `json:"image"`
	Netns  string `json:"netns"`
	Disks  []Disk `json:"disks,omitempty"`
	NSpawn proc   `json:"nspawn"`
	Init   proc   `json:"init"`
	// The machine's own cgroup in each hierarchy (see cgroup.go), removed
	// once it stops.
	Cgroups []string `json:"cgroups,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Paths inside the state directory.
func (m *Machine) path(p string) string { return filepath.Join(m.spec.StateDir, p) }

// Root is the machine's root as the host sees it (the overlay's mount
// point); it exists from Create until Remove, running or not. Prefer
// WriteFile to writing below it directly: the image's absolute symlinks
// lead out of Root on the host.
func (m *Machine) Root() string { return m.path("root") }

// WriteFile writes a file (root:root, mode) at path inside the machine,
// resolving symlinks inside it. While the machine is stopped this is what
// its next boot finds; while it runs, the machine sees the file at once.
func (m *Machine) WriteFile(path string, data []byte, mode os.FileMode) error {
	return writeInRoot(m.Root(), path, data, mode)
}

// ConsoleLog is the file with the machine's console output (the EC2
// "console output"), appended to on every start.
func (m *Machine) ConsoleLog() string { return m.path("console.log") }

// Name is the machine's name.
func (m *Machine) Name() string { return m.spec.Name }

// Create makes the machine's state directory and root, and places the
// spec's files, hosts and CA certificates into it. It does not boot. Over
// an existing state directory it reuses the disk (and places nothing). On
// error it removes what it made.
func Create(spec Spec) (m *Machine, err error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	m = &Machine{spec: spec}
	fresh := false
	if _, err := os.Stat(m.path("machine.json")); os.IsNotExist(err) {
		fresh = true
	}
	defer func() {
		if err != nil && fresh {
			if rmErr := RemoveState(spec.StateDir); rmErr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, rmErr)
			}
		}
	}()
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(m.path(d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := m.mount(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(m.path("prepared")); os.IsNotExist(err) {
		if err := m.prepare(); err != nil {
			return nil, fmt.Errorf("preparing %s's root: %w", spec.Name, err)
		}
		if err := os.WriteFile(m.path("prepared"), nil, 0o644); err != nil {
			return nil, err
		}
	}
	m.st = record{Name: spec.Name, Image: spec.Image, Netns: spec.Netns, Disks: spec.Disks}
	if old, err := loadRecord(m.path("machine.json")); err == nil {
		m.st.NSpawn, m.st.Init, m.st.Cgroups = old.NSpawn, old.Init, old.Cgroups
	}
	return m, m.save()
}

// Open takes over a machine another process created, from its state
// directory.
func Open(stateDir string) (*Machine, error) {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	r, err := loadRecord(filepath.Join(stateDir, "machine.json"))
	if err != nil {
		return nil, fmt.Errorf("no machine in %s: %w", stateDir, err)
	}
	m := &Machine{spec: Spec{Name: r.Name, Image: r.Image, StateDir: stateDir, Netns: r.Netns, Disks: r.Disks}, st: r}
	return m, nil
}

func (s *Spec) check() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("machine name %q: use lower-case letters, digits and '-' (a host name)", s.Name)
	}
	for _, p := range []*string{&s.Image, &s.StateDir, &s.Netns} {
		a, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = a
	}
	// overlayfs takes its layers in a comma- and colon-separated option.
	if strings.ContainsAny(s.Image+s.StateDir, ",:") {
		return fmt.Errorf("image %q and state directory %q must not contain ',' or ':' (overlayfs options)", s.Image, s.StateDir)
	}
	if _, err := os.Stat(filepath.Join(s.Image, "usr/lib/systemd/systemd")); err != nil {
		return fmt.Errorf("image %s has no systemd; pass image.Image.RootFS from image.Build", s.Image)
	}
	if _, err := os.Stat(s.Netns); err != nil {
		return fmt.Errorf("network namespace %s: %w; create it first (ip netns add)", s.Netns, err)
	}
	for _, d := range s.Disks {
		// nspawn's --bind takes colon-separated paths.
		if !strings.HasPrefix(d.Path, "/dev/") || strings.ContainsAny(d.Device+d.Path, ":,") {
			return fmt.Errorf("disk %s at %s: want a host device and a /dev/ path inside the machine, without ':' or ','", d.Device, d.Path)
		}
		if st, err := os.Stat(d.Device); err != nil || st.Mode()&os.ModeDevice == 0 {
			return fmt.Errorf("disk %s: not a block device on this host", d.Device)
		}
	}
	return nil
}

// mount mounts the overlay at root unless it is mounted already.
func (m *Machine) mount() error {
	mps, err := mountinfo.Under(mountinfo.Self, m.Root())
	if err != nil {
		return err
	}
	for _, mp := range mps {
		if mp == m.Root() {
			return nil
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", m.spec.Image, m.path("upper"), m.path("work"))
	if err := unix.Mount("overlay", m.Root(), "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the overlay for %s (%s): %w", m.spec.Name, opts, err)
	}
	return nil
}

// prepare makes the fresh root this machine's: its hostname and machine
// id, then the spec's files, hosts and CA certificates.
func (m *Machine) prepare() error {
	root := m.Root()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	// A machine id of its own, kept across restarts as on a root volume.
	if err := writeInRoot(root, "/etc/machine-id", []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
		return err
	}
	if err := writeInRoot(root, "/etc/hostname", []byte(m.spec.Name+"\n"), 0o644); err != nil {
		return err
	}
	for _, f := range m.spec.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := writeInRoot(root, f.Path, f.Data, mode); err != nil {
			return err
		}
	}
	if len(m.spec.Hosts) > 0 {
		lines := "# pgha lab\n" + strings.Join(m.spec.Hosts, "\n") + "\n"
		for _, p := range []string{"/etc/hosts", hostsTemplate} {
			if err := appendInRoot(root, p, lines); err != nil {
				return err
			}
		}
	}
	return trustCAs(root, m.spec.CACerts)
}

// hostsTemplate is what cloud-init renders /etc/hosts from on Debian when
// manage_etc_hosts is true.
const hostsTemplate = "/etc/cloud/templates/hosts.debian.tmpl"

func (m *Machine) save() error {
	b, err := json.MarshalIndent(m.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.path("machine.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, m.path("machine.json"))
}

func loadRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Remove stops the machine at once if it runs, unmounts its root and
// deletes its state directory. It is safe on a half-made machine.
func (m *Machine) Remove() error {
	if err := m.Kill(); err != nil {
		return err
	}
	return RemoveState(m.spec.StateDir)
}

// RemoveState cleans every leftover of stateDir (processes, mounts; see
// Clean) and deletes it. It refuses to delete while anything is still
// mounted below it, as deleting would then reach into the mounted tree.
func RemoveState(stateDir string) error {
	if _, err := os.Stat(stateDir); os.IsNotExist(err) {
		return nil
	}
	if err := Clean(stateDir); err != nil {
		return err
	}
	if r, err := loadRecord(filepath.Join(stateDir, "machine.json")); err == nil {
		if err := removeCgroups(r.Cgroups); err != nil {
			return err
		}
	}
	mps, err := mountinfo.Under(mountinfo.Self, stateDir)
	if err != nil {
		return err
	}
	if len(mps) > 0 {
		return fmt.Errorf("not deleting %s: still mounted: %s", stateDir, strings.Join(mps, ", "))
	}
	return os.RemoveAll(stateDir)
}

// lookPath fails with what to install when a host tool is missing.
func lookPath(prog, pkg string) (string, error) {
	p, err := exec.LookPath(prog)
	if err != nil {
		return "", fmt.Errorf("%s is missing; install it with: apt-get install %s", prog, pkg)
	}
	return p, nil
}

var errNotRunning = errors.New("machine is not running")
