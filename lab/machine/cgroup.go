package machine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/lab/mountinfo"
)

// Each machine runs in a cgroup of its own.
//
// systemd-nspawn --keep-unit runs the container in the cgroup nspawn was
// started in, split into "supervisor" (nspawn) and "payload" (the
// container). Started from the root of the hierarchies, as on a host
// without systemd, every machine would get the same /payload, and the
// machines' systemds would create, kill and remove the same
// /payload/system.slice/ssh.service: one machine's finished unit removes
// the cgroup another machine's unit is entering (status 219/CGROUP,
// "Failed to attach to cgroup ...: No such file or directory"), and a
// unit's stop waits for processes of other machines that it can neither
// see nor kill (a user manager's stop hanging for its 2-minute timeout).
// So nspawn starts in a cgroup named after the machine, in every hierarchy
// it uses.

// cgroupHierarchy is a hierarchy systemd tracks units in: the unified one
// (cgroup2), or the named v1 hierarchy "name=systemd" of a cgroup v1 or
// hybrid host.
type cgroupHierarchy struct {
	mount string // where it is mounted, e.g. /sys/fs/cgroup/unified
	own   string // this process's cgroup in it, e.g. /
}

// systemdHierarchies finds, from a mount table and a /proc/PID/cgroup, the
// hierarchies systemd would use: the unified one and name=systemd, each
// where present and mounted.
func systemdHierarchies(mountTable, procCgroup io.Reader) ([]cgroupHierarchy, error) {
	// /proc/PID/cgroup: "ID:CONTROLLERS:PATH"; the unified hierarchy is
	// "0::PATH".
	own := map[string]string{}
	sc := bufio.NewScanner(procCgroup)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			own["cgroup2"] = parts[2]
		case parts[1] == "name=systemd":
			own["name=systemd"] = parts[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}

	// The first mount of each kind counts.
	ms, err := mountinfo.Mounts(mountTable)
	if err != nil {
		return nil, err
	}
	mounts := map[string]mountinfo.Mount{}
	for _, m := range ms {
		kind := ""
		switch {
		case m.FSType == "cgroup2":
			kind = "cgroup2"
		case m.FSType == "cgroup" && mountinfo.HasOption(m.SuperOptions, "name=systemd"):
			kind = "name=systemd"
		}
		if _, seen := mounts[kind]; kind != "" && !seen {
			mounts[kind] = m
		}
	}

	var hs []cgroupHierarchy
	for _, kind := range []string{"name=systemd", "cgroup2"} {
		m, mounted := mounts[kind]
		path, member := own[kind]
		if !mounted || !member {
			continue
		}
		// A mount of a subtree (in a cgroup namespace, or a bind mount)
		// shows paths below its root.
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.Root, "/"))
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			return nil, fmt.Errorf("this process's cgroup %s in the %s hierarchy is outside its mount at %s (root %s)", path, kind, m.Point, m.Root)
		}
		hs = append(hs, cgroupHierarchy{mount: m.Point, own: "/" + strings.TrimPrefix(rel, "/")})
	}
	if len(hs) == 0 {
		return nil, errors.New("no cgroup hierarchy for systemd is mounted (neither cgroup2 nor name=systemd); systemd-nspawn needs one")
	}
	return hs, nil
}

// CgroupsLeft lists the cgroups of the machine spec would describe that
// still exist (for a teardown check): a machine's cgroups go when it
// stops, whoever stops it. It looks beside this process's own cgroup,
// where a machine started from the same place has them.
func CgroupsLeft(spec Spec) ([]string, error) {
	dirs, err := cgroupDirsFor((&Machine{spec: spec}).machineName())
	if err != nil {
		return nil, err
	}
	var left []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			left = append(left, d)
		}
	}
	return left, nil
}

// cgroupDirsFor are a machine's cgroup directories, one per hierarchy:
// among this process's own cgroup's children, named after the machine.
func cgroupDirsFor(machineName string) ([]string, error) {
	mt, err := os.Open(mountinfo.Self)
	if err != nil {
		return nil, err
	}
	defer mt.Close()
	pc, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	hs, err := systemdHierarchies(mt, pc)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, h := range hs {
		dirs = append(dirs, filepath.Join(h.mount, h.own, "pgha-"+machineName))
	}
	return dirs, nil
}

// inCgroups wraps argv so that the process joins each of dirs before it
// executes argv[0]: a shell writes its own PID into each cgroup.procs,
// then becomes argv[0] (same PID), so nspawn finds itself in the
// machine's cgroup from its first instruction.
func inCgroups(dirs, argv []string) []string {
	const script = `n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done
exec "$@"`
	out := []string{"/bin/sh", "-c", script, "pgha-cgroup", fmt.Sprint(len(dirs))}
	for _, d := range dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return append(out, argv...)
}

// removeCgroups deletes the machine's cgroup directories and every cgroup
// the machine's systemd left below them (a machine that was killed never
// removes its own), deepest first. A cgroup being emptied by the kernel
// is busy for a moment, so it retries for a while.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, top := range dirs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := removeCgroupTree(top)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("removing the machine's cgroup %s: %w", top, err))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(top string) error {
	var dirs []string
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// A cgroup directory holds only control files, which go with it; its
	// child cgroups must go first.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
