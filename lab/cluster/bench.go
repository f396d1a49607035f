package cluster

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// BenchRun is one up/down cycle.
type BenchRun struct {
	Up       time.Duration // nothing → leader + 2 streaming replicas
	Ready    time.Duration // ... and HAProxy routing 5000 to the leader
	Down     time.Duration // down, including its verification
	PSSKiB   int64         // whole cluster, idle, right after up
	Procs    int
	Phases   []Phase
	Profile  string
	Finished time.Time
	// Load1 is the 1-minute load average when the run began: other work on
	// the machine slows start-up, and the figures should say so.
	Load1 float64
	// A booted lab's: launch of the machines → the cluster ready, and
	// per node launch → cloud-init done and → its ready marker seen.
	Launched                 time.Duration
	NodeCloudInit, NodeReady map[string]time.Duration
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	fmt.Sscanf(string(b), "%f", &v)
	return v
}

// Bench runs up and down n times on this lab and returns every run. When
// settle is set, each run first waits (for at most settle) until the
// 1-minute load average is below 1: a booted lab's start-up is CPU-bound,
// and the load a previous run leaves behind decays over minutes.
func (l *Lab) Bench(ctx context.Context, n int, o UpOptions, settle time.Duration) ([]BenchRun, error) {
	var runs []BenchRun
	for i := 0; i < n; i++ {
		if settle > 0 {
			deadline := time.Now().Add(settle)
			for loadAvg() >= 1 && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(5 * time.Second)
			}
		}
		load := loadAvg()
		res, err := l.Up(ctx, o)
		if err != nil {
			return runs, fmt.Errorf("run %d: up: %w", i+1, err)
		}
		r := BenchRun{Ready: res.Total, Phases: res.Phases, Profile: o.Profile, Load1: load,
			NodeCloudInit: res.NodeCloudInit, NodeReady: res.NodeReady}
		// Start-up proper ends when the replicas stream, before HAProxy.
		// (A booted lab's gate waits for both at once.)
		launched := false
		for _, p := range res.Phases {
			if !strings.HasPrefix(p.Name, "haproxy") {
				r.Up += p.Duration
			}
			launched = launched || strings.HasPrefix(p.Name, "machines")
			if launched {
				r.Launched += p.Duration
			}
		}
		r.PSSKiB, r.Procs, _ = l.Memory()
		t := time.Now()
		rep, err := l.Down(ctx)
		r.Down = time.Since(t)
		if err != nil {
			return runs, fmt.Errorf("run %d: down: %w", i+1, err)
		}
		_ = rep
		r.Finished = time.Now().UTC()
		runs = append(runs, r)
		l.logf("run %d/%d: start-up %.2fs, ready %.2fs, down %.2fs, %d MiB PSS, load %.1f", i+1, n, r.Up.Seconds(), r.Ready.Seconds(), r.Down.Seconds(), r.PSSKiB/1024, r.Load1)
	}
	return runs, nil
}

// Median of durations.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
