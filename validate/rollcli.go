package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/pgha/pgha/internal/pulumicli"
)

// pulumiExec is the pulumi CLI as the roll runs it: reads through
// pulumicli.Run, updates with their output streamed to the user.
type pulumiExec struct {
	dir            string
	stdout, stderr io.Writer
}

func (p pulumiExec) Output(ctx context.Context, args ...string) ([]byte, error) {
	return pulumicli.Run(ctx, p.dir, args...)
}

// errUpdateInterrupted says pulumi stopped because it was asked to.
var errUpdateInterrupted = errors.New("interrupted")

// Update runs pulumi in a process group of its own, so that a Ctrl-C at the
// terminal reaches validate only. On an interrupt validate passes one on:
// pulumi then cancels gracefully, finishing the operations under way and
// recording them in the state. A second interrupt would make pulumi
// stop at once and leave operations pending in the state, so validate never
// sends one, and waits for pulumi however long that takes.
func (p pulumiExec) Update(ctx context.Context, args ...string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("pulumi %s not started: %w", args[0], errUpdateInterrupted)
	}
	_, bin, err := pulumicli.Find()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), pulumicli.Env...)
	// Its own tail: the lines to quote when it fails.
	tail := &tailWriter{max: 64 << 10}
	cmd.Stdout = io.MultiWriter(p.stdout, tail)
	cmd.Stderr = io.MultiWriter(p.stderr, tail)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pulumi %s: %w", args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	failed := func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("pulumi %s: %v%s", args[0], err, errorLines(tail.String()))
	}
	select {
	case err := <-exited:
		return failed(err)
	case <-ctx.Done():
	}
	more := make(chan os.Signal, 1)
	signal.Notify(more, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(more)
	fmt.Fprintf(p.stderr, "validate roll: interrupted: asking pulumi (pid %d) to cancel; it finishes the operations under way first\n", cmd.Process.Pid)
	_ = cmd.Process.Signal(os.Interrupt)
	for {
		select {
		case err := <-exited:
			if err == nil {
				return nil // it had finished anyway
			}
			return fmt.Errorf("pulumi %s: %w (%v)%s", args[0], errUpdateInterrupted, err, errorLines(tail.String()))
		case <-more:
			fmt.Fprintf(p.stderr, "validate roll: still waiting for pulumi (pid %d) to finish cleanly; it was asked once to cancel\n", cmd.Process.Pid)
		}
	}
}

// errorLines are pulumi's "error:" lines, as one suffix.
func errorLines(out string) string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "error:") {
			errs = append(errs, strings.TrimSpace(strings.TrimPrefix(l, "error:")))
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return ": " + strings.Join(errs, "; ")
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
