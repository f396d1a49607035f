package promgraph

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/report"
)

func alertSeries(name, state string, extra map[string]string, t0 time.Time, secs ...int) Series {
	ls := map[string]string{"__name__": "ALERTS", "alertname": name, "alertstate": state, "severity": "critical"}
	for k, v := range extra {
		ls[k] = v
	}
	s := Series{Labels: ls}
	for _, sec := range secs {
		s.Samples = append(s.Samples, Sample{At: t0.Add(time.Duration(sec) * time.Second), Value: 1})
	}
	return s
}

func TestEpisodesFromTheALERTSMatrix(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	from, to := t0, t0.Add(60*time.Second)
	rules := []AlertRule{{Name: "NoLeader", For: 30 * time.Second, Severity: "critical"}, {Name: "Down", For: time.Minute}}
	r := Result{Type: "matrix", Series: []Series{
		// Pending 3..6, again 10..40 (a gap of more than a step ends an
		// episode), firing from 41 to 44.
		alertSeries("NoLeader", "pending", map[string]string{"scope": "pgha"}, t0, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40),
		alertSeries("NoLeader", "firing", map[string]string{"scope": "pgha"}, t0, 41, 42, 43, 44),
		// Active before the window and at its end: two label sets.
		alertSeries("Down", "pending", map[string]string{"job": "patroni", "node": "pg-1"}, t0, 0, 1, 2),
		alertSeries("Down", "pending", map[string]string{"job": "etcd", "node": "etcd-1"}, t0, 58, 59, 60),
	}}
	eps := Episodes(r, from, to, time.Second, rules)
	require.Len(t, eps, 4)

	assert.Equal(t, "Down", eps[0].Alert)
	assert.True(t, eps[0].Before, "active at the window's start")
	assert.Equal(t, t0.Add(3*time.Second), eps[0].Cleared)
	assert.Equal(t, "patroni pg-1", eps[0].Subject())
	assert.Equal(t, "critical", eps[0].Severity, "from the series' labels")

	assert.Equal(t, "NoLeader", eps[1].Alert)
	assert.Equal(t, t0.Add(3*time.Second), eps[1].Pending)
	assert.Equal(t, t0.Add(7*time.Second), eps[1].Cleared)
	assert.False(t, eps[1].Fired())
	assert.Equal(t, 30*time.Second, eps[1].For)
	assert.Equal(t, map[string]string{"scope": "pgha", "severity": "critical"}, eps[1].Labels)
	assert.Equal(t, "NoLeader pending +3.0 s → cleared +7.0 s (never fired; for: 30s)", eps[1].Text(t0))

	assert.Equal(t, t0.Add(10*time.Second), eps[2].Pending)
	assert.Equal(t, t0.Add(41*time.Second), eps[2].Firing, "pending then firing is one episode")
	assert.Equal(t, t0.Add(45*time.Second), eps[2].Cleared)
	assert.Equal(t, "NoLeader pending +9.0 s → firing +40.0 s → cleared +44.0 s (for: 30s)", eps[2].Text(t0.Add(time.Second)))

	assert.Equal(t, "etcd etcd-1", eps[3].Subject())
	assert.True(t, eps[3].Cleared.IsZero(), "still active at the window's end")
	assert.False(t, eps[3].Before)
	assert.Contains(t, eps[3].Text(t0), "still active at the window's end")

	assert.Empty(t, Episodes(Result{Type: "matrix"}, from, to, time.Second, rules))

	// A window that ends between two evaluations: the last one counts.
	eps = Episodes(Result{Type: "matrix", Series: []Series{alertSeries("Down", "pending", nil, t0, 58, 59, 60)}},
		from, to.Add(900*time.Millisecond), time.Second, rules)
	require.Len(t, eps, 1)
	assert.True(t, eps[0].Cleared.IsZero(), "still active at the window's last evaluation")
}

func TestAlertRulesDecodesOnlyAlertingRules(t *testing.T) {
	var req http.Request
	c := answer(t, 200, `{"status":"success","data":{"groups":[{"name":"g","rules":[
		{"type":"alerting","name":"PatroniNoLeader","duration":30,"labels":{"severity":"critical"}},
		{"type":"recording","name":"x:y"},
		{"type":"alerting","name":"TargetDown","duration":60,"labels":{}}]}]}}`, &req)
	rules, err := c.AlertRules(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "/prom/api/v1/rules", req.URL.Path)
	assert.Equal(t, http.MethodGet, req.Method, "the rules endpoint takes GET only")
	assert.Equal(t, "alert", req.Form.Get("type"))
	assert.Equal(t, []AlertRule{{"PatroniNoLeader", 30 * time.Second, "critical"}, {"TargetDown", time.Minute, ""}}, rules)

	c = answer(t, 500, `{"status":"error","errorType":"internal","error":"boom"}`, &req)
	_, err = c.AlertRules(context.Background())
	var pe *Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "boom", pe.Message)
}

func TestCollectAlertsNeverFails(t *testing.T) {
	var req http.Request
	c := answer(t, 503, `not prometheus`, &req)
	a := CollectAlerts(context.Background(), c, AlertRequest{From: time.Now().Add(-time.Minute), To: time.Now()})
	assert.Contains(t, a.Note, "did not answer")
	assert.Empty(t, a.Episodes)
	// Nothing to follow in a history that has no data.
	require.NoError(t, FollowAlerts(context.Background(), c, a, time.Now()))
}

// The real server's ALERTS, read back: a rule that fires after 2 s and
// one that waits an hour, raised when pg-1 goes and cleared when it is
// back.
func TestAlertsAgainstRealPrometheus(t *testing.T) {
	f := newFakeCluster(t)
	tlsm := newPromTLS(t)
	rules := filepath.Join(tlsm.dir, "rules.yml")
	require.NoError(t, os.WriteFile(rules, []byte(`groups:
  - name: test
    rules:
      - alert: TestNoPrimary
        expr: haproxy_backend_active_servers{proxy="primary"} == 0
        for: 2s
        labels: {severity: critical}
      - alert: TestNodeDown
        expr: up{node="pg-1"} == 0
        for: 1h
        labels: {severity: warning}
`), 0o644))
	cfg := strings.Replace(f.scrapeConfig(), "global:\n", "global:\n  evaluation_interval: 1s\n", 1) + "rule_files: ['" + rules + "']\n"
	base := startPrometheus(t, cfg, tlsm)
	c := clusterClient(base, tlsm.stack)
	ctx := context.Background()

	waitScraped(t, c, 8)
	from := time.Now()
	time.Sleep(2 * time.Second)
	fault := time.Now()
	f.setPhase(1)
	firing := func() bool {
		r, err := c.Query(ctx, `ALERTS{alertname="TestNoPrimary",alertstate="firing"}`, time.Time{})
		return err == nil && len(r.Series) == 2
	}
	require.True(t, wait.Poll(ctx, 30*time.Second, 200*time.Millisecond, firing), "TestNoPrimary never fired")
	// The history of a window that ends while everything is active.
	mid := time.Now()
	a := CollectAlerts(ctx, c, AlertRequest{From: from, To: mid, Origin: fault, Step: time.Second})
	require.Empty(t, a.Note)
	for _, e := range a.Episodes {
		assert.True(t, e.Cleared.IsZero(), "%s is still active", e.Text(fault))
	}
	f.setPhase(0)
	require.True(t, wait.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool {
		r, err := c.Query(ctx, `ALERTS`, time.Time{})
		return err == nil && len(r.Series) == 0
	}), "the alerts did not clear")
	back := time.Now()
	require.NoError(t, FollowAlerts(ctx, c, a, back.Add(2*time.Second)))

	got := map[string]report.AlertEpisode{}
	for _, e := range a.Episodes {
		t.Log(e.Text(fault))
		got[e.Alert+" "+e.Subject()] = e
		assert.False(t, e.Before)
		assert.True(t, e.Pending.After(fault.Add(-time.Second)), "raised after the fault: %s", e.Text(fault))
		assert.False(t, e.Cleared.IsZero(), "cleared: %s", e.Text(fault))
		assert.True(t, e.Cleared.After(mid) && e.Cleared.Before(back.Add(2*time.Second)), "cleared after pg-1 was back: %s", e.Text(fault))
	}
	require.Len(t, got, 4, "two HAProxy nodes, two pg-1 targets: %v", a.Lines())
	for _, n := range []string{"haproxy-1", "haproxy-2"} {
		e := got["TestNoPrimary haproxy "+n+" primary"]
		assert.True(t, e.Fired(), n)
		assert.Equal(t, 2*time.Second, e.For)
		assert.GreaterOrEqual(t, e.Firing.Sub(e.Pending), 2*time.Second, "fires after its for:")
	}
	for _, job := range []string{JobPatroni, JobPostgres} {
		e := got["TestNodeDown "+job+" pg-1"]
		assert.False(t, e.Fired(), job)
		assert.Equal(t, time.Hour, e.For)
		assert.Equal(t, "warning", e.Severity)
	}

	// Followed again later (a test reading the saved report), after the
	// same alerts were raised anew: the new episodes began after the
	// check and are not its.
	f.setPhase(1)
	require.True(t, wait.Poll(ctx, 30*time.Second, 200*time.Millisecond, firing), "TestNoPrimary never fired again")
	for i := range a.Episodes {
		a.Episodes[i].Cleared = time.Time{} // active again, as a history followed while they were
	}
	f.setPhase(0)
	again := time.Now()
	require.True(t, wait.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool {
		r, err := c.Query(ctx, `ALERTS`, time.Time{})
		return err == nil && len(r.Series) == 0
	}), "the alerts did not clear again")
	require.NoError(t, FollowAlerts(ctx, c, a, time.Now().Add(2*time.Second)))
	require.Len(t, a.Episodes, 4, "only the check's episodes: %v", a.Lines())
	for _, e := range a.Episodes {
		assert.True(t, e.Pending.Before(mid), "began within the check: %s", e.Text(fault))
		assert.True(t, e.Cleared.Before(again), "the check's episode cleared the first time: %s", e.Text(fault))
	}
}
