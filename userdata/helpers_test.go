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
		Secrets: ParamsUnder("/pgha/dev/"),
	}
}

// testPasswords are distinct, recognisable values, so a leak into any
// non-secret file is caught by a plain substring search.
func testPasswords() Passwords {
	return Passwords{
		"superuser":   "SuperSecret-su-7f3a9c",
		"replication": "SuperSecret-repl-2b8e1d",
		"rewind":      "SuperSecret-rw-5c0f4e",
		"app":         "SuperSecret-app-9d6a2b",
		"restapi":     "SuperSecret-api-1e7c3f",
		"stats":       "SuperSecret-stats-8a4b6d",
		"monitor":     "SuperSecret-mon-3f9e2a",
	}
}

func (p Passwords) all() []string {
	var out []string
	for _, s := range Secrets {
		out = append(out, p[s.Name])
	}
	return out
}
