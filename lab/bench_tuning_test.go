package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pgha/pgha/lab/cluster"
)

func TestTuningSection(t *testing.T) {
	o := tuningOptions(2, 50, 30, "fast")
	run := func(w string, sel, tpcb float64, refused int) cluster.TuningRun {
		r := cluster.TuningRun{Workload: w, SharedBuffers: "128MB", WorkMem: "4MB", MaxConnections: 100, HAProxyMaxConn: 45,
			DBBytes: 750 << 20, SelectTPS: sel, TPCBTPS: tpcb, Init: 25 * time.Second}
		r.ViaHAProxy = cluster.BurstResult{Sessions: 120, Ran: 120, SlowestWait: 4200 * time.Millisecond}
		r.Direct = cluster.BurstResult{Sessions: 120, Ran: 120 - refused, Refused: refused, Errors: make([]error, refused)}
		return r
	}
	runs := []cluster.TuningRun{run("none", 1000, 100, 23), run("oltp", 1500, 120, 23), run("none", 1100, 110, 24), run("oltp", 1700, 140, 22)}
	doc := tuningSection(runs, o, 20*time.Minute, "go run ./lab bench --tuning --runs 2")
	assert.Contains(t, doc, "| select-only (`-S`) | 1050 | 1600 | 1.52 | 1000, 1100 | 1500, 1700 |")
	assert.Contains(t, doc, "| TPC-B-like (default mix) | 105 | 130 | 1.24 | 100, 110 | 120, 140 |")
	assert.Contains(t, doc, "| through HAProxy (5000): ran / refused / other errors, slowest wait | 120 / 0 / 0 of 120, 4.2 s; 120 / 0 / 0 of 120, 4.2 s |")
	assert.Contains(t, doc, "| straight at the leader (5432): ran / refused / other errors | 97 / 23 / 0 of 120; 96 / 24 / 0 of 120 |")
	assert.Contains(t, doc, "`pgbench -i -s 50` (a 750 MiB database")
	assert.Contains(t, doc, ", 2 rounds in 20 min.")
	assert.Contains(t, doc, "| `pgbench -i` (s), each round | 25.0, 25.0 | 25.0, 25.0 |")
	assert.Contains(t, doc, "Reproduce (as root; builds and removes its own labs, two per round): `go run ./lab bench --tuning --runs 2`\n")
}

func TestReproduceTuning(t *testing.T) {
	o := &options{runs: 5, seconds: 30, profile: "fast", doc: "docs/benchmarks.md"}
	assert.Equal(t, "go run ./lab bench --tuning --runs 5 --name tbx --doc docs/benchmarks.md", reproduceTuning("tbx", o))
	o = &options{runs: 1, scale: 5, seconds: 5, profile: "safe"}
	assert.Equal(t, "go run ./lab bench --tuning --runs 1 --name tbx --scale 5 --seconds 5 --profile safe", reproduceTuning("tbx", o))
}

func TestTuningScale(t *testing.T) {
	s := cluster.TuningScale("oltp")
	if cluster.LabNodeSize().MemoryMiB >= 3840 {
		// 960 MB of shared_buffers or more: scale 50, about 750 MB.
		assert.Equal(t, 50, s)
	}
	assert.Zero(t, s%10)
	assert.Zero(t, cluster.TuningScale("none"), "none has no tuned shared_buffers to fit")
}
