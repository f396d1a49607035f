package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pooler"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/switchover"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/validate/internal/judge"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// TestValidateAgainstLab brings up a real lab (3 etcd, 3 Patroni/PostgreSQL,
// 2 HAProxy in network namespaces), runs the full validate against its
// outputs, and then breaks the lab on purpose to see validate fail with a
// message that names the problem. One lab serves every subtest; it is
// always taken down.
func TestValidateAgainstLab(t *testing.T) {
	tl := labtest.Start(t, "pghavt")
	validateBin, outputsFile, lab, l := tl.ValidateBin, tl.OutputsFile, tl.Run, tl.Cluster

	validate := func(t *testing.T, dir string, args ...string) (string, int) {
		return runValidate(t, tl, dir, args...)
	}
	// waitHealthy waits until formation passes again after a subtest broke it.
	waitHealthy := func(t *testing.T) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			out, code := validate(t, t.TempDir(), "--only", "etcd,formation,routing")
			if code == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the lab did not become healthy again:\n%s", out)
			}
			time.Sleep(2 * time.Second)
		}
	}

	t.Run("full run passes and reports", func(t *testing.T) {
		dir := t.TempDir()
		out, code := validate(t, dir)
		t.Log(out)
		require.Equal(t, 0, code, "validate failed against a healthy lab")
		require.Contains(t, out, "RESULT: PASS")

		r := readReport(t, dir)
		require.True(t, r.Passed)
		require.Equal(t, checkNames(), namesOf(r.Checks))
		for _, name := range []string{"switchover", "failover"} {
			c, ok := r.Check(name)
			require.True(t, ok)
			lost, ok := c.Figure("lost_writes")
			require.True(t, ok, "%s reports lost writes", name)
			require.Zero(t, lost.Value, "%s lost acknowledged writes", name)
			acked, _ := c.Figure("acked_writes")
			require.Positive(t, acked.Value, "%s had write traffic", name)
			gap, ok := c.Figure("write_gap_s")
			require.True(t, ok)
			require.Positive(t, gap.Value, "%s measured a write gap", name)
			require.NotNil(t, c.Timeline)
			require.NotEmpty(t, c.Timeline.Writes)
			require.NotEmpty(t, c.Timeline.Reads)
		}
		fo, _ := r.Check("failover")
		rto, ok := fo.Figure("rto_s")
		require.True(t, ok)
		require.Positive(t, rto.Value)
		require.Less(t, rto.Value, 60.0)
		_, ok = fo.Figure("recovered_s")
		require.True(t, ok)
		so, _ := r.Check("switchover")
		_, ok = so.Figure("rejoin_s")
		require.True(t, ok, "the switchover times every replica streaming on the new timeline")
		// Held behind the poolers: their client saw a stall, no error,
		// while the direct client saw the usual write gap.
		require.NotEmpty(t, so.Timeline.PooledWrites, "the lab has poolers: a client writes through one")
		for _, key := range []string{"pooled_writes_total", "pooler_stall_s", "pooled_longest_write_s"} {
			f, ok := so.Figure(key)
			require.True(t, ok, key)
			require.Positive(t, f.Value, key)
		}
		failed, ok := so.Figure("pooled_writes_failed")
		require.True(t, ok)
		require.Zero(t, failed.Value, "a client of the pooler saw an error during a planned switchover")
		require.True(t, slices.ContainsFunc(so.Properties, func(p report.Property) bool { return p.Name == judge.PooledNoError && p.Holds }),
			"%+v", so.Properties)
		for _, c := range []report.Check{so, fo} {
			require.NotEmpty(t, c.Properties, "%s was judged", c.Name)
			for _, p := range c.Properties {
				require.True(t, p.Holds || p.Tolerated, "%s: %s", c.Name, p.Name)
			}
		}
		var kinds []string
		for _, e := range fo.Timeline.Events {
			kinds = append(kinds, e.Kind)
		}
		for _, k := range []string{"fault", "promotion", "restore", "healthy", "resumed"} {
			require.Contains(t, kinds, k)
		}
		requireAlertsAsExpected(t, l, r)

		md, err := os.ReadFile(filepath.Join(dir, "report.md"))
		require.NoError(t, err)
		for _, want := range []string{"# pgha validate: PASS", "## Cluster before", "## Cluster after",
			"## switchover: PASS", "## failover: PASS", "RTO (fault → first acknowledged write", "go run ./validate --outputs"} {
			require.Contains(t, string(md), want)
		}
		// The saved evidence, judged again without the cluster, gives the
		// same verdicts.
		judged, err := exec.Command(validateBin, "judge", dir).CombinedOutput()
		require.NoError(t, err, "%s", judged)
		require.Contains(t, string(judged), "the same verdicts")

		svg, err := os.ReadFile(filepath.Join(dir, "timeline.svg"))
		require.NoError(t, err)
		requireWellFormedXML(t, svg)
		require.Contains(t, string(svg), "promotion +")
	})

	t.Run("validate switchover holds the poolers' clients and leaves no pooler paused", func(t *testing.T) {
		s, err := outputs.Load(outputsFile)
		require.NoError(t, err)
		p := probeFor(t, outputsFile)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		before := currentFormation(t, outputsFile)

		// A client of the pooler inserting all along.
		pt, ok := scenario.PoolerTarget(s, p.Dial, 30*time.Second)
		require.True(t, ok)
		cn, err := pt.Connect(ctx)
		require.NoError(t, err)
		defer cn.Close(context.Background())
		_, err = cn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pooled_switchover (id bigint PRIMARY KEY)`)
		require.NoError(t, err)
		lctx, stopLoad := context.WithCancel(ctx)
		var ok2, failed int
		var lastErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 1; lctx.Err() == nil; i++ {
				if _, err := cn.Exec(lctx, `INSERT INTO pooled_switchover VALUES ($1)`, i); err != nil {
					if lctx.Err() != nil {
						return
					}
					failed, lastErr = failed+1, err
					continue
				}
				ok2++
				time.Sleep(20 * time.Millisecond)
			}
		}()
		cmd := exec.CommandContext(ctx, validateBin, "switchover", "--outputs", outputsFile)
		out, err := cmd.CombinedOutput()
		t.Log(string(out))
		require.NoError(t, err)
		time.Sleep(time.Second)
		stopLoad()
		<-done
		require.Contains(t, string(out), "poolers resumed: their clients were held at most")
		require.Zero(t, failed, "the pooler's client saw an error: %v", lastErr)
		require.Positive(t, ok2)
		after := currentFormation(t, outputsFile)
		require.NotEqual(t, before.Leader.Name, after.Leader.Name)
		require.Equal(t, before.Timeline+1, after.Timeline)
		requireNoPoolerPaused(t, s, p)

		t.Run("interrupted once the poolers pause", func(t *testing.T) {
			cmd := exec.CommandContext(ctx, validateBin, "switchover", "--outputs", outputsFile)
			var buf lockedBuffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			require.NoError(t, cmd.Start())
			// Ctrl-C as soon as the pause has begun: the step's own line
			// comes once every PAUSE has returned, so poll the consoles.
			consoles := switchover.Poolers(s, p.Dial)
			require.Eventually(t, func() bool {
				for _, c := range consoles {
					if paused, err := c.(*pooler.Console).Paused(ctx); err == nil && len(paused) > 0 {
						return true
					}
				}
				return false
			}, 30*time.Second, 5*time.Millisecond, "the poolers were never seen paused:\n%s", buf.String())
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
			err := cmd.Wait()
			t.Log(buf.String())
			require.Error(t, err, "an interrupted switchover exits non-zero")
			require.Contains(t, buf.String(), "resume done")
			requireNoPoolerPaused(t, s, p)
			waitHealthy(t)
		})

		t.Run("--resume resumes a pooler left paused", func(t *testing.T) {
			c := switchover.Poolers(s, p.Dial)[1].(*pooler.Console)
			require.NoError(t, c.Pause(ctx))
			defer func() { _ = c.Resume(context.Background()) }()
			out, err := exec.CommandContext(ctx, validateBin, "switchover", "--resume", "--outputs", outputsFile).CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), c.Name()+": nothing paused")
			requireNoPoolerPaused(t, s, p)
		})
	})

	t.Run("a replica that does not stream fails formation and refuses the failover", func(t *testing.T) {
		f := currentFormation(t, outputsFile)
		victim := f.Replicas[0].Name
		out, err := lab(time.Minute, "kill", victim)
		require.NoError(t, err, out)
		defer func() {
			out, err := lab(time.Minute, "start", victim)
			require.NoError(t, err, out)
			waitHealthy(t)
		}()
		out, code := validate(t, t.TempDir(), "--only", "formation")
		t.Log(out)
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "formation  FAIL")
		require.Regexp(t, regexp.MustCompile(`(replica `+victim+` is not streaming|member `+victim+` is missing|`+victim+` is in state)`), out)

		out, code = validate(t, t.TempDir(), "--only", "failover")
		t.Log(out)
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "refused: the cluster is unhealthy")
		require.NotContains(t, out, "event fault", "a refused check must not break anything")
	})

	t.Run("5001 routing to the leader fails routing", func(t *testing.T) {
		// A plausible mistake: checking /health (any running member) instead
		// of /replica on the read port, so the leader takes reads too.
		var restores []func()
		defer func() {
			for _, r := range restores {
				r()
			}
			waitHealthy(t)
		}()
		for _, n := range l.Plan.ByRole(topology.RoleHAProxy) {
			cfg := l.Paths(n.Name).HAProxyConfigFile
			orig, err := os.ReadFile(cfg)
			require.NoError(t, err)
			st, err := os.Stat(cfg)
			require.NoError(t, err)
			broken := regexp.MustCompile(`OPTIONS /replica\S*`).ReplaceAll(orig, []byte("OPTIONS /health"))
			require.NotEqual(t, orig, broken, "the read check is not where this test expects it")
			require.NoError(t, os.WriteFile(cfg, broken, st.Mode()))
			restartNode := func() {
				out, err := lab(time.Minute, "stop", n.Name)
				require.NoError(t, err, out)
				out, err = lab(time.Minute, "start", n.Name)
				require.NoError(t, err, out)
			}
			restores = append(restores, func() {
				require.NoError(t, os.WriteFile(cfg, orig, st.Mode()))
				restartNode()
			})
			restartNode()
		}
		out, code := validate(t, t.TempDir(), "--only", "routing", "--routing-bound", "5s")
		t.Log(out)
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "routing  FAIL")
		require.Contains(t, out, "it must reach only replicas")
	})
}

// readReport reads the report.json a validate run wrote into dir.
// runValidate runs the validate binary against a test lab's outputs,
// writing its report into dir, and returns its output and exit code.
func runValidate(t *testing.T, tl *labtest.Lab, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tl.ValidateBin, append([]string{"--outputs", tl.OutputsFile, "--report-dir", dir}, args...)...)
	cmd.Dir = tl.Root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return buf.String(), code
}

func readReport(t *testing.T, dir string) report.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var r report.Report
	require.NoError(t, json.Unmarshal(b, &r), "report.json")
	return r
}

func namesOf(cs []report.Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func requireWellFormedXML(t *testing.T, b []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err, "timeline.svg is not well-formed XML")
	}
}

// probeFor looks at the cluster of an outputs file the way validate does.
func probeFor(t *testing.T, outputsFile string) *probe.Probe {
	t.Helper()
	o := &options{outputsFile: outputsFile}
	s, err := loadStack(context.Background(), o)
	require.NoError(t, err)
	dial, err := dialerFor(s)
	require.NoError(t, err)
	return newEnv(s, o, dial, io.Discard).probe
}

// currentFormation reads the lab's formation the way validate does.
func currentFormation(t *testing.T, outputsFile string) probe.Formation {
	t.Helper()
	f := probeFor(t, outputsFile).Formation(context.Background())
	require.True(t, f.OK(), f.Problem())
	return f
}

// requireNoPoolerPaused reads every pooler's databases back: none paused.
func requireNoPoolerPaused(t *testing.T, s outputs.Stack, p *probe.Probe) {
	t.Helper()
	consoles := switchover.Poolers(s, p.Dial)
	require.NotEmpty(t, consoles)
	for _, c := range consoles {
		paused, err := c.(*pooler.Console).Paused(context.Background())
		require.NoError(t, err, c.Name())
		require.Empty(t, paused, "%s is left paused", c.Name())
	}
}
