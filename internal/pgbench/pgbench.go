// Package pgbench runs PostgreSQL 15's pgbench from a network namespace,
// where an application host would be, and reads the throughput it prints.
// validate's bench and the lab's tuning bench both use it; how each
// reaches and trusts the cluster (the environment) and what it measures
// stay with them.
package pgbench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Path is PostgreSQL 15's pgbench as Debian installs it (not on PATH,
// which has only the version-independent wrappers).
const Path = "/usr/lib/postgresql/15/bin/pgbench"

// Client is pgbench as one database user, run in a network namespace.
type Client struct {
	Namespace string
	User      string
	Password  string
	Database  string
	// Env is the rest of pgbench's environment: PATH, TLS mode and root
	// certificate, connect timeout. Run adds the password and the
	// application name.
	Env []string
}

// Run executes pgbench against host:port with args and returns its
// output. The password travels in the environment, never on the command
// line, where any process on the machine could read it.
func (c Client) Run(ctx context.Context, host string, port int, args ...string) (string, error) {
	cmd := c.command(ctx, host, port, args)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		// Both the exit (a kill by ctx shows only there) and pgbench's
		// own last word (the connection or SQL error).
		if last := lastLine(out.String()); last != "" {
			err = fmt.Errorf("%w: %s", err, last)
		}
		return out.String(), fmt.Errorf("pgbench %s against %s:%d: %w", strings.Join(args, " "), host, port, err)
	}
	return out.String(), nil
}

// command is what Run starts: ip, so that pgbench runs in the namespace,
// and the database last, after the options.
func (c Client) command(ctx context.Context, host string, port int, args []string) *exec.Cmd {
	argv := append([]string{"netns", "exec", c.Namespace, Path,
		"-h", host, "-p", strconv.Itoa(port), "-U", c.User}, args...)
	cmd := exec.CommandContext(ctx, "ip", append(argv, c.Database)...)
	cmd.Env = append(slices.Clip(c.Env), "PGPASSWORD="+c.Password, "PGAPPNAME=pgha-bench")
	return cmd
}

// TPS runs a timed pgbench and returns its throughput.
func (c Client) TPS(ctx context.Context, host string, port int, args ...string) (float64, error) {
	out, err := c.Run(ctx, host, port, args...)
	if err != nil {
		return 0, err
	}
	return ParseTPS(out)
}

var tpsRE = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// ParseTPS reads the throughput pgbench 15 prints without connection
// set-up: TLS handshakes would charge a proxy, or a tuning that does not
// touch them, unfairly.
func ParseTPS(out string) (float64, error) {
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		last := lastLine(out)
		if last == "" {
			last = "no output"
		}
		return 0, fmt.Errorf("pgbench printed no \"tps = … (without initial connection time)\" line: %s", last)
	}
	return strconv.ParseFloat(m[1], 64)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
