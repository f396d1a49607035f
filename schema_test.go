package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/components"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/stackconfig"
)

// allKeys is every key stackconfig reads, with the default it applies
// ("" for none).
var allKeys = map[string]any{
	stackconfig.KeyClusterName:         stackconfig.DefaultClusterName,
	stackconfig.KeyVPCCIDR:             "10.42.0.0/16",
	stackconfig.KeyAllowedCIDRs:        nil, // required
	stackconfig.KeyAllowWorldAccess:    false,
	stackconfig.KeyProfile:             stackconfig.DefaultProfile,
	stackconfig.KeySynchronousMode:     stackconfig.DefaultSynchronousMode,
	stackconfig.KeyWatchdog:            stackconfig.DefaultWatchdog,
	stackconfig.KeyWorkload:            stackconfig.DefaultWorkload,
	stackconfig.KeyPoolMode:            stackconfig.DefaultPoolMode,
	stackconfig.KeyNATGateways:         stackconfig.DefaultNATGateways,
	stackconfig.KeyEtcdInstanceType:    stackconfig.DefaultEtcdInstanceType,
	stackconfig.KeyPatroniInstanceType: stackconfig.DefaultPatroniInstanceType,
	stackconfig.KeyHAProxyInstanceType: stackconfig.DefaultHAProxyInstanceType,
	stackconfig.KeyEtcdVolumeSize:      stackconfig.DefaultEtcdVolumeSize,
	stackconfig.KeyPatroniVolumeSize:   stackconfig.DefaultPatroniVolumeSize,
	stackconfig.KeyHAProxyVolumeSize:   stackconfig.DefaultHAProxyVolumeSize,
	stackconfig.KeyEtcdDataSize:        stackconfig.DefaultEtcdDataSize,
	stackconfig.KeyPatroniDataSize:     stackconfig.DefaultPatroniDataSize,
	stackconfig.KeyProtectData:         stackconfig.DefaultProtectData,
	stackconfig.KeyJumpHost:            stackconfig.DefaultJumpHost,
	stackconfig.KeyBackups:             stackconfig.DefaultBackups,
	stackconfig.KeyBackupBucket:        "",
	stackconfig.KeyProtectBackups:      stackconfig.DefaultProtectBackups,
	stackconfig.KeyBackupFull:          stackconfig.DefaultBackupFull,
	stackconfig.KeyBackupDiff:          stackconfig.DefaultBackupDiff,
	stackconfig.KeyBackupRetention:     stackconfig.DefaultBackupRetention,
	stackconfig.KeyNetworkLoadBalancer: false,
	stackconfig.KeyMonitoring:          stackconfig.DefaultMonitoring,
	stackconfig.KeyMonitoringType:      stackconfig.DefaultMonitoringType,
	stackconfig.KeyMonitoringVolume:    stackconfig.DefaultMonitoringVolume,
	stackconfig.KeyMonitoringRetention: stackconfig.DefaultMonitoringRetention,
	stackconfig.KeyAlertEmails:         []string{},
	stackconfig.KeySSHPublicKey:        "",
	stackconfig.KeyAMI:                 "",
}

func init() {
	for _, k := range stackconfig.PasswordKeys {
		allKeys[k] = ""
	}
}

// TestProjectSchema loads Pulumi.yaml with Pulumi's own project loader
// (which validates it against Pulumi's project JSON schema) and checks that
// it declares exactly the keys the program reads, each with a description
// and the same default.
func TestProjectSchema(t *testing.T) {
	proj, err := workspace.LoadProject("Pulumi.yaml")
	require.NoError(t, err)
	require.NoError(t, proj.Validate())
	assert.Equal(t, "pgha", proj.Name.String())
	assert.Equal(t, "go", proj.Runtime.Name())

	var declared []string
	for k, ct := range proj.Config {
		declared = append(declared, k)
		assert.NotEmpty(t, ct.Description, "%s needs a description", k)
		require.True(t, ct.IsExplicitlyTyped(), "%s needs a type", k)
		want, known := allKeys[k]
		require.True(t, known, "Pulumi.yaml declares %s, which the program does not read", k)
		if want == nil {
			assert.Nil(t, ct.Default, "%s is required and must have no default", k)
			continue
		}
		require.NotNil(t, ct.Default, "%s needs a default", k)
		assert.Equal(t, fmt.Sprint(want), fmt.Sprint(ct.Default), "%s: Pulumi.yaml and the program disagree on the default", k)
		assert.False(t, ct.Secret, "%s: a secret key cannot have a default in Pulumi's schema", k)
	}
	var want []string
	for k := range allKeys {
		want = append(want, k)
	}
	sort.Strings(want)
	sort.Strings(declared)
	assert.Equal(t, want, declared, "every key the program reads is declared")
}

// TestExampleStack checks Pulumi.dev.yaml against the schema types (as the
// CLI does before `up`) and then through the program's own validation.
func TestExampleStack(t *testing.T) {
	proj, err := workspace.LoadProject("Pulumi.yaml")
	require.NoError(t, err)
	raw, err := os.ReadFile("Pulumi.dev.yaml")
	require.NoError(t, err)
	var stack struct {
		Config map[string]any `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &stack))
	require.Contains(t, stack.Config, "aws:region")

	values := map[string]string{}
	for k, v := range stack.Config {
		if k == stackconfig.RegionKey {
			values[k] = v.(string)
			continue
		}
		short := k[len("pgha:"):]
		ct, ok := proj.Config[short]
		require.True(t, ok, "%s is not declared in Pulumi.yaml", k)
		assert.True(t, workspace.ValidateConfigValue(*ct.Type, ct.Items, v), "%s=%v is not a %s", k, v, *ct.Type)
		switch v.(type) {
		case string:
			values[k] = v.(string)
		default:
			b, _ := json.Marshal(v) // structured values reach the program as JSON
			values[k] = string(b)
		}
	}
	get := func(k string) (string, bool) { v, ok := values[k]; return v, ok }
	// As committed, the example lacks the one value only its user knows,
	// and says so in the error; with it, the stack is valid.
	_, err = stackconfig.Load("dev", get, func(string) bool { return false })
	require.ErrorContains(t, err, "pgha:allowedCidrs: is required")
	assert.Contains(t, string(raw), "pulumi config set --path 'pgha:allowedCidrs[0]'", "the example says how to set it")
	values["pgha:allowedCidrs"] = `["100.20.30.0/24"]`
	cfg, err := stackconfig.Load("dev", get, func(string) bool { return false })
	require.NoError(t, err)
	assert.Equal(t, []string{"100.20.30.0/24"}, cfg.AllowedCIDRs)
	assert.Equal(t, "eu-west-1", cfg.Region)
}

// TestDocsCoverEveryKey keeps the docs in step with the code: every config
// key, component and output key is documented.
func TestDocsCoverEveryKey(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return string(b)
	}
	conf := read("docs/configuration.md")
	for k := range allKeys {
		assert.Contains(t, conf, "`pgha:"+k+"`", "docs/configuration.md does not describe pgha:%s", k)
	}
	assert.Contains(t, conf, "`aws:region`")

	outs := read("docs/outputs.md")
	for _, k := range []string{
		outputs.KeyTarget, outputs.KeyClusterName, outputs.KeyRegion, outputs.KeyProfile,
		outputs.KeySynchronousMode, outputs.KeyVPCCIDR, outputs.KeyWriteEndpoint, outputs.KeyReadEndpoint,
		outputs.KeyStatsEndpoint, outputs.KeyNodes, outputs.KeyAccess, outputs.KeyCredentials,
		outputs.KeySSHPrivateKey, outputs.KeyClusterState,
	} {
		assert.Contains(t, outs, "| `"+k+"` |", "docs/outputs.md does not describe output %s", k)
	}

	arch := read("docs/architecture.md")
	for _, tok := range []string{
		components.TypeNetwork, components.TypeSecurity, components.TypeSecrets, components.TypeEtcd,
		components.TypePatroni, components.TypeHAProxy, components.TypeEndpoint, components.TypeReadiness,
	} {
		name := tok[len("pgha:index:"):]
		assert.Contains(t, arch, name, "docs/architecture.md does not describe %s", tok)
	}
	run := read("docs/runbook.md")
	for _, phase := range []string{"etcd health", "Patroni bootstrap", "switchover with the timeline check", "HAProxy routing", "failover", "teardown"} {
		assert.Contains(t, run, phase)
	}
}
