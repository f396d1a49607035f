package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// PgbenchPath is PostgreSQL 15's pgbench as Debian installs it (it is not on
// PATH, which only has the version-independent wrappers).
const PgbenchPath = "/usr/lib/postgresql/15/bin/pgbench"

// Pgbench runs pgbench inside a network namespace (the lab's client), so it
// reaches the cluster the way an application host would.
type Pgbench struct {
	Namespace string
	User      string
	Password  string
	Database  string
}

// Run executes pgbench against host:port with args and returns its output.
// TLS is required, as the cluster's pg_hba demands; the password travels in
// the environment, never on the command line.
func (p Pgbench) Run(ctx context.Context, host string, port int, args ...string) (string, error) {
	full := append([]string{"netns", "exec", p.Namespace, PgbenchPath,
		"-h", host, "-p", strconv.Itoa(port), "-U", p.User}, args...)
	full = append(full, p.Database)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+p.Password, "PGSSLMODE=require", "PGCONNECT_TIMEOUT=5",
		"PGAPPNAME=pgha-bench")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("pgbench %s against %s:%d: %v: %s", strings.Join(args, " "), host, port, err, lastLine(out.String()))
	}
	return out.String(), nil
}

// TPS runs a timed pgbench and returns its throughput.
func (p Pgbench) TPS(ctx context.Context, host string, port int, args ...string) (float64, error) {
	out, err := p.Run(ctx, host, port, args...)
	if err != nil {
		return 0, err
	}
	return ParseTPS(out)
}

var tpsRE = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// ParseTPS reads the throughput pgbench 15 prints, excluding connection
// set-up (which would charge TLS handshakes to the proxy unfairly).
func ParseTPS(out string) (float64, error) {
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no \"tps = … (without initial connection time)\" line: %s", lastLine(out))
	}
	return strconv.ParseFloat(m[1], 64)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
