package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/benchdoc"
	"github.com/pgha/pgha/lab/cluster"
)

const benchHeading = "## Lab start-up"

func benchLab(ctx context.Context, l *cluster.Lab, runs int, profile, doc string) int {
	fmt.Printf("bench: %d up/down cycles of lab %q, profile %s\n", runs, l.Name, profile)
	res, err := l.Bench(ctx, runs, cluster.UpOptions{Profile: profile}, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab bench:", err)
		return 1
	}
	return publish(benchSection(res, l.Name, profile), doc, benchHeading)
}

// publish prints a bench's section and writes it into doc under heading
// (when doc is set).
func publish(section, doc, heading string) int {
	fmt.Println()
	fmt.Print(section)
	if doc != "" {
		if err := benchdoc.WriteSection(doc, heading, section); err != nil {
			fmt.Fprintln(os.Stderr, "lab bench:", err)
			return 1
		}
		fmt.Printf("\nwritten to %s\n", doc)
	}
	return 0
}

func benchSection(runs []cluster.BenchRun, name, profile string) string {
	var up, ready, down []time.Duration
	var mem []int64
	var loads []string
	for _, r := range runs {
		loads = append(loads, fmt.Sprintf("%.1f", r.Load1))
		up, ready, down = append(up, r.Up), append(ready, r.Ready), append(down, r.Down)
		mem = append(mem, r.PSSKiB)
	}
	sort.Slice(mem, func(i, j int) bool { return mem[i] < mem[j] })
	secs := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, fmt.Sprintf("%.1f", d.Seconds()))
		}
		return strings.Join(s, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", benchHeading)
	fmt.Fprintf(&b, "Measured %s on this repository's lab (%d CPUs, %s/%s), profile `%s`, %d runs.\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, profile, len(runs))
	b.WriteString("Start-up is from nothing (no namespace, no data) to one Patroni leader with two replicas\n")
	b.WriteString("streaming from it (checked in the leader's `pg_stat_replication`, and Patroni agreeing); \"ready\" adds\n")
	b.WriteString("both HAProxies routing 5000 to the leader and 5001 to the replicas. Down includes the teardown\nverification. Memory is the ")
	b.WriteString("PSS sum over every lab process (etcd, Patroni, every PostgreSQL process, HAProxy), idle.\n\n")
	fmt.Fprintf(&b, "The 1-minute load average when each run began was %s; other work on the machine\nlengthens start-up, so a quiet machine does at least as well.\n\n", strings.Join(loads, ", "))
	b.WriteString("| measure | median | runs |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| start-up: nothing → leader + 2 streaming | %.1f s | %s |\n", cluster.Median(up).Seconds(), secs(up))
	fmt.Fprintf(&b, "| ready: + both HAProxies route 5000 → leader, 5001 → replicas | %.1f s | %s |\n", cluster.Median(ready).Seconds(), secs(ready))
	fmt.Fprintf(&b, "| down (stop, remove, verify) | %.1f s | %s |\n", cluster.Median(down).Seconds(), secs(down))
	fmt.Fprintf(&b, "| memory, whole cluster (PSS) | %d MiB | %d–%d MiB |\n\n", mem[len(mem)/2]/1024, mem[0]/1024, mem[len(mem)-1]/1024)
	b.WriteString("Phases of the last run:\n\n| phase | seconds |\n|---|---|\n")
	for _, p := range runs[len(runs)-1].Phases {
		fmt.Fprintf(&b, "| %s | %.2f |\n", p.Name, p.Duration.Seconds())
	}
	fmt.Fprintf(&b, "\nReproduce (as root): `go run ./lab bench --runs %d --name %s --profile %s --doc docs/benchmarks.md`\n", len(runs), name, profile)
	return b.String()
}
