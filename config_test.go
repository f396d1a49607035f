package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var problemLine = regexp.MustCompile(`(?m)^\s*(pgha|aws):[A-Za-z]+: `)

// TestBadConfigRefusedBeforeAnyResource runs the whole program with each bad
// configuration: it must fail with a message that names the key and the
// fix, and register nothing but the stack itself.
func TestBadConfigRefusedBeforeAnyResource(t *testing.T) {
	cases := []struct {
		name   string
		set    map[string]string
		unset  []string
		secret []string
		zones  []string
		lines  int      // problem lines expected, when not 1
		want   []string // substrings of the error
	}{
		{name: "allowedCidrs missing", unset: []string{"pgha:allowedCidrs"},
			want: []string{"pgha:allowedCidrs: is required", "pulumi config set --path 'pgha:allowedCidrs[0]'"}},
		{name: "allowedCidrs empty list", set: map[string]string{"pgha:allowedCidrs": "[]"},
			want: []string{"pgha:allowedCidrs: is required"}},
		{name: "world without opt-in", set: map[string]string{"pgha:allowedCidrs": `["0.0.0.0/0"]`},
			want: []string{"pgha:allowedCidrs", "0.0.0.0/0", "pgha:allowWorldAccess true"}},
		{name: "documentation range left in place", set: map[string]string{"pgha:allowedCidrs": `["203.0.113.0/24"]`},
			want: []string{"pgha:allowedCidrs", "203.0.113.0/24", "documentation range", "<your public IPv4 address>/32"}},
		{name: "an address inside a documentation range", set: map[string]string{"pgha:allowedCidrs": `["100.20.30.0/24", "198.51.100.7/32"]`},
			want: []string{"pgha:allowedCidrs", "entry 1", "198.51.100.7/32", "documentation range"}},
		{name: "loopback", set: map[string]string{"pgha:allowedCidrs": `["127.0.0.1/32"]`},
			want: []string{"pgha:allowedCidrs", "loopback"}},
		{name: "not a CIDR", set: map[string]string{"pgha:allowedCidrs": `["203.0.113.300/24"]`},
			want: []string{"pgha:allowedCidrs", "is not a CIDR"}},
		{name: "CIDR host bits", set: map[string]string{"pgha:allowedCidrs": `["203.0.113.7/24"]`},
			want: []string{"pgha:allowedCidrs", "use 203.0.113.0/24"}},
		{name: "IPv6 CIDR", set: map[string]string{"pgha:allowedCidrs": `["2001:db8::/32"]`},
			want: []string{"pgha:allowedCidrs", "not IPv4"}},
		{name: "garbled list", set: map[string]string{"pgha:allowedCidrs": `["203.0.113.0/24"`},
			want: []string{"pgha:allowedCidrs", "not a list"}},
		{name: "vpc too big", set: map[string]string{"pgha:vpcCidr": "10.0.0.0/8"},
			want: []string{"pgha:vpcCidr", "between /16 and /21", "pulumi config set pgha:vpcCidr 10.42.0.0/16"}},
		{name: "vpc too small for the subnets", set: map[string]string{"pgha:vpcCidr": "10.42.0.0/24"},
			want: []string{"pgha:vpcCidr", "six /24"}},
		{name: "vpc garbage", set: map[string]string{"pgha:vpcCidr": "ten-dot-42"},
			want: []string{"pgha:vpcCidr", "not a CIDR"}},
		{name: "unknown profile", set: map[string]string{"pgha:profile": "ludicrous"},
			want: []string{"pgha:profile", `"ludicrous" is not a profile`, "fast", "pulumi config set pgha:profile fast"}},
		{name: "instance type garbage", set: map[string]string{"pgha:etcdInstanceType": "t3"},
			want: []string{"pgha:etcdInstanceType", "not an EC2 instance type", "pulumi config set pgha:etcdInstanceType t3.small"}},
		{name: "instance type injection", set: map[string]string{"pgha:haproxyInstanceType": "t3.small; rm -rf"},
			want: []string{"pgha:haproxyInstanceType", "not an EC2 instance type"}},
		{name: "Arm instance type", set: map[string]string{"pgha:patroniInstanceType": "m7g.large"},
			want: []string{"pgha:patroniInstanceType", "Arm (Graviton)", "x86_64", "pulumi config set pgha:patroniInstanceType t3.medium"}},
		{name: "nano is too small", set: map[string]string{"pgha:etcdInstanceType": "t3.nano"},
			want: []string{"pgha:etcdInstanceType", "too small"}},
		{name: "micro is too small for PostgreSQL", set: map[string]string{"pgha:patroniInstanceType": "t3.micro"},
			want: []string{"pgha:patroniInstanceType", "too small", "t3.medium"}},
		{name: "NAT layout", set: map[string]string{"pgha:natGateways": "two"},
			want: []string{"pgha:natGateways", `"single"`, `"perAz"`}},
		{name: "watchdog mode", set: map[string]string{"pgha:watchdog": "on"},
			want: []string{"pgha:watchdog", `"on"`, "automatic", "required", "off"}},
		{name: "region missing", unset: []string{"aws:region"},
			want: []string{"aws:region: is not set", "pulumi config set aws:region"}},
		{name: "region garbage", set: map[string]string{"aws:region": "Ireland"},
			want: []string{"aws:region", "not an AWS region name"}},
		{name: "region with two AZs", zones: []string{"xx-west-9a", "xx-west-9b"},
			want: []string{"aws:region", "offers 2 available Availability Zone(s)", "needs 3"}},
		{name: "volume too small", set: map[string]string{"pgha:patroniVolumeSize": "4"},
			want: []string{"pgha:patroniVolumeSize", "4 GiB is outside 8-16384"}},
		{name: "volume not a number", set: map[string]string{"pgha:etcdVolumeSize": "ten"},
			want: []string{"pgha:etcdVolumeSize", "not a whole number"}},
		{name: "bool garbage", set: map[string]string{"pgha:synchronousMode": "yes please"},
			want: []string{"pgha:synchronousMode", "not true or false"}},
		{name: "bad ssh key", set: map[string]string{"pgha:sshPublicKey": "ssh-ed25519 notbase64!!"},
			want: []string{"pgha:sshPublicKey", "not one OpenSSH public key"}},
		{name: "bad AMI id", set: map[string]string{"pgha:amiId": "debian"},
			want: []string{"pgha:amiId", "not an AMI id"}},
		{name: "bad cluster name", set: map[string]string{"pgha:clusterName": "My_Cluster"},
			want: []string{"pgha:clusterName"}},
		{name: "plain-text password", set: map[string]string{"pgha:appPassword": "ThisIsLongEnough-123"},
			want: []string{"pgha:appPassword", "plain text", "--secret"}},
		{name: "short password", set: map[string]string{"pgha:appPassword": "short"}, secret: []string{"pgha:appPassword"},
			want: []string{"pgha:appPassword", "16-128 characters"}},
		{name: "every problem at once",
			set:   map[string]string{"pgha:vpcCidr": "10.0.0.0/8", "pgha:profile": "x", "pgha:natGateways": "y"},
			unset: []string{"pgha:allowedCidrs"},
			want:  []string{"pgha:vpcCidr", "pgha:profile", "pgha:natGateways", "pgha:allowedCidrs"}, lines: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			for k, v := range tc.set {
				cfg[k] = v
			}
			for _, k := range tc.unset {
				delete(cfg, k)
			}
			mk := newMocks()
			if tc.zones != nil {
				mk.zones = tc.zones
			}
			r := runProgram(t, cfg, tc.secret, mk)
			require.Error(t, r.err)
			msg := r.err.Error()
			if tc.lines == 0 {
				tc.lines = 1
			}
			// One line per problem, each starting with the key.
			assert.Len(t, problemLine.FindAllString(msg, -1), tc.lines, msg)
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			// Secrets are never echoed back.
			for k, v := range tc.set {
				if strings.HasSuffix(k, "Password") {
					assert.NotContains(t, msg, v)
				}
			}
			// The mocks never see the root stack; anything else is a leak.
			// A check that needs AWS's answer (the region's zones) runs after
			// the provider and the read of the stack's own previous outputs,
			// which create nothing in AWS.
			for _, res := range r.mocks.snapshot() {
				if tc.zones != nil && (res.Type == tProvider || res.Type == tStackRef) {
					continue
				}
				t.Errorf("resource %s %s registered despite bad config", res.Type, res.Name)
			}
		})
	}
}

// TestWorldAccessWithOptIn: the explicit opt-in is honoured.
func TestWorldAccessWithOptIn(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:allowedCidrs"] = `["0.0.0.0/0"]`
	cfg["pgha:allowWorldAccess"] = "true"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	n := 0
	for _, rule := range r.mocks.byType(tIngress) {
		if str(rule.Inputs, "cidrIpv4") == "0.0.0.0/0" {
			n++
		}
	}
	assert.Equal(t, 4, n, "5000, 5001, 6432 and SSH, nothing more (the stats page is private)")
}
