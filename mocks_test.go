package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/readiness"
	"github.com/pgha/pgha/internal/stackspec"
	"github.com/pgha/pgha/userdata"
)

// Values the mocks hand out, so tests can look for them where they must
// never appear.
const (
	mockAccount     = "123456789012"
	mockAMI         = "ami-0123456789abcdef0"
	mockPrivateKey  = "-----BEGIN OPENSSH PRIVATE KEY-----\nMOCKPRIVATEKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"
	mockPublicKey   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockPublicKey"
	mockRandomStart = "MockRandomPw"
)

// registered is one resource the program registered.
type registered struct {
	Type     string
	Name     string
	Inputs   resource.PropertyMap
	Provider string
	Parent   string
	Deps     []string // URNs from dependsOn, expanded
	Custom   bool
	// Outputs are what the mock answered.
	Outputs resource.PropertyMap
	// The resource options the engine would act on.
	DeleteBeforeReplace bool
	IgnoreChanges       []string
	Protect             bool
}

// mocks records every registration behind a mutex and answers the invokes
// the program makes.
type mocks struct {
	mu        sync.Mutex
	resources []registered
	invokes   []invoke
	zones     []string
	ami       string // what the newest-AMI look-up answers
	// previous are the stack's outputs from its last update, as a
	// reference to the stack itself reads them; nil for a new stack.
	previous map[string]any
	// Elastic IPs: the region's quota (0: Service Quotas refuses to
	// answer), how many addresses the region holds, and how many of them
	// carry this stack's tags.
	eipQuota, eipsInRegion, eipsOfStack int
}

// invoke is one look-up the program made, and the provider it went through.
type invoke struct{ Token, Provider string }

func newMocks() *mocks {
	return &mocks{zones: []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}, ami: mockAMI, eipQuota: 5}
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r := registered{Type: args.TypeToken, Name: args.Name, Inputs: args.Inputs, Provider: args.Provider, Custom: args.Custom}
	if args.RegisterRPC != nil {
		r.Parent = args.RegisterRPC.GetParent()
		r.Deps = args.RegisterRPC.GetDependencies()
		r.DeleteBeforeReplace = args.RegisterRPC.GetDeleteBeforeReplace()
		r.IgnoreChanges = args.RegisterRPC.GetIgnoreChanges()
		r.Protect = args.RegisterRPC.GetProtect()
	}
	outs := args.Inputs.Copy()
	defer func() {
		r.Outputs = outs
		m.mu.Lock()
		m.resources = append(m.resources, r)
		m.mu.Unlock()
	}()
	id := args.Name + "_id"
	set := func(k string, v resource.PropertyValue) { outs[resource.PropertyKey(k)] = v }
	str := resource.NewStringProperty
	switch args.TypeToken {
	case "aws:kms/key:Key":
		set("arn", str("arn:aws:kms:eu-west-1:"+mockAccount+":key/"+id))
	case "aws:s3/bucketV2:BucketV2":
		// A bucket's id is its name.
		id = outs["bucket"].StringValue()
		set("arn", str("arn:aws:s3:::"+id))
	case "aws:sns/topic:Topic":
		// A topic's ARN ends in its name.
		id = "arn:aws:sns:eu-west-1:" + mockAccount + ":" + outs["name"].StringValue()
		set("arn", str(id))
	case "aws:ec2/instance:Instance":
		set("arn", str("arn:aws:ec2:eu-west-1:"+mockAccount+":instance/"+id))
	case "aws:ec2/eip:Eip":
		// A stable fake public address per EIP, from the documentation range.
		set("publicIp", str(fmt.Sprintf("198.51.100.%d", 10+len(args.Name)%200)))
		if strings.Contains(args.Name, "haproxy-2") {
			set("publicIp", str("198.51.100.202"))
		} else if strings.Contains(args.Name, "haproxy-1") {
			set("publicIp", str("198.51.100.201"))
		}
	case "aws:lb/loadBalancer:LoadBalancer":
		set("dnsName", str("pgha-nlb-0123.elb.eu-west-1.amazonaws.com"))
		set("arn", str("arn:aws:elasticloadbalancing:eu-west-1:"+mockAccount+":loadbalancer/net/"+id))
	case "aws:lb/targetGroup:TargetGroup":
		set("arn", str("arn:aws:elasticloadbalancing:eu-west-1:"+mockAccount+":targetgroup/"+id))
	case "aws:iam/role:Role":
		set("name", str(args.Name+"-1234567"))
		set("arn", str("arn:aws:iam::"+mockAccount+":role/"+args.Name))
	case "aws:iam/instanceProfile:InstanceProfile":
		set("name", str(args.Name+"-1234567"))
	case "aws:ec2/keyPair:KeyPair":
		set("keyName", str(args.Name+"-1234567"))
	case "tls:index/privateKey:PrivateKey":
		if alg := inputString(args.Inputs, "algorithm"); alg != "ED25519" {
			// The cluster's keys: real ones, so that the certificates the
			// mocks sign with them parse, verify and pair.
			if curve := inputString(args.Inputs, "ecdsaCurve"); alg != "ECDSA" || curve != "P256" {
				return "", nil, fmt.Errorf("%s: unexpected key %s %s", args.Name, alg, curve)
			}
			key, pub, err := mockECKey(args.Name)
			if err != nil {
				return "", nil, err
			}
			set("privateKeyPem", resource.MakeSecret(str(key)))
			set("publicKeyPem", str(pub))
			break
		}
		set("privateKeyOpenssh", resource.MakeSecret(str(mockPrivateKey)))
		set("publicKeyOpenssh", str(mockPublicKey))
	case "tls:index/selfSignedCert:SelfSignedCert", "tls:index/certRequest:CertRequest", "tls:index/locallySignedCert:LocallySignedCert":
		k, pem, err := mockSign(args.TypeToken, args.Name, args.Inputs)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", args.Name, err)
		}
		set(k, str(pem))
	case "random:index/randomPassword:RandomPassword":
		set("result", resource.MakeSecret(str(mockRandomStart+args.Name)))
	case "pulumi:pulumi:StackReference":
		prev := m.previous
		if prev == nil {
			prev = map[string]any{}
		}
		set("outputs", resource.NewObjectProperty(resource.NewPropertyMapFromMap(prev)))
		set("secretOutputNames", resource.NewArrayProperty(nil))
		id = args.ID
	case "command:remote:Command":
		// Like the real provider, stdout is secret because the connection
		// carries the private key.
		// A wait prints what readiness.ReadyScript prints on a node:
		// the ready line, the marker, then that node's own host keys (with
		// a comment, which the program must strip).
		if _, node, ok := strings.Cut(args.Name, "-wait-"); ok {
			out := node + " ready\n" + readiness.HostKeysMarker + "\n"
			for _, k := range mockNodeHostKeys(node) {
				out += k + " root@" + node + "\n"
			}
			set("stdout", resource.MakeSecret(str(out)))
		} else if strings.HasSuffix(args.Name, "-cluster") {
			set("stdout", resource.MakeSecret(str(mockClusterState)))
		} else {
			set("stdout", resource.MakeSecret(str("ok\n")))
		}
	}
	return id, outs, nil
}

// mockNodeHostKeys are a node's host public keys: real ed25519 keys from a
// seed of the node's name, so each node's differ and parse as SSH keys.
func mockNodeHostKeys(node string) []string {
	var keys []string
	for _, kind := range []string{"a", "b"} {
		seed := sha256.Sum256([]byte("host key " + kind + " " + node))
		pub := ed25519.NewKeyFromSeed(seed[:]).Public()
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			panic(err)
		}
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	}
	return keys
}

const mockClusterState = `{"members":[{"name":"pg-1","role":"leader","state":"running","timeline":1},` +
	`{"name":"pg-2","role":"sync_standby","state":"running","timeline":1},` +
	`{"name":"pg-3","role":"replica","state":"running","timeline":1}],` +
	`"replication":[{"application_name":"pg-2","state":"streaming"},{"application_name":"pg-3","state":"streaming"}]}`

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	m.mu.Lock()
	m.invokes = append(m.invokes, invoke{args.Token, args.Provider})
	m.mu.Unlock()
	switch args.Token {
	case "aws:index/getAvailabilityZones:getAvailabilityZones":
		var names, ids []any
		for i, z := range m.zones {
			names = append(names, z)
			ids = append(ids, fmt.Sprintf("euw1-az%d", i+1))
		}
		return resource.NewPropertyMapFromMap(map[string]any{"names": names, "zoneIds": ids, "id": "eu-west-1"}), nil
	case "aws:ec2/getAmi:getAmi":
		return resource.NewPropertyMapFromMap(map[string]any{"id": m.ami, "name": "debian-12-amd64-20250101-1234"}), nil
	case "aws:index/getCallerIdentity:getCallerIdentity":
		return resource.NewPropertyMapFromMap(map[string]any{
			"accountId": mockAccount, "arn": "arn:aws:iam::" + mockAccount + ":user/test", "userId": "AIDAEXAMPLE", "id": mockAccount,
		}), nil
	case "aws:servicequotas/getServiceQuota:getServiceQuota":
		if m.eipQuota == 0 {
			return nil, fmt.Errorf("AccessDeniedException: not authorized to perform servicequotas:GetServiceQuota")
		}
		if args.Args["serviceCode"].StringValue() != "ec2" || args.Args["quotaCode"].StringValue() != "L-0263D0A3" {
			return nil, fmt.Errorf("unexpected quota %v", args.Args)
		}
		return resource.NewPropertyMapFromMap(map[string]any{"value": float64(m.eipQuota), "id": "ec2/L-0263D0A3"}), nil
	case "aws:ec2/getEips:getEips":
		n := m.eipsInRegion
		if _, ok := args.Args["tags"]; ok {
			n = m.eipsOfStack
		}
		var ids []any
		for i := 0; i < n; i++ {
			ids = append(ids, fmt.Sprintf("eipalloc-%d", i))
		}
		return resource.NewPropertyMapFromMap(map[string]any{"allocationIds": ids, "publicIps": ids, "id": "eu-west-1"}), nil
	case "aws:ec2/getInstanceType:getInstanceType":
		size, ok := stackspec.KnownSizes[args.Args["instanceType"].StringValue()]
		if !ok {
			return nil, fmt.Errorf("InvalidInstanceType: %s", args.Args["instanceType"].StringValue())
		}
		return resource.NewPropertyMapFromMap(map[string]any{"instanceType": args.Args["instanceType"].StringValue(),
			"memorySize": float64(size.MemoryMiB), "defaultVcpus": float64(size.VCPUs), "id": args.Args["instanceType"].StringValue()}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}), nil
	}
	return nil, fmt.Errorf("unexpected invoke %s", args.Token)
}

func (m *mocks) snapshot() []registered {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]registered(nil), m.resources...)
}

// byType returns the registered resources of one type token.
func (m *mocks) byType(token string) []registered {
	var out []registered
	for _, r := range m.snapshot() {
		if r.Type == token {
			out = append(out, r)
		}
	}
	return out
}

// run is the result of one program run under mocks.
type run struct {
	mocks   *mocks
	err     error
	outputs map[string]pulumi.Output
	values  map[string]any // the awaited output values
	secret  map[string]bool
}

// baseConfig is a minimal valid stack configuration.
func baseConfig() map[string]string {
	return map[string]string{
		"aws:region":        "eu-west-1",
		"pgha:allowedCidrs": `["100.20.30.0/24"]`,
	}
}

// runProgram runs the whole program under mocks as stack "dev" with the
// given config and awaits every output.
func runProgram(t *testing.T, cfg map[string]string, secretKeys []string, mk *mocks) *run {
	t.Helper()
	return runStack(t, "dev", cfg, secretKeys, mk)
}

// runStack is runProgram for a named stack.
func runStack(t *testing.T, stack string, cfg map[string]string, secretKeys []string, mk *mocks) *run {
	t.Helper()
	if mk == nil {
		mk = newMocks()
	}
	r := &run{mocks: mk, values: map[string]any{}, secret: map[string]bool{}}
	var mu sync.Mutex
	// Outputs made from plain values are not tracked by the run, so their
	// applies may finish after RunErr returns: wait for each one.
	var wg sync.WaitGroup
	r.err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		outs, err := build(ctx)
		if err != nil {
			return err
		}
		r.outputs = outs
		for k, o := range outs {
			ctx.Export(k, o)
			k := k
			wg.Add(1)
			pulumi.All(o).ApplyT(func(vs []any) any {
				defer wg.Done()
				mu.Lock()
				r.values[k] = vs[0]
				mu.Unlock()
				return nil
			})
		}
		return nil
	}, pulumi.WithMocks("pgha", stack, mk), func(info *pulumi.RunInfo) {
		info.Config = cfg
		info.ConfigSecretKeys = secretKeys
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("outputs did not resolve within 30 s")
	}
	for k, o := range r.outputs {
		r.secret[k] = pulumi.IsSecret(o)
	}
	return r
}

// stackJSON is the awaited outputs as `pulumi stack output --json
// --show-secrets` would print them.
func (r *run) stackJSON(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(r.values)
	if err != nil {
		t.Fatalf("marshal outputs: %v", err)
	}
	return b
}

// str reads a string input, unwrapping secrets; "" when absent.
// userData is an instance's #cloud-config document, unpacked from the
// base64 gzip EC2 receives.
func userData(t testing.TB, inst registered) string {
	t.Helper()
	b64 := str(inst.Inputs, "userDataBase64")
	require.NotEmpty(t, b64, "%s: no userDataBase64", inst.Name)
	packed, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err, inst.Name)
	doc, err := userdata.Unpack(packed)
	require.NoError(t, err, inst.Name)
	return string(doc)
}

func str(m resource.PropertyMap, key string) string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return ""
	}
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	if v.IsNumber() {
		return fmt.Sprint(v.NumberValue())
	}
	if v.IsBool() {
		return fmt.Sprint(v.BoolValue())
	}
	return ""
}

// obj reads a nested object input.
func obj(m resource.PropertyMap, key string) resource.PropertyMap {
	v, ok := m[resource.PropertyKey(key)]
	if ok && v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !ok || !v.IsObject() {
		return resource.PropertyMap{}
	}
	return v.ObjectValue()
}
