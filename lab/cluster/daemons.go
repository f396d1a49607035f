package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/proc"
)

// pgBinDir is Debian's PostgreSQL 15 location (Patroni's bin_dir).
const pgBinDir = "/usr/lib/postgresql/15/bin"

const basePath = pgBinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookBin finds a program in the caller's PATH or, failing that, in
// basePath: a user's PATH often lacks /usr/sbin, where haproxy lives.
func lookBin(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	if strings.Contains(bin, "/") {
		return "", fmt.Errorf("%s not found", bin)
	}
	for _, d := range filepath.SplitList(basePath) {
		p := filepath.Join(d, bin)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", bin, basePath)
}

// readEnvFile parses KEY=VALUE lines (the secrets env file).
func readEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, "=") {
			return nil, fmt.Errorf("%s: line without '=': the secrets file is damaged", path)
		}
		env = append(env, line)
	}
	return env, sc.Err()
}

// daemonSpec is how a node's daemon is launched: inside the node's network
// namespace, as the daemon's user, with a clean environment (HOME is never
// /root) plus the node's secrets, logging to the node's own file.
func (l *Lab) daemonSpec(n topology.Node) (proc.Spec, error) {
	p := l.Paths(n.Name)
	// In a loopback lab the node is its address on the host's lo, and
	// the daemon binds it from its rendered files; no namespace to enter.
	var inNode []string
	if !l.Loopback() {
		inNode = []string{"ip", "netns", "exec", l.Namespace(n.Name)}
	}
	env := []string{"PATH=" + basePath, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
	secrets, err := readEnvFile(p.SecretsEnvFile)
	if err != nil {
		return proc.Spec{}, err
	}
	asUser := func(u string) []string {
		if l.Unprivileged() {
			return nil // everything runs as the invoking user
		}
		return []string{"setpriv", "--reuid=" + u, "--regid=" + u, "--init-groups", "--"}
	}
	s := proc.Spec{Env: env, Log: l.DaemonLog(n.Name), Dir: "/"}
	switch n.Role {
	case topology.RoleEtcd:
		s.Env = append(s.Env, "HOME="+p.EtcdDataDir)
		s.Argv = append(append(inNode, asUser("etcd")...), "etcd", "--config-file", p.EtcdConfigFile)
		s.Marker = p.EtcdConfigFile
	case topology.RolePatroni:
		user := "postgres"
		if u, err := osuser.Current(); err == nil && l.Unprivileged() {
			user = u.Username
		}
		// pgha's fix to Patroni 3.0.2, as Patroni's unit sets it on a node.
		s.Env = append(append(s.Env, "HOME="+l.NodeDir(n.Name)+"/home", "USER="+user, "PYTHONPATH="+p.PythonPath), secrets...)
		s.Argv = append(append(inNode, asUser("postgres")...), "patroni", p.PatroniConfigFile)
		s.Marker = p.PatroniConfigFile
		s.Dir = l.NodeDir(n.Name) + "/home"
	case topology.RoleHAProxy:
		s.Env = append(append(s.Env, "HOME=/"), secrets...)
		// -db: stay in the foreground, so the recorded PID is HAProxy's.
		s.Argv = append(inNode, "haproxy", "-db", "-f", p.HAProxyConfigFile)
		s.Marker = p.HAProxyConfigFile
	}
	return s, nil
}

// ErrRunning is returned by Start for a node whose daemon already runs;
// restoring code can treat it as success with errors.Is.
var ErrRunning = errors.New("already running")

// startDaemon starts a node's daemon unless it already runs.
func (l *Lab) startDaemon(n topology.Node) error {
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	recs, err := l.records()
	if err != nil {
		return err
	}
	if r, ok := recs[n.Name]; ok && r.Alive() {
		return fmt.Errorf("%s: %w (pid %d)", n.Name, ErrRunning, r.PID)
	}
	if n.Role == topology.RolePatroni {
		// A postmaster left from a kill of Patroni alone must not meet a
		// second one on the same data directory.
		if pm, ok := l.postmaster(n.Name); ok {
			return fmt.Errorf("%s: PostgreSQL (pid %d) still runs without Patroni; stop it first with: go run ./lab kill --name %s %s", n.Name, pm.PID, l.Name, n.Name)
		}
	}
	s, err := l.daemonSpec(n)
	if err != nil {
		return err
	}
	// Resolved here, since exec looks programs up in our PATH, not in
	// the daemon's.
	if p, err := lookBin(s.Argv[0]); err == nil {
		s.Argv[0] = p
	}
	fmt.Fprintf(logAppender(s.Log), "---- %s lab: starting %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(s.Argv, " "))
	r, err := proc.Start(s)
	if err != nil {
		return err
	}
	if err := l.saveRecord(n.Name, r); err != nil {
		return err
	}
	if n.Role == topology.RoleHAProxy && !l.Boot() {
		return l.startPooler(n) // the node's PgBouncer, pooler.go
	}
	return nil
}

type appendFile string

func (a appendFile) Write(p []byte) (int, error) {
	f, err := os.OpenFile(string(a), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Write(p)
}

func logAppender(path string) appendFile { return appendFile(path) }

// postmaster finds the node's running postmaster from postmaster.pid; the
// data directory in its command line proves it is this node's.
func (l *Lab) postmaster(node string) (proc.Record, bool) {
	dd := l.Paths(node).PGDataDir
	pid, err := proc.PostmasterPID(dd)
	if err != nil {
		return proc.Record{}, false
	}
	r, err := proc.Adopt(pid, dd)
	if err != nil {
		return proc.Record{}, false
	}
	return r, true
}

// nodeRecords are the processes of a node that are alive: its daemon and,
// on PostgreSQL nodes, the postmaster.
func (l *Lab) nodeRecords(node string) []proc.Record {
	var out []proc.Record
	recs, _ := l.records()
	if r, ok := recs[node]; ok && r.Alive() {
		out = append(out, r)
	}
	if pm, ok := l.postmaster(node); ok {
		out = append(out, pm)
	}
	if pb, ok := l.pooler(node); ok {
		out = append(out, pb)
	}
	return out
}

// Running reports whether the node's daemon runs.
func (l *Lab) Running(node string) bool {
	recs, _ := l.records()
	r, ok := recs[node]
	return ok && r.Alive()
}

// stopNode stops a node cleanly: SIGTERM to the daemon (Patroni then stops
// PostgreSQL itself), SIGKILL after grace; then any postmaster left over.
func (l *Lab) stopNode(node string, grace time.Duration) error {
	recs, _ := l.records()
	var errs []string
	// An HAProxy node's PgBouncer first: clients come through it.
	if r, ok := recs[poolerRecord(node)]; ok {
		if err := r.Stop(grace); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if r, ok := recs[node]; ok {
		if err := r.Stop(grace); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if pm, ok := l.postmaster(node); ok {
		if err := pm.Stop(grace); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// killNode is a crash: SIGKILL the daemon and the postmaster at once.
func (l *Lab) killNode(node string) error {
	rs := l.nodeRecords(node)
	for _, r := range rs {
		_ = r.Signal(syscall.SIGKILL)
	}
	for _, r := range rs {
		if err := r.Kill(); err != nil {
			return err
		}
	}
	return nil
}
