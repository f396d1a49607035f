package components

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/remote"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/readiness"
	"github.com/pgha/pgha/userdata"
)

// ReadyNode is one node the readiness gate waits for.
type ReadyNode struct {
	Name string
	// Host is the address to SSH to: the private IP behind the jump host,
	// or the public IP of a jump host itself.
	Host    pulumi.StringInput
	ViaJump bool
	// InstanceID re-runs the wait when the instance is replaced.
	InstanceID pulumi.IDOutput
	DependsOn  []pulumi.Resource
}

// ReadinessArgs describe how to reach the nodes and what to wait for.
type ReadinessArgs struct {
	Nodes    []ReadyNode
	JumpHost pulumi.StringInput // public address of the jump host
	User     string             // the AMI's login user
	// PrivateKey is the generated SSH key. Nil means the operator's own key
	// through ssh-agent (SSH_AUTH_SOCK), when sshPublicKey was configured.
	PrivateKey pulumi.StringInput
	// ReadyMarker and FailedMarker are the files the boot script writes.
	ReadyMarker  string
	FailedMarker string
	// HostKeysNode is the jump host: its host keys are also exported as
	// the jump host's (access.jumpHostKeys).
	HostKeysNode string
	// ClusterCheckNode is a Patroni node that polls Patroni's REST API at
	// PatroniAPI (https://<its IP>:8008, verified against the node's copy of the cluster CA) until one leader streams to two
	// replicas.
	ClusterCheckNode string
	PatroniAPI       string
	TimeoutSeconds   int
}

// Readiness makes `pulumi up` end only when the cluster serves.
type Readiness struct {
	pulumi.ResourceState

	// ClusterState is Patroni's /cluster document, plus the leader's
	// replication list, as JSON text.
	ClusterState pulumi.StringOutput
	// HostKeys are each node's public SSH host keys in authorized_keys
	// format ("type base64"), by node name, read by the node's own wait
	// command once the node is ready. Faults that log in to a node pin them.
	HostKeys map[string]pulumi.StringArrayOutput
	// JumpHostKeys are HostKeysNode's keys; validate pins them for the jump.
	JumpHostKeys pulumi.StringArrayOutput
}

// NewReadiness creates the remote commands.
func NewReadiness(ctx *pulumi.Context, name string, args *ReadinessArgs, opts ...pulumi.ResourceOption) (*Readiness, error) {
	r := &Readiness{}
	if err := ctx.RegisterComponentResource(TypeReadiness, name, r, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(r)
	conn := func(n ReadyNode) remote.ConnectionArgs {
		c := remote.ConnectionArgs{
			Host: n.Host,
			User: pulumi.String(args.User),
			// Nodes boot for a minute or two before sshd answers.
			DialErrorLimit: pulumi.Int(60),
			PerDialTimeout: pulumi.Int(15),
		}
		if args.PrivateKey != nil {
			c.PrivateKey = args.PrivateKey
		}
		if n.ViaJump {
			p := remote.ProxyConnectionArgs{
				Host:           args.JumpHost,
				User:           pulumi.String(args.User),
				DialErrorLimit: pulumi.Int(60),
				PerDialTimeout: pulumi.Int(15),
			}
			if args.PrivateKey != nil {
				p.PrivateKey = args.PrivateKey
			}
			c.Proxy = p
		}
		return c
	}
	// pulumi-command marks stdout secret when the connection holds a secret
	// (the private key). Public host keys and the cluster's membership are
	// not secret, and the outputs contract exports them in the clear.
	byName := map[string]ReadyNode{}
	r.HostKeys = map[string]pulumi.StringArrayOutput{}
	var all []pulumi.Resource
	for _, n := range args.Nodes {
		byName[n.Name] = n
		cmd, err := remote.NewCommand(ctx, name+"-wait-"+n.Name, &remote.CommandArgs{
			Connection: conn(n),
			Create:     pulumi.String(readiness.ReadyScript(n.Name, args.ReadyMarker, args.FailedMarker, args.TimeoutSeconds)),
			Triggers:   pulumi.Array{n.InstanceID},
		}, parent, pulumi.DependsOn(n.DependsOn))
		if err != nil {
			return nil, err
		}
		node := n.Name
		r.HostKeys[node] = pulumi.Unsecret(cmd.Stdout).(pulumi.StringOutput).ApplyT(func(out string) ([]string, error) {
			return readiness.ParseReadyOutput(node, out)
		}).(pulumi.StringArrayOutput)
		all = append(all, cmd)
	}
	jk, ok := r.HostKeys[args.HostKeysNode]
	if !ok {
		return nil, fmt.Errorf("readiness: host-key node %q is not among the nodes", args.HostKeysNode)
	}
	r.JumpHostKeys = jk

	cn, ok := byName[args.ClusterCheckNode]
	if !ok {
		return nil, fmt.Errorf("readiness: cluster-check node %q is not among the nodes", args.ClusterCheckNode)
	}
	var triggers pulumi.Array
	for _, n := range args.Nodes {
		triggers = append(triggers, n.InstanceID)
	}
	check, err := remote.NewCommand(ctx, name+"-cluster", &remote.CommandArgs{
		Connection: conn(cn),
		Create:     pulumi.String(readiness.ClusterCheckScript(strings.TrimRight(args.PatroniAPI, "/"), userdata.CloudPaths().TLSCAFile, args.TimeoutSeconds)),
		// Any replaced node re-runs the check.
		Triggers: triggers,
	}, parent, pulumi.DependsOn(all))
	if err != nil {
		return nil, err
	}
	r.ClusterState = pulumi.Unsecret(check.Stdout).(pulumi.StringOutput)

	hostKeys := pulumi.StringArrayMap{}
	for n, k := range r.HostKeys {
		hostKeys[n] = k
	}
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{
		"clusterState": r.ClusterState,
		"jumpHostKeys": r.JumpHostKeys,
		"hostKeys":     hostKeys,
	}); err != nil {
		return nil, err
	}
	return r, nil
}
