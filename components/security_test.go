package components

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
)

// AWS accepts only these characters in security group and rule
// descriptions; anything else fails at create time, after the VPC exists.
var sgDescription = regexp.MustCompile(`^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{1,255}$`)

func TestRuleDescriptionsAreAcceptedByAWS(t *testing.T) {
	for _, nlb := range []bool{false, true} {
		for _, r := range Rules([]string{"203.0.113.0/24", "198.51.100.7/32"}, nlb) {
			assert.Regexp(t, sgDescription, r.Description, "rule %s", r.Name("sg"))
			assert.True(t, (r.Peer == "") != (r.CIDR == ""), "rule %s needs exactly one of a peer group and a CIDR", r.Name("sg"))
		}
	}
}

func TestGroupDescriptionsAreAcceptedByAWS(t *testing.T) {
	for g, d := range GroupDescriptions {
		assert.Regexp(t, sgDescription, d, g)
	}
}

func TestRuleNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules([]string{"203.0.113.0/24", "198.51.100.7/32"}, true) {
		n := r.Name("sg")
		assert.False(t, seen[n], "duplicate rule name %s", n)
		seen[n] = true
	}
}
