package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/cluster"
)

// TestBootUserDataIsTheProgramsByteForByte: a booted lab node boots the very
// document this program gives its EC2 instance for the same stack and
// config, so what the lab proves about booting holds for `pulumi up`.
func TestBootUserDataIsTheProgramsByteForByte(t *testing.T) {
	cases := []struct {
		name, profile string
		sync, backups bool
	}{
		{"pgha", "fast", false, false},
		{"bt", "safe", true, false},
		{"bk", "fast", false, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%s-backups=%v", tc.name, tc.profile, tc.backups), func(t *testing.T) {
			l := &cluster.Lab{Name: tc.name, Settings: cluster.Settings{
				Name: tc.name, Profile: tc.profile, SynchronousMode: tc.sync, Net: cluster.NetBoot,
				Backups: tc.backups, Account: mockAccount,
			}}
			spec, err := l.BootSpec()
			require.NoError(t, err)

			r := runStack(t, tc.name, cluster.BootConfig(l.Settings), nil, nil)
			require.NoError(t, r.err)
			insts := r.mocks.byType(tInstance)
			require.Len(t, insts, len(spec.UserData))
			for _, i := range insts {
				node := strings.TrimPrefix(str(obj(i.Inputs, "tags"), "Name"), tc.name+"-")
				want, ok := spec.UserData[node]
				require.True(t, ok, "instance %s (Name tag %q) is no node of the booted lab", i.Name, node)
				// Not assert.Equal: a diff of two 30 KiB documents helps
				// nobody; the first differing line does.
				if got := userData(t, i); got != want {
					t.Errorf("%s: the program's user data differs from the lab's at %s", node, firstDiff(got, want))
				}
			}
			assert.Contains(t, spec.UserData["pg-1"], "region="+cluster.BootRegion, "the lab stack's region reaches the nodes")
			if tc.backups {
				assert.Contains(t, spec.UserData["pg-1"], "repo1-s3-bucket=pgha-"+tc.name+"-"+mockAccount+"-"+cluster.BootRegion)
			}
		})
	}
}

// firstDiff names the first line where a and b differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: program %q, lab %q", i+1, x, y)
		}
	}
	return "no line (identical)"
}
