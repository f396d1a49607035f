// Package alertproof says which of the cluster's alerts (userdata/alerts/
// pgha.rules.yml) each destructive check must raise, and judges what
// Prometheus recorded against it. Most rules wait (`for:`) longer than a
// healthy failover takes, so the usual expectation is: the condition
// becomes true (the alert goes pending) soon after the fault, it does not
// fire because the cluster heals first, and it clears after recovery.
// The verdict is evidence in the report; only the lab's integration test
// turns it into a failure.
package alertproof

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgha/pgha/validate/internal/report"
)

// The alerts the expectations name.
const (
	NoLeader         = "PatroniNoLeader"
	MultipleLeaders  = "PatroniMultipleLeaders"
	NotStreaming     = "PostgreSQLReplicaNotStreaming"
	NoSyncStandby    = "PatroniNoSyncStandby"
	EtcdMemberDown   = "EtcdMemberDown"
	EtcdQuorumLost   = "EtcdQuorumLost"
	HAProxyNoPrimary = "HAProxyNoPrimary"
	TargetDown       = "TargetDown"
)

// Raise is an alert that must go pending within Within of the fault.
type Raise struct {
	Alert  string
	Within time.Duration
}

// Expectation is what one check does to the alerts.
type Expectation struct {
	Check string // the check's name in the report
	// Raise must each go pending (or fire) within their bound.
	Raise []Raise
	// MayFire may reach firing; every other alert raised during the check
	// must not (the faults are shorter than the rules' for:).
	MayFire []string
	// Quiet must not even go pending. PatroniMultipleLeaders (split
	// brain) is quiet in every check.
	Quiet []string
}

// Unrelated alerts are about the disks, which no check touches (and in the
// namespace lab every node shares the host's disk): the judge leaves them
// out, the report still shows them.
var Unrelated = []string{"DiskFillingUp", "DiskAlmostFull"}

// Generous bounds: the lab scrapes and evaluates every second, AWS every
// 15 s; these leave room for both. (At 15 s, a gap of a few seconds, as
// in a clean leader stop, can fall between two scrapes and show nothing.)
const (
	soon    = 30 * time.Second // a target or a leader gone
	etcdWin = 45 * time.Second // EtcdMemberDown's 1 m rate must pass 1/s first
)

var (
	leaderLost = []Raise{{NoLeader, soon}, {HAProxyNoPrimary, soon}, {TargetDown, soon}}
	etcdQuiet  = []string{EtcdMemberDown, EtcdQuorumLost}
)

// Table is the expectation of each check that breaks something.
var Table = []Expectation{
	// The leader's Patroni gone: no primary until the key expires.
	{Check: "scenario:leader-kill", Raise: leaderLost, Quiet: etcdQuiet},
	// A clean stop hands the key over at once: the gap without a primary
	// can be shorter than a scrape (the lab's CI saw HAProxyNoPrimary
	// never go pending), so only the stopped node's targets must show it;
	// NoLeader and HAProxyNoPrimary may go pending, never fire.
	{Check: "scenario:leader-stop", Raise: []Raise{{TargetDown, soon}}, Quiet: etcdQuiet},
	{Check: "scenario:leader-partition", Raise: leaderLost, Quiet: etcdQuiet},
	// Patroni lives and reports PostgreSQL not running until it restarts
	// it; Patroni's and postgres_exporter's scrapes may fail meanwhile.
	{Check: "scenario:postgres-crash", Raise: []Raise{{NoLeader, soon}}, Quiet: etcdQuiet},
	// The replica's node is gone: its targets are down, and one fewer
	// replica streams than the scrape configuration names (and in
	// synchronous mode, for a moment, no sync standby).
	{Check: "scenario:replica-lost", Raise: []Raise{{TargetDown, soon}, {NotStreaming, soon}}, Quiet: append([]string{NoLeader, HAProxyNoPrimary}, etcdQuiet...)},
	// Quorum holds: the member is down, etcd is not. While the two left
	// elect a new raft leader neither sees one, so EtcdQuorumLost may go
	// pending for a moment; it must not fire.
	{Check: "scenario:etcd-member-lost", Raise: []Raise{{TargetDown, soon}, {EtcdMemberDown, etcdWin}},
		Quiet: []string{NoLeader, HAProxyNoPrimary}},
	// No quorum for twice the ttl: failsafe mode keeps the primary. The
	// outage can outlast EtcdQuorumLost's for:, so it may fire.
	{Check: "scenario:etcd-quorum-lost", Raise: []Raise{{EtcdQuorumLost, soon}, {TargetDown, soon}},
		MayFire: []string{EtcdQuorumLost}, Quiet: []string{NoLeader, HAProxyNoPrimary}},
	// The other HAProxy node still routes; the lost one exports nothing.
	{Check: "scenario:haproxy-lost", Raise: []Raise{{TargetDown, soon}}, Quiet: append([]string{NoLeader, HAProxyNoPrimary}, etcdQuiet...)},
	{Check: "scenario:double-failover", Raise: leaderLost, Quiet: etcdQuiet},
	// Planned: a moment without a primary, and the old leader's scrapes
	// failing while its PostgreSQL restarts as a replica, may show as
	// pending; nothing fires.
	{Check: "scenario:switchover-load", Quiet: etcdQuiet},
	{Check: "switchover", Quiet: etcdQuiet},
	{Check: "failover", Raise: leaderLost, Quiet: etcdQuiet},
}

// For returns the expectation of a check.
func For(check string) (Expectation, bool) {
	for _, e := range Table {
		if e.Check == check {
			return e, true
		}
	}
	return Expectation{}, false
}

func (e Expectation) quiet() []string {
	if slices.Contains(e.Quiet, MultipleLeaders) {
		return e.Quiet
	}
	return append([]string{MultipleLeaders}, e.Quiet...)
}

// String says the expectation in words.
func (e Expectation) String() string {
	var parts []string
	for _, r := range e.Raise {
		parts = append(parts, fmt.Sprintf("%s pending within %s", r.Alert, r.Within))
	}
	fire := "nothing fires"
	if len(e.MayFire) > 0 {
		fire = "nothing fires but " + strings.Join(e.MayFire, ", ")
	}
	parts = append(parts, fire, "never pending: "+strings.Join(e.quiet(), ", "))
	return strings.Join(parts, "; ")
}

// Judge compares an alert history with the expectation and says how it
// differs (nothing: met). Episodes already active when the window began
// were raised by an earlier check and count for nothing but split brain;
// Unrelated alerts count for nothing.
// With cleared, every episode raised during the check must have ended
// by the window's end: ask with a window that reaches past recovery.
func Judge(e Expectation, a *report.Alerts, cleared bool) []string {
	if a == nil {
		return []string{"no alert history"}
	}
	if a.Note != "" {
		return []string{"no alert history: " + a.Note}
	}
	origin := a.Origin
	if origin.IsZero() {
		origin = a.Start
	}
	var out []string
	for _, r := range e.Raise {
		var first *report.AlertEpisode
		for i, ep := range a.Episodes {
			if ep.Alert == r.Alert && !ep.Before && (first == nil || ep.Pending.Before(first.Pending)) {
				first = &a.Episodes[i]
			}
		}
		switch {
		case first == nil:
			out = append(out, fmt.Sprintf("%s never went pending", r.Alert))
		case first.Pending.Sub(origin) > r.Within:
			out = append(out, fmt.Sprintf("%s went pending %.1f s after the fault, later than %s", r.Alert, first.Pending.Sub(origin).Seconds(), r.Within))
		}
	}
	quiet := e.quiet()
	for _, ep := range a.Episodes {
		what := ep.Alert
		if s := ep.Subject(); s != "" {
			what += " (" + s + ")"
		}
		if ep.Alert == MultipleLeaders {
			out = append(out, fmt.Sprintf("%s went pending: two primaries", what))
			continue
		}
		if ep.Before || slices.Contains(Unrelated, ep.Alert) {
			continue
		}
		if slices.Contains(quiet, ep.Alert) {
			out = append(out, fmt.Sprintf("%s went pending %+.1f s", what, ep.Pending.Sub(origin).Seconds()))
			continue
		}
		if ep.Fired() && !slices.Contains(e.MayFire, ep.Alert) {
			out = append(out, fmt.Sprintf("%s fired %+.1f s", what, ep.Firing.Sub(origin).Seconds()))
		}
		if cleared && ep.Cleared.IsZero() {
			out = append(out, fmt.Sprintf("%s had not cleared %+.1f s after the fault", what, a.End.Sub(origin).Seconds()))
		}
	}
	return out
}
