package userdata

import (
	"fmt"
	"strings"
)

// Profile is a failure-time profile: Patroni's DCS timing and HAProxy's check
// timing chosen together, because detection (Patroni) and routing (HAProxy)
// add up to the outage a client sees. docs/profiles.md explains the numbers.
type Profile struct {
	Name    string
	Summary string

	// Patroni bootstrap.dcs settings, in seconds.
	TTL                 int // leader lock lifetime: bounds hard-failure detection
	LoopWait            int // HA loop period
	RetryTimeout        int // DCS and PostgreSQL retry budget before demoting
	PrimaryStartTimeout int // how long a crashed primary may recover in place
	// MaximumLagOnFailover is the WAL lag in bytes above which a replica is
	// not promoted.
	MaximumLagOnFailover int64
	// WalSenderTimeout (PostgreSQL, seconds) bounds how long a demoting
	// leader's shutdown waits for standbys it can no longer reach.
	WalSenderTimeout int

	// HAProxy health checks.
	CheckInterMS int // interval between checks
	// CheckFastInterMS is the interval while a server is changing state
	// (after its first failed check, or first passed one): it shortens
	// fall and rise without checking a steady server more often.
	CheckFastInterMS int
	// CheckDownInterMS is the interval for a server that is down (the
	// replicas in the primary listener): how soon a new leader's first
	// passed check comes.
	CheckDownInterMS int
	CheckFall        int // failed checks before a server is marked down
	CheckRise        int // passed checks before a server is marked up again
	// ReplicaMaxLagBytes is the ?lag= bound of the replica check on 5001.
	ReplicaMaxLagBytes int64
}

const mib = 1 << 20

// A leader that loses etcd asks every other member POST /failsafe before it
// demotes (failsafe_mode). Patroni 3.0.2 gives each call a fixed 2 s timeout
// and one retry, so against members it cannot reach this costs up to 4 s.
const failsafeCheckSeconds = 4

// Patroni's etcd client never waits less than 1 s to connect to one etcd
// member, and its first attempt at a request tries every member in turn.
const etcdMemberTimeoutSeconds = 1

// stopSeconds is what a demoting leader needs after it decides to stop
// taking writes: PostgreSQL's fast shutdown refuses new work at once, so
// one second is headroom for a loaded host.
const stopSeconds = 1

// DemotionBound is the worst case, in seconds, from a leader's last lock
// renewal to its PostgreSQL refusing writes when the leader is cut off from
// everything: up to loop_wait until its next HA loop; the etcd request that
// fails (retry_timeout, but at least 1 s per etcd member, since the client
// tries each once); the failsafe calls; the stop. It must not exceed ttl, or
// a replica can be promoted while the old leader still takes writes. The
// leader-partition scenario measures both sides.
//
// It assumes use_proxies: without it Patroni asks every etcd member for the
// member list again before giving up, which adds seconds per member.
func (p Profile) DemotionBound(etcdMembers int) int {
	return p.LoopWait + p.dcsGiveUp(etcdMembers) + failsafeCheckSeconds + stopSeconds
}

// dcsGiveUp is how long a failing etcd request takes to fail.
func (p Profile) dcsGiveUp(etcdMembers int) int {
	return max(p.RetryTimeout, etcdMembers*etcdMemberTimeoutSeconds)
}

// ShutdownFitsDemotion reports whether a cut-off leader's PostgreSQL stops
// before Patroni demotes it a second time. Patroni 3.0.2 runs the first
// demotion in the background; while it waits on the shutdown, every HA
// loop that still cannot reach etcd starts another from the main thread,
// and the two each start a postmaster (seen in the leader-partition
// scenario). Each of the two demotions comes after at least one failed etcd
// request, so the second is no earlier than twice that after the cut; the
// shutdown ends wal_sender_timeout after the standbys last answered.
func (p Profile) ShutdownFitsDemotion(etcdMembers int) bool {
	return p.WalSenderTimeout+stopSeconds <= 2*p.dcsGiveUp(etcdMembers)
}

// A replica that takes the lock asks the other members first whether one
// is healthier, and Patroni 3.0.2 waits up to 2 s for one that does not
// answer (ha.py, fetch_node_status): a partitioned leader.
const memberProbeSeconds = 2

// promoteSeconds is a replica's promotion once it holds the lock (pg_ctl
// promote ends recovery at once; the checkpoint runs after), with headroom.
const promoteSeconds = 2

// FailoverBound is the worst case, in seconds, from a leader's failure to
// HAProxy sending connections to its successor: the lock runs out up to
// ttl after the last renewal; a replica's next HA loop (loop_wait) asks the
// other members (memberProbeSeconds) and promotes (promoteSeconds); then
// HAProxy's leader check, which checks a down server every downinter,
// needs rise passes, the later ones fastinter apart.
func (p Profile) FailoverBound() int {
	checksMS := p.CheckDownInterMS + (p.CheckRise-1)*p.CheckFastInterMS
	return p.TTL + p.LoopWait + memberProbeSeconds + promoteSeconds + (checksMS+999)/1000
}

// QueryWaitTimeout is PgBouncer's query_wait_timeout, in seconds: how long
// a client's query may wait for a server connection. Twice FailoverBound,
// so that a query that arrives as the leader fails still runs on the next
// one (a client that came just before the failure waits the whole bound,
// and a new leader's first server logins add to it), but not forever: a
// failover that takes longer ends in an error the client can act on. A
// planned switchover must hold the poolers paused for less than this.
func (p Profile) QueryWaitTimeout() int { return 2 * p.FailoverBound() }

var profiles = []Profile{
	{
		Name:    "fast",
		Summary: "fail over in about 10 s; tolerates etcd or network stalls of only a few seconds",
		// loop_wait 1 (not 2) narrows when a dead leader's lock runs out to
		// ttl-1 … ttl. retry_timeout 3 (not 4) keeps DemotionBound at ttl:
		// 1 + 3 + 4 + 1 = 9. An etcd stall longer than that is ridden out by
		// failsafe_mode as long as the members can reach each other.
		TTL: 9, LoopWait: 1, RetryTimeout: 3, PrimaryStartTimeout: 10,
		MaximumLagOnFailover: 1 * mib, WalSenderTimeout: 4,
		CheckInterMS: 1000, CheckFastInterMS: 200, CheckDownInterMS: 300, CheckFall: 2, CheckRise: 2,
		ReplicaMaxLagBytes: 1 * mib,
	},
	{
		Name:    "balanced",
		Summary: "fail over in about 20 s; rides out stalls of several seconds",
		TTL:     20, LoopWait: 5, RetryTimeout: 7, PrimaryStartTimeout: 30,
		MaximumLagOnFailover: 1 * mib, WalSenderTimeout: 10,
		CheckInterMS: 1000, CheckFastInterMS: 300, CheckDownInterMS: 500, CheckFall: 3, CheckRise: 2,
		ReplicaMaxLagBytes: 4 * mib,
	},
	{
		Name:    "safe",
		Summary: "Patroni's defaults: fail over in about 30 s; fewest needless failovers",
		TTL:     30, LoopWait: 10, RetryTimeout: 10, PrimaryStartTimeout: 300,
		MaximumLagOnFailover: 1 * mib, WalSenderTimeout: 15,
		CheckInterMS: 2000, CheckFastInterMS: 2000, CheckDownInterMS: 2000, CheckFall: 3, CheckRise: 2,
		ReplicaMaxLagBytes: 16 * mib,
	},
}

// Profiles returns the built-in profiles, fastest first.
func Profiles() []Profile {
	return append([]Profile(nil), profiles...)
}

// ProfileNames lists the valid profile names, fastest first.
func profileNames() []string {
	var names []string
	for _, p := range profiles {
		names = append(names, p.Name)
	}
	return names
}

// LookupProfile finds a profile by name.
func LookupProfile(name string) (Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("unknown profile %q: use one of %s", name, strings.Join(profileNames(), ", "))
}
