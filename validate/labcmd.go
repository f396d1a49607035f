package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgha/pgha/internal/outputs"
)

// labCmd runs the lab command, for `validate bench`, which builds and
// removes labs of its own. validate links none of the lab's code: it runs
// the command a person would (go run ./lab up ...), built once from this
// repository unless --lab names a binary.
type labCmd struct {
	bin string
	out io.Writer
}

// moduleRoot finds the repository (the directory whose go.mod declares
// this module) from the working directory up.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/pgha/pgha\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("not inside the pgha repository: run validate bench from it, or pass --lab with a built lab command")
		}
		d = parent
	}
}

// newLabCmd returns the lab command at bin, or builds one into dir.
func newLabCmd(ctx context.Context, bin, dir string, out io.Writer) (labCmd, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return labCmd{}, fmt.Errorf("--lab: %w", err)
		}
		return labCmd{bin: bin, out: out}, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return labCmd{}, err
	}
	bin = filepath.Join(dir, "lab")
	fmt.Fprintf(out, "bench: building the lab command (go build ./lab)\n")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./lab")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return labCmd{}, fmt.Errorf("go build ./lab: %v: %s", err, bytes.TrimSpace(b))
	}
	return labCmd{bin: bin, out: out}, nil
}

// run runs one lab command, its output going to c.out.
func (c labCmd) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var tail bytes.Buffer
	cmd.Stdout = io.MultiWriter(c.out, &tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(tail.String()), "\n")
		return fmt.Errorf("lab %s: %v: %s", args[0], err, lines[len(lines)-1])
	}
	return nil
}

// up brings up lab name and returns its outputs.
func (c labCmd) up(ctx context.Context, name, profile string, sync, boot bool) (outputs.Stack, error) {
	args := []string{"up", "--name", name, "--profile", profile, "--sync=" + strconv.FormatBool(sync)}
	if boot {
		args = append(args, "--boot")
	}
	if err := c.run(ctx, args...); err != nil {
		return outputs.Stack{}, err
	}
	cmd := exec.CommandContext(ctx, c.bin, "outputs", "--name", name)
	cmd.Stderr = c.out
	b, err := cmd.Output()
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("lab outputs: %w", err)
	}
	return outputs.Parse(b)
}

// down removes lab name, first keeping its logs under keepLogs when set.
func (c labCmd) down(ctx context.Context, name, keepLogs string) error {
	args := []string{"down", "--name", name}
	if keepLogs != "" {
		args = append(args, "--keep-logs", keepLogs)
	}
	return c.run(ctx, args...)
}

// exists reports whether lab name is up (or left over).
func (c labCmd) exists(ctx context.Context, name string) bool {
	return exec.CommandContext(ctx, c.bin, "status", "--name", name).Run() == nil
}
