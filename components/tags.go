// Package components holds the typed Pulumi ComponentResources of a pgha
// cluster: Network, Security, Secrets, the cluster's certificate authority
// (ClusterTLS), the three node tiers (EtcdCluster, PatroniCluster,
// HAProxyTier), the optional network load balancer and the Readiness gate.
// Each one parents its children and registers its outputs, so `pulumi
// stack` shows one tree per concern.
package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/outputs"
)

// Type tokens of the components.
const (
	TypeNetwork   = "pgha:index:Network"
	TypeSecurity  = "pgha:index:Security"
	TypeSecrets   = "pgha:index:Secrets"
	TypeEtcd      = "pgha:index:EtcdCluster"
	TypePatroni   = "pgha:index:PatroniCluster"
	TypeHAProxy   = "pgha:index:HAProxyTier"
	TypeEndpoint  = "pgha:index:LoadBalancer"
	TypeReadiness = "pgha:index:Readiness"
	TypeBackups   = "pgha:index:Backups"
	TypeTLS       = "pgha:index:ClusterTLS"
	TypeMonitor   = "pgha:index:MonitoringNode"
	TypeAlerts    = "pgha:index:AlertTopic"
)

// Dependencies is the custom resources a component created. Depend on
// these, not on the component: the Go SDK expands a component into its
// children asynchronously, so a dependency on the component itself can
// miss children that are still registering.
type Dependencies []pulumi.Resource

// Roles used in the role tag besides the node roles etcd/patroni/haproxy.
const (
	RoleNetwork  = "network"
	RoleSecurity = "security"
	RoleSecrets  = "secrets"
	RoleEndpoint = "endpoint"
	RoleBackups  = "backups"
	RoleTLS      = "tls"
	RoleAlerts   = "alerts"
)

// TagKeep marks a data volume kept on purpose (see outputs.TagKeep).
const TagKeep = outputs.TagKeep

// Tagger stamps every taggable resource with the project, stack and role
// tags. The provider's default tags carry project and stack as well; the
// explicit copy also reaches the instances' EBS volumes, which default tags
// miss, and makes each resource's role visible in the console.
type Tagger struct {
	Project string
	Stack   string
}

// Tags returns the full tag set for one resource.
func (t Tagger) Tags(role, name string) pulumi.StringMap {
	return pulumi.StringMap{
		outputs.TagProject: pulumi.String(t.Project),
		outputs.TagStack:   pulumi.String(t.Stack),
		outputs.TagRole:    pulumi.String(role),
		"Name":             pulumi.String(t.Stack + "-" + name),
	}
}

// Default returns the provider default tags.
func (t Tagger) Default() pulumi.StringMap {
	return pulumi.StringMap{
		outputs.TagProject: pulumi.String(t.Project),
		outputs.TagStack:   pulumi.String(t.Stack),
	}
}
