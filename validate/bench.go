package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/benchdoc"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/userdata"
	"github.com/pgha/pgha/validate/internal/bench"
	"github.com/pgha/pgha/validate/internal/judge"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// `validate bench` repeats the switchover and failover checks on a fresh lab
// per failure-time profile and writes the distributions to the benchmark
// page. It runs the very checks `validate` runs, so a benchmark figure and a
// validation verdict always mean the same thing.
type benchOptions struct {
	profiles []string
	kinds    []string
	runs     int
	sync     bool
	boot     bool
	prefix   string
	doc      string
	svg      string
	jsonOut  string
	pgSecs   int
	pgRounds int
	keep     bool
	merge    string
	render   string
	logs     string
	lab      string

	// --backups: the backup and restore figures instead.
	backups     bool
	scale       int
	lagWindow   time.Duration
	pgbenchLoad time.Duration
}

func parseBenchOptions(args []string, stderr io.Writer) (*benchOptions, error) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("validate bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profiles := fs.String("profiles", "fast,balanced,safe", "failure-time `profiles` to benchmark, comma-separated")
	kinds := fs.String("kinds", strings.Join(bench.Kinds(), ","), "trial `kinds`, comma-separated")
	fs.IntVar(&o.runs, "runs", 5, "repetitions of each kind per profile")
	fs.BoolVar(&o.sync, "sync", true, "synchronous mode on the labs (--sync=false for asynchronous)")
	fs.BoolVar(&o.boot, "boot", false, "booted labs (lab up --boot): Debian 12 machines booting their user data, faults through the AWS path; the page section is \""+bench.BootHeading+"\"")
	fs.StringVar(&o.prefix, "name", "", "lab name `prefix` (default: bench plus a unique suffix); each profile's lab adds its initial")
	fs.StringVar(&o.doc, "doc", "docs/benchmarks.md", "markdown `file` whose \""+bench.Heading+"\" section is written (\"\" for none)")
	fs.StringVar(&o.svg, "svg", "", "chart `file` (default: benchmarks.svg next to --doc)")
	fs.StringVar(&o.jsonOut, "json", "", "also write every trial as JSON to this `file`")
	fs.IntVar(&o.pgSecs, "pgbench-seconds", 15, "length of each pgbench run for HAProxy's and the pooler's cost (0 skips them)")
	fs.IntVar(&o.pgRounds, "pgbench-rounds", 2, "pgbench runs each way (via 5000 and direct; via the pooler and via 5000), alternating")
	fs.BoolVar(&o.keep, "keep", false, "leave the labs up afterwards")
	fs.StringVar(&o.logs, "keep-logs", "", "before rebuilding a lab after a failed run, copy its nodes' logs under this `dir`")
	fs.StringVar(&o.render, "render", "", "run nothing: only write the page section and chart again from this `file` (an earlier --json)")
	fs.StringVar(&o.lab, "lab", "", "the lab command to run (default: go build ./lab from this repository)")
	fs.StringVar(&o.merge, "merge", "", "JSON `file` of an earlier bench (--json): keep its trials of the profiles and kinds not run now, and its pgbench figures unless measured now")
	fs.BoolVar(&o.backups, "backups", false, "instead: on a lab with backups, a pgbench database's full backup, restore and point-in-time restore times and the archive lag; the page section is \""+backupBenchHeading+"\"")
	fs.IntVar(&o.scale, "scale", 50, "--backups: pgbench -i scale (50 is about 750 MB)")
	fs.DurationVar(&o.lagWindow, "lag-window", 3*time.Minute, "--backups: how long the validate writer runs while the archive lag is sampled")
	fs.DurationVar(&o.pgbenchLoad, "pgbench-load", time.Minute, "--backups: pgbench traffic before the point-in-time target, the archive lag sampled meanwhile")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: validate bench [flags]   (as root; builds and removes its own labs)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, userErrorf("unexpected argument %q", fs.Arg(0))
	}
	for _, p := range splitList(*profiles) {
		if _, err := userdata.LookupProfile(p); err != nil {
			return nil, userErrorf("--profiles: %v", err)
		}
		o.profiles = append(o.profiles, p)
	}
	for _, k := range splitList(*kinds) {
		if !slices.Contains(bench.Kinds(), k) {
			return nil, userErrorf("--kinds: unknown kind %q; use %s", k, strings.Join(bench.Kinds(), ", "))
		}
		o.kinds = append(o.kinds, k)
	}
	if len(o.profiles) == 0 || len(o.kinds) == 0 {
		return nil, userErrorf("--profiles and --kinds must name at least one each")
	}
	if o.runs < 1 {
		return nil, userErrorf("--runs must be at least 1, got %d", o.runs)
	}
	if o.pgSecs < 0 || o.pgRounds < 1 {
		return nil, userErrorf("--pgbench-seconds must be 0 or more and --pgbench-rounds at least 1")
	}
	if o.backups && (o.scale < 1 || o.lagWindow <= 0 || o.pgbenchLoad < time.Second) {
		return nil, userErrorf("--scale must be at least 1, --lag-window positive and --pgbench-load at least 1s")
	}
	if o.prefix == "" {
		// Unique per run, short enough for namespace names.
		o.prefix = "bench" + strconv.FormatInt(time.Now().Unix()%(36*36*36*36), 36)
	}
	if o.svg == "" && o.doc != "" {
		name := "benchmarks.svg"
		if o.boot {
			name = "benchmarks-boot.svg"
		}
		o.svg = filepath.Join(filepath.Dir(o.doc), name)
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseBenchOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 2
	}
	if o.render != "" {
		return renderBench(o, stdout, stderr)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "validate bench: run as root: it builds labs of network namespaces")
		return 2
	}
	if o.backups {
		return runBackupBench(ctx, o, stdout, stderr)
	}
	res := bench.Result{Started: time.Now(), Runs: o.runs, Sync: o.sync, Boot: o.boot, Profiles: o.profiles, Kinds: o.kinds,
		Command: reproduceBench(o)}
	res.Machine = bench.Machine{CPUs: runtime.NumCPU(), Kernel: kernel(), LoadBefore: loadAvg()}
	var prev *bench.Result
	if o.merge != "" {
		b, err := os.ReadFile(o.merge)
		if err != nil {
			fmt.Fprintf(stderr, "validate bench: --merge: %v\n", err)
			return 2
		}
		prev = &bench.Result{}
		if err := json.Unmarshal(b, prev); err != nil {
			fmt.Fprintf(stderr, "validate bench: --merge %s: not a bench JSON file: %v\n", o.merge, err)
			return 2
		}
	}
	tmp, err := os.MkdirTemp("", "pgha-bench")
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	lab, err := newLabCmd(ctx, o.lab, tmp, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 2
	}
	failed := false
	for _, p := range o.profiles {
		if ctx.Err() != nil {
			break
		}
		if err := benchProfile(ctx, o, lab, p, &res, stdout); err != nil {
			failed = true
			msg := fmt.Sprintf("profile %s: %v", p, err)
			res.Notes = append(res.Notes, msg)
			fmt.Fprintf(stderr, "validate bench: %s\n", msg)
		}
	}
	res.Finished = time.Now()
	res.Machine.LoadAfter = loadAvg()
	if prev != nil {
		res = bench.Merge(*prev, res)
	}
	for _, t := range res.Trials {
		if !t.OK() {
			failed = true
		}
	}

	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, bench.Markdown(res, filepath.Base(o.svg)))
	fmt.Fprintln(stdout)
	if err := writePage(o, res, stdout); err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "validate bench: %v\n", err)
			return 1
		}
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "validate bench: %v\n", err)
			return 1
		}
	}
	switch {
	case ctx.Err() != nil:
		return 130
	case failed:
		return 1
	}
	return 0
}

// renderBench writes the page section and the chart from an earlier run's
// JSON, e.g. after a change to the rendering; it measures nothing.
func renderBench(o *benchOptions, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(o.render)
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: --render: %v\n", err)
		return 2
	}
	var res bench.Result
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(stderr, "validate bench: --render %s: not a bench JSON file: %v\n", o.render, err)
		return 2
	}
	if err := writePage(o, res, stdout); err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	return 0
}

// writePage writes the bench's section of the --doc page and the --svg
// chart, each where set.
func writePage(o *benchOptions, res bench.Result, stdout io.Writer) error {
	if o.doc != "" {
		if err := benchdoc.WriteSection(o.doc, bench.HeadingOf(res), bench.Markdown(res, filepath.Base(o.svg))); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "written: %s\n", o.doc)
	}
	if o.svg != "" {
		if err := os.WriteFile(o.svg, bench.SVG(res), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "written: %s\n", o.svg)
	}
	return nil
}

// benchProfile builds a lab with the profile, runs every trial on it, and
// removes it again.
func benchProfile(ctx context.Context, o *benchOptions, lab labCmd, profile string, res *bench.Result, out io.Writer) (err error) {
	name := o.prefix + profile[:1]
	if lab.exists(ctx, name) {
		return fmt.Errorf("lab %q exists; pick another --name or run: go run ./lab down --name %s", name, name)
	}
	var s outputs.Stack
	var dial access.DialFunc
	var vo *options
	up := func() error {
		fmt.Fprintf(out, "bench: lab %s, profile %s, synchronous mode %v\n", name, profile, o.sync)
		if s, err = lab.up(ctx, name, profile, o.sync, o.boot); err != nil {
			return err
		}
		if dial, err = dialerFor(s); err != nil {
			return err
		}
		vo, err = parseOptions(nil, io.Discard)
		return err
	}
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if derr := lab.down(dctx, name, ""); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	if err := up(); err != nil {
		return err
	}
	for run := 1; run <= o.runs; run++ {
		for _, kind := range o.kinds {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t := benchTrial(ctx, s, *vo, dial, profile, kind, run, out)
			res.Trials = append(res.Trials, t)
			fmt.Fprintf(out, "bench: %s %s run %d/%d: outage %.2fs, reads failed %.0f, rejoin %.2fs, lost %.0f, split-brain %d/%d, load %.1f %s\n",
				profile, kind, run, o.runs, t.Outage, t.ReadsFailed, t.Rejoin, t.Lost, t.SplitBrain, t.SplitBrainPolls, t.Load1, okText(t))
			fmt.Fprintf(out, "bench: %s %s run %d/%d: direct writes failed %.0f, longest %.2fs; through the pooler failed %.0f, longest %.2fs, outage %.2fs, pooler stall %.2fs\n",
				profile, kind, run, o.runs, t.WritesFailed, t.LongestWrite, t.PooledWritesFailed, t.PooledLongestWrite, t.PooledOutage, t.PoolerStall)
			last := run == o.runs && kind == o.kinds[len(o.kinds)-1]
			if !t.OK() && ctx.Err() == nil && !last {
				// A failed trial may leave the cluster unhealthy, and every
				// later trial would then only be refused. Start again from
				// a fresh lab, and say so on the page.
				res.Notes = append(res.Notes, fmt.Sprintf("the %s lab was rebuilt after %s run %d failed", profile, kind, run))
				keep := ""
				if o.logs != "" {
					keep = filepath.Join(o.logs, fmt.Sprintf("%s-%s-%s-run%d", name, profile, kind, run))
				}
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				derr := lab.down(dctx, name, keep)
				cancel()
				if derr != nil {
					return fmt.Errorf("lab down before the rebuild: %w", derr)
				}
				if err := up(); err != nil {
					return err
				}
			}
		}
	}
	if o.pgSecs > 0 && res.Costs == nil && ctx.Err() == nil {
		costs, err := haproxyCost(ctx, probe.New(s, dial), s, o, out)
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("HAProxy cost on the %s lab: %v", profile, err))
		} else {
			res.Costs, res.CostProfile = costs, profile
		}
	}
	if o.pgSecs > 0 && res.PoolerCosts == nil && s.PoolerEndpoint != nil && ctx.Err() == nil {
		cost, err := poolerCost(ctx, s, o, out)
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("the pooler's cost on the %s lab: %v", profile, err))
		} else {
			res.PoolerCosts, res.PoolerCostProfile = []bench.PoolerCost{cost}, profile
		}
	}
	return nil
}

func okText(t bench.Trial) string {
	if t.OK() {
		return "ok"
	}
	return "FAILED: " + strings.Join(t.Problems, "; ")
}

// benchStory is the story a trial kind runs: exactly validate's checks
// (and, for a crash of PostgreSQL alone, the resilience scenario, since
// Patroni then restarts it in place rather than failing over).
func benchStory(kind string) scenario.Scenario {
	switch kind {
	case bench.Switchover:
		return scenario.Switchover("")
	case bench.PGCrash:
		sc, _ := scenario.Get("postgres-crash")
		return sc
	}
	return scenario.Failover(kind)
}

// benchTrial runs one trial through the one engine and reads its figures.
func benchTrial(ctx context.Context, s outputs.Stack, vo options, dial access.DialFunc, profile, kind string, run int, out io.Writer) bench.Trial {
	t := bench.Trial{Profile: profile, Kind: kind, Run: run, At: time.Now().UTC(), Load1: loadAvg()[0]}
	e := newEnv(s, &vo, dial, out)
	// A fresh run id per trial keeps each trial's rows apart in the table.
	e.runID = fmt.Sprintf("b%s%d%s", kind[:1], run, strconv.FormatInt(time.Now().UnixNano(), 36))
	c := &checkRun{Check: report.Check{Name: kind, Started: time.Now()}, e: e}
	if kind == bench.Switchover && s.SynchronousMode {
		waitSyncKey(ctx, e)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				c.failf("internal error: %v", p)
			}
		}()
		e.story(ctx, benchStory(kind), c)
	}()
	c.Problems = append(c.Problems, e.restore.all()...)
	return trialFigures(t, c.Check)
}

// trialFigures reads a trial's figures out of the check that ran it, and
// its problems; a figure the check did not report is NaN (not measured).
func trialFigures(t bench.Trial, c report.Check) bench.Trial {
	fig := func(key string) float64 {
		if f, ok := c.Figure(key); ok {
			return f.Value
		}
		return math.NaN()
	}
	// The goal is about the write gap for a switchover, and about the RTO
	// for a failover; the engine reports an RTO only for a gap of a second
	// or more.
	t.Outage, t.Rejoin = fig("rto_s"), fig("recovered_s")
	if t.Kind == bench.Switchover {
		t.Outage, t.Rejoin = fig("write_gap_s"), fig("rejoin_s")
	} else if math.IsNaN(t.Outage) {
		t.Outage = fig("write_gap_s")
	}
	t.WriteGap = fig("write_gap_s")
	t.ReadsFailed = fig("reads_failed")
	t.ReadsTotal = fig("reads_total")
	t.Acked = fig("acked_writes")
	t.Lost = fig("lost_writes")
	t.LostOnLeader = fig("lost_on_leader")
	if n := fig("split_brain_instants"); !math.IsNaN(n) {
		t.SplitBrain = int(n)
	}
	if n := fig("primary_polls"); !math.IsNaN(n) {
		t.SplitBrainPolls = int(n)
	}

	// The clients' view: the direct writer's and the pooled writer's.
	t.WritesFailed = fig("writes_failed")
	t.LongestWrite = fig("longest_write_s")
	t.PooledWrites = fig("pooled_writes_total")
	t.PooledWritesFailed = fig("pooled_writes_failed")
	t.PooledWriteGap = fig("pooled_write_gap_s")
	t.PooledLongestWrite = fig("pooled_longest_write_s")
	t.PoolerStall = fig("pooler_stall_s")
	// Outage's rule for the pooled writer too, so that the two compare
	// like with like: the write gap for a switchover, the RTO for a
	// failover, and the gap where it stayed under the outage threshold
	// (the judge reports the pooled RTO for any gap, the direct one only
	// from the threshold on).
	t.PooledOutage = fig("pooled_rto_s")
	if t.Kind == bench.Switchover || math.IsNaN(t.PooledOutage) || t.PooledWriteGap < judge.OutageThreshold.Seconds() {
		t.PooledOutage = t.PooledWriteGap
	}
	t.Problems = append(t.Problems, c.Problems...)
	return t
}

// waitSyncKey waits (up to 30 s) until Patroni's /cluster names a
// sync_standby. Right after start-up or a failover, PostgreSQL may already
// stream synchronously while Patroni has not yet written its sync key; a
// switchover to that standby is then refused with HTTP 412 before anything
// happens, which measures nothing. validate proper takes the cluster as it
// finds it; the bench waits for the settled state it means to measure.
func waitSyncKey(ctx context.Context, e *env) {
	wait.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool {
		cl, err := e.probe.Cluster(ctx)
		if err != nil {
			return false
		}
		for _, m := range cl.Members {
			if m.IsSyncStandby() {
				return true
			}
		}
		return false
	})
}

// haproxyCost runs pgbench through 5000 and straight to the leader,
// alternating, for a read-only and a read-write workload. The straight
// runs start on the HAProxy node behind the write endpoint (its namespace),
// since pg_hba admits the application user from the HAProxy nodes only;
// both sides then cross the same one link to the leader, and only
// HAProxy's forwarding differs.
func haproxyCost(ctx context.Context, p *probe.Probe, s outputs.Stack, o *benchOptions, out io.Writer) ([]bench.Cost, error) {
	f := p.Formation(ctx)
	if err := f.Err(); err != nil {
		return nil, err
	}
	c := s.Credentials
	pb := bench.Pgbench{Namespace: s.Access.Namespace, User: c.AppName, Password: c.AppPassword, Database: c.AppDatabase}
	via, direct := s.WriteEndpoint, outputs.Endpoint{Host: f.Leader.Host, Port: topology.PortPostgres}
	ha, ok := s.NodeByIP(via.Host)
	if !ok || ha.Role != topology.RoleHAProxy || ha.Namespace == "" {
		return nil, fmt.Errorf("the write endpoint %s is no HAProxy node's address with a namespace: pgbench cannot reach the leader straight from where pg_hba admits the application user", via)
	}
	pbDirect := pb
	pbDirect.Namespace = ha.Namespace
	fmt.Fprintf(out, "bench: pgbench -i through %s\n", via)
	if _, err := pb.Run(ctx, via.Host, via.Port, "-i", "-q", "-s", "1"); err != nil {
		return nil, err
	}
	const clients, threads = 4, 2
	var costs []bench.Cost
	for _, wl := range []struct {
		name  string
		extra []string
	}{
		{"select-only (-S)", []string{"-S"}},
		{"TPC-B-like (default mix)", nil},
	} {
		cost := bench.Cost{Workload: wl.name, Clients: clients, Threads: threads, Seconds: o.pgSecs, Load1: loadAvg()[0]}
		args := append([]string{"-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(o.pgSecs)}, wl.extra...)
		for round := 0; round < o.pgRounds; round++ {
			// Alternate which goes first, so a load change on the machine
			// does not always favour one side.
			order := []bool{true, false}
			if round%2 == 1 {
				order = []bool{false, true}
			}
			for _, viaHA := range order {
				ep, run := direct, pbDirect
				if viaHA {
					ep, run = via, pb
				}
				tps, err := run.TPS(ctx, ep.Host, ep.Port, args...)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(out, "bench: pgbench %s via %s: %.0f tps\n", wl.name, ep, tps)
				if viaHA {
					cost.Via = append(cost.Via, tps)
				} else {
					cost.Direct = append(cost.Direct, tps)
				}
			}
		}
		costs = append(costs, cost)
	}
	return costs, nil
}

// poolerCost runs pgbench -S with 16 clients through the pooler
// (PgBouncer's 6432 on an HAProxy node) and through that node's HAProxy
// 5000 alone, which the pooler forwards to, alternating, from the lab's
// client namespace. Both sides then take the same path to the leader and
// only PgBouncer's hop differs. pgbench keeps its default simple protocol:
// under transaction pooling a prepared statement would not find its server
// session again. During each round it samples the machine's CPUs and
// PgBouncer's, so the page can say what limited the pooled side.
func poolerCost(ctx context.Context, s outputs.Stack, o *benchOptions, out io.Writer) (bench.PoolerCost, error) {
	pooler := *s.PoolerEndpoint
	// The lab's write endpoint is the same node's 5000; this is the
	// HAProxy that node's PgBouncer forwards to wherever it is not.
	haproxy := outputs.Endpoint{Host: pooler.Host, Port: topology.PortWrite}
	c := s.Credentials
	pb := bench.Pgbench{Namespace: s.Access.Namespace, User: c.AppName, Password: c.AppPassword, Database: c.AppDatabase}
	fmt.Fprintf(out, "bench: pgbench -i through %s\n", haproxy)
	if _, err := pb.Run(ctx, haproxy.Host, haproxy.Port, "-i", "-q", "-s", "1"); err != nil {
		return bench.PoolerCost{}, err
	}
	// 16 clients on 2 threads, 8 each: one thread per core of the 2-core
	// lab machine (more would only take turns on the same cores), and the
	// same pgbench on both sides, so what pgbench itself costs weighs on
	// both alike.
	const clients, threads = 16, 2
	cost := bench.PoolerCost{Workload: "select-only (-S)", Clients: clients, Threads: threads, Seconds: o.pgSecs, Load1: loadAvg()[0]}
	args := []string{"-n", "-S", "-M", "simple", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(o.pgSecs)}
	for round := 0; round < o.pgRounds; round++ {
		// Alternate which goes first, so a load change on the machine
		// does not always favour one side.
		order := []bool{true, false}
		if round%2 == 1 {
			order = []bool{false, true}
		}
		for _, viaPooler := range order {
			ep := haproxy
			if viaPooler {
				ep = pooler
			}
			before, serr := sampleCPU()
			tps, err := pb.TPS(ctx, ep.Host, ep.Port, args...)
			if err != nil {
				return bench.PoolerCost{}, fmt.Errorf("pgbench via %s: %w", ep, err)
			}
			after, aerr := sampleCPU()
			busy, pgb := math.NaN(), math.NaN()
			if serr == nil && aerr == nil {
				busy, pgb = before.usage(after)
			}
			fmt.Fprintf(out, "bench: pgbench %s, %d clients via %s: %.0f tps, CPUs %.0f%% busy, PgBouncer %.0f%% of a core\n",
				cost.Workload, clients, ep, tps, busy, pgb)
			if viaPooler {
				cost.Pooler = append(cost.Pooler, tps)
				cost.PoolerBusy = appendMeasured(cost.PoolerBusy, busy)
				cost.PgBouncerCPU = appendMeasured(cost.PgBouncerCPU, pgb)
			} else {
				cost.HAProxy = append(cost.HAProxy, tps)
				cost.HAProxyBusy = appendMeasured(cost.HAProxyBusy, busy)
			}
		}
	}
	return cost, nil
}

// appendMeasured appends v unless it is NaN (not measured): JSON has no
// NaN, and a list of what was measured needs none.
func appendMeasured(vs []float64, v float64) []float64 {
	if math.IsNaN(v) {
		return vs
	}
	return append(vs, v)
}

// cpuSample is the machine's CPU time so far, in clock ticks: busy and in
// all (from /proc/stat's cpu line) over cpus CPUs, and what every
// PgBouncer process on the machine has used (utime + stime).
type cpuSample struct {
	busy, total, pgbouncer uint64
	cpus                   int
}

// sampleCPU reads the machine's CPU time and PgBouncer's.
func sampleCPU() (cpuSample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}, err
	}
	cs, err := parseProcStat(string(b))
	if err != nil {
		return cpuSample{}, err
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return cpuSample{}, err
	}
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if comm, ticks, ok := parsePidStat(string(b)); ok && comm == "pgbouncer" {
			cs.pgbouncer += ticks
		}
	}
	return cs, nil
}

// parseProcStat reads /proc/stat: the busy and total ticks of its "cpu"
// line (busy is all but idle and iowait) and how many "cpuN" lines follow.
func parseProcStat(s string) (cpuSample, error) {
	var cs cpuSample
	found := false
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cs.cpus++
			continue
		}
		if len(f) < 6 {
			return cpuSample{}, fmt.Errorf("/proc/stat: short cpu line %q", line)
		}
		// user nice system idle iowait irq softirq steal; guest and
		// guest_nice are already in user and nice.
		for i, v := range f[1:min(len(f), 9)] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return cpuSample{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
			}
			cs.total += n
			if i != 3 && i != 4 {
				cs.busy += n
			}
		}
		found = true
	}
	if !found || cs.cpus == 0 {
		return cpuSample{}, errors.New("/proc/stat: no cpu lines")
	}
	return cs, nil
}

// parsePidStat reads /proc/<pid>/stat: the command name and the process's
// user and system ticks. The name is in parentheses and may hold spaces,
// so the fields are counted from its closing parenthesis.
func parsePidStat(s string) (comm string, ticks uint64, ok bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return "", 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return s[open+1 : end], u + st, true
}

// usage is what happened between a and b: the share of all the CPUs that
// were busy, in percent, and PgBouncer's CPU in percent of one core.
func (a cpuSample) usage(b cpuSample) (busyPct, pgbouncerPct float64) {
	total := float64(b.total - a.total)
	if total <= 0 || b.total < a.total || b.cpus == 0 {
		return math.NaN(), math.NaN()
	}
	busyPct = 100 * float64(b.busy-a.busy) / total
	// A PgBouncer that exited between the samples takes its ticks along.
	if b.pgbouncer < a.pgbouncer {
		return busyPct, math.NaN()
	}
	return busyPct, 100 * float64(b.pgbouncer-a.pgbouncer) / (total / float64(b.cpus))
}

func reproduceBench(o *benchOptions) string {
	cmd := fmt.Sprintf("go run ./validate bench --profiles %s --runs %d", strings.Join(o.profiles, ","), o.runs)
	if len(o.kinds) != len(bench.Kinds()) {
		cmd += " --kinds " + strings.Join(o.kinds, ",")
	}
	if !o.sync {
		cmd += " --sync=false"
	}
	if o.boot {
		cmd += " --boot"
	}
	switch {
	case o.pgSecs == 0:
		cmd += " --pgbench-seconds 0"
	case o.pgSecs != 15 || o.pgRounds != 2:
		cmd += fmt.Sprintf(" --pgbench-seconds %d --pgbench-rounds %d", o.pgSecs, o.pgRounds)
	}
	switch o.doc {
	case "docs/benchmarks.md":
	case "":
		cmd += ` --doc ""`
	default:
		cmd += " --doc " + o.doc
	}
	if o.jsonOut != "" {
		cmd += " --json " + o.jsonOut
	}
	return cmd
}

func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	}
	return l
}

func kernel() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "unknown"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	// The version only: the local suffix names the build, not the kernel.
	v, _, _ := strings.Cut(b.String(), "-")
	return v
}
