package scenario

import "github.com/pgha/pgha/validate/internal/fault"

// 2. The leader's whole node stops (a clean shutdown in the lab, a forced
// EC2 stop on AWS): every daemon of the node goes away.
func init() {
	Register(Scenario{
		Name:   "leader-stop",
		Title:  "the leader's whole node is stopped",
		Proves: "losing the leader's host hands leadership to a replica, with no acknowledged write lost",
		Story:  leaderLost(fault.Stop, "stopped"),
	})
}
