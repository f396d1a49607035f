package userdata

import (
	"testing"

	"github.com/pgha/pgha/internal/topology"
)

// defaultCluster is the cluster the golden files show: the default 3+3+2
// plan, profile fast.
func defaultCluster(t testing.TB) Cluster {
	t.Helper()
	plan, err := topology.New(topology.DefaultVPCCIDR)
	if err != nil {
		t.Fatal(err)
	}
	return Cluster{
		Name:    "pgha",
		Plan:    plan,
		Profile: "fast",
		Region:  "eu-west-1",
		Users:   DefaultUsers(),
		Secrets: SecretParams{
			SuperuserPassword:   "/pgha/dev/superuser-password",
			ReplicationPassword: "/pgha/dev/replication-password",
			RewindPassword:      "/pgha/dev/rewind-password",
			AppPassword:         "/pgha/dev/app-password",
			RestAPIPassword:     "/pgha/dev/restapi-password",
			StatsPassword:       "/pgha/dev/stats-password",
		},
	}
}

// testPasswords are distinct, recognisable values, so a leak into any
// non-secret file is caught by a plain substring search.
func testPasswords() Passwords {
	return Passwords{
		Superuser:   "SuperSecret-su-7f3a9c",
		Replication: "SuperSecret-repl-2b8e1d",
		Rewind:      "SuperSecret-rw-5c0f4e",
		App:         "SuperSecret-app-9d6a2b",
		RestAPI:     "SuperSecret-api-1e7c3f",
		Stats:       "SuperSecret-stats-8a4b6d",
	}
}

func (p Passwords) all() []string {
	return []string{p.Superuser, p.Replication, p.Rewind, p.App, p.RestAPI, p.Stats}
}
