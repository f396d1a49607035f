package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// nspawn runs a command inside the image, as a plain container (no boot)
// that shares the host's network for the download steps.
func (b *builder) nspawn(ctx context.Context, prog string, args ...string) error {
	return b.nspawnWith(ctx, []string{"--resolv-conf=replace-host"}, prog, args...)
}

func (b *builder) nspawnWith(ctx context.Context, extra []string, prog string, args ...string) error {
	argv := []string{"-q", "-D", b.rootfs, "-M", "pgha-build-" + b.recipe.Hash()[:8],
		"--register=no", "--keep-unit", "--timezone=off", "--link-journal=no",
		"--pipe", "--as-pid2",
		"-E", "DEBIAN_FRONTEND=noninteractive", "-E", "LC_ALL=C.UTF-8"}
	argv = append(argv, extra...)
	argv = append(argv, "--", prog)
	argv = append(argv, args...)
	return b.run(ctx, nil, false, "systemd-nspawn", argv...)
}

// run runs a command in a process group of its own (killed whole on
// cancel), optionally in a private mount namespace, logging its output.
func (b *builder) run(ctx context.Context, env []string, privateMounts bool, prog string, args ...string) error {
	fmt.Fprintf(b.log, "$ %s %s\n", prog, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = env
	var w io.Writer = b.log
	if b.out != nil {
		w = io.MultiWriter(b.log, prefixWriter(b.out, "  | "))
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if privateMounts {
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", prog, ctx.Err())
		}
		return fmt.Errorf("%s %s: %w", prog, firstArgs(args), err)
	}
	return nil
}

func firstArgs(args []string) string {
	var keep []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") && len(keep) == 0 {
			continue
		}
		keep = append(keep, a)
		if len(keep) == 3 {
			break
		}
	}
	return strings.Join(keep, " ")
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hostAptConf keeps the host's apt options a download through its mirror
// may depend on (a proxy, a snapshot mirror's expired Release files).
func hostAptConf() string {
	out, err := exec.Command("apt-config", "dump").Output()
	if err != nil {
		return ""
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, k := range []string{"Acquire::http::Proxy ", "Acquire::https::Proxy ", "Acquire::Check-Valid-Until ", "Acquire::Check-Date "} {
			if strings.HasPrefix(line, k) {
				keep = append(keep, line)
			}
		}
	}
	if len(keep) == 0 {
		return ""
	}
	return "// pgha image build: the host's apt options, removed after the build.\n" + strings.Join(keep, "\n") + "\n"
}

func aptConfValue(conf, key string) string {
	for _, line := range strings.Split(conf, "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			return strings.Trim(strings.TrimSuffix(strings.TrimSpace(v), ";"), `"`)
		}
	}
	return ""
}

// writeFile writes data to root/rel, creating parent directories.
func writeFile(root, rel, data string, mode os.FileMode) error {
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_ = os.Remove(p) // may be a symlink (resolv.conf), or read-only
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// prefixWriter prefixes every line written to w.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	return &prefixed{w: w, prefix: prefix, bol: true}
}

type prefixed struct {
	w      io.Writer
	prefix string
	bol    bool
}

func (p *prefixed) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if p.bol {
			out = append(out, p.prefix...)
			p.bol = false
		}
		out = append(out, c)
		if c == '\n' {
			p.bol = true
		}
	}
	_, err := p.w.Write(out)
	return len(b), err
}
