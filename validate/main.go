// Command validate proves that a pgha cluster is highly available: etcd and
// Patroni formation, HAProxy routing, replication, a controlled switchover
// and an automatic failover, the last two under live write and read traffic
// with every acknowledged write accounted for. It leaves a report behind.
//
//	go run ./validate --outputs /path/to/outputs.json
//	go run ./validate --stack dev --only etcd,formation,routing
//	go run ./validate <subcommand> ...
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/pgha/pgha/validate/internal/teardown"
)

// subcommand is a mode of validate other than the default run of checks.
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// subcommands, as `validate help` lists them.
var subcommands = []subcommand{
	{"bench", "benchmark switchover and failovers per profile on fresh labs; writes docs/benchmarks.md", runBench},
	{"judge", "judge a saved report.json again from its evidence alone, without a cluster", runJudge},
	{"roll", "replace an AWS stack's nodes one at a time (a new image), the cluster whole between nodes", runRoll},
	{"switchover", "hand the leader role to a replica, the poolers' clients held (a stall, not an error)", runSwitchover},
	{"teardown", "after `pulumi destroy`, list anything of the stack left in AWS (exit 1 if any)", teardown.Main},
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	// Ctrl-C cancels the context; whatever was broken is then restored with
	// a fresh one (see restorer).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name := args[0]
		if name == "help" {
			usage(stdout)
			return 0
		}
		i := slices.IndexFunc(subcommands, func(s subcommand) bool { return s.name == name })
		if i < 0 {
			fmt.Fprintf(stderr, "validate: unknown subcommand %q; run `validate help` to list them\n", name)
			return 2
		}
		return subcommands[i].run(ctx, args[1:], stdout, stderr)
	}
	return runChecks(ctx, args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: validate [flags]            run the checks (validate -h for flags)")
	for _, sc := range subcommands {
		fmt.Fprintf(w, "       validate %-20s %s\n", sc.name+" ...", sc.summary)
	}
}

// userError is a problem with the input: printed as one line, exit 2.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

func userErrorf(format string, a ...any) error { return userError{fmt.Errorf(format, a...)} }

func isUserError(err error) bool {
	var u userError
	return errors.As(err, &u)
}
