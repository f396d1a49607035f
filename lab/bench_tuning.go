package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/userdata"
)

const tuningHeading = "## Tuned against PostgreSQL's defaults"

// The arms: PostgreSQL's own defaults, then the default profile.
var tuningArms = []string{userdata.WorkloadNone, userdata.DefaultWorkload}

// tuningOptions are what `lab bench --tuning` runs; the test runs the same
// with a tiny scale and short runs.
func tuningOptions(rounds, scale, seconds int, profile string) cluster.TuningOptions {
	return cluster.TuningOptions{
		Workloads: tuningArms, Rounds: rounds, Scale: scale, Seconds: seconds,
		// As long as a timed run: 30 s of select-only here touches most
		// of scale 50's accounts pages, so the timed runs find warm caches.
		Warmup:  seconds,
		Clients: 8, Threads: 2,
		BurstExtra: 20, BurstHold: 2 * time.Second,
		// Synchronous mode, as the AWS stack's default: TPC-B-like commits
		// wait for a replica in both arms.
		Up: cluster.UpOptions{Profile: profile, SynchronousMode: true},
	}
}

func benchTuning(ctx context.Context, l *cluster.Lab, o *options) int {
	if l.Settings.Net != cluster.NetNetns {
		fmt.Fprintf(os.Stderr, "lab bench --tuning: needs a namespace lab (as root, --net netns), not %q: pgbench runs in the lab's client namespace\n", l.Settings.Net)
		return 2
	}
	scale := o.scale
	if scale == 0 {
		if scale = cluster.TuningScale(userdata.DefaultWorkload); scale == 0 {
			fmt.Fprintf(os.Stderr, "lab bench --tuning: the lab's node size (%s) gives %s too little shared_buffers for a database beyond PostgreSQL's default 128 MB and within it; set --scale\n", cluster.LabNodeSize(), userdata.DefaultWorkload)
			return 2
		}
	}
	if scale < 1 || o.seconds < 1 {
		fmt.Fprintln(os.Stderr, "lab bench --tuning: --scale and --seconds must be at least 1")
		return 2
	}
	to := tuningOptions(o.runs, scale, o.seconds, o.profile)
	fmt.Printf("bench --tuning: %d rounds of %s on lab %q (node size %s), pgbench scale %d, %d s runs\n",
		o.runs, strings.Join(to.Workloads, " then "), l.Name, cluster.LabNodeSize(), scale, o.seconds)
	start := time.Now()
	runs, err := l.BenchTuning(ctx, to)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab bench --tuning:", err)
		return 1
	}
	return publish(tuningSection(runs, to, time.Since(start), reproduceTuning(l.Name, o)), o.doc, tuningHeading)
}

func reproduceTuning(name string, o *options) string {
	cmd := fmt.Sprintf("go run ./lab bench --tuning --runs %d --name %s", o.runs, name)
	if o.scale != 0 {
		cmd += fmt.Sprintf(" --scale %d", o.scale)
	}
	if o.seconds != 30 {
		cmd += fmt.Sprintf(" --seconds %d", o.seconds)
	}
	if o.profile != "fast" {
		cmd += " --profile " + o.profile
	}
	if o.doc != "" {
		cmd += " --doc " + o.doc
	}
	return cmd
}

func tuningSection(runs []cluster.TuningRun, o cluster.TuningOptions, took time.Duration, reproduce string) string {
	by := map[string][]cluster.TuningRun{}
	var loads []string
	for _, r := range runs {
		by[r.Workload] = append(by[r.Workload], r)
		loads = append(loads, fmt.Sprintf("%.1f", r.Load1))
	}
	a, b := o.Workloads[0], o.Workloads[1]
	first := func(w string) cluster.TuningRun {
		if len(by[w]) == 0 {
			return cluster.TuningRun{}
		}
		return by[w][0]
	}
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("%s\n\n", tuningHeading)
	rounds := fmt.Sprintf("%d rounds", o.Rounds)
	if o.Rounds == 1 {
		rounds = "1 round"
	}
	p("Measured %s by `lab bench --tuning` on this repository's lab (%d CPUs, %s/%s), %s in %.0f min. ",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, rounds, took.Minutes())
	p("Every PostgreSQL node is sized for the lab's node size (%s); profile `%s`, synchronous mode on. ", cluster.LabNodeSize(), o.Up.Profile)
	p("Each round builds a fresh namespace lab with `pgha:workload` `%s`, measures it and takes it down, then the same with `%s`, so drift on the machine reaches both arms.\n\n", a, b)
	p("pgbench runs in the lab's client namespace, as an application host would, through HAProxy's write port (5000) as the application user with verify-full TLS: `pgbench -i -s %d` (a %s database, against the shared_buffers below), %d s of select-only to fill the caches, then select-only (`-S`) and the default TPC-B-like mix, each `-c %d -j %d -T %d`. TPS excludes connection set-up.\n\n",
		o.Scale, mib(first(b).DBBytes), o.Warmup, o.Clients, o.Threads, o.Seconds)

	p("| | `%s` | `%s` |\n|---|---|---|\n", a, b)
	p("| shared_buffers | %s | %s |\n", first(a).SharedBuffers, first(b).SharedBuffers)
	p("| work_mem | %s | %s |\n", first(a).WorkMem, first(b).WorkMem)
	p("| max_connections | %d | %d |\n", first(a).MaxConnections, first(b).MaxConnections)
	p("| HAProxy maxconn per server, each HAProxy node | %d | %d |\n", first(a).HAProxyMaxConn, first(b).HAProxyMaxConn)
	p("| `pgbench -i` (s), each round | %s | %s |\n\n", inits(by[a]), inits(by[b]))

	p("| pgbench (tps) | `%s`, median | `%s`, median | ratio %s / %s | `%s` runs | `%s` runs |\n|---|---|---|---|---|---|\n", a, b, b, a, a, b)
	for _, wl := range []struct {
		name string
		tps  func(cluster.TuningRun) float64
	}{
		{"select-only (`-S`)", func(r cluster.TuningRun) float64 { return r.SelectTPS }},
		{"TPC-B-like (default mix)", func(r cluster.TuningRun) float64 { return r.TPCBTPS }},
	} {
		ma, la := tpsOf(by[a], wl.tps)
		mb, lb := tpsOf(by[b], wl.tps)
		ratio := "–"
		if ma > 0 {
			ratio = fmt.Sprintf("%.2f", mb/ma)
		}
		p("| %s | %.0f | %.0f | %s | %s | %s |\n", wl.name, ma, mb, ratio, la, lb)
	}

	p("\nA burst of max_connections + %d sessions opened at once, each holding its connection %.0f s (`pg_sleep`); \"refused\" is PostgreSQL's `too many clients` (SQLSTATE 53300), \"wait\" the longest a session that ran took to connect. Through 5000 as the application user; straight at the leader's 5432 as pgha's monitor role (pg_hba admits the application user through HAProxy only). One entry per round.\n\n",
		o.BurstExtra, o.BurstHold.Seconds())
	p("| burst | `%s` | `%s` |\n|---|---|---|\n", a, b)
	p("| through HAProxy (5000): ran / refused / other errors, slowest wait | %s | %s |\n", bursts(by[a], true), bursts(by[b], true))
	p("| straight at the leader (5432): ran / refused / other errors | %s | %s |\n\n", bursts(by[a], false), bursts(by[b], false))

	p("The 1-minute load average when each arm began was %s.\n\n", strings.Join(loads, ", "))
	p("What limits it here: on %d cores pgbench, HAProxy, the leader and its two replicas replaying WAL share the same CPUs, and TPC-B-like commits wait for a synchronous replica on the same disk. ", runtime.NumCPU())
	if mem := cluster.MachineMemoryMiB(); mem > 0 && first(b).DBBytes>>20 < int64(mem)/4 {
		p("The database fits this machine's page cache (%d GiB) in either arm, so the larger shared_buffers saves only copies from the kernel's cache, not disk reads; with a database larger than a node's memory the tuning matters more.", mem/1024)
	}
	p("\n\n")
	p("Reproduce (as root; builds and removes its own labs, two per round): `%s`\n", reproduce)
	return sb.String()
}

// tpsOf is the median and the runs of one figure.
func tpsOf(runs []cluster.TuningRun, f func(cluster.TuningRun) float64) (float64, string) {
	var v []float64
	var s []string
	for _, r := range runs {
		v = append(v, f(r))
		s = append(s, fmt.Sprintf("%.0f", f(r)))
	}
	return median(v), strings.Join(s, ", ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func bursts(runs []cluster.TuningRun, viaHAProxy bool) string {
	var s []string
	for _, r := range runs {
		b := r.Direct
		if viaHAProxy {
			b = r.ViaHAProxy
		}
		e := fmt.Sprintf("%d / %d / %d of %d", b.Ran, b.Refused, len(b.Errors)-b.Refused, b.Sessions)
		if viaHAProxy {
			e += fmt.Sprintf(", %.1f s", b.SlowestWait.Seconds())
		}
		s = append(s, e)
	}
	return strings.Join(s, "; ")
}

func inits(runs []cluster.TuningRun) string {
	var s []string
	for _, r := range runs {
		s = append(s, fmt.Sprintf("%.1f", r.Init.Seconds()))
	}
	return strings.Join(s, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }
