// Package pulumicli finds and runs the pulumi CLI. validate reads a stack's
// outputs and config by running it, which costs its binary nothing (the
// Automation API would bring in some 700 packages of gRPC, OpenTelemetry and
// the engine only to run the same CLI underneath); the program's tests drive
// it to check the project's config schema.
package pulumicli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ToolsDir is where tools/pulumi/build.sh puts the CLI it builds:
// $PGHA_TOOLS, else ~/.cache/pgha. The binary is ToolsDir()/bin/pulumi.
func ToolsDir() string {
	if d := os.Getenv("PGHA_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "pgha-tools")
	}
	return filepath.Join(home, ".cache", "pgha")
}

// ErrNoCLI says that no pulumi CLI was found.
var ErrNoCLI = errors.New("the pulumi CLI was not found")

// Find returns the directory the CLI lives under as the Automation API
// wants it ("" means the pulumi on PATH) and the binary's path: the pulumi
// on PATH first, else the one tools/pulumi/build.sh built.
func Find() (root, bin string, err error) {
	if p, err := exec.LookPath("pulumi"); err == nil {
		return "", p, nil
	}
	cached := filepath.Join(ToolsDir(), "bin", "pulumi")
	if st, err := os.Stat(cached); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return ToolsDir(), cached, nil
	}
	return "", "", fmt.Errorf("%w on PATH or at %s: install Pulumi (see Pulumi's \"Download & install\" page) or build it with tools/pulumi/build.sh", ErrNoCLI, cached)
}

// Env is what every run adds to the caller's environment: reading a stack
// must never reach out for updates or plugins, nor stop at a prompt.
var Env = []string{
	"PULUMI_SKIP_UPDATE_CHECK=true",
	"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
}

// Error is a failed CLI run: the command and what it printed on stderr.
type Error struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("pulumi %s: %s", strings.Join(e.Args, " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs the CLI in dir with args (plus --non-interactive) and returns its
// standard output.
func Run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	_, bin, err := Find()
	if err != nil {
		return nil, err
	}
	args = append(append([]string(nil), args...), "--non-interactive")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &Error{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}
