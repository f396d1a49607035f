package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/userdata"
)

func up(ctx context.Context, l *cluster.Lab, o *options, _ string) int {
	if _, err := userdata.LookupProfile(o.profile); err != nil {
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 2
	}
	mode := o.net
	if mode == "" && !l.Exists() {
		var why string
		mode, why = cluster.DefaultNet()
		fmt.Printf("network mode %s: %s\n", mode, why)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 1
	}
	uo := cluster.UpOptions{Profile: o.profile, SynchronousMode: o.sync, KeepOnFailure: o.keepOnFailure, Net: mode, Control: exe, Backups: o.backups, Workload: o.workload, PoolMode: o.poolMode}
	fmt.Printf("lab %q: starting (profile %s, synchronous_mode %v, network %s)\n", l.Name, uo.Profile, uo.SynchronousMode, uo.Net)
	res, err := l.Up(ctx, uo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 1
	}
	// validate acts out the lab's faults by running this command; it finds
	// it in the lab's directory, where it outlives a `go run` build.
	if err := l.InstallControl(exe); err != nil {
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 1
	}
	fmt.Printf("lab %q is up in %.1fs (leader %s)\n\n", l.Name, res.Total.Seconds(), res.Leader)
	if rows, err := l.Status(ctx); err == nil {
		cluster.PrintStatus(os.Stdout, rows)
	}
	switch {
	case l.Boot():
		fmt.Printf("\nthe nodes are booted machines; validate reaches them over SSH through haproxy-1, as on AWS\n")
	case l.Loopback():
		fmt.Printf("\nconnect (loopback mode: partition is not offered, since all nodes share this host's network stack):\n%s", l.ConnectHelp())
	default:
		fmt.Printf("\nconnect from the lab's client namespace:\n%s", l.ConnectHelp())
	}
	fmt.Printf("\nstack outputs (for go run ./validate --outputs): %s\n", l.OutputsFile())
	fmt.Printf("take it down with: go run ./lab down --name %s\n", l.Name)
	return 0
}

func down(ctx context.Context, l *cluster.Lab, o *options, _ string) int {
	if o.keepLogs != "" {
		if err := l.CopyLogs(o.keepLogs); err != nil {
			fmt.Fprintf(os.Stderr, "lab down: keeping the logs: %v\n", err)
			return 1
		}
		fmt.Printf("logs of lab %q kept in %s\n", l.Name, o.keepLogs)
	}
	rep, err := l.Down(ctx)
	fmt.Printf("lab %q: stopped %d processes in %.1fs\n", l.Name, rep.Stopped, rep.Duration.Seconds())
	for _, c := range rep.Checks {
		v := "ok  "
		if !c.OK {
			v = "FAIL"
		}
		fmt.Printf("  [%s] %s", v, c.Name)
		if c.Detail != "" {
			fmt.Printf(": %s", c.Detail)
		}
		fmt.Println()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab down: %v\n", err)
		return 1
	}
	fmt.Println("teardown verified: nothing of the lab is left")
	return 0
}

func status(ctx context.Context, l *cluster.Lab, _ *options, _ string) int {
	rows, err := l.Status(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab status:", err)
		return 1
	}
	fmt.Printf("lab %q (profile %s, synchronous_mode %v, network %s), state in %s\n\n", l.Name, l.Settings.Profile, l.Settings.SynchronousMode, l.Settings.Net, l.Dir)
	cluster.PrintStatus(os.Stdout, rows)
	fmt.Print(l.PoolerHelp())
	fmt.Printf("\nPostgreSQL's own logs: %s\n", l.PostgresLogs())
	if l.Monitored() {
		fmt.Print(l.MonitoringHelp(ctx))
	}
	if kb, n, err := l.Memory(); err == nil {
		fmt.Printf("\nmemory: %.0f MiB PSS over %d processes\n", float64(kb)/1024, n)
	}
	fmt.Printf("outputs: %s\n", l.OutputsFile())
	return 0
}

// printOutputs prints the outputs as `pulumi stack output --json
// --show-secrets` prints a stack's, with the cluster as it is now.
func printOutputs(ctx context.Context, l *cluster.Lab, _ *options, _ string) int {
	if !l.Exists() {
		fmt.Fprintf(os.Stderr, "lab outputs: lab %q is not up; start it with: go run ./lab up --name %s\n", l.Name, l.Name)
		return 1
	}
	s, err := l.Outputs(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab outputs:", err)
		return 1
	}
	b, err := s.JSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab outputs:", err)
		return 1
	}
	fmt.Print(string(b))
	return 0
}

func fault(ctx context.Context, l *cluster.Lab, o *options, node string) int {
	cmd := o.cmd
	act := map[string]func(context.Context, string) error{
		"kill": l.Kill, "kill-postgres": l.KillPostgres, "stop": l.Stop, "start": l.Start,
		"partition": l.Partition, "heal": l.Heal,
	}[cmd]
	t := time.Now()
	err := act(ctx, node)
	if cmd == "start" && errors.Is(err, cluster.ErrRunning) {
		// A restore after a fault that never took effect: nothing to do.
		fmt.Printf("start %s: %v; nothing to do\n", node, err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: %v\n", cmd, err)
		return 1
	}
	fmt.Printf("%s %s: done in %.2fs; watch it with: go run ./lab status --name %s\n", cmd, node, time.Since(t).Seconds(), l.Name)
	return 0
}

func bench(ctx context.Context, l *cluster.Lab, o *options, _ string) int {
	if o.net != "" && !l.Exists() {
		if err := l.SetNet(o.net); err != nil {
			fmt.Fprintln(os.Stderr, "lab bench:", err)
			return 2
		}
	}
	if o.runs < 1 {
		fmt.Fprintln(os.Stderr, "lab bench: --runs must be at least 1")
		return 2
	}
	if l.Exists() {
		fmt.Fprintf(os.Stderr, "lab bench: lab %q exists; bench builds and removes its own, so pick another name (e.g. --name pghabench) or run: go run ./lab down --name %s\n", l.Name, l.Name)
		return 1
	}
	if o.tuning {
		return benchTuning(ctx, l, o)
	}
	if o.net == cluster.NetBoot {
		return benchBoot(ctx, l, o.runs, o.profile, o.doc)
	}
	return benchLab(ctx, l, o.runs, o.profile, o.doc)
}

// standins is `lab aws-standin`: a booted lab's AWS stand-ins, until the
// lab goes down.
func standins(ctx context.Context, l *cluster.Lab, _ *options, _ string) int {
	if err := l.ServeStandins(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lab aws-standin:", err)
		return 1
	}
	return 0
}

func backupCmd(ctx context.Context, l *cluster.Lab, o *options, node string) int {
	switch o.backupType {
	case "full", "diff", "incr":
	default:
		fmt.Fprintf(os.Stderr, "lab backup: --type %q: use full, diff or incr\n", o.backupType)
		return 2
	}
	if _, err := l.PgBackRest(ctx, node, "--type="+o.backupType, "backup"); err != nil {
		fmt.Fprintln(os.Stderr, "lab backup:", err)
		return 1
	}
	out, err := l.PgBackRest(ctx, node, "info")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab backup:", err)
		return 1
	}
	os.Stdout.Write(out)
	return 0
}

func restoreDrill(ctx context.Context, l *cluster.Lab, o *options, node string) int {
	t, err := time.Parse(time.RFC3339Nano, o.target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab restore-drill: --target %q: give a time like %s\n", o.target, time.Now().UTC().Format(time.RFC3339Nano))
		return 2
	}
	out, err := l.RestoreDrill(ctx, node, t, o.database, o.query)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab restore-drill:", err)
		return 1
	}
	fmt.Println(out)
	return 0
}

// objectStore is `lab objectstore`: a lab's S3 endpoint, until the lab
// goes down.
func objectStore(ctx context.Context, l *cluster.Lab, _ *options, _ string) int {
	if err := l.ServeObjectStore(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lab objectstore:", err)
		return 1
	}
	return 0
}

func replace(ctx context.Context, l *cluster.Lab, o *options, node string) int {
	r, err := l.Replace(ctx, node, o.force)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab replace:", err)
		return 1
	}
	fmt.Printf("replace %s: old machine removed in %.1fs; new one ready %.1fs after launch; cluster whole (1 leader + 2 streaming, etcd 3/3) %.1fs after launch\n",
		node, r.Removed.Seconds(), r.Ready.Seconds(), r.Whole.Seconds())
	return 0
}

func rollLab(ctx context.Context, l *cluster.Lab, _ *options, _ string) int {
	t := time.Now()
	done, err := l.Roll(ctx)
	for _, d := range done {
		to := ""
		if d.To != "" {
			to = " → " + d.To
		}
		fmt.Printf("  %-28s started %s, took %.1fs\n", d.Step.String()+to, d.Start.UTC().Format(time.RFC3339Nano), d.Took.Seconds())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab roll:", err)
		return 1
	}
	fmt.Printf("roll: %d steps in %.1fs; the cluster is whole\n", len(done), time.Since(t).Seconds())
	return 0
}
