package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgha/pgha/lab/mountinfo"
)

// Process is a leftover process.
type Process struct {
	PID     int
	Command string
	Why     string // how it was recognised as the state directory's
}

// Leftovers is what a state directory still holds outside its files.
type Leftovers struct {
	Mounts    []string  // mount points at or under the directory, deepest first
	Processes []Process // nspawn and everything running in its containers
}

// Empty reports whether nothing is left.
func (l Leftovers) Empty() bool { return len(l.Mounts) == 0 && len(l.Processes) == 0 }

func (l Leftovers) String() string {
	if l.Empty() {
		return "nothing left"
	}
	var parts []string
	for _, m := range l.Mounts {
		parts = append(parts, "mount "+m)
	}
	for _, p := range l.Processes {
		parts = append(parts, fmt.Sprintf("process %d (%s; %s)", p.PID, p.Command, p.Why))
	}
	return strings.Join(parts, "; ")
}

// FindLeftovers lists every mount under dir and every process that belongs
// to a machine whose state is under dir: a systemd-nspawn whose command
// line names a root under dir, any process whose mount namespace's root is
// an overlay with its upper layer under dir (the container's processes, and
// commands Exec entered into it), and any process chrooted under dir.
// dir is usually the lab's state directory, holding many machines.
func FindLeftovers(dir string) (Leftovers, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Leftovers{}, err
	}
	var l Leftovers
	if l.Mounts, err = mountinfo.Under(mountinfo.Self, dir); err != nil {
		return Leftovers{}, err
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	rootByNS := map[string]string{} // mount namespace -> its root mount's options
	for _, pid := range pids() {
		if pid == os.Getpid() {
			continue
		}
		args := cmdline(pid)
		if why := nspawnFor(args, dir); why != "" {
			l.Processes = append(l.Processes, Process{PID: pid, Command: strings.Join(args, " "), Why: why})
			continue
		}
		if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err == nil && root != "/" && under(root, dir) {
			l.Processes = append(l.Processes, Process{PID: pid, Command: strings.Join(args, " "), Why: "root " + root})
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || ns == self {
			continue
		}
		opts, ok := rootByNS[ns]
		if !ok {
			opts = rootMountOptions(pid)
			rootByNS[ns] = opts
		}
		if upper := mountinfo.Option(opts, "upperdir"); upper != "" && under(upper, dir) {
			l.Processes = append(l.Processes, Process{PID: pid, Command: strings.Join(args, " "), Why: "in a container on " + upper})
		}
	}
	return l, nil
}

// nspawnFor says why args is a systemd-nspawn for a root under dir, or "".
func nspawnFor(args []string, dir string) string {
	if len(args) == 0 || filepath.Base(args[0]) != "systemd-nspawn" {
		return ""
	}
	for i, a := range args {
		var d string
		switch {
		case (a == "-D" || a == "--directory") && i+1 < len(args):
			d = args[i+1]
		case strings.HasPrefix(a, "--directory="):
			d = strings.TrimPrefix(a, "--directory=")
		}
		if d != "" && under(d, dir) {
			return "systemd-nspawn -D " + d
		}
	}
	return ""
}

// rootMountOptions returns the super options of the "/" mount as process
// pid sees it.
func rootMountOptions(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	return mountinfo.RootOptions(f)
}

// Clean ends every leftover process of dir with SIGKILL (container
// processes die with their namespace's PID 1; nothing else is touched) and
// unmounts every mount under dir. It returns an error naming whatever
// could not be removed. It does not delete files.
func Clean(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	l, err := FindLeftovers(dir)
	if err != nil {
		return err
	}
	var procs []proc
	for _, p := range l.Processes {
		if pr, err := procOf(p.PID); err == nil {
			procs = append(procs, pr)
			_ = pr.signal(syscall.SIGKILL)
		}
	}
	for _, pr := range procs {
		pr.waitGone(10 * time.Second)
	}
	// A path may be mounted more than once (stacked); go round until
	// none is left or nothing more comes off.
	for round := 0; round < 5 && len(l.Mounts) > 0; round++ {
		for _, mp := range l.Mounts {
			unmount(mp)
		}
		if l.Mounts, err = mountinfo.Under(mountinfo.Self, dir); err != nil {
			return err
		}
	}
	if l, err = FindLeftovers(dir); err != nil {
		return err
	}
	if !l.Empty() {
		return fmt.Errorf("could not clean %s: %s", dir, l)
	}
	return nil
}

// unmount unmounts mp, retrying while it is busy (a container that just
// died may still hold it for a moment), then detaching it lazily.
func unmount(mp string) {
	for i := 0; i < 50; i++ {
		err := unix.Unmount(mp, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = unix.Unmount(mp, unix.MNT_DETACH)
}
