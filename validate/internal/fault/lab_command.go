package fault

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pgha/pgha/internal/outputs"
)

// LabCommand is the control of the lab that wrote s: the copy of the lab
// command that `lab up` leaves at <labDir>/bin/lab. Running it keeps the
// validate binary free of the lab's code, and a fault means exactly what
// the same command typed by a person means.
//
// Because it runs a program named by an input file, it refuses one that
// anybody but this user (or root) could have put there.
func LabCommand(s outputs.Stack) (LabControl, error) {
	dir := s.Access.LabDir
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("output %q: a lab's outputs name its directory in labDir (an absolute path); got %q", outputs.KeyAccess, dir)
	}
	bin := filepath.Join(dir, "bin", "lab")
	for _, p := range []string{dir, filepath.Dir(bin), bin} {
		if err := safe(p); err != nil {
			return nil, err
		}
	}
	return labCommand{bin: bin, name: filepath.Base(dir)}, nil
}

// safe refuses a path that is missing, or owned by another user than this
// one or root, or writable by group or others.
func safe(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("the lab's control %s: %w (was the lab brought up with `go run ./lab up`?)", p, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot tell who owns %s", p)
	}
	if uid := uint32(os.Geteuid()); sys.Uid != uid && sys.Uid != 0 {
		return fmt.Errorf("refusing to run the lab's control: %s belongs to uid %d, not to you or root", p, sys.Uid)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("refusing to run the lab's control: %s is writable by others (mode %s)", p, st.Mode().Perm())
	}
	return nil
}

// labCommand runs `<bin> COMMAND NODE --name NAME`.
type labCommand struct{ bin, name string }

func (c labCommand) run(ctx context.Context, cmd, node string) error {
	x := exec.CommandContext(ctx, c.bin, cmd, node, "--name", c.name)
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out
	if err := x.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("lab %s %s: %s", cmd, node, msg)
	}
	return nil
}

func (c labCommand) Kill(ctx context.Context, n string) error { return c.run(ctx, "kill", n) }
func (c labCommand) KillPostgres(ctx context.Context, n string) error {
	return c.run(ctx, "kill-postgres", n)
}
func (c labCommand) Stop(ctx context.Context, n string) error      { return c.run(ctx, "stop", n) }
func (c labCommand) Start(ctx context.Context, n string) error     { return c.run(ctx, "start", n) }
func (c labCommand) Partition(ctx context.Context, n string) error { return c.run(ctx, "partition", n) }
func (c labCommand) Heal(ctx context.Context, n string) error      { return c.run(ctx, "heal", n) }

// LabRun runs another command of the lab's control on a node (`lab backup`,
// `lab restore-drill`) with its flags, and returns what it printed.
func LabRun(ctx context.Context, s outputs.Stack, cmd, node string, flags ...string) (string, error) {
	ctl, err := LabCommand(s)
	if err != nil {
		return "", err
	}
	c := ctl.(labCommand)
	x := exec.CommandContext(ctx, c.bin, append([]string{cmd, node, "--name", c.name}, flags...)...)
	var out, errb bytes.Buffer
	x.Stdout, x.Stderr = &out, &errb
	if err := x.Run(); err != nil {
		msg := strings.TrimSpace(errb.String() + out.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), fmt.Errorf("lab %s %s: %s", cmd, node, msg)
	}
	return out.String(), nil
}
