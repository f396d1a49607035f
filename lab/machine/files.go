package machine

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// openInRoot opens path inside root, resolving every component (symbolic
// links included) as if root were "/": an image's absolute symlink such as
// /etc/resolv.conf -> /run/... must lead into the machine, never to the
// host's own file of that name.
func openInRoot(root, path string, flags int, mode uint32) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", root, err)
	}
	defer unix.Close(rfd)
	rel := strings.TrimLeft(path, "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, path), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, path)), nil
}

// mkdirAllInRoot creates dir and its parents inside root (mode 0755).
func mkdirAllInRoot(root, dir string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(filepath.Clean("/"+dir), "/"), "/") {
		if part == "" {
			continue
		}
		parent, err := openInRoot(root, "/"+cur, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(int(parent.Fd()), part, 0o755)
		parent.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s in %s: %w", "/"+cur+part, root, err)
		}
		cur += part + "/"
	}
	return nil
}

// writeInRoot writes data to path inside root as root:root with mode.
func writeInRoot(root, path string, data []byte, mode os.FileMode) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("file %q: want an absolute path inside the machine", path)
	}
	if err := mkdirAllInRoot(root, filepath.Dir(path)); err != nil {
		return err
	}
	f, err := openInRoot(root, path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW, uint32(mode.Perm()))
	if errors.Is(err, unix.ELOOP) {
		// The final component is a symlink (resolv.conf on some
		// images): replace the link, not its target.
		if err = removeInRoot(root, path); err == nil {
			f, err = openInRoot(root, path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, uint32(mode.Perm()))
		}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if os.Geteuid() == 0 { // as root, whatever the caller's umask or ids
		if err := f.Chown(0, 0); err != nil {
			return err
		}
	}
	return f.Chmod(mode.Perm())
}

func removeInRoot(root, path string) error {
	dir, err := openInRoot(root, filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return unix.Unlinkat(int(dir.Fd()), filepath.Base(path), 0)
}

// appendInRoot appends text to an existing file inside root.
func appendInRoot(root, path, text string) error {
	f, err := openInRoot(root, path, unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	old, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		text = "\n" + text
	}
	_, err = f.Write([]byte(text))
	return err
}

// trustCAs installs PEM certificates as local CAs and regenerates the
// system bundle inside root, before the machine boots, so that the first
// thing cloud-init runs already trusts them. Each certificate gets a file
// of its own: update-ca-certificates takes one certificate per .crt.
func trustCAs(root string, pems [][]byte) error {
	n := 0
	for _, p := range pems {
		rest := p
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
				return fmt.Errorf("CA certificate %d: %w", n+1, err)
			}
			n++
			path := fmt.Sprintf("/usr/local/share/ca-certificates/pgha-lab-%d.crt", n)
			if err := writeInRoot(root, path, pem.EncodeToMemory(blk), 0o644); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		if len(pems) > 0 {
			return errors.New("CACerts holds no PEM CERTIFICATE block")
		}
		return nil
	}
	return chrootRun(root, "/usr/sbin/update-ca-certificates")
}

// chrootRun runs a command of the image inside root (not booted), in a
// mount namespace of its own so nothing it might mount outlives it.
func chrootRun(root string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), root, err, strings.TrimSpace(string(out)))
	}
	return nil
}
