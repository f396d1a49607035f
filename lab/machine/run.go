package machine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// sigPoweroff is SIGRTMIN+4, systemd's "power off" signal. SIGRTMIN is
// 34 as C programs see it (glibc keeps the kernel's first two).
const sigPoweroff = syscall.Signal(34 + 4)

// ErrKilled is returned (wrapped) by Poweroff when the machine did not
// shut down in time and was killed instead.
var ErrKilled = errors.New("did not power off in time; killed")

// Start boots the machine: systemd-nspawn with systemd as PID 1 in the
// machine's network namespace, console output appended to ConsoleLog. It
// returns once the container's PID 1 exists; use WaitBooted to wait for
// the boot. After Kill or Poweroff it boots again from the same disk.
func (m *Machine) Start(ctx context.Context) error {
	nspawn, err := lookPath("systemd-nspawn", "systemd-container")
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Init.alive() || m.st.NSpawn.alive() {
		return fmt.Errorf("machine %s is already running (nspawn PID %d)", m.spec.Name, m.st.NSpawn.PID)
	}
	if _, err := os.Stat(m.spec.Netns); err != nil {
		return fmt.Errorf("machine %s: network namespace %s is gone: %w", m.spec.Name, m.spec.Netns, err)
	}
	if err := m.mount(); err != nil {
		return err
	}
	console, err := os.OpenFile(m.ConsoleLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	fmt.Fprintf(console, "\n=== pgha: starting %s at %s ===\n", m.spec.Name, time.Now().UTC().Format(time.RFC3339))
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()

	cgroups, err := cgroupDirsFor(m.machineName())
	if err != nil {
		return fmt.Errorf("machine %s: %w", m.spec.Name, err)
	}
	for _, d := range cgroups {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("machine %s: creating its cgroup: %w", m.spec.Name, err)
		}
	}
	m.st.Cgroups = cgroups
	argv := inCgroups(cgroups, append([]string{nspawn}, m.nspawnArgs()...))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, console, console
	// A session of its own: the machine outlives the caller (the lab
	// command exits while its machines run) and no terminal signal
	// reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting systemd-nspawn for %s: %w", m.spec.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // reap it, so it never lingers as a zombie
	m.started = done
	np, err := procOf(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("systemd-nspawn for %s exited at once; see %s", m.spec.Name, m.ConsoleLog())
	}
	m.st.NSpawn, m.st.Init = np, proc{}

	// nspawn forks the container's PID 1 in a moment; it is what Kill
	// signals and what Exec enters.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if init, ok := containerInit(np.PID); ok {
			m.st.Init = init
			break
		}
		select {
		case <-done:
			return fmt.Errorf("machine %s stopped while starting: %s", m.spec.Name, m.consoleTail(8))
		case <-ctx.Done():
			m.killLocked()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.killLocked()
			return fmt.Errorf("machine %s: no container PID 1 after 30 s: %s", m.spec.Name, m.consoleTail(8))
		}
	}
	return m.save()
}

func (m *Machine) nspawnArgs() []string {
	args := []string{
		"-D", m.Root(),
		"-M", m.machineName(),
		"--hostname=" + m.spec.Name,
		"-b",
		// This host need not run systemd as PID 1, nor machined.
		"--register=no", "--keep-unit",
		"--network-namespace-path=" + m.spec.Netns,
		// The namespace is the machine's own, as an instance's network stack
		// is: its root may run nftables (validate's partition fault does).
		// nspawn withholds the capability unless asked.
		"--capability=CAP_NET_ADMIN",
		// Names resolve through the machine's /etc/hosts only.
		"--resolv-conf=off",
		"--timezone=off",
		"--link-journal=no",
		// SIGTERM to nspawn = poweroff, as an EC2 stop asks the OS to.
		"--kill-signal=SIGRTMIN+4",
		// A pty whose output nspawn copies to its stdout, the console log.
		"--console=read-only",
	}
	for _, d := range m.spec.Disks {
		args = append(args, "--bind="+d.Device+":"+d.Path)
	}
	return args
}

// machineName is nspawn's name for the machine: the node name plus a
// digest of the state directory, because nspawn keeps per-name state under
// /run/systemd/nspawn/ and two labs may both have a "pg-1".
func (m *Machine) machineName() string {
	sum := sha256.Sum256([]byte(m.spec.StateDir))
	return m.spec.Name + "-" + hex.EncodeToString(sum[:3])
}

// Running reports whether the machine's PID 1 runs.
func (m *Machine) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Init.alive()
}

// PID is the host PID of the machine's PID 1, or 0 when it is stopped.
func (m *Machine) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.st.Init.alive() {
		return 0
	}
	return m.st.Init.PID
}

// WaitBooted waits until systemd in the machine has reached
// multi-user.target (sshd and cloud-init's early stages are up; cloud-init's
// final stage, which runs the user data's packages and runcmd, comes after
// it), for at most timeout.
func (m *Machine) WaitBooted(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		if !m.Running() {
			return fmt.Errorf("machine %s stopped while booting: %s", m.spec.Name, m.consoleTail(8))
		}
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := m.Exec(qctx, "systemctl", "is-active", "multi-user.target")
		qcancel()
		state := strings.TrimSpace(string(out))
		if err == nil && state == "active" {
			return nil
		}
		if state == "failed" {
			return fmt.Errorf("machine %s: multi-user.target failed: %s", m.spec.Name, m.consoleTail(8))
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("machine %s did not boot within %s (multi-user.target %q): %s",
				m.spec.Name, timeout, last, m.consoleTail(8))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Exec runs a command inside the running machine (all its namespaces,
// its root, a clean root environment) and returns its combined output.
// The error says how it failed and includes the output's end.
func (m *Machine) Exec(ctx context.Context, args ...string) ([]byte, error) {
	return m.exec(ctx, nil, strings.Join(args, " "), args...)
}

// RunScript runs a shell script as root in the machine, like Exec. The
// script travels on stdin, as validate's RunRoot sends it over SSH: no
// process in the machine carries it on its command line (where a pgrep -f
// of the script would find its own shell).
func (m *Machine) RunScript(ctx context.Context, script string) ([]byte, error) {
	return m.exec(ctx, strings.NewReader(script), "a script", "sh", "-s")
}

func (m *Machine) exec(ctx context.Context, stdin io.Reader, what string, args ...string) ([]byte, error) {
	nsenter, err := lookPath("nsenter", "util-linux")
	if err != nil {
		return nil, err
	}
	pid := m.PID()
	if pid == 0 {
		return nil, fmt.Errorf("exec %s on %s: %w", what, m.spec.Name, errNotRunning)
	}
	argv := []string{"-t", fmt.Sprint(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--",
		"/usr/bin/env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "TERM=dumb"}
	cmd := exec.CommandContext(ctx, nsenter, append(argv, args...)...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &out
	// nsenter forks the command into the machine's PID namespace; a group
	// of their own lets a cancel kill both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s on %s: %w: %s", what, m.spec.Name, err, tail(out.String(), 600))
	}
	return out.Bytes(), nil
}

// Poweroff shuts the machine down cleanly (systemd stops every unit), for
// at most timeout; then it kills it and returns ErrKilled.
func (m *Machine) Poweroff(timeout time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.st.Init.alive() {
		return m.killLocked() // nspawn may linger after a crash
	}
	if m.st.NSpawn.alive() {
		_ = m.st.NSpawn.signal(syscall.SIGTERM) // nspawn passes SIGRTMIN+4 to PID 1
	} else {
		_ = m.st.Init.signal(sigPoweroff)
	}
	if m.waitStopped(timeout) {
		return removeCgroups(m.st.Cgroups)
	}
	if err := m.killLocked(); err != nil {
		return err
	}
	return fmt.Errorf("machine %s %w after %s", m.spec.Name, ErrKilled, timeout)
}

// Kill stops the machine at once, as a forced EC2 stop: SIGKILL to its PID
// 1 ends every process in its PID namespace together. The disk stays.
func (m *Machine) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.killLocked()
}

func (m *Machine) killLocked() error {
	if m.st.Init.PID == 0 && m.st.NSpawn.alive() {
		// Killed while nspawn was still forking: find PID 1 if it exists.
		if init, ok := containerInit(m.st.NSpawn.PID); ok {
			m.st.Init = init
		}
	}
	_ = m.st.Init.signal(syscall.SIGKILL)
	if !m.waitStopped(10 * time.Second) {
		// nspawn did not notice its container's end; end it too.
		_ = m.st.NSpawn.signal(syscall.SIGKILL)
		if !m.waitStopped(10 * time.Second) {
			return fmt.Errorf("machine %s: PID 1 %d or nspawn %d survived SIGKILL", m.spec.Name, m.st.Init.PID, m.st.NSpawn.PID)
		}
	}
	return removeCgroups(m.st.Cgroups)
}

// waitStopped waits until both PID 1 and nspawn are gone (nspawn reaped,
// when this process started it).
func (m *Machine) waitStopped(d time.Duration) bool {
	deadline := time.Now().Add(d)
	if !m.st.Init.waitGone(d) {
		return false
	}
	if m.started != nil {
		select {
		case <-m.started:
			return true
		case <-time.After(time.Until(deadline)):
			return false
		}
	}
	return m.st.NSpawn.waitGone(time.Until(deadline))
}

// consoleTail is the end of the console log, for error messages.
func (m *Machine) consoleTail(lines int) string {
	b, err := os.ReadFile(m.ConsoleLog())
	if err != nil {
		return "no console log"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return "console (" + m.ConsoleLog() + ") ends:\n" + strings.Join(ls, "\n")
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
