package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/readiness"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

const (
	tInstance   = "aws:ec2/instance:Instance"
	tVolume     = "aws:ebs/volume:Volume"
	tAttachment = "aws:ec2/volumeAttachment:VolumeAttachment"
	tSubnet     = "aws:ec2/subnet:Subnet"
	tSG         = "aws:ec2/securityGroup:SecurityGroup"
	tIngress    = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
	tEgress     = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
	tRolePolicy = "aws:iam/rolePolicy:RolePolicy"
	tRouteTable = "aws:ec2/routeTable:RouteTable"
	tProvider   = "pulumi:providers:aws"
	tStackRef   = "pulumi:pulumi:StackReference"
	tEIP        = "aws:ec2/eip:Eip"
	tEIPAssoc   = "aws:ec2/eipAssociation:EipAssociation"
)

func TestDefaultStackResourceCounts(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	counts := map[string]int{}
	for _, res := range r.mocks.snapshot() {
		counts[res.Type]++
	}
	want := map[string]int{
		tProvider:                                 1,
		tStackRef:                                 1, // the read of its own previous placement
		"pgha:index:Network":                      1,
		"pgha:index:Security":                     1,
		"pgha:index:Secrets":                      1,
		"pgha:index:EtcdCluster":                  1,
		"pgha:index:PatroniCluster":               1,
		"pgha:index:HAProxyTier":                  1,
		"pgha:index:Readiness":                    1,
		"pgha:index:ClusterTLS":                   1,
		"pgha:index:MonitoringNode":               1, // pgha:monitoring is on by default
		"pgha:index:AlertTopic":                   1,
		"aws:sns/topic:Topic":                     1,
		"aws:ec2/vpc:Vpc":                         1,
		"aws:ec2/internetGateway:InternetGateway": 1,
		tSubnet:     6,
		tRouteTable: 4, // 1 public + 1 per private subnet
		"aws:ec2/routeTableAssociation:RouteTableAssociation": 6,
		"aws:ec2/eip:Eip":               3, // 1 NAT + 2 HAProxy
		tEIPAssoc:                       2, // each HAProxy node's, made after its instance
		"aws:ec2/natGateway:NatGateway": 1,
		tSG:                             4,       // etcd, patroni, haproxy, monitor
		tIngress:                        17 + 9,  // with PgBouncer's 6432 and the peer HAProxy 5000/5001/6432; + the metrics ports from the monitor, 9090 and SSH to it
		tEgress:                         19 + 11, // with the stats page and the peer HAProxy 5000/5001/6432; + the monitor's scrapes, apt/SSM, the jump host to it
		tInstance:                       8 + 1,
		tVolume:                         6, // etcd and PostgreSQL data
		tAttachment:                     6,
		"aws:iam/role:Role":             3 + 1,
		tRolePolicy:                     4 + 1 + 1, // every tier reads its TLS material; PostgreSQL's backups; the monitor's alerts
		"pgha:index:Backups":            1,         // pgha:backups is on by default
		"aws:kms/key:Key":               1,
		"aws:s3/bucketV2:BucketV2":      1,
		"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":                                     1,
		"aws:s3/bucketOwnershipControls:BucketOwnershipControls":                                     1,
		"aws:s3/bucketPolicy:BucketPolicy":                                                           1,
		"aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": 1,
		"aws:s3/bucketVersioningV2:BucketVersioningV2":                                               1,
		"aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2":                       1,
		"aws:iam/instanceProfile:InstanceProfile":                                                    3 + 1,
		"aws:ssm/parameter:Parameter":                                                                9 + 1 + 2*9, // passwords, the CA, each node's (and the monitor's) certificate and key
		"random:index/randomPassword:RandomPassword":                                                 9,
		"tls:index/privateKey:PrivateKey":                                                            1 + 1 + 1 + 9, // SSH, the CA, the client, the nodes and the monitor
		"tls:index/selfSignedCert:SelfSignedCert":                                                    1,
		"tls:index/certRequest:CertRequest":                                                          1 + 9,
		"tls:index/locallySignedCert:LocallySignedCert":                                              1 + 9,
		"aws:ec2/keyPair:KeyPair":                                                                    1,
		"command:remote:Command":                                                                     10, // 9 waits (each also reads its node's host keys), cluster check
	}
	assert.Equal(t, want, counts)
}

func TestThreeDistinctAZsAndPlannedIPs(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	zones := []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}

	subnetAZ := map[string]string{}
	subnetCIDR := map[string]string{}
	azSet := map[string]bool{}
	for _, s := range r.mocks.byType(tSubnet) {
		subnetAZ[s.Name+"_id"] = str(s.Inputs, "availabilityZone")
		subnetCIDR[s.Name+"_id"] = str(s.Inputs, "cidrBlock")
		azSet[str(s.Inputs, "availabilityZone")] = true
		assert.Equal(t, "false", str(s.Inputs, "mapPublicIpOnLaunch"), "subnet %s must not hand out public IPs", s.Name)
	}
	assert.Len(t, azSet, 3, "subnets must span 3 distinct AZs")

	insts := map[string]registered{}
	for _, i := range r.mocks.byType(tInstance) {
		insts[i.Name[strings.Index(i.Name, "-")+1:]] = i
	}
	roleAZs := map[topology.Role]map[string]bool{}
	for _, n := range plan.Nodes {
		inst, ok := insts[n.Name]
		require.True(t, ok, "no instance for plan node %s (have %v)", n.Name, keys(insts))
		assert.Equal(t, n.IP.String(), str(inst.Inputs, "privateIp"), "%s private IP", n.Name)
		assert.Equal(t, zones[n.AZIndex], str(inst.Inputs, "availabilityZone"), "%s AZ", n.Name)
		sub := str(inst.Inputs, "subnetId")
		assert.Equal(t, zones[n.AZIndex], subnetAZ[sub], "%s subnet AZ", n.Name)
		assert.Equal(t, plan.SubnetOf(n).CIDR.String(), subnetCIDR[sub], "%s subnet", n.Name)
		assert.Equal(t, n.Tier == topology.Public, str(inst.Inputs, "associatePublicIpAddress") == "true", "%s public address", n.Name)
		if roleAZs[n.Role] == nil {
			roleAZs[n.Role] = map[string]bool{}
		}
		roleAZs[n.Role][str(inst.Inputs, "availabilityZone")] = true
	}
	assert.Len(t, roleAZs[topology.RoleEtcd], 3, "etcd members in 3 AZs")
	assert.Len(t, roleAZs[topology.RolePatroni], 3, "Patroni members in 3 AZs")
	assert.Len(t, roleAZs[topology.RoleHAProxy], 2, "HAProxy nodes in 2 AZs")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ruleLines renders the registered rules as "group in|out tcp port peer".
func ruleLines(t *testing.T, r *run) []string {
	t.Helper()
	groupOf := map[string]string{}
	for _, sg := range r.mocks.byType(tSG) {
		groupOf[sg.Name+"_id"] = strings.TrimPrefix(sg.Name, "security-")
	}
	var lines []string
	for _, kind := range []string{tIngress, tEgress} {
		dir := "in"
		if kind == tEgress {
			dir = "out"
		}
		for _, rule := range r.mocks.byType(kind) {
			in := rule.Inputs
			assert.NotEmpty(t, str(in, "description"), "rule %s has no description", rule.Name)
			assert.Equal(t, str(in, "fromPort"), str(in, "toPort"), "rule %s must open a single port", rule.Name)
			peer := "cidr:" + str(in, "cidrIpv4")
			if ref := str(in, "referencedSecurityGroupId"); ref != "" {
				require.Empty(t, str(in, "cidrIpv4"), "rule %s has both a CIDR and a group", rule.Name)
				peer = "sg:" + groupOf[ref]
			}
			group, ok := groupOf[str(in, "securityGroupId")]
			require.True(t, ok, "rule %s is on an unknown group %q", rule.Name, str(in, "securityGroupId"))
			lines = append(lines, fmt.Sprintf("%s %s %s %s %s", group, dir, str(in, "ipProtocol"), str(in, "fromPort"), peer))
		}
	}
	sort.Strings(lines)
	return lines
}

// expectedRules is the security table of the issue, written out by hand.
func expectedRules(cidrs []string, nlb, monitoring bool) []string {
	want := []string{
		"etcd in tcp 2379 sg:patroni",
		"etcd in tcp 2379 sg:etcd",
		"etcd in tcp 2380 sg:etcd",
		"etcd in tcp 22 sg:haproxy",
		"patroni in tcp 5432 sg:haproxy",
		"patroni in tcp 8008 sg:haproxy",
		"patroni in tcp 5432 sg:patroni",
		"patroni in tcp 8008 sg:patroni",
		"patroni in tcp 22 sg:haproxy",
		"etcd out tcp 2379 sg:etcd",
		"etcd out tcp 2380 sg:etcd",
		"etcd out tcp 443 cidr:0.0.0.0/0",
		"etcd out tcp 80 cidr:0.0.0.0/0",
		"patroni out tcp 2379 sg:etcd",
		"patroni out tcp 5432 sg:patroni",
		"patroni out tcp 8008 sg:patroni",
		"patroni out tcp 443 cidr:0.0.0.0/0",
		"patroni out tcp 80 cidr:0.0.0.0/0",
		"haproxy out tcp 5432 sg:patroni",
		"haproxy out tcp 8008 sg:patroni",
		"haproxy out tcp 22 sg:etcd",
		"haproxy out tcp 22 sg:patroni",
		"haproxy out tcp 443 cidr:0.0.0.0/0",
		"haproxy out tcp 80 cidr:0.0.0.0/0",
	}
	sqlGroup := "haproxy"
	if nlb {
		sqlGroup = "nlb"
		want = append(want,
			"haproxy in tcp 5000 sg:nlb",
			"haproxy in tcp 5001 sg:nlb",
			"haproxy in tcp 6432 sg:nlb",
			"nlb out tcp 5000 sg:haproxy",
			"nlb out tcp 5001 sg:haproxy",
			"nlb out tcp 6432 sg:haproxy",
		)
	}
	for _, c := range cidrs {
		want = append(want,
			sqlGroup+" in tcp 5000 cidr:"+c,
			sqlGroup+" in tcp 5001 cidr:"+c,
			sqlGroup+" in tcp 6432 cidr:"+c,
			"haproxy in tcp 22 cidr:"+c,
		)
	}
	// The stats page is private: reached through a jump host; so are the
	// other node's leader and replica ports and PgBouncer, for pgha's own
	// tools.
	want = append(want, "haproxy in tcp 7000 sg:haproxy", "haproxy out tcp 7000 sg:haproxy",
		"haproxy in tcp 5000 sg:haproxy", "haproxy out tcp 5000 sg:haproxy",
		"haproxy in tcp 5001 sg:haproxy", "haproxy out tcp 5001 sg:haproxy",
		"haproxy in tcp 6432 sg:haproxy", "haproxy out tcp 6432 sg:haproxy")
	if monitoring {
		// The monitoring node reaches the metrics ports only, and only the
		// jump hosts reach it.
		for _, m := range []string{"etcd 9100", "etcd 2379", "patroni 9100", "patroni 9187", "patroni 8008", "haproxy 9100", "haproxy 8405"} {
			group, port, _ := strings.Cut(m, " ")
			want = append(want, group+" in tcp "+port+" sg:monitor", "monitor out tcp "+port+" sg:"+group)
		}
		want = append(want,
			"monitor in tcp 9090 sg:haproxy", "monitor in tcp 22 sg:haproxy",
			"haproxy out tcp 9090 sg:monitor", "haproxy out tcp 22 sg:monitor",
			"monitor out tcp 443 cidr:0.0.0.0/0", "monitor out tcp 80 cidr:0.0.0.0/0")
	}
	sort.Strings(want)
	return want
}

func TestSecurityRulesMatchTheTable(t *testing.T) {
	for _, nlb := range []bool{false, true} {
		// The monitoring node is on by default; off, it leaves no rule.
		monitoring := !nlb
		t.Run(fmt.Sprintf("nlb=%v,monitoring=%v", nlb, monitoring), func(t *testing.T) {
			cfg := baseConfig()
			cfg["pgha:allowedCidrs"] = `["100.20.30.0/24", "100.20.40.7/32"]`
			cfg["pgha:networkLoadBalancer"] = fmt.Sprint(nlb)
			cfg["pgha:monitoring"] = fmt.Sprint(monitoring)
			r := runProgram(t, cfg, nil, nil)
			require.NoError(t, r.err)
			cidrs := []string{"100.20.30.0/24", "100.20.40.7/32"}
			assert.Equal(t, expectedRules(cidrs, nlb, monitoring), ruleLines(t, r))
		})
	}
}

// TestNothingElseReachableFromOutside checks the property, independent of
// the table: every ingress from an address range (rather than a group of
// this VPC) is an operator CIDR, on an HAProxy-facing port, and SSH only on
// the jump hosts.
func TestNothingElseReachableFromOutside(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:allowedCidrs"] = `["100.20.30.0/24", "100.20.40.7/32"]`
	allowed := map[string]bool{"100.20.30.0/24": true, "100.20.40.7/32": true}
	for _, nlb := range []string{"false", "true"} {
		cfg["pgha:networkLoadBalancer"] = nlb
		r := runProgram(t, cfg, nil, nil)
		require.NoError(t, r.err)
		groupOf := map[string]string{}
		for _, sg := range r.mocks.byType(tSG) {
			groupOf[sg.Name+"_id"] = strings.TrimPrefix(sg.Name, "security-")
		}
		n := 0
		for _, rule := range r.mocks.byType(tIngress) {
			in := rule.Inputs
			assert.Equal(t, "tcp", str(in, "ipProtocol"), "rule %s", rule.Name)
			if str(in, "referencedSecurityGroupId") != "" {
				continue
			}
			n++
			cidr, port, group := str(in, "cidrIpv4"), str(in, "fromPort"), groupOf[str(in, "securityGroupId")]
			assert.True(t, allowed[cidr], "rule %s opens %s, which is not an allowed CIDR", rule.Name, cidr)
			switch port {
			case "5000", "5001", "6432":
				assert.Contains(t, []string{"haproxy", "nlb"}, group, "rule %s", rule.Name)
			case "22":
				assert.Equal(t, "haproxy", group, "rule %s: only the HAProxy/jump hosts face the outside", rule.Name)
			default:
				t.Errorf("rule %s opens port %s of %s to %s", rule.Name, port, group, cidr)
			}
		}
		assert.Equal(t, 8, n, "4 outside-facing ports (5000, 5001, PgBouncer's 6432, SSH) x 2 CIDRs")
	}
}

func TestInstancesAreHardened(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	insts := r.mocks.byType(tInstance)
	require.Len(t, insts, 9) // the cluster and the monitoring node
	for _, i := range insts {
		md := obj(i.Inputs, "metadataOptions")
		assert.Equal(t, "required", str(md, "httpTokens"), "%s: IMDSv2", i.Name)
		assert.Equal(t, "enabled", str(md, "httpEndpoint"), "%s", i.Name)
		assert.Equal(t, "1", str(md, "httpPutResponseHopLimit"), "%s", i.Name)
		root := obj(i.Inputs, "rootBlockDevice")
		assert.Equal(t, "true", str(root, "encrypted"), "%s: encrypted root volume", i.Name)
		assert.Equal(t, "gp3", str(root, "volumeType"), "%s", i.Name)
		assert.Empty(t, i.Inputs["ebsBlockDevices"].V, "%s: no unencrypted extra volumes", i.Name)
		assert.Equal(t, "true", str(i.Inputs, "userDataReplaceOnChange"), "%s", i.Name)
		assert.Equal(t, mockAMI, str(i.Inputs, "ami"), "%s: the Debian 12 AMI", i.Name)
		assert.Empty(t, str(i.Inputs, "userData"), "%s: the packed form only", i.Name)
		assert.True(t, strings.HasPrefix(userData(t, i), "#cloud-config"), "%s: user data is a cloud-config", i.Name)
		assert.NotEmpty(t, str(i.Inputs, "iamInstanceProfile"), "%s", i.Name)
	}
}

func TestNoPasswordInUserDataOrPlainInputs(t *testing.T) {
	cfg := baseConfig()
	const fromConfig = "ConfiguredSuperuser-0123456789"
	cfg["pgha:superuserPassword"] = fromConfig
	r := runProgram(t, cfg, []string{"pgha:superuserPassword"}, nil)
	require.NoError(t, r.err)

	passwords := []string{fromConfig}
	for _, p := range r.mocks.byType("random:index/randomPassword:RandomPassword") {
		passwords = append(passwords, mockRandomStart+p.Name)
	}
	require.Len(t, passwords, len(userdata.Secrets), "1 configured, the others generated")

	// The SSM parameters carry the values, as secrets.
	var params []registered
	for _, p := range r.mocks.byType("aws:ssm/parameter:Parameter") {
		if !strings.HasPrefix(str(p.Inputs, "name"), "/pgha/dev/tls/") {
			params = append(params, p)
		}
	}
	require.Len(t, params, len(userdata.Secrets))
	stored := map[string]bool{}
	for _, p := range params {
		assert.Equal(t, "SecureString", str(p.Inputs, "type"), p.Name)
		assert.True(t, p.Inputs["value"].ContainsSecrets(), "%s: value must be a secret", p.Name)
		stored[str(p.Inputs, "value")] = true
		assert.True(t, strings.HasPrefix(str(p.Inputs, "name"), "/pgha/dev/"), p.Name)
	}
	for _, pw := range passwords {
		assert.True(t, stored[pw], "password %q is not stored in SSM", pw)
	}

	// No password anywhere outside a secret: not in user data, not in any
	// other plain input of any resource.
	for _, res := range r.mocks.snapshot() {
		for k, v := range res.Inputs {
			if v.ContainsSecrets() {
				continue
			}
			b, err := json.Marshal(v.Mappable())
			require.NoError(t, err)
			for _, pw := range passwords {
				assert.NotContains(t, string(b), pw, "%s input %s holds a password in plain text", res.Name, k)
			}
		}
	}
	for _, i := range r.mocks.byType(tInstance) {
		ud := userData(t, i)
		require.NotEmpty(t, ud)
		for _, pw := range passwords {
			assert.NotContains(t, ud, pw, "%s user data", i.Name)
		}
	}
}

func TestSecretOutputsAreSecret(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	for _, k := range outputs.SecretKeys {
		_, ok := r.outputs[k]
		require.True(t, ok, "output %s missing (a key is generated by default)", k)
		assert.True(t, r.secret[k], "output %s must be secret", k)
	}
	for k := range r.outputs {
		if !slices.Contains(outputs.SecretKeys, k) {
			assert.False(t, r.secret[k], "output %s should not be secret", k)
		}
	}
	// The private key itself never appears in a plain output.
	for k, v := range r.values {
		if r.secret[k] {
			continue
		}
		b, _ := json.Marshal(v)
		assert.NotContains(t, string(b), "MOCKPRIVATEKEYMATERIAL", k)
		assert.NotContains(t, string(b), "PRIVATE KEY", k)
		assert.NotContains(t, string(b), mockRandomStart, k)
	}
}

func TestOwnSSHKeyExportsNoPrivateKey(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKvbhMHVfjyBqRBm2Bq9ljXj4b4S4QGhFyZ7lD3+Vxjf me@laptop"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	assert.NotContains(t, r.outputs, outputs.KeySSHPrivateKey)
	for _, k := range r.mocks.byType("tls:index/privateKey:PrivateKey") {
		assert.Equal(t, "ECDSA", str(k.Inputs, "algorithm"), "%s: no SSH key is generated, only the cluster's TLS keys", k.Name)
	}
	kp := r.mocks.byType("aws:ec2/keyPair:KeyPair")
	require.Len(t, kp, 1)
	assert.Equal(t, cfg["pgha:sshPublicKey"], str(kp[0].Inputs, "publicKey"))
}

func TestOutputsFollowTheContract(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	want := []string{
		outputs.KeyTarget, outputs.KeyClusterName, outputs.KeyRegion, outputs.KeyProfile,
		outputs.KeySynchronousMode, outputs.KeyVPCCIDR, outputs.KeyWriteEndpoint, outputs.KeyReadEndpoint,
		outputs.KeyStatsEndpoint, outputs.KeyNodes, outputs.KeyAccess, outputs.KeyCredentials,
		outputs.KeySSHPrivateKey, outputs.KeyClusterState, outputs.KeyPlacement, outputs.KeyConnection,
		outputs.KeyBackups, outputs.KeyCACertificate, outputs.KeyClientTLS, outputs.KeyPrometheusEndpoint,
		outputs.KeyAlertTopic, outputs.KeyPoolerEndpoint,
	}
	sort.Strings(want)
	assert.Equal(t, want, keys(r.values))

	s, err := outputs.Parse(r.stackJSON(t))
	require.NoError(t, err, "the exported outputs must parse and validate as outputs.Stack")
	assert.Equal(t, outputs.TargetAWS, s.Target)
	assert.Equal(t, "eu-west-1", s.Region)
	assert.Equal(t, "fast", s.Profile)
	assert.True(t, s.SynchronousMode)
	assert.Equal(t, outputs.Endpoint{Host: "198.51.100.201", Port: 5000}, s.WriteEndpoint)
	assert.Equal(t, outputs.Endpoint{Host: "198.51.100.201", Port: 5001}, s.ReadEndpoint)
	assert.Equal(t, outputs.Endpoint{Host: "10.42.0.30", Port: 7000}, s.StatsEndpoint, "the jump host's private address: the page is not public")
	assert.Equal(t, outputs.Access{
		Kind: outputs.AccessSSH, JumpHost: "198.51.100.201:22", JumpUser: "admin",
		JumpHostKeys: mockNodeHostKeys("haproxy-1"),
	}, s.Access)
	assert.Equal(t, mockPrivateKey, s.SSHPrivateKey)
	assert.Equal(t, "https://10.42.4.40:9090", s.PrometheusEndpoint, "the monitoring node's private address, reached through the jump host")
	assert.Equal(t, "arn:aws:sns:eu-west-1:"+mockAccount+":pgha-dev-alerts", s.AlertTopicARN)
	require.Len(t, s.Nodes, 8, "the cluster's nodes; the monitoring node is not one")
	pg2, ok := s.NodeByName("pg-2")
	require.True(t, ok)
	assert.Equal(t, outputs.Node{Name: "pg-2", Role: "patroni", AZ: "eu-west-1b", PrivateIP: "10.42.5.20", InstanceID: "patroni-pg-2_id", DataVolumeID: "patroni-pg-2-data_id",
		HostKeys: mockNodeHostKeys("pg-2")}, pg2)
	h2, _ := s.NodeByName("haproxy-2")
	assert.Equal(t, "198.51.100.202", h2.PublicIP)
	assert.Equal(t, "postgres", s.Credentials.SuperuserName)
	assert.True(t, strings.HasPrefix(s.Credentials.SuperuserPassword, mockRandomStart), s.Credentials.SuperuserPassword)
	cs, ok := s.ClusterState.(map[string]any)
	require.True(t, ok, "clusterState is the parsed /cluster document")
	assert.Len(t, cs["members"], 3)
}

// TestEveryNodeHasItsOwnHostKeys: the kill and partition faults log in to
// private nodes and refuse one without recorded keys, so every node in the
// nodes output carries the keys its own readiness session read, stripped
// of comments, usable by access, and not secret (pulumi-command marks the
// stdout they come from secret).
func TestEveryNodeHasItsOwnHostKeys(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	assert.False(t, r.secret[outputs.KeyNodes], "the nodes output must not be secret")
	assert.False(t, r.secret[outputs.KeyAccess], "the access output must not be secret")

	s, err := outputs.Parse(r.stackJSON(t))
	require.NoError(t, err)
	require.Len(t, s.Nodes, 8)
	for _, n := range s.Nodes {
		require.NotEmpty(t, n.HostKeys, "node %s has no host keys", n.Name)
		assert.Equal(t, mockNodeHostKeys(n.Name), n.HostKeys, "node %s carries another node's keys, or comments", n.Name)
		_, err := access.ParseHostKeys(n.HostKeys)
		assert.NoError(t, err, n.Name)
	}
	h1, _ := s.NodeByName("haproxy-1")
	assert.Equal(t, h1.HostKeys, s.Access.JumpHostKeys, "the jump host's keys are haproxy-1's")

	// Each node's keys come from its own wait command, after it is ready.
	waits := 0
	for _, c := range r.mocks.byType("command:remote:Command") {
		if strings.Contains(c.Name, "-wait-") {
			waits++
			create := str(c.Inputs, "create")
			assert.Contains(t, create, readiness.HostKeysScript, c.Name)
			ready, keys := strings.Index(create, " ready\""), strings.Index(create, readiness.HostKeysMarker)
			require.GreaterOrEqual(t, ready, 0, "%s waits for no ready marker", c.Name)
			require.GreaterOrEqual(t, keys, 0, "%s prints no host keys", c.Name)
			assert.Less(t, ready, keys, "%s prints the keys before the node is ready", c.Name)
		}
	}
	assert.Equal(t, 9, waits, "the cluster's nodes and the monitoring node")
}

func TestLoadBalancerEndpoint(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:networkLoadBalancer"] = "true"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	counts := map[string]int{}
	for _, res := range r.mocks.snapshot() {
		counts[res.Type]++
	}
	assert.Equal(t, 1, counts["aws:lb/loadBalancer:LoadBalancer"])
	assert.Equal(t, 3, counts["aws:lb/targetGroup:TargetGroup"], "5000, 5001, 6432")
	assert.Equal(t, 3, counts["aws:lb/listener:Listener"])
	assert.Equal(t, 6, counts["aws:lb/targetGroupAttachment:TargetGroupAttachment"])
	assert.Equal(t, 5, counts[tSG], "etcd, patroni, haproxy, nlb, monitor")
	lb := r.mocks.byType("aws:lb/loadBalancer:LoadBalancer")[0]
	assert.Equal(t, "network", str(lb.Inputs, "loadBalancerType"))
	assert.Len(t, lb.Inputs["subnets"].ArrayValue(), 3, "the NLB spans the 3 public subnets")
	s, err := outputs.Parse(r.stackJSON(t))
	require.NoError(t, err)
	assert.Equal(t, "pgha-nlb-0123.elb.eu-west-1.amazonaws.com", s.WriteEndpoint.Host)
	assert.Equal(t, 5001, s.ReadEndpoint.Port)
}

// TestPoolModeReachesThePoolers: pgha:poolMode is PgBouncer's pool_mode
// on the HAProxy nodes, and only there; transaction when unset.
func TestPoolModeReachesThePoolers(t *testing.T) {
	for _, mode := range []string{"", "session"} {
		cfg := baseConfig()
		want := "transaction"
		if mode != "" {
			cfg["pgha:poolMode"] = mode
			want = mode
		}
		r := runProgram(t, cfg, nil, nil)
		require.NoError(t, r.err)
		haproxy := 0
		for _, i := range r.mocks.byType(tInstance) {
			ud := userData(t, i)
			if strings.HasPrefix(i.Name, "haproxy-") {
				haproxy++
				assert.Equal(t, []string{"pool_mode = " + want}, regexp.MustCompile(`pool_mode = \S+`).FindAllString(ud, -1), i.Name)
			} else {
				assert.NotContains(t, ud, "pool_mode", i.Name)
			}
		}
		assert.Equal(t, 2, haproxy)
	}
}

func TestNATPerAZ(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:natGateways"] = "perAz"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	nats := r.mocks.byType("aws:ec2/natGateway:NatGateway")
	require.Len(t, nats, 3)
	natSubnets := map[string]bool{}
	for _, n := range nats {
		natSubnets[str(n.Inputs, "subnetId")] = true
	}
	assert.Len(t, natSubnets, 3, "one NAT gateway in each public subnet")
	used := map[string]bool{}
	for _, rt := range r.mocks.byType(tRouteTable) {
		for _, route := range rt.Inputs["routes"].ArrayValue() {
			if nat := str(route.ObjectValue(), "natGatewayId"); nat != "" {
				used[nat] = true
			}
		}
	}
	assert.Len(t, used, 3, "each private route table uses its own AZ's NAT gateway")
}

func TestSecretsAccessIsPerTier(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	prefix := "arn:aws:ssm:eu-west-1:" + mockAccount + ":parameter/pgha/dev/"
	got := map[string][]string{}
	for _, p := range r.mocks.byType(tRolePolicy) {
		if !strings.HasSuffix(p.Name, "-secrets") {
			continue // the backup policy: TestBackupRepository
		}
		var doc struct {
			Statement []struct {
				Action    any
				Resource  any
				Condition map[string]map[string]string
			}
		}
		require.NoError(t, json.Unmarshal([]byte(str(p.Inputs, "policy")), &doc))
		tier := strings.TrimSuffix(p.Name, "-secrets")
		for _, st := range doc.Statement {
			switch res := st.Resource.(type) {
			case []any:
				for _, x := range res {
					arn := x.(string)
					assert.True(t, strings.HasPrefix(arn, prefix), "%s may read %s, outside its cluster", tier, arn)
					got[tier] = append(got[tier], strings.TrimPrefix(arn, prefix))
				}
			case string:
				assert.Equal(t, "kms:Decrypt", st.Action, tier)
				assert.Equal(t, "ssm.eu-west-1.amazonaws.com", st.Condition["StringEquals"]["kms:ViaService"], tier)
			}
		}
	}
	for k := range got {
		sort.Strings(got[k])
	}
	// Each tier reads the CA and its own nodes' certificates and keys, and
	// no other tier's: a key is readable only by the role of its node.
	assert.Equal(t, map[string][]string{
		"etcd": {"tls/ca-certificate", "tls/etcd-1-certificate", "tls/etcd-1-key", "tls/etcd-2-certificate", "tls/etcd-2-key",
			"tls/etcd-3-certificate", "tls/etcd-3-key"},
		"patroni": {"app-password", "monitor-password", "pooler-password", "replication-password", "restapi-password", "rewind-password", "superuser-password",
			"tls/ca-certificate", "tls/pg-1-certificate", "tls/pg-1-key", "tls/pg-2-certificate", "tls/pg-2-key", "tls/pg-3-certificate", "tls/pg-3-key"},
		"haproxy": {"pooler-admin-password", "pooler-password", "stats-password", "tls/ca-certificate", "tls/haproxy-1-certificate", "tls/haproxy-1-key", "tls/haproxy-2-certificate", "tls/haproxy-2-key"},
		"monitor": {"tls/ca-certificate", "tls/monitor-1-certificate", "tls/monitor-1-key"},
	}, got)
	// The same, from the parameters the program creates: every key
	// parameter is readable by its own node's role, and by no other.
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	for _, p := range r.mocks.byType("aws:ssm/parameter:Parameter") {
		name := strings.TrimPrefix(str(p.Inputs, "name"), "/pgha/dev/")
		if !strings.HasSuffix(name, "-key") {
			continue
		}
		node := strings.TrimSuffix(strings.TrimPrefix(name, "tls/"), "-key")
		n, ok := plan.Node(node)
		if node == plan.Monitor().Name {
			n, ok = plan.Monitor(), true
		}
		require.True(t, ok, "key parameter %s of no node", name)
		for tier, arns := range got {
			assert.Equal(t, tier == string(n.Role), slices.Contains(arns, name), "tier %s and %s", tier, name)
		}
	}

	// Every parameter a node's boot script reads is one its role may read;
	// otherwise the node would fail at boot.
	paramRE := regexp.MustCompile(`/pgha/dev/[a-z0-9/-]+`)
	for _, i := range r.mocks.byType(tInstance) {
		tier := i.Name[:strings.Index(i.Name, "-")]
		for _, p := range paramRE.FindAllString(userData(t, i), -1) {
			assert.Contains(t, got[tier], strings.TrimPrefix(p, "/pgha/dev/"), "%s reads %s but its role may not", i.Name, p)
		}
	}
}

// Resources that carry no tags in the AWS API.
var untaggable = map[string]bool{
	"aws:ec2/routeTableAssociation:RouteTableAssociation": true,
	tRolePolicy: true,
	"aws:lb/targetGroupAttachment:TargetGroupAttachment": true,
	tEIPAssoc:   true,
	tAttachment: true,
	// The bucket's settings are sub-resources of the (tagged) bucket.
	"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":                                     true,
	"aws:s3/bucketOwnershipControls:BucketOwnershipControls":                                     true,
	"aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": true,
	"aws:s3/bucketVersioningV2:BucketVersioningV2":                                               true,
	"aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2":                       true,
	"aws:s3/bucketPolicy:BucketPolicy":                                                           true,
}

func TestTagsAndProviderOnEveryAWSResource(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:networkLoadBalancer"] = "true"
	cfg["pgha:backups"] = "true"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	provs := r.mocks.byType(tProvider)
	require.Len(t, provs, 1)
	dt := obj(obj(provs[0].Inputs, "defaultTags"), "tags")
	assert.Equal(t, "pgha", str(dt, outputs.TagProject))
	assert.Equal(t, "dev", str(dt, outputs.TagStack))
	assert.Equal(t, "eu-west-1", str(provs[0].Inputs, "region"))

	n := 0
	for _, res := range r.mocks.snapshot() {
		if !strings.HasPrefix(res.Type, "aws:") {
			continue
		}
		n++
		assert.Contains(t, res.Provider, "pulumi:providers:aws::aws::", "%s %s must use the explicit provider with default tags", res.Type, res.Name)
		if untaggable[res.Type] {
			continue
		}
		tags := obj(res.Inputs, "tags")
		assert.Equal(t, "pgha", str(tags, outputs.TagProject), "%s %s", res.Type, res.Name)
		assert.Equal(t, "dev", str(tags, outputs.TagStack), "%s %s", res.Type, res.Name)
		assert.NotEmpty(t, str(tags, outputs.TagRole), "%s %s", res.Type, res.Name)
		if res.Type == tInstance {
			require.False(t, res.Inputs.HasValue("volumeTags"), "%s: volume_tags would also claim the data volume", res.Name)
			vt := obj(obj(res.Inputs, "rootBlockDevice"), "tags")
			assert.Equal(t, "dev", str(vt, outputs.TagStack), "%s volumes", res.Name)
			assert.Equal(t, str(tags, outputs.TagRole), str(vt, outputs.TagRole), "%s volumes", res.Name)
		}
	}
	assert.Greater(t, n, 60)
}

func TestChildrenAreParentedAndPrefixed(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	topLevel := map[string]bool{tProvider: true, tStackRef: true, "tls:index/privateKey:PrivateKey": true, "aws:ec2/keyPair:KeyPair": true, "pulumi:pulumi:Stack": true}
	for _, res := range r.mocks.snapshot() {
		if topLevel[res.Type] || strings.HasPrefix(res.Type, "pgha:index:") {
			continue
		}
		require.Contains(t, res.Parent, "pgha:index:", "%s %s must be parented to a component", res.Type, res.Name)
		comp := res.Parent[strings.LastIndex(res.Parent, "::")+2:]
		assert.True(t, strings.HasPrefix(res.Name, comp+"-"), "%s is not prefixed with its component %s", res.Name, comp)
	}
}

func TestReadinessGoesThroughTheJumpHost(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	cmds := r.mocks.byType("command:remote:Command")
	require.Len(t, cmds, 10)
	for _, c := range cmds {
		conn := obj(c.Inputs, "connection")
		assert.Equal(t, "admin", str(conn, "user"), c.Name)
		assert.True(t, c.Inputs["connection"].ContainsSecrets(), "%s: the private key travels as a secret", c.Name)
		assert.Equal(t, mockPrivateKey, str(conn, "privateKey"), c.Name)
		host := str(conn, "host")
		proxy := obj(conn, "proxy")
		if strings.Contains(c.Name, "haproxy") {
			assert.True(t, strings.HasPrefix(host, "198.51.100."), "%s connects to the public address, got %s", c.Name, host)
			assert.Empty(t, proxy, c.Name)
			continue
		}
		assert.True(t, strings.HasPrefix(host, "10.42."), "%s connects to the private address, got %s", c.Name, host)
		assert.Equal(t, "198.51.100.201", str(proxy, "host"), "%s goes through haproxy-1", c.Name)
	}
	var check registered
	for _, c := range cmds {
		if strings.HasSuffix(c.Name, "-cluster") {
			check = c
		}
	}
	require.NotEmpty(t, check.Name)
	assert.Equal(t, "10.42.4.20", str(obj(check.Inputs, "connection"), "host"), "the cluster check runs on pg-1")
	assert.Contains(t, str(check.Inputs, "create"), "https://10.42.4.20:8008")
}

// dependsOnName reports whether deps holds the URN of a resource by name.
func dependsOnName(deps []string, name string) bool {
	for _, d := range deps {
		if strings.HasSuffix(d, "::"+name) {
			return true
		}
	}
	return false
}

// TestBootOrder: cloud-init runs once, at first boot, and installs packages
// and reads SSM then. So every instance must wait for its NAT route, every
// security rule, every password parameter, the CA certificate's parameter
// and its own certificate's and key's; and the cluster check must wait for
// every node. (Depending on a component is not enough: the Go SDK adds
// children to a component asynchronously, and this test caught the race.)
func TestBootOrder(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	var needed []string
	for _, typ := range []string{"aws:ec2/natGateway:NatGateway", "aws:ec2/routeTableAssociation:RouteTableAssociation",
		tEgress, tIngress, "aws:ssm/parameter:Parameter"} {
		for _, res := range r.mocks.byType(typ) {
			if strings.HasPrefix(res.Name, "tls-") && res.Name != "tls-ca-param" {
				continue // a node's own: below
			}
			needed = append(needed, res.Name)
		}
	}
	require.Contains(t, needed, "tls-ca-param")
	for _, i := range r.mocks.byType(tInstance) {
		node := i.Name[strings.Index(i.Name, "-")+1:]
		for _, n := range append(needed, "tls-"+node+"-cert-param", "tls-"+node+"-key-param") {
			assert.True(t, dependsOnName(i.Deps, n), "instance %s does not wait for %s", i.Name, n)
		}
	}
	var check registered
	var waits []string
	for _, c := range r.mocks.byType("command:remote:Command") {
		if strings.HasSuffix(c.Name, "-cluster") {
			check = c
		}
		if strings.Contains(c.Name, "-wait-") {
			waits = append(waits, c.Name)
			// The SSH path (22 from the operator to the jump host, and on
			// to the node) must exist before the wait dials it.
			for _, rule := range r.mocks.byType(tIngress) {
				assert.True(t, dependsOnName(c.Deps, rule.Name), "%s does not wait for %s", c.Name, rule.Name)
			}
		}
	}
	require.Len(t, waits, 9)
	for _, w := range waits {
		assert.True(t, dependsOnName(check.Deps, w), "the cluster check does not wait for %s", w)
	}
}

// Every node keeps its planned private address, so a replacement must
// delete the old instance first: created first, it would ask EC2 for an
// address still in use (InvalidIPAddress.InUse).
func TestInstancesReplaceDeleteFirst(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	insts := r.mocks.byType(tInstance)
	require.Len(t, insts, 9)
	for _, i := range insts {
		assert.True(t, i.DeleteBeforeReplace, "%s replaces create-first", i.Name)
		assert.NotEmpty(t, str(i.Inputs, "privateIp"), i.Name)
	}
}

// AWS refuses an internet-facing NLB in a VPC with no internet gateway, so
// the NLB waits for the gateway and the public routes.
func TestLoadBalancerWaitsForTheInternetGateway(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:networkLoadBalancer"] = "true"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	nlbs := r.mocks.byType("aws:lb/loadBalancer:LoadBalancer")
	require.Len(t, nlbs, 1)
	igws := r.mocks.byType("aws:ec2/internetGateway:InternetGateway")
	require.Len(t, igws, 1)
	var deps []string
	for _, d := range nlbs[0].Deps {
		deps = append(deps, d[strings.LastIndex(d, "::")+2:])
	}
	assert.Contains(t, deps, igws[0].Name)
	assert.Contains(t, deps, "network-public-rt")
}

// Without the load balancer, clients still have no single entry point:
// the exported URIs list both HAProxy nodes, writes asking for read-write.
func TestConnectionListsEveryEntryPoint(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	assert.False(t, r.secret[outputs.KeyConnection], "no password in it: not a secret")
	s, err := outputs.Parse(r.stackJSON(t))
	require.NoError(t, err)
	require.NotNil(t, s.Connection)
	assert.Equal(t, "postgresql://app@198.51.100.201:5000,198.51.100.202:5000/app?connect_timeout=5&sslmode=verify-full&target_session_attrs=read-write", s.Connection.Write)
	assert.Equal(t, "postgresql://app@198.51.100.201:5001,198.51.100.202:5001/app?connect_timeout=5&sslmode=verify-full", s.Connection.Read)
	for _, v := range []string{mockRandomStart, "password"} {
		assert.NotContains(t, s.Connection.Write+s.Connection.Read, v)
	}

	cfg := baseConfig()
	cfg["pgha:networkLoadBalancer"] = "true"
	r = runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	s, err = outputs.Parse(r.stackJSON(t))
	require.NoError(t, err)
	assert.Equal(t, "postgresql://app@pgha-nlb-0123.elb.eu-west-1.amazonaws.com:5000/app?connect_timeout=5&sslmode=verify-full&target_session_attrs=read-write", s.Connection.Write)
}

// TestDataVolumesOutliveTheirInstances: each etcd and PostgreSQL node keeps
// its data on an encrypted gp3 volume of its own in its AZ, attached under
// the device name the user data looks for; replacing the instance replaces
// only the attachment (delete first: a volume attaches to one instance at a
// time; the old instance stopped first: a clean shutdown of the database),
// and the volume is protected from `pulumi destroy` unless the user opts out.
func TestDataVolumesOutliveTheirInstances(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	insts := map[string]registered{}
	for _, i := range r.mocks.byType(tInstance) {
		insts[i.Name] = i
	}
	vols := r.mocks.byType(tVolume)
	require.Len(t, vols, 6)
	byNode := map[string]registered{}
	for _, v := range vols {
		inst, ok := insts[strings.TrimSuffix(v.Name, "-data")]
		require.True(t, ok, "%s: a data volume of no instance", v.Name)
		byNode[inst.Name] = v
		assert.Equal(t, str(inst.Inputs, "availabilityZone"), str(v.Inputs, "availabilityZone"), "%s: in its node's AZ", v.Name)
		assert.Equal(t, "true", str(v.Inputs, "encrypted"), v.Name)
		assert.Equal(t, "gp3", str(v.Inputs, "type"), v.Name)
		assert.True(t, v.Protect, "%s: protected from pulumi destroy by default", v.Name)
		assert.Equal(t, "true", str(obj(v.Inputs, "tags"), outputs.TagKeep), "%s: the teardown check reads this", v.Name)
		want := "50"
		if strings.HasPrefix(v.Name, "etcd-") {
			want = "8"
		}
		assert.Equal(t, want, str(v.Inputs, "size"), v.Name)
		assert.False(t, dependsOnName(v.Deps, inst.Name), "%s must not depend on the instance it outlives", v.Name)
	}
	for _, name := range []string{"haproxy-haproxy-1", "haproxy-haproxy-2"} {
		assert.NotContains(t, byNode, name, "HAProxy keeps nothing")
	}
	atts := r.mocks.byType(tAttachment)
	require.Len(t, atts, 6)
	for _, a := range atts {
		inst := strings.TrimSuffix(a.Name, "-data")
		assert.Equal(t, inst+"_id", str(a.Inputs, "instanceId"), a.Name)
		assert.Equal(t, byNode[inst].Name+"_id", str(a.Inputs, "volumeId"), a.Name)
		assert.Equal(t, userdata.DataDevice, str(a.Inputs, "deviceName"), a.Name)
		assert.Equal(t, "true", str(a.Inputs, "stopInstanceBeforeDetaching"), a.Name)
		assert.True(t, a.DeleteBeforeReplace, a.Name)
		assert.False(t, a.Protect, a.Name)
	}
	for name, i := range insts {
		_, kept := byNode[name]
		assert.Equal(t, kept, strings.Contains(userData(t, i), "/usr/local/sbin/pgha-data-volume"), "%s mounts a volume iff it has one", name)
	}

	cfg := baseConfig()
	cfg["pgha:protectDataVolumes"] = "false"
	cfg["pgha:patroniDataVolumeSize"] = "200"
	r = runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	for _, v := range r.mocks.byType(tVolume) {
		assert.False(t, v.Protect, "%s: the user opted out", v.Name)
		assert.Equal(t, "false", str(obj(v.Inputs, "tags"), outputs.TagKeep), v.Name)
		if strings.HasPrefix(v.Name, "patroni-") {
			assert.Equal(t, "200", str(v.Inputs, "size"), v.Name)
		}
	}
}

// TestJumpHostCanBeHAProxy2: with haproxy-1's AZ lost the gate goes through
// haproxy-2, runs its cluster check on the PostgreSQL node of haproxy-2's
// AZ, and the outputs name haproxy-2 as the jump host.
func TestJumpHostCanBeHAProxy2(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:jumpHost"] = "haproxy-2"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	for _, c := range r.mocks.byType("command:remote:Command") {
		conn := obj(c.Inputs, "connection")
		if strings.Contains(c.Name, "haproxy") {
			continue
		}
		assert.Equal(t, "198.51.100.202", str(obj(conn, "proxy"), "host"), "%s goes through haproxy-2", c.Name)
		if strings.HasSuffix(c.Name, "-cluster") {
			assert.Equal(t, "10.42.5.20", str(conn, "host"), "the cluster check runs on pg-2, in haproxy-2's AZ")
		}
	}
	access, ok := r.values[outputs.KeyAccess].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "198.51.100.202:22", access["jumpHost"])
}

// TestBackupRepository: with pgha:backups the stack gets a private,
// versioned, TLS-only bucket encrypted with a key of its own, both kept
// from `pulumi destroy` unless the user opts out, and only the PostgreSQL
// role may use it, only under its cluster's prefix: this test fails if that
// policy grows.
func TestBackupRepository(t *testing.T) {
	off := baseConfig()
	off["pgha:backups"] = "false"
	r := runProgram(t, off, nil, nil)
	require.NoError(t, r.err)
	assert.Empty(t, r.mocks.byType("aws:s3/bucketV2:BucketV2"), "pgha:backups false: no bucket")
	assert.NotContains(t, r.values, outputs.KeyBackups)

	cfg := baseConfig()
	r = runProgram(t, cfg, nil, nil) // on by default
	require.NoError(t, r.err)
	const bucket = "pgha-dev-" + mockAccount + "-eu-west-1"
	buckets := r.mocks.byType("aws:s3/bucketV2:BucketV2")
	require.Len(t, buckets, 1)
	b := buckets[0]
	assert.Equal(t, bucket, str(b.Inputs, "bucket"), "a fixed name: the nodes and a restore elsewhere name it")
	assert.True(t, b.Protect)
	assert.Equal(t, "false", str(b.Inputs, "forceDestroy"))
	assert.Equal(t, "true", str(obj(b.Inputs, "tags"), outputs.TagKeep), "the teardown check reports it as kept")
	keys := r.mocks.byType("aws:kms/key:Key")
	require.Len(t, keys, 1)
	assert.True(t, keys[0].Protect, "the backups are unreadable without their key")
	assert.Equal(t, "true", str(keys[0].Inputs, "enableKeyRotation"))

	one := func(typ string) registered {
		rs := r.mocks.byType(typ)
		require.Len(t, rs, 1, typ)
		assert.Equal(t, bucket, str(rs[0].Inputs, "bucket"), typ)
		return rs[0]
	}
	pab := one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
	for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
		assert.Equal(t, "true", str(pab.Inputs, k), k)
	}
	sse := one("aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
	rule := sse.Inputs["rules"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, "aws:kms", str(obj(rule, "applyServerSideEncryptionByDefault"), "sseAlgorithm"))
	assert.Equal(t, "arn:aws:kms:eu-west-1:"+mockAccount+":key/backups-key_id", str(obj(rule, "applyServerSideEncryptionByDefault"), "kmsMasterKeyId"))
	assert.Equal(t, "Enabled", str(obj(one("aws:s3/bucketVersioningV2:BucketVersioningV2").Inputs, "versioningConfiguration"), "status"))
	one("aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")
	assert.Equal(t, "BucketOwnerEnforced", str(obj(one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").Inputs, "rule"), "objectOwnership"))
	pol := str(one("aws:s3/bucketPolicy:BucketPolicy").Inputs, "policy")
	assert.Contains(t, pol, `"aws:SecureTransport":"false"`)
	assert.Contains(t, pol, `"Effect":"Deny"`)

	var repo []registered
	for _, p := range r.mocks.byType(tRolePolicy) {
		if strings.HasSuffix(p.Name, "-backups") {
			repo = append(repo, p)
		}
	}
	require.Len(t, repo, 1, "only the PostgreSQL role may use the repository")
	assert.Equal(t, "patroni-backups", repo[0].Name)
	var doc struct {
		Statement []struct {
			Sid       string
			Action    any
			Resource  any
			Condition map[string]map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(str(repo[0].Inputs, "policy")), &doc))
	got := map[string]string{}
	for _, st := range doc.Statement {
		got[st.Sid] = fmt.Sprint(st.Action, " on ", st.Resource, " if ", st.Condition)
	}
	assert.Equal(t, map[string]string{
		"ListOwnRepository":      "s3:ListBucket on arn:aws:s3:::" + bucket + " if map[StringLike:map[s3:prefix:[pgha/pgha pgha/pgha/*]]]",
		"UseOwnRepository":       "[s3:GetObject s3:PutObject s3:DeleteObject] on arn:aws:s3:::" + bucket + "/pgha/pgha/* if map[]",
		"BucketKeyThroughS3Only": "[kms:GenerateDataKey kms:Decrypt] on arn:aws:kms:eu-west-1:" + mockAccount + ":key/backups-key_id if map[StringEquals:map[kms:ViaService:s3.eu-west-1.amazonaws.com]]",
	}, got, "the repository policy must not grow")

	// The PostgreSQL nodes archive there with the instance role's
	// credentials; no other node knows of it.
	for _, i := range r.mocks.byType(tInstance) {
		ud := userData(t, i)
		if strings.HasPrefix(i.Name, "patroni-") {
			assert.Contains(t, ud, "repo1-s3-bucket="+bucket, i.Name)
			assert.Contains(t, ud, "repo1-s3-key-type=auto", i.Name)
			assert.Contains(t, ud, "repo1-path=/pgha/pgha", i.Name)
			assert.Contains(t, ud, "OnCalendar=Sun *-*-* 02:00:00", i.Name)
			assert.Contains(t, ud, "OnCalendar=Mon..Sat *-*-* 02:00:00", i.Name)
			assert.Contains(t, ud, "repo1-retention-full=2", i.Name)
		} else {
			// No repository, package or configuration (the monitoring
			// node's alert rules name pgBackRest in their runbook lines).
			assert.NotContains(t, ud, "repo1-", i.Name)
			assert.NotContains(t, ud, "  - pgbackrest\n", i.Name)
			assert.NotContains(t, ud, "/etc/pgbackrest.conf", i.Name)
		}
	}

	bk, ok := r.values[outputs.KeyBackups].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, bucket, fmt.Sprint(bk["bucket"]))
	assert.Equal(t, "/pgha/pgha", bk["path"])

	cfg["pgha:protectBackups"] = "false"
	cfg["pgha:backupBucket"] = "my-pgha-backups"
	r = runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	b = r.mocks.byType("aws:s3/bucketV2:BucketV2")[0]
	assert.False(t, b.Protect)
	assert.Equal(t, "true", str(b.Inputs, "forceDestroy"), "unprotected: destroy empties the bucket")
	assert.Equal(t, "my-pgha-backups", str(b.Inputs, "bucket"))

	// A name S3 would refuse fails before anything exists.
	cfg["pgha:backupBucket"] = "My_Bucket"
	r = runProgram(t, cfg, nil, nil)
	require.ErrorContains(t, r.err, "pgha:backupBucket")
	assert.Empty(t, r.mocks.byType("aws:s3/bucketV2:BucketV2"))
	delete(cfg, "pgha:backupBucket")
	r = runStack(t, "a-stack-name-far-too-long-for-a-bucket", cfg, nil, nil)
	require.ErrorContains(t, r.err, "pulumi config set pgha:backupBucket")
	for _, res := range r.mocks.snapshot() {
		assert.False(t, res.Custom && res.Type != tProvider && res.Type != tStackRef, "%s %s registered before the config error", res.Type, res.Name)
	}
}

// TestAlertTopic: the monitoring node pages through an encrypted SNS topic
// whose ARN its user data names before it exists, it may publish there and
// nowhere else, and each configured address is subscribed.
func TestAlertTopic(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:alertEmails"] = `["oncall@example.com","dba@example.com"]`
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	const arn = "arn:aws:sns:eu-west-1:" + mockAccount + ":pgha-dev-alerts"
	topics := r.mocks.byType("aws:sns/topic:Topic")
	require.Len(t, topics, 1)
	assert.Equal(t, "pgha-dev-alerts", str(topics[0].Inputs, "name"))
	assert.Equal(t, "alias/aws/sns", str(topics[0].Inputs, "kmsMasterKeyId"), "encrypted at rest")
	assert.Equal(t, arn, r.values[outputs.KeyAlertTopic])

	var emails []string
	for _, s := range r.mocks.byType("aws:sns/topicSubscription:TopicSubscription") {
		assert.Equal(t, arn, str(s.Inputs, "topic"))
		assert.Equal(t, "email", str(s.Inputs, "protocol"))
		emails = append(emails, str(s.Inputs, "endpoint"))
	}
	assert.ElementsMatch(t, []string{"oncall@example.com", "dba@example.com"}, emails)

	var publishers []string
	for _, p := range r.mocks.byType(tRolePolicy) {
		if strings.Contains(str(p.Inputs, "policy"), "sns:") {
			publishers = append(publishers, p.Name)
			assert.JSONEq(t, `{"Version":"2012-10-17","Statement":[{"Sid":"PublishToOwnAlertTopic","Effect":"Allow","Action":"sns:Publish","Resource":"`+arn+`"}]}`,
				str(p.Inputs, "policy"))
		}
	}
	assert.Equal(t, []string{"monitor-alerts"}, publishers, "only the monitoring node may publish")

	var monitorData string
	for _, i := range r.mocks.byType(tInstance) {
		if strings.HasSuffix(i.Name, "monitor-1") {
			monitorData = userData(t, i)
		}
		if !strings.HasSuffix(i.Name, "monitor-1") {
			assert.NotContains(t, userData(t, i), "sns", i.Name)
		}
	}
	assert.Contains(t, monitorData, "topic_arn: "+arn)
	assert.Contains(t, monitorData, "region: eu-west-1")

	// Off with the monitoring node; addresses without it are refused
	// before anything exists.
	off := baseConfig()
	off["pgha:monitoring"] = "false"
	r = runProgram(t, off, nil, nil)
	require.NoError(t, r.err)
	assert.Empty(t, r.mocks.byType("aws:sns/topic:Topic"))
	assert.NotContains(t, r.values, outputs.KeyAlertTopic)
	off["pgha:alertEmails"] = `["oncall@example.com"]`
	r = runProgram(t, off, nil, nil)
	require.ErrorContains(t, r.err, "pgha:alertEmails: needs the monitoring node")
	assert.Empty(t, r.mocks.byType(tInstance))
	bad := baseConfig()
	bad["pgha:alertEmails"] = `["On call <oncall@example.com>", "nobody"]`
	r = runProgram(t, bad, nil, nil)
	require.ErrorContains(t, r.err, `pgha:alertEmails: entry 0 "On call <oncall@example.com>" is not a bare e-mail address`)
	require.ErrorContains(t, r.err, `entry 1 "nobody" is not a bare e-mail address`)
}
