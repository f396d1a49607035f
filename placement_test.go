package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pulumitest"
)

// previousOutputs is what a reference to the stack itself reads after run
// r: its outputs, through JSON as the engine stores them.
func previousOutputs(t *testing.T, r *run) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.stackJSON(t), &m))
	return m
}

// nextUpdate runs the program as the update after first, with cfg; tweak,
// when set, changes what AWS answers this time.
func nextUpdate(t *testing.T, first *run, cfg map[string]string, tweak func(*mocks)) *run {
	t.Helper()
	require.NoError(t, first.err)
	mk := newMocks()
	mk.previous = previousOutputs(t, first)
	if tweak != nil {
		tweak(mk)
	}
	return runProgram(t, cfg, nil, mk)
}

// A second `pulumi up` with nothing changed in config must plan no change,
// even when Debian has published a newer AMI and the region's first zone
// is no longer "available": the cluster stays on what it was placed on.
func TestPlacementIsKeptAcrossUpdates(t *testing.T) {
	first := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, first.err)
	place := previousOutputs(t, first)[outputs.KeyPlacement].(map[string]any)
	assert.Equal(t, mockAMI, place["ami"])
	assert.EqualValues(t, []any{"eu-west-1a", "eu-west-1b", "eu-west-1c"}, place["zones"])

	second := nextUpdate(t, first, baseConfig(), func(mk *mocks) {
		mk.ami = "ami-0fedcba9876543210"                              // newer
		mk.zones = []string{"eu-west-1b", "eu-west-1c", "eu-west-1d"} // 1a impaired
	})
	require.NoError(t, second.err)
	assert.Equal(t, place, previousOutputs(t, second)[outputs.KeyPlacement])

	// Every resource is registered again with exactly the same inputs: the
	// engine would plan no update and no replacement.
	before := map[string]registered{}
	for _, r := range first.mocks.snapshot() {
		before[r.Type+"::"+r.Name] = r
	}
	n := 0
	for _, r := range second.mocks.snapshot() {
		b, ok := before[r.Type+"::"+r.Name]
		require.True(t, ok, "%s %s is new on the second update", r.Type, r.Name)
		delete(before, r.Type+"::"+r.Name)
		assert.True(t, b.Inputs.DeepEquals(r.Inputs), "%s %s changed:\nbefore %v\nafter  %v", r.Type, r.Name, b.Inputs, r.Inputs)
		n++
	}
	assert.Empty(t, before, "resources gone on the second update")
	assert.Greater(t, n, 60)
	for _, inst := range second.mocks.byType(tInstance) {
		assert.Equal(t, mockAMI, str(inst.Inputs, "ami"), inst.Name)
	}
}

// Naming an AMI in config is the one deliberate way to change the image.
func TestConfiguredAMIWinsOverTheKeptOne(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:amiId"] = "ami-0aaaabbbbccccdddd"
	second := nextUpdate(t, runProgram(t, baseConfig(), nil, nil), cfg, nil)
	require.NoError(t, second.err)
	for _, inst := range second.mocks.byType(tInstance) {
		assert.Equal(t, "ami-0aaaabbbbccccdddd", str(inst.Inputs, "ami"), inst.Name)
	}
	place := previousOutputs(t, second)[outputs.KeyPlacement].(map[string]any)
	assert.Equal(t, "ami-0aaaabbbbccccdddd", place["ami"])
	assert.EqualValues(t, []any{"eu-west-1a", "eu-west-1b", "eu-west-1c"}, place["zones"], "the zones stay")
}

func TestRegionChangeIsRefusedBeforeAnyAWSResource(t *testing.T) {
	cfg := baseConfig()
	cfg["aws:region"] = "eu-central-1"
	r := nextUpdate(t, runProgram(t, baseConfig(), nil, nil), cfg, nil)
	require.Error(t, r.err)
	for _, w := range []string{"aws:region", "eu-west-1", "eu-central-1", "cannot move regions"} {
		assert.Contains(t, r.err.Error(), w)
	}
	for _, res := range r.mocks.snapshot() {
		assert.Contains(t, []string{tProvider, tStackRef}, res.Type, "%s %s registered", res.Type, res.Name)
	}
}

// With aws:profile or aws:assumeRole, the default provider could answer
// from another account than the one the resources go to: every look-up
// goes through the stack's own provider.
func TestLookupsUseTheStacksProvider(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	r.mocks.mu.Lock()
	defer r.mocks.mu.Unlock()
	require.NotEmpty(t, r.mocks.invokes)
	for _, in := range r.mocks.invokes {
		assert.True(t, strings.Contains(in.Provider, "::"+tProvider+"::aws::"), "%s went through %q", in.Token, in.Provider)
	}
}

// The mocks above stand in for the engine's answer to a reference to the
// stack itself. This drives the real pulumi CLI (file backend, inline
// program) through previousPlacement: nothing on the first update, then
// what the last update exported, and a preview of an unchanged program
// plans no change.
func TestSelfReferenceReadsTheLastUpdateWithTheRealEngine(t *testing.T) {
	root, _ := pulumitest.Backend(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var seen []*outputs.Placement
	offer := outputs.Placement{Region: "eu-west-1", AMI: "ami-0000000000000001f", Zones: []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}}
	program := func(ctx *pulumi.Context) error {
		prev, err := previousPlacement(ctx)
		if err != nil {
			return err
		}
		seen = append(seen, prev)
		p := offer
		if prev != nil {
			p = *prev
		}
		ctx.Export(outputs.KeyPlacement, pulumi.Map{
			"region": pulumi.String(p.Region), "ami": pulumi.String(p.AMI), "zones": pulumi.ToStringArray(p.Zones),
		})
		return nil
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	require.NoError(t, err)
	st, err := auto.UpsertStackInlineSource(ctx, "dev", "pgha", program, auto.Pulumi(cmd))
	require.NoError(t, err)
	_, err = st.Up(ctx)
	require.NoError(t, err)
	first := offer
	offer.AMI = "ami-0000000000000002f" // a newer image is offered
	res, err := st.Up(ctx)
	require.NoError(t, err)
	require.Len(t, seen, 2)
	assert.Nil(t, seen[0], "a new stack has no previous placement")
	require.NotNil(t, seen[1])
	assert.Equal(t, first, *seen[1])
	assert.Equal(t, first.AMI, res.Outputs[outputs.KeyPlacement].Value.(map[string]any)["ami"])
	pv, err := st.Preview(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[apitype.OpType]int{apitype.OpSame: 1}, pv.ChangeSummary, "the stack unchanged (the self-reference is a read)")
}

func TestElasticIPQuota(t *testing.T) {
	for _, tc := range []struct {
		name               string
		nat                string
		quota, inRegion, o int
		want               string // "" passes
	}{
		{name: "single NAT in an empty region", nat: "single", quota: 5},
		{name: "perAz takes the whole default quota", nat: "perAz", quota: 5},
		{name: "perAz beside another address", nat: "perAz", quota: 5, inRegion: 1,
			want: "needs 5 Elastic IPs in eu-west-1, and 1 of the region's quota of 5 are held by others"},
		{name: "the stack's own addresses count once", nat: "perAz", quota: 5, inRegion: 5, o: 5},
		{name: "single beside three others", nat: "single", quota: 5, inRegion: 3,
			want: "needs 3 Elastic IPs"},
		{name: "no permission to read the quota", nat: "perAz", inRegion: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := newMocks()
			mk.eipQuota, mk.eipsInRegion, mk.eipsOfStack = tc.quota, tc.inRegion, tc.o
			cfg := baseConfig()
			cfg["pgha:natGateways"] = tc.nat
			r := runProgram(t, cfg, nil, mk)
			if tc.want == "" {
				require.NoError(t, r.err)
				return
			}
			require.Error(t, r.err)
			assert.Contains(t, r.err.Error(), "pgha:natGateways: the stack "+tc.want)
			if tc.nat == "perAz" {
				assert.Contains(t, r.err.Error(), "pulumi config set pgha:natGateways single")
			}
			for _, res := range r.mocks.snapshot() {
				assert.Contains(t, []string{tProvider, tStackRef}, res.Type, "%s %s registered", res.Type, res.Name)
			}
		})
	}
}
