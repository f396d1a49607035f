package components

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/remote"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/crypto/ssh"
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
	// PatroniAPI (http://<its IP>:8008) until one leader streams to two
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

// WaitScript waits for cloud-init and for the node's readiness marker; it
// fails early, with the reason, when the boot script reported a failure.
func WaitScript(node, ready, failed string, timeout int) string {
	return fmt.Sprintf(`set -u
rc=0
sudo cloud-init status --wait >/dev/null || rc=$?
# The boot script runs inside cloud-init: its own reason beats cloud-init's.
if sudo test -e %[3]s; then
  echo "%[1]s: boot failed: $(sudo cat %[3]s)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  sudo cloud-init status --long >&2
  echo "%[1]s: cloud-init reported an error; see /var/log/cloud-init-output.log on the node" >&2
  exit 1
fi
deadline=$(( $(date +%%s) + %[4]d ))
until sudo test -e %[2]s; do
  if sudo test -e %[3]s; then
    echo "%[1]s: boot failed: $(sudo cat %[3]s)" >&2
    exit 1
  fi
  if [ "$(date +%%s)" -ge "$deadline" ]; then
    echo "%[1]s: not ready after %[4]d s (no %[2]s)" >&2
    exit 1
  fi
  sleep 5
done
echo "%[1]s ready"
`, node, ready, failed, timeout)
}

// HostKeysScript prints the node's public host keys without comments.
const HostKeysScript = `for f in /etc/ssh/ssh_host_*_key.pub; do awk '{print $1" "$2}' "$f"; done`

// HostKeysMarker separates the wait's own output from the host keys in
// ReadyScript's output.
const HostKeysMarker = "--- ssh host keys ---"

// ReadyScript is what each node's wait command runs: WaitScript, then, once
// the node is ready, its public host keys after HostKeysMarker. The keys
// come over the same SSH session as the wait, so no node needs a second
// command; ParseReadyOutput reads them back.
func ReadyScript(node, ready, failed string, timeout int) string {
	return WaitScript(node, ready, failed, timeout) +
		"echo '" + HostKeysMarker + "'\n" +
		HostKeysScript + "\n"
}

// ParseReadyOutput returns the host keys ReadyScript printed, each checked
// and reduced to "type base64". A node must have at least one: an empty
// list would later mean "log in to whatever answers".
func ParseReadyOutput(node, stdout string) ([]string, error) {
	_, after, ok := strings.Cut(stdout, HostKeysMarker+"\n")
	if !ok {
		return nil, fmt.Errorf("readiness of %s: its output has no %q line, so it holds no SSH host keys", node, HostKeysMarker)
	}
	var keys []string
	for _, line := range strings.Split(after, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("readiness of %s: %q is not an SSH public key: %w", node, line, err)
		}
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("readiness of %s: no SSH host keys in /etc/ssh/ssh_host_*_key.pub", node)
	}
	return keys, nil
}

// ClusterCheckScript polls Patroni until exactly one leader and two
// replicas exist and the leader reports both replicas as streaming in
// pg_stat_replication (Patroni 3.0.2's /cluster says "running" for a
// replica whether or not it streams). It prints the cluster document.
func ClusterCheckScript(api string, timeout int) string {
	return fmt.Sprintf(`python3 - <<'PY'
import json, sys, time, urllib.request

API = %q
deadline = time.time() + %d
last = "no answer from Patroni yet"

def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)

while True:
    try:
        c = get(API + "/cluster")
        members = c.get("members", [])
        leaders = [m for m in members if m.get("role") == "leader"]
        replicas = [m for m in members if m.get("role") in ("replica", "sync_standby")]
        if len(leaders) == 1 and len(replicas) == 2:
            lead = leaders[0]
            st = get(lead["api_url"])  # the leader's own /patroni
            repl = st.get("replication", [])
            streaming = {r.get("application_name") for r in repl if r.get("state") == "streaming"}
            if all(r["name"] in streaming for r in replicas):
                c["replication"] = repl
                print(json.dumps(c, sort_keys=True))
                sys.exit(0)
            last = "leader %%s; streaming replicas: %%s" %% (lead["name"], sorted(streaming))
        else:
            last = "%%d leader(s), %%d replica(s): %%s" %% (len(leaders), len(replicas),
                [(m.get("name"), m.get("role"), m.get("state")) for m in members])
    except Exception as e:
        last = "Patroni API: %%s" %% e
    if time.time() > deadline:
        print("cluster not formed after %d s: " + last, file=sys.stderr)
        sys.exit(1)
    time.sleep(3)
PY
`, api, timeout, timeout)
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
			Create:     pulumi.String(ReadyScript(n.Name, args.ReadyMarker, args.FailedMarker, args.TimeoutSeconds)),
			Triggers:   pulumi.Array{n.InstanceID},
		}, parent, pulumi.DependsOn(n.DependsOn))
		if err != nil {
			return nil, err
		}
		node := n.Name
		r.HostKeys[node] = pulumi.Unsecret(cmd.Stdout).(pulumi.StringOutput).ApplyT(func(out string) ([]string, error) {
			return ParseReadyOutput(node, out)
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
		Create:     pulumi.String(ClusterCheckScript(strings.TrimRight(args.PatroniAPI, "/"), args.TimeoutSeconds)),
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
