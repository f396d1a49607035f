// Package proc starts the lab's daemons detached from the caller and finds
// them again later, by PID, without ever touching a process the lab did not
// start: every recorded PID is checked against its start time and a marker
// in its command line (a path under the lab's state directory) first.
package proc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Record identifies one started process across invocations of the lab.
type Record struct {
	PID    int    `json:"pid"`
	Start  uint64 `json:"start"`  // start time in clock ticks since boot (/proc/PID/stat field 22)
	Marker string `json:"marker"` // must appear in /proc/PID/cmdline
	Log    string `json:"log"`
}

// Spec is how to start a daemon.
type Spec struct {
	Argv   []string
	Env    []string // the complete environment; nothing is inherited
	Dir    string
	Log    string // stdout and stderr are appended here
	Marker string // a string the daemon's command line keeps after every exec
}

// Start launches the daemon in a session of its own, so it outlives the
// caller and no terminal signal reaches it. The returned record is what
// Alive, Signal and Stop check before acting.
func Start(s Spec) (Record, error) {
	if err := os.MkdirAll(filepath.Dir(s.Log), 0o755); err != nil {
		return Record{}, err
	}
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Record{}, err
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return Record{}, err
	}
	defer devnull.Close()
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = s.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Record{}, fmt.Errorf("starting %s: %w", s.Argv[0], err)
	}
	// Reap it if it exits while we are still running (tests, validate), so
	// it does not linger as a zombie that looks alive.
	go func() { _ = cmd.Wait() }()
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		return Record{}, fmt.Errorf("%s exited at once; see %s", s.Argv[0], s.Log)
	}
	return Record{PID: cmd.Process.Pid, Start: st, Marker: s.Marker, Log: s.Log}, nil
}

// Adopt records a process someone else started (the postmaster, which
// Patroni spawns), after checking that its command line holds marker.
func Adopt(pid int, marker string) (Record, error) {
	st, err := startTime(pid)
	if err != nil {
		return Record{}, err
	}
	r := Record{PID: pid, Start: st, Marker: marker}
	if !r.Alive() {
		return Record{}, fmt.Errorf("process %d is not %q", pid, marker)
	}
	return r, nil
}

// Alive reports whether the recorded process still runs (zombies do not
// count) and is still the one that was recorded.
func (r Record) Alive() bool {
	if r.PID <= 0 {
		return false
	}
	st, state, err := stat(r.PID)
	if err != nil || st != r.Start || state == "Z" || state == "X" {
		return false
	}
	return r.Marker == "" || strings.Contains(cmdline(r.PID), r.Marker)
}

// cmdline reads /proc/PID/cmdline. It is briefly empty while a process is
// inside execve (exec.Cmd.Start returns at that point), so an empty answer
// is retried for a moment before it is believed.
func cmdline(pid int) string {
	for i := 0; ; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return ""
		}
		if len(b) > 0 || i == 40 {
			return string(b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Signal sends sig if the process is alive and still ours.
func (r Record) Signal(sig syscall.Signal) error {
	if !r.Alive() {
		return nil
	}
	return syscall.Kill(r.PID, sig)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL and waits for exit.
func (r Record) Stop(grace time.Duration) error {
	if !r.Alive() {
		return nil
	}
	_ = r.Signal(syscall.SIGTERM)
	if waitGone(r, grace) {
		return nil
	}
	_ = r.Signal(syscall.SIGKILL)
	if waitGone(r, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d (%s) survived SIGKILL", r.PID, r.Marker)
}

// Kill sends SIGKILL and waits for the process to go.
func (r Record) Kill() error {
	if !r.Alive() {
		return nil
	}
	_ = r.Signal(syscall.SIGKILL)
	if waitGone(r, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d (%s) survived SIGKILL", r.PID, r.Marker)
}

// Wait waits up to d for the process to exit.
func (r Record) Wait(d time.Duration) bool { return waitGone(r, d) }

func waitGone(r Record, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !r.Alive() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Save writes records as JSON.
func Save(path string, recs map[string]Record) error {
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load reads records written by Save; a missing file is an empty set.
func Load(path string) (map[string]Record, error) {
	recs := map[string]Record{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return recs, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}

// PostmasterPID reads the first line of data_dir/postmaster.pid.
func PostmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

func startTime(pid int) (uint64, error) {
	st, _, err := stat(pid)
	return st, err
}

// stat returns the start time and state letter of pid.
func stat(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// The command name in parentheses may contain spaces; fields after the
	// last ')' are fixed: state is field 3, starttime field 22.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return st, f[0], err
}

// PPIDs maps every live PID to its parent.
func PPIDs() map[int]int {
	out := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		out[pid] = pp
	}
	return out
}

// WithDescendants returns roots and every process below them.
func WithDescendants(roots []int) []int {
	pp := PPIDs()
	children := map[int][]int{}
	for pid, parent := range pp {
		children[parent] = append(children[parent], pid)
	}
	seen := map[int]bool{}
	var out []int
	var walk func(int)
	walk = func(p int) {
		if seen[p] {
			return
		}
		seen[p] = true
		if _, ok := pp[p]; !ok {
			return
		}
		out = append(out, p)
		for _, c := range children[p] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// PSSKiB is the proportional set size of pid in KiB, from smaps_rollup.
func PSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Pss:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}

// InNetns lists the live processes whose network namespace has one of the
// given inodes: whatever still runs inside the lab's namespaces.
func InNetns(inodes map[uint64]bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st); err != nil {
			continue
		}
		if inodes[st.Ino] {
			if _, state, err := stat(pid); err == nil && state != "Z" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// CmdlineContains lists live processes whose command line holds s.
func CmdlineContains(s string) []int {
	var out []int
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		if _, state, err := stat(pid); err == nil && state != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// CwdUnder lists live processes running exe (a full path) whose working
// directory is dir or below it. PostgreSQL backends run in their data
// directory with a command line that names neither it nor the lab, so this
// is how a loopback lab, which has no namespace to search, finds backends
// that outlived a killed postmaster. Only processes the caller may inspect
// are seen.
func CwdUnder(exe, dir string) []int {
	var out []int
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		x, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || x != exe {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || (cwd != dir && !strings.HasPrefix(cwd, dir+"/")) {
			continue
		}
		if _, state, err := stat(pid); err == nil && state != "Z" {
			out = append(out, pid)
		}
	}
	return out
}
