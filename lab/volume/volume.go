// Package volume stands in for an EBS data volume on a booted lab: a sparse
// file on the host behind a loop device, which the node's machine sees as a
// disk (/dev/xvdf, the name a Xen instance gives a volume attached as
// /dev/sdf). The file outlives the machine, as a volume outlives its
// instance: a replaced node's new machine gets the same disk back, and the
// node's own boot (userdata's pgha-data-volume) formats it only when blank.
package volume

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Loop is one loop device and the file behind it.
type Loop struct {
	Device string // /dev/loopN
	File   string // as the kernel reports it, " (deleted)" stripped
}

// sysBlock is where the kernel lists loop devices; a variable for tests.
var sysBlock = "/sys/block"

// Attach makes file a disk of size bytes (sparse; an existing file keeps
// its size and contents) and returns the loop device behind it: the one
// already attached to it, else a new one.
func Attach(file string, size int64) (string, error) {
	file, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	if _, err := os.Stat(file); os.IsNotExist(err) {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return "", err
		}
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(file)
			return "", fmt.Errorf("making the volume file %s: %w", file, err)
		}
	}
	loops, err := List()
	if err != nil {
		return "", err
	}
	for _, l := range loops {
		if l.File == file {
			return l.Device, nil
		}
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		return "", errors.New("losetup is missing; install it with: apt-get install mount")
	}
	out, err := exec.Command(losetup, "--find", "--show", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup --find --show %s: %w: %s", file, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// List returns every loop device with a file behind it.
func List() ([]Loop, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, err
	}
	var out []Loop
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "loop", "backing_file"))
		if err != nil {
			continue // not attached
		}
		f := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		out = append(out, Loop{Device: "/dev/" + e.Name(), File: f})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

// Under lists the loop devices whose file is under dir.
func Under(dir string) ([]Loop, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	loops, err := List()
	if err != nil {
		return nil, err
	}
	var out []Loop
	for _, l := range loops {
		if l.File == dir || strings.HasPrefix(l.File, dir+"/") {
			out = append(out, l)
		}
	}
	return out, nil
}

// DetachUnder detaches every loop device whose file is under dir. A device
// still in use (a machine that has it mounted still runs) is an error.
func DetachUnder(dir string) error {
	loops, err := Under(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range loops {
		if out, err := exec.Command("losetup", "--detach", l.Device).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("losetup --detach %s (%s): %w: %s", l.Device, l.File, err, strings.TrimSpace(string(out))))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// A device the kernel still holds (a machine's mount namespace that
	// is just going away) is detached lazily, when its last user lets go:
	// wait for that, so that the caller's check sees the end state.
	deadline := time.Now().Add(detachWait)
	for {
		left, err := Under(dir)
		if err != nil || len(left) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loop device %s (%s) still attached %s after losetup --detach", left[0].Device, left[0].File, detachWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// detachWait bounds the wait for a lazily detached loop device.
const detachWait = 30 * time.Second
