package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
)

const urnPrefix = "urn:pulumi:dev::pgha::"

// instanceURN is the URN the program gives a node's instance.
func instanceURN(node string) string {
	switch {
	case strings.HasPrefix(node, "etcd-"):
		return urnPrefix + "pgha:index:EtcdCluster$aws:ec2/instance:Instance::etcd-" + node
	case strings.HasPrefix(node, "pg-"):
		return urnPrefix + "pgha:index:PatroniCluster$aws:ec2/instance:Instance::patroni-" + node
	}
	return urnPrefix + "pgha:index:HAProxyTier$aws:ec2/instance:Instance::haproxy-" + node
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "roll", name+".json.gz"))
	require.NoError(t, err)
	defer f.Close()
	z, err := gzip.NewReader(f)
	require.NoError(t, err)
	b, err := io.ReadAll(z)
	require.NoError(t, err)
	return b
}

func testPlan(t *testing.T) topology.Plan {
	p, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	return p
}

// The tier types validate looks for are the program's (validate may not
// link components/, so they are read from its source).
func TestRollComponentTypesAreThePrograms(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "components", "tags.go"), nil, 0)
	require.NoError(t, err)
	consts := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Values) == len(vs.Names) {
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					consts[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
		return true
	})
	require.Equal(t, map[topology.Role]string{
		topology.RoleEtcd: consts["TypeEtcd"], topology.RolePatroni: consts["TypePatroni"], topology.RoleHAProxy: consts["TypeHAProxy"],
	}, tierTypes)
}

func TestRollFindsEachNodesInstanceInTheStackExport(t *testing.T) {
	state, err := parseExport(fixture(t, "export"))
	require.NoError(t, err)
	require.Len(t, state, 106)
	urns, err := instanceURNs(state, testPlan(t))
	require.NoError(t, err)
	want := map[string]string{}
	for _, n := range testPlan(t).Nodes {
		want[n.Name] = instanceURN(n.Name)
	}
	require.Equal(t, want, urns)
	require.Equal(t, urnPrefix+"pgha:index:PatroniCluster$aws:ec2/instance:Instance::patroni-pg-2", urns["pg-2"], "the runbook's example")

	// An old instance an interrupted replacement left for deletion is not
	// the node's; two live ones are an error.
	old := state[slices.IndexFunc(state, func(r stateResource) bool { return r.URN == instanceURN("pg-2") })]
	old.Delete = true
	urns, err = instanceURNs(append(slices.Clone(state), old), testPlan(t))
	require.NoError(t, err)
	require.Equal(t, instanceURN("pg-2"), urns["pg-2"])
	old.Delete = false
	_, err = instanceURNs(append(slices.Clone(state), old), testPlan(t))
	require.ErrorContains(t, err, "node pg-2 has 2 instances")

	// A state without pg-2's instance: the error names the node and what
	// was looked for.
	without := slices.DeleteFunc(slices.Clone(state), func(r stateResource) bool { return r.URN == instanceURN("pg-2") })
	_, err = instanceURNs(without, testPlan(t))
	require.ErrorContains(t, err, "no EC2 instance for pg-2 (an aws:ec2/instance:Instance named <component>-pg-2 under a pgha:index:PatroniCluster component)")
	require.NotContains(t, err.Error(), "pg-1")

	// An instance of the right name under another component is not it.
	moved := slices.Clone(state)
	for i, r := range moved {
		if r.URN == instanceURN("etcd-1") {
			moved[i].Parent = urnPrefix + "pgha:index:Readiness::etcd"
		}
	}
	_, err = instanceURNs(moved, testPlan(t))
	require.ErrorContains(t, err, "no EC2 instance for etcd-1")
}

func classifyFixture(t *testing.T, preview []byte) previewPlan {
	t.Helper()
	state, err := parseExport(fixture(t, "export"))
	require.NoError(t, err)
	urns, err := instanceURNs(state, testPlan(t))
	require.NoError(t, err)
	d, err := parsePreview(preview)
	require.NoError(t, err)
	return classify(d, state, urns, testPlan(t))
}

func TestRollClassifiesThePreview(t *testing.T) {
	none := classifyFixture(t, fixture(t, "preview-none"))
	require.Empty(t, none.Nodes, "the root stack's same and the stack reference's read change nothing")
	require.Empty(t, none.Finish)
	require.Empty(t, none.Dependents)
	require.Empty(t, none.Foreign)
	require.Empty(t, none.Rolled(testPlan(t)))

	ami := classifyFixture(t, fixture(t, "preview-ami"))
	require.Equal(t, []string{"etcd-1", "etcd-2", "etcd-3", "pg-1", "pg-2", "pg-3", "haproxy-1", "haproxy-2"}, ami.Rolled(testPlan(t)))
	for _, op := range ami.Nodes {
		require.Equal(t, "replace", op)
	}
	require.Empty(t, ami.Finish)
	require.Empty(t, ami.Foreign)
	var deps []string
	for _, c := range ami.Dependents {
		_, name, _ := urnParts(c.URN)
		deps = append(deps, c.Op+" "+name)
	}
	require.ElementsMatch(t, []string{
		"update haproxy-haproxy-1-eip", "update haproxy-haproxy-2-eip",
		"replace readiness-wait-etcd-1", "replace readiness-wait-etcd-2", "replace readiness-wait-etcd-3",
		"replace readiness-wait-pg-1", "replace readiness-wait-pg-2", "replace readiness-wait-pg-3",
		"replace readiness-wait-haproxy-1", "replace readiness-wait-haproxy-2", "replace readiness-cluster",
	}, deps)

	foreign := classifyFixture(t, fixture(t, "preview-foreign"))
	require.Len(t, foreign.Nodes, 8)
	require.Equal(t, []change{
		{"update", urnPrefix + "pgha:index:Secrets$aws:ssm/parameter:Parameter::secrets-app-password-param"},
		{"create", urnPrefix + "pgha:index:Security$aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule::security-haproxy-in-5000-203-0-113-0-24"},
	}, foreign.Foreign)

	// A roll that stopped within pg-1: its instance is current, its wait
	// and the cluster check are not. Rolling pg-1 again finishes both.
	finish := classifyFixture(t, fixture(t, "preview-finish"))
	require.Empty(t, finish.Nodes)
	require.Equal(t, map[string]bool{"pg-1": true}, finish.Finish)
	require.Len(t, finish.Dependents, 2)
	require.Empty(t, finish.Foreign)

	// Only the cluster check left (the wait had finished when the roll
	// stopped): one node rolled again takes it along.
	d, err := parsePreview(fixture(t, "preview-finish"))
	require.NoError(t, err)
	d.Steps = slices.DeleteFunc(d.Steps, func(s previewStep) bool { return strings.HasSuffix(s.URN, "readiness-wait-pg-1") })
	cluster := classifyFixture(t, mustJSON(t, d))
	require.Equal(t, map[string]bool{"etcd-1": true}, cluster.Finish)
	require.Empty(t, cluster.Foreign)
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// keepSteps is a preview that changes only the resources whose URN ends in
// one of names (plus the root stack and the stack reference).
func keepSteps(t *testing.T, preview []byte, names ...string) []byte {
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(preview, &raw))
	var steps []map[string]any
	require.NoError(t, json.Unmarshal(raw["steps"], &steps))
	steps = slices.DeleteFunc(steps, func(s map[string]any) bool {
		op, urn := s["op"].(string), s["urn"].(string)
		return op != "same" && op != "read" && !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(urn, "::"+n) })
	})
	raw["steps"] = mustJSON(t, steps)
	return mustJSON(t, raw)
}

// ---- fakes ----

// events is what happened, in order, across the fakes.
type events struct {
	mu  sync.Mutex
	all []string
}

func (e *events) add(format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, fmt.Sprintf(format, a...))
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

type fakePulumi struct {
	ev              *events
	export, preview []byte
	previewErr      error
	calls           [][]string
	failUp          string // an up of this node's instance fails
	onUp            func(node string)
}

func (f *fakePulumi) Output(_ context.Context, args ...string) ([]byte, error) {
	f.calls = append(f.calls, args)
	switch args[0] {
	case "stack":
		return f.export, nil
	case "preview":
		return f.preview, f.previewErr
	}
	return nil, fmt.Errorf("unexpected pulumi %v", args)
}

func (f *fakePulumi) Update(_ context.Context, args ...string) error {
	f.calls = append(f.calls, args)
	node := "?"
	for _, n := range []string{"etcd-1", "etcd-2", "etcd-3", "pg-1", "pg-2", "pg-3", "haproxy-1", "haproxy-2"} {
		if args[4] == instanceURN(n) {
			node = n
		}
	}
	f.ev.add("up %s", node)
	if f.onUp != nil {
		f.onUp(node)
	}
	if node == f.failUp {
		return errors.New("pulumi up: exit status 255: creating EC2 Instance: InsufficientInstanceCapacity")
	}
	return nil
}

// fakeCluster is the cluster itself, whatever view looks at it.
type fakeCluster struct {
	ev           *events
	leader, sync string
	etcdBroken   bool
	notStreaming string
	switchovers  []string
}

func (c *fakeCluster) pgs() []string { return []string{"pg-1", "pg-2", "pg-3"} }

// fakeView is the cluster seen through one load of the outputs.
type fakeView struct {
	c   *fakeCluster
	gen int
}

func (v fakeView) Formation(context.Context, ...string) probe.Formation {
	v.c.ev.add("probe %d", v.gen)
	f := probe.Formation{Leader: patroni.Member{Name: v.c.leader, Host: "10.42.4.20", Role: "leader"}, Repl: map[string]probe.Repl{}, Sync: v.c.sync}
	for _, n := range v.c.pgs() {
		if n == v.c.leader {
			continue
		}
		f.Replicas = append(f.Replicas, patroni.Member{Name: n, State: "running"})
		state := "streaming"
		if n == v.c.notStreaming {
			state = "catchup"
			f.Problems = append(f.Problems, fmt.Sprintf("replica %s is in state %q on leader %s, not streaming", n, state, v.c.leader))
		}
		f.Repl[n] = probe.Repl{State: state}
	}
	return f
}

func (v fakeView) Etcd(context.Context) probe.EtcdState {
	st := probe.EtcdState{Leader: "etcd-1"}
	for _, n := range []string{"etcd-1", "etcd-2", "etcd-3"} {
		st.Members = append(st.Members, probe.EtcdMember{Node: outputs.Node{Name: n}, Healthy: !(v.c.etcdBroken && n == "etcd-2")})
	}
	if v.c.etcdBroken {
		st.Problems = append(st.Problems, "etcd member etcd-2 (10.42.5.10) is not healthy: connection refused")
	}
	return st
}

func (v fakeView) Switchover(_ context.Context, _, leader, candidate string) error {
	v.c.ev.add("switchover %s -> %s", leader, candidate)
	v.c.switchovers = append(v.c.switchovers, leader+"->"+candidate)
	v.c.leader, v.c.sync = candidate, leader
	return nil
}

type rollTest struct {
	ev      *events
	cli     *fakePulumi
	cluster *fakeCluster
	r       *roller
	out     *bytes.Buffer
	opts    *rollOptions
}

func newRollTest(t *testing.T, preview []byte) *rollTest {
	ev := &events{}
	rt := &rollTest{
		ev:      ev,
		cli:     &fakePulumi{ev: ev, export: fixture(t, "export"), preview: preview},
		cluster: &fakeCluster{ev: ev, leader: "pg-2", sync: "pg-3"},
		out:     &bytes.Buffer{},
		opts:    &rollOptions{stack: "dev", gate: 2 * time.Second, yes: true},
	}
	gen := 0
	rt.r = &roller{
		stack: "dev", cli: rt.cli,
		load: func(context.Context) (outputs.Stack, error) {
			gen++
			ev.add("load %d", gen)
			// Each load is told apart by its jump host keys, as a replaced
			// node's new keys would be.
			return outputs.Stack{Target: outputs.TargetAWS, ClusterName: "pgha", VPCCIDR: topology.DefaultVPCCIDR,
				Access: outputs.Access{Kind: outputs.AccessSSH, JumpHostKeys: []string{fmt.Sprintf("ssh-ed25519 key%d", gen)}}}, nil
		},
		connect: func(s outputs.Stack) (clusterView, func(), error) {
			g, _ := strconv.Atoi(strings.TrimPrefix(s.Access.JumpHostKeys[0], "ssh-ed25519 key"))
			ev.add("connect %d", g)
			return fakeView{c: rt.cluster, gen: g}, func() { ev.add("close %d", g) }, nil
		},
		out: rt.out, err: rt.out, interactive: true, in: strings.NewReader(""), switchBound: 5 * time.Second,
	}
	return rt
}

func (rt *rollTest) run() int { return rt.r.run(context.Background(), rt.opts) }

// ups are the instances pulumi up was run on, and each list of arguments.
func (rt *rollTest) ups() [][]string {
	var out [][]string
	for _, c := range rt.cli.calls {
		if c[0] == "up" {
			out = append(out, c)
		}
	}
	return out
}

func upFor(node string) []string {
	return []string{"up", "--stack", "dev", "--target", instanceURN(node), "--target-dependents", "--yes", "--skip-preview"}
}

var readCalls = [][]string{{"stack", "export", "--stack", "dev"}, {"preview", "--stack", "dev", "--json"}}

// ---- the command ----

func TestRollDryRunRunsNothing(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-ami"))
	rt.opts.dryRun, rt.opts.yes = true, false
	rt.r.interactive = false // a dry run needs no one to confirm
	require.Equal(t, 0, rt.run(), rt.out.String())
	require.Equal(t, readCalls, rt.cli.calls, "only the reads: no pulumi up")
	require.Empty(t, rt.cluster.switchovers)
	out := rt.out.String()
	require.Contains(t, out, "1/9 replace haproxy-1\n      pulumi up --stack dev --target 'urn:pulumi:dev::pgha::pgha:index:HAProxyTier$aws:ec2/instance:Instance::haproxy-haproxy-1' --target-dependents --yes --skip-preview\n")
	require.Contains(t, out, "8/9 switch over from pg-2 (to the synchronous standby")
	require.Contains(t, out, "9/9 replace pg-2\n      pulumi up --stack dev --target 'urn:pulumi:dev::pgha::pgha:index:PatroniCluster$aws:ec2/instance:Instance::patroni-pg-2'")
	require.Contains(t, out, "2 aws:ec2/eip:Eip, 9 command:remote:Command")
	require.Contains(t, out, "dry run: nothing was run or changed")
}

func TestRollRunsEachStepInOrderAndReloadsTheOutputsAfterEach(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-ami"))
	require.Equal(t, 0, rt.run(), rt.out.String())

	// The order: HAProxy, etcd, the asynchronous replica, the sync
	// standby, a switchover to it, the former leader.
	require.Equal(t, readCalls, rt.cli.calls[:2])
	require.Equal(t, [][]string{
		upFor("haproxy-1"), upFor("haproxy-2"), upFor("etcd-1"), upFor("etcd-2"), upFor("etcd-3"),
		upFor("pg-1"), upFor("pg-3"), upFor("pg-2"),
	}, rt.ups())
	require.Equal(t, []string{"pg-2->pg-3"}, rt.cluster.switchovers)
	ev := rt.ev.list()
	require.Less(t, slices.Index(ev, "up pg-3"), slices.Index(ev, "switchover pg-2 -> pg-3"))
	require.Less(t, slices.Index(ev, "switchover pg-2 -> pg-3"), slices.Index(ev, "up pg-2"))

	// After each up the outputs are read again and the cluster looked at
	// through them only.
	gen := 1
	for i, e := range ev {
		if strings.HasPrefix(e, "up ") {
			gen++
			require.Equal(t, fmt.Sprintf("load %d", gen), ev[i+1], "after %s: %v", e, ev)
			require.Equal(t, fmt.Sprintf("connect %d", gen), ev[i+2])
			require.Equal(t, fmt.Sprintf("close %d", gen-1), ev[i+3], "the old connection is closed")
		}
		if g, ok := strings.CutPrefix(e, "probe "); ok {
			require.Equal(t, strconv.Itoa(gen), g, "event %d (%s) looks through outputs %s: %v", i, e, g, ev)
		}
	}
	require.Equal(t, 9, gen, "the first load and one after each of 8 ups")

	out := rt.out.String()
	require.Contains(t, out, "roll of stack dev done: 9 steps in ")
	for i, s := range []string{"replace haproxy-1", "replace etcd-3", "switch over from pg-2", "replace pg-2"} {
		require.Regexp(t, `done [0-9]/9 `+s+` +[0-9]+s`, out, i)
	}
	require.Regexp(t, `done 8/9 switch over from pg-2 +[0-9]+s, new leader pg-3`, out)
	require.Contains(t, out, "leader now: pg-3")
}

func TestRollStopsWhenAGateFailsAndSaysWhatIsLeft(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-ami"))
	rt.cli.onUp = func(node string) {
		if node == "etcd-2" {
			rt.cluster.etcdBroken = true
		}
	}
	rt.opts.gate = 1500 * time.Millisecond
	require.Equal(t, 1, rt.run())
	require.Equal(t, [][]string{upFor("haproxy-1"), upFor("haproxy-2"), upFor("etcd-1"), upFor("etcd-2")}, rt.ups(), "nothing after the failed gate")
	out := rt.out.String()
	require.Contains(t, out, "roll of stack dev STOPPED after step 4/9 (replace etcd-2), made, after ")
	require.Regexp(t, `made 4/9 replace etcd-2 +the cluster was not whole again in time`, out)
	require.Contains(t, out, "the cluster is not whole after 1.5s: etcd: etcd member etcd-2 (10.42.5.10) is not healthy")
	_, left, ok := strings.Cut(out, "not done:\n")
	require.True(t, ok, out)
	var remaining []string
	for _, l := range strings.Split(left, "\n") {
		if l = strings.TrimSpace(l); regexpStep.MatchString(l) {
			remaining = append(remaining, l)
		}
	}
	require.Equal(t, []string{"5/9 replace etcd-3", "6/9 replace pg-1", "7/9 replace pg-3", "8/9 switch over from pg-2", "9/9 replace pg-2"}, remaining)
	require.Contains(t, left, shellCommand(upFor("etcd-3")))
	require.Contains(t, out, "go run ./validate roll --stack dev --gate 1.5s\nagain")
	require.Contains(t, out, "not whole: etcd member etcd-2")
	require.Empty(t, rt.cluster.switchovers)
}

var regexpStep = regexp.MustCompile(`^[0-9]/9 (replace|switch over from) [a-z0-9-]+$`)

func TestRollStopsWhenPulumiUpFails(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-ami"))
	rt.cli.failUp = "haproxy-2"
	require.Equal(t, 1, rt.run())
	require.Len(t, rt.ups(), 2)
	out := rt.out.String()
	require.Contains(t, out, "STOPPED at step 2/9 (replace haproxy-2)")
	require.Contains(t, out, "InsufficientInstanceCapacity")
	require.Contains(t, out, "  2/9 replace haproxy-2\n      "+shellCommand(upFor("haproxy-2")))
	require.Contains(t, out, "done 1/9 replace haproxy-1")
}

func TestRollSaysUpToDateWhenNothingWouldBeReplaced(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-none"))
	require.Equal(t, 0, rt.run())
	require.Equal(t, readCalls, rt.cli.calls)
	require.Contains(t, rt.out.String(), "the nodes are up to date")
}

func TestRollRefusesChangesThatAreNotNodes(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-foreign"))
	require.Equal(t, 1, rt.run())
	require.Equal(t, readCalls, rt.cli.calls, "no pulumi up")
	out := rt.out.String()
	require.Contains(t, out, "update "+urnPrefix+"pgha:index:Secrets$aws:ssm/parameter:Parameter::secrets-app-password-param")
	require.Contains(t, out, "create "+urnPrefix+"pgha:index:Security$aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule::security-haproxy-in-5000-203-0-113-0-24")
	require.Contains(t, out, "pulumi up --stack dev --target '"+urnPrefix+"pgha:index:Secrets$aws:ssm/parameter:Parameter::secrets-app-password-param' --target '")
	require.Contains(t, out, "nothing was changed")
}

func TestRollStopsWhenThePreviewFails(t *testing.T) {
	// pulumi preview --json prints its digest even when the program fails.
	rt := newRollTest(t, []byte(`{
    "steps": [],
    "diagnostics": [
        {
            "urn": "urn:pulumi:dev::pgha::pulumi:pulumi:Stack::pgha-dev",
            "message": "error: cannot read the AWS account (are AWS credentials set?): operation error STS: GetCallerIdentity\n",
            "severity": "error"
        }
    ],
    "duration": 4021559804,
    "changeSummary": {}
}`))
	rt.cli.previewErr = errors.New("exit status 255")
	require.Equal(t, 1, rt.run())
	require.Empty(t, rt.ups())
	require.Contains(t, rt.out.String(), "pulumi preview failed: error: cannot read the AWS account (are AWS credentials set?)")
}

func TestRollRefusesToStartUnlessTheClusterIsWhole(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-ami"))
	rt.cluster.notStreaming = "pg-1"
	require.Equal(t, 1, rt.run())
	require.Empty(t, rt.cli.calls, "not even a preview")
	require.Contains(t, rt.out.String(), `refusing to start: the cluster is not whole (replica pg-1 is in state "catchup"`)
}

func TestRollTakesOnlyTheNodesLeft(t *testing.T) {
	// Resumed after the HAProxy and etcd nodes: the PostgreSQL nodes left,
	// the switchover included.
	rt := newRollTest(t, keepSteps(t, fixture(t, "preview-ami"), "patroni-pg-1", "patroni-pg-2", "patroni-pg-3",
		"readiness-wait-pg-1", "readiness-wait-pg-2", "readiness-wait-pg-3", "readiness-cluster"))
	require.Equal(t, 0, rt.run(), rt.out.String())
	require.Equal(t, [][]string{upFor("pg-1"), upFor("pg-3"), upFor("pg-2")}, rt.ups())
	require.Equal(t, []string{"pg-2->pg-3"}, rt.cluster.switchovers)

	// Only a replica left: no switchover.
	rt = newRollTest(t, keepSteps(t, fixture(t, "preview-ami"), "patroni-pg-1", "readiness-wait-pg-1", "readiness-cluster"))
	require.Equal(t, 0, rt.run(), rt.out.String())
	require.Equal(t, [][]string{upFor("pg-1")}, rt.ups())
	require.Empty(t, rt.cluster.switchovers)
	require.Contains(t, rt.out.String(), "roll of stack dev done: 1 step in ")
}

func TestRollFinishesANodeLeftHalfDoneWithoutSwitchingOver(t *testing.T) {
	rt := newRollTest(t, fixture(t, "preview-finish"))
	rt.cluster.leader, rt.cluster.sync = "pg-1", "pg-2"
	require.Equal(t, 0, rt.run(), rt.out.String())
	require.Equal(t, [][]string{upFor("pg-1")}, rt.ups(), "its instance stays, so the leader may stay too")
	require.Empty(t, rt.cluster.switchovers)
	require.Contains(t, rt.out.String(), "1/1 replace pg-1 (its instance is current")
}

func TestRollStopsRatherThanReplaceALeader(t *testing.T) {
	// A failover during the roll made pg-1 the leader before its turn.
	rt := newRollTest(t, fixture(t, "preview-ami"))
	rt.cli.onUp = func(node string) {
		if node == "etcd-3" {
			rt.cluster.leader, rt.cluster.sync = "pg-1", "pg-3"
		}
	}
	require.Equal(t, 1, rt.run())
	require.Equal(t, upFor("etcd-3"), rt.ups()[len(rt.ups())-1], "pg-1 leads: its up is never run")
	require.Contains(t, rt.out.String(), "STOPPED at step 6/9 (replace pg-1)")
	require.Contains(t, rt.out.String(), "pg-1 leads now")
}

func TestRollAsksUnlessYes(t *testing.T) {
	// No terminal, no --yes: refused before anything is read.
	rt := newRollTest(t, fixture(t, "preview-ami"))
	rt.opts.yes, rt.r.interactive = false, false
	require.Equal(t, 2, rt.run())
	require.Empty(t, rt.cli.calls)
	require.Empty(t, rt.ev.list())
	require.Contains(t, rt.out.String(), "stdin is not a terminal")

	// Asked, and declined.
	rt = newRollTest(t, fixture(t, "preview-ami"))
	rt.opts.yes, rt.r.in = false, strings.NewReader("no\n")
	require.Equal(t, 1, rt.run())
	require.Equal(t, readCalls, rt.cli.calls)
	require.Contains(t, rt.out.String(), "Roll stack dev now? Type yes to start: ")

	// Asked, and confirmed.
	rt = newRollTest(t, fixture(t, "preview-ami"))
	rt.opts.yes, rt.r.in = false, strings.NewReader("yes\n")
	require.Equal(t, 0, rt.run(), rt.out.String())
	require.Len(t, rt.ups(), 8)
}

func TestRollOptions(t *testing.T) {
	o, err := parseRollOptions([]string{"--stack", "prod", "--dir", "/srv/pgha", "--dry-run", "--gate", "15m", "--yes"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, &rollOptions{stack: "prod", dir: "/srv/pgha", dryRun: true, yes: true, gate: 15 * time.Minute}, o)
	o, err = parseRollOptions(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, o.gate)
	_, err = parseRollOptions([]string{"--gate", "0s"}, io.Discard)
	require.ErrorContains(t, err, "--gate must be positive")
	_, err = parseRollOptions([]string{"extra"}, io.Discard)
	require.ErrorContains(t, err, `unexpected argument "extra"`)
}

// The real runner passes one interrupt on to pulumi and waits for it to
// finish its step, however many more come.
func TestRollForwardsOneInterruptToPulumi(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	// Like pulumi, it takes an interrupt as a request to finish the step
	// under way (here a second), then stops.
	script := `#!/bin/sh
n=0
trap 'echo interrupt >> "$LOG"; n=$((n+1))' INT
echo "started $$" >> "$LOG"
while [ "$n" -eq 0 ]; do sleep 0.05; done
i=0; while [ "$i" -lt 20 ]; do sleep 0.05; i=$((i+1)); done
echo step-finished >> "$LOG"
echo "error: update canceled"
exit 255
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pulumi"), []byte(script), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("LOG", log)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	p := pulumiExec{dir: dir, stdout: &stdout, stderr: &stderr}
	res := make(chan error, 1)
	go func() { res <- p.Update(ctx, upFor("pg-1")...) }()
	var pid int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(log)
		_, err := fmt.Sscanf(string(b), "started %d", &pid)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	// A Ctrl-C at the terminal goes to validate's process group only.
	pgid, err := syscall.Getpgid(pid)
	require.NoError(t, err)
	require.Equal(t, pid, pgid, "pulumi leads a process group of its own")
	require.NotEqual(t, syscall.Getpgrp(), pgid)
	cancel() // what Ctrl-C does to validate's context
	require.Eventually(t, func() bool { b, _ := os.ReadFile(log); return strings.Contains(string(b), "interrupt") }, 5*time.Second, 10*time.Millisecond)
	// Another Ctrl-C meanwhile is not passed on. (The guard keeps the test
	// process alive should the runner not be listening.)
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, os.Interrupt)
	defer signal.Stop(guard)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	select {
	case err = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("Update did not return")
	}
	b, _ := os.ReadFile(log)
	require.Equal(t, fmt.Sprintf("started %d\ninterrupt\nstep-finished\n", pid), string(b), "one interrupt, and the step finished before Update returned")
	require.ErrorIs(t, err, errUpdateInterrupted)
	require.ErrorContains(t, err, "update canceled")
	require.Contains(t, stderr.String(), "still waiting for pulumi")
	require.Contains(t, stdout.String(), "error: update canceled", "its output is the user's")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
