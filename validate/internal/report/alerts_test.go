package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{30 * time.Second: "30s", time.Minute: "1m", 90 * time.Second: "1m30s",
		time.Hour: "1h", 10 * time.Minute: "10m", 1500 * time.Millisecond: "1.5s"} {
		assert.Equal(t, want, ShortDuration(d))
	}
}

func TestAlertsInTheMarkdown(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	c := Check{Name: "scenario:leader-kill", Verdict: Pass, Alerts: &Alerts{Prometheus: "https://10.42.4.40:9090", Start: t0, End: t0.Add(40 * time.Second),
		Origin: t0.Add(5 * time.Second), Step: time.Second,
		Episodes: []AlertEpisode{
			{Alert: "TargetDown", Labels: map[string]string{"job": "patroni", "node": "pg-1", "instance": "10.42.1.20:8008"}, For: time.Minute,
				Pending: t0.Add(7 * time.Second), Cleared: t0.Add(20 * time.Second)},
			{Alert: "PatroniNoLeader", Labels: map[string]string{"scope": "pgha"}, For: 30 * time.Second,
				Pending: t0.Add(6200 * time.Millisecond), Cleared: t0.Add(14800 * time.Millisecond)},
		},
		Expect: "PatroniNoLeader pending within 30s", Unmet: []string{"HAProxyNoPrimary never went pending"}}}
	both := AlertEpisode{Alert: "HAProxyNoPrimary", Labels: map[string]string{"job": "haproxy", "node": "haproxy-1"}, For: 30 * time.Second,
		Pending: t0.Add(7 * time.Second), Cleared: t0.Add(16 * time.Second)}
	c.Alerts.Episodes = append(c.Alerts.Episodes, both)
	both.Labels = map[string]string{"job": "haproxy", "node": "haproxy-2"}
	c.Alerts.Episodes = append(c.Alerts.Episodes, both)
	md := (&Report{Checks: []Check{c}}).Markdown()
	assert.Contains(t, md, "### Alerts\n")
	lines := c.Alerts.Lines()
	assert.Equal(t, []string{
		"PatroniNoLeader pending +1.2 s → cleared +9.8 s (never fired; for: 30s)",
		"TargetDown (patroni pg-1) pending +2.0 s → cleared +15.0 s (never fired; for: 1m)",
		"HAProxyNoPrimary (haproxy haproxy-1, haproxy haproxy-2) pending +2.0 s → cleared +11.0 s (never fired; for: 30s)",
	}, lines, "in the order they went pending, the same times on one line")
	for _, l := range lines {
		assert.Contains(t, md, "- "+l+"\n")
	}
	assert.Contains(t, md, "**Not met** (evidence, not a verdict): HAProxyNoPrimary never went pending.")

	c.Alerts.Unmet = nil
	assert.Contains(t, (&Report{Checks: []Check{c}}).Markdown(), "Expected: PatroniNoLeader pending within 30s. Met.")

	c.Alerts = &Alerts{Note: "the stack has no prometheusEndpoint: monitoring is off"}
	md = (&Report{Checks: []Check{c}}).Markdown()
	assert.True(t, strings.Contains(md, "No alert history: the stack has no prometheusEndpoint: monitoring is off."), md)
}
