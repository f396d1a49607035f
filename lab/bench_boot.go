package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/lab/image"
	"github.com/pgha/pgha/userdata"
)

const bootBenchHeading = "## Booted lab start-up"

// bootGoal is the goal for a cached booted start-up.
const bootGoal = 90 * time.Second

// benchBoot measures the booted lab: the image built into an empty cache
// and found in the cache, then runs up/down cycles, each from nothing (the
// cached image aside) to 1 leader + 2 streaming replicas.
func benchBoot(ctx context.Context, l *cluster.Lab, runs int, profile, doc string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab bench:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "pgha-image-cold")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	opts := image.Options{Packages: userdata.AllPackages(), Progress: os.Stdout}
	fmt.Println("bench: building the image into an empty cache (cold)")
	t := time.Now()
	cold := opts
	cold.CacheDir = tmp
	if _, err := image.Build(ctx, cold); err != nil {
		fmt.Fprintln(os.Stderr, "lab bench: cold image build:", err)
		return 1
	}
	coldTook := time.Since(t)
	_ = os.RemoveAll(tmp)
	t = time.Now()
	img, err := image.Build(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab bench: image:", err)
		return 1
	}
	cachedTook := time.Since(t)
	if !img.Cached {
		// The first build into the real cache was cold too; time the
		// cached look-up now.
		t = time.Now()
		if _, err := image.Build(ctx, opts); err != nil {
			fmt.Fprintln(os.Stderr, "lab bench: image:", err)
			return 1
		}
		cachedTook = time.Since(t)
	}

	fmt.Printf("bench: %d up/down cycles of booted lab %q, profile %s\n", runs, l.Name, profile)
	res, err := l.Bench(ctx, runs, cluster.UpOptions{Profile: profile, SynchronousMode: true, Net: cluster.NetBoot, Control: exe}, 3*time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab bench:", err)
		return 1
	}
	return publish(bootBenchSection(res, coldTook, cachedTook, l.Plan.Nodes, l.Name, profile), doc, bootBenchHeading)
}

func bootBenchSection(runs []cluster.BenchRun, cold, cached time.Duration, nodes []topology.Node, name, profile string) string {
	col := func(f func(cluster.BenchRun) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range runs {
			out = append(out, f(r))
		}
		return out
	}
	secs := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, fmt.Sprintf("%.1f", d.Seconds()))
		}
		return strings.Join(s, ", ")
	}
	var loads []string
	var mem []int64
	for _, r := range runs {
		loads = append(loads, fmt.Sprintf("%.1f", r.Load1))
		mem = append(mem, r.PSSKiB)
	}
	sort.Slice(mem, func(i, j int) bool { return mem[i] < mem[j] })
	total, launched := col(func(r cluster.BenchRun) time.Duration { return r.Ready }), col(func(r cluster.BenchRun) time.Duration { return r.Launched })
	verdict := "met"
	if cluster.Median(total) >= bootGoal {
		verdict = "MISSED"
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", bootBenchHeading)
	fmt.Fprintf(&b, "Measured %s with `lab bench --boot` (%d CPUs, %s/%s), profile `%s`, synchronous mode, %d runs. "+
		"Every node is a Debian 12 machine booting, with systemd and cloud-init, the user data `pulumi up` gives its "+
		"EC2 instance: the package step from the lab's mirror, the secrets from the SSM stand-in, the boot script; "+
		"the cluster is ready when the readiness gate (the program's own, over SSH) sees every node's ready marker and "+
		"1 leader + 2 streaming replicas.\n\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, profile, len(runs))
	fmt.Fprintf(&b, "Each run waited (up to 3 minutes) for the 1-minute load average to fall below 1 before it began; it was then %s.\n\n", strings.Join(loads, ", "))
	b.WriteString("| measure | median | runs |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| image build, empty cache (debootstrap + the package mirror) | %.1f s | %.1f |\n", cold.Seconds(), cold.Seconds())
	fmt.Fprintf(&b, "| image, cached | %.2f s | %.2f |\n", cached.Seconds(), cached.Seconds())
	fmt.Fprintf(&b, "| start-up, cached image: nothing → cluster ready (goal < %.0f s: **%s**) | %.1f s | %s |\n",
		bootGoal.Seconds(), verdict, cluster.Median(total).Seconds(), secs(total))
	fmt.Fprintf(&b, "| of which launch of the machines → cluster ready | %.1f s | %s |\n", cluster.Median(launched).Seconds(), secs(launched))
	down := col(func(r cluster.BenchRun) time.Duration { return r.Down })
	fmt.Fprintf(&b, "| down (machines, stand-ins, namespaces; verified) | %.1f s | %s |\n", cluster.Median(down).Seconds(), secs(down))
	fmt.Fprintf(&b, "| memory, whole booted cluster idle (PSS of every process of every machine, and the stand-ins) | %d MiB | %d–%d MiB |\n\n",
		mem[len(mem)/2]/1024, mem[0]/1024, mem[len(mem)-1]/1024)

	b.WriteString("Per node, from its launch (medians over the runs; the gate polls every 5 s, so \"ready seen\" trails cloud-init by up to 5 s plus an SSH login):\n\n")
	b.WriteString("| node | → cloud-init done | → ready seen by the gate |\n|---|---|---|\n")
	for _, n := range nodes {
		ci := col(func(r cluster.BenchRun) time.Duration { return r.NodeCloudInit[n.Name] })
		rd := col(func(r cluster.BenchRun) time.Duration { return r.NodeReady[n.Name] })
		fmt.Fprintf(&b, "| %s | %.1f s | %.1f s |\n", n.Name, cluster.Median(ci).Seconds(), cluster.Median(rd).Seconds())
	}
	b.WriteString("\nPhases of the last run:\n\n| phase | seconds |\n|---|---|\n")
	for _, p := range runs[len(runs)-1].Phases {
		fmt.Fprintf(&b, "| %s | %.2f |\n", p.Name, p.Duration.Seconds())
	}
	fmt.Fprintf(&b, "\nReproduce (as root): `go run ./lab bench --boot --runs %d --name %s --profile %s --doc docs/benchmarks.md`\n", len(runs), name, profile)
	return b.String()
}
