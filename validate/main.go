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
	"sort"
	"strings"
	"syscall"
)

// subcommand is a mode of validate other than the default run of checks.
type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// subcommands are registered from init functions in their own files, so new
// modes (teardown on AWS, scenarios, benchmarks) add a file and touch nothing
// here.
var subcommands = map[string]subcommand{}

func register(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	subcommands[name] = subcommand{summary: summary, run: run}
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
		sc, ok := subcommands[name]
		if !ok {
			fmt.Fprintf(stderr, "validate: unknown subcommand %q; run `validate help` to list them\n", name)
			return 2
		}
		return sc.run(ctx, args[1:], stdout, stderr)
	}
	return runChecks(ctx, args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: validate [flags]            run the checks (validate -h for flags)")
	var names []string
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "       validate %-20s %s\n", n+" ...", subcommands[n].summary)
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
