package alertproof

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/userdata"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// Every scenario, and validate's switchover and failover, has an
// expectation, and each names only alerts the rules file defines.
func TestTableCoversEveryCheckAndNamesRealAlerts(t *testing.T) {
	want := []string{"switchover", "failover"}
	for _, n := range scenario.Names() {
		want = append(want, "scenario:"+n)
	}
	var got []string
	for _, e := range Table {
		got = append(got, e.Check)
	}
	assert.ElementsMatch(t, want, got)

	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(userdata.AlertRules), -1) {
		defined[m[1]] = true
	}
	require.Contains(t, defined, MultipleLeaders)
	for _, e := range Table {
		names := append(append([]string{}, e.MayFire...), e.Quiet...)
		for _, r := range e.Raise {
			names = append(names, r.Alert)
			assert.Positive(t, r.Within, e.Check)
			assert.False(t, slices.Contains(e.Quiet, r.Alert), "%s: %s both raised and quiet", e.Check, r.Alert)
		}
		for _, n := range names {
			assert.True(t, defined[n], "%s names %s, which the rules file does not define", e.Check, n)
		}
		assert.Contains(t, e.quiet(), MultipleLeaders, "%s: split brain is never expected", e.Check)
	}
}

func TestJudge(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	x := Expectation{Check: "scenario:x", Raise: []Raise{{NoLeader, 30 * time.Second}, {TargetDown, 30 * time.Second}},
		MayFire: []string{TargetDown}, Quiet: []string{EtcdQuorumLost}}
	ep := func(alert string, pending, firing, cleared float64) report.AlertEpisode {
		e := report.AlertEpisode{Alert: alert, Pending: at(pending)}
		if firing > 0 {
			e.Firing = at(firing)
		}
		if cleared > 0 {
			e.Cleared = at(cleared)
		}
		return e
	}
	hist := func(eps ...report.AlertEpisode) *report.Alerts {
		return &report.Alerts{Start: t0, End: at(60), Origin: at(5), Step: time.Second, Episodes: eps}
	}

	good := hist(ep(NoLeader, 6, 0, 15), ep(TargetDown, 6.5, 50, 55), ep(NotStreaming, 20, 0, 25))
	assert.Empty(t, Judge(x, good, true), "raised in time, only TargetDown fired, all cleared")

	assert.Equal(t, []string{"PatroniNoLeader never went pending", "TargetDown never went pending"}, Judge(x, hist(), true))
	assert.Equal(t, []string{"PatroniNoLeader went pending 36.0 s after the fault, later than 30s"},
		Judge(x, hist(ep(NoLeader, 41, 0, 45), ep(TargetDown, 6, 0, 9)), true))
	assert.Equal(t, []string{"PatroniNoLeader fired +31.0 s"},
		Judge(x, hist(ep(NoLeader, 6, 36, 40), ep(TargetDown, 6, 0, 9)), true), "only MayFire may fire")
	assert.Equal(t, []string{"EtcdQuorumLost went pending +1.0 s"},
		Judge(x, hist(ep(NoLeader, 6, 0, 9), ep(TargetDown, 6, 0, 9), ep(EtcdQuorumLost, 6, 0, 7)), true))

	split := ep(MultipleLeaders, 0, 0, 2)
	split.Before = true
	split.Labels = map[string]string{"scope": "pgha"}
	assert.Equal(t, []string{"PatroniMultipleLeaders went pending: two primaries"},
		Judge(Expectation{}, hist(split), true), "split brain counts even when raised earlier")

	// Raised by an earlier check: neither satisfies a Raise nor breaks a rule.
	old := ep(NoLeader, 0, 0, 3)
	old.Before = true
	stale := ep(EtcdQuorumLost, 0, 1, 0)
	stale.Before = true
	assert.Equal(t, []string{"PatroniNoLeader never went pending"},
		Judge(x, hist(old, stale, ep(TargetDown, 6, 0, 9)), true))

	// The disks' alerts say nothing about a check.
	disk := ep("DiskFillingUp", 6, 8, 0)
	assert.Empty(t, Judge(x, hist(ep(NoLeader, 6, 0, 9), ep(TargetDown, 6, 0, 9), disk), true))

	// Still active at the end: a problem only when clearing is judged.
	active := hist(ep(NoLeader, 6, 0, 0), ep(TargetDown, 6, 0, 9))
	assert.Empty(t, Judge(x, active, false))
	assert.Equal(t, []string{"PatroniNoLeader had not cleared +55.0 s after the fault"}, Judge(x, active, true))

	assert.Equal(t, []string{"no alert history: monitoring is off"}, Judge(x, &report.Alerts{Note: "monitoring is off"}, false))
	assert.Equal(t, []string{"no alert history"}, Judge(x, nil, false))
}

func TestExpectationInWords(t *testing.T) {
	x, ok := For("scenario:etcd-quorum-lost")
	require.True(t, ok)
	assert.Equal(t, "EtcdQuorumLost pending within 30s; TargetDown pending within 30s; nothing fires but EtcdQuorumLost; "+
		"never pending: PatroniMultipleLeaders, PatroniNoLeader, HAProxyNoPrimary", x.String())
	_, ok = For("etcd")
	assert.False(t, ok, "checks that break nothing expect nothing")
}
