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

var profiles = []Profile{
	{
		Name:    "fast",
		Summary: "fail over in about 10 s; tolerates etcd or network stalls of only a few seconds",
		// loop_wait 1 (not 2) narrows when a dead leader's lock runs out to
		// ttl-1 … ttl; retry_timeout, the stall a leader rides out, stays 4.
		TTL: 9, LoopWait: 1, RetryTimeout: 4, PrimaryStartTimeout: 10,
		MaximumLagOnFailover: 1 * mib,
		CheckInterMS:         1000, CheckFastInterMS: 200, CheckDownInterMS: 300, CheckFall: 2, CheckRise: 2,
		ReplicaMaxLagBytes: 1 * mib,
	},
	{
		Name:    "balanced",
		Summary: "fail over in about 20 s; rides out stalls of several seconds",
		TTL:     20, LoopWait: 5, RetryTimeout: 7, PrimaryStartTimeout: 30,
		MaximumLagOnFailover: 1 * mib,
		CheckInterMS:         1000, CheckFastInterMS: 300, CheckDownInterMS: 500, CheckFall: 3, CheckRise: 2,
		ReplicaMaxLagBytes: 4 * mib,
	},
	{
		Name:    "safe",
		Summary: "Patroni's defaults: fail over in about 30 s; fewest needless failovers",
		TTL:     30, LoopWait: 10, RetryTimeout: 10, PrimaryStartTimeout: 300,
		MaximumLagOnFailover: 1 * mib,
		CheckInterMS:         2000, CheckFastInterMS: 2000, CheckDownInterMS: 2000, CheckFall: 3, CheckRise: 2,
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
