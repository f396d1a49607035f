// Package readiness holds the commands that decide whether a booted node
// and the cluster are ready, run over SSH on the nodes themselves: by
// `pulumi up` (components.Readiness, through pulumi-command) and by the
// booted lab (through golang.org/x/crypto/ssh), so both wait for exactly
// the same thing and read the same host keys.
package readiness

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// CloudInitOutputLog is where cloud-init on the AMI writes what its stages
// and the commands they run print (apt's errors among them).
const CloudInitOutputLog = "/var/log/cloud-init-output.log"

// WaitScript waits for cloud-init and for the node's readiness marker; it
// fails early, with the reason, when the boot script reported a failure.
// When cloud-init itself failed (the boot script may never have run: a
// package that does not exist stops the deferred files it needs), the
// first line says which modules failed and apt's last error, and
// `cloud-init status --long` follows, indented.
func WaitScript(node, ready, failed string, timeout int) string {
	return waitScript(node, ready, failed, CloudInitOutputLog, timeout)
}

func waitScript(node, ready, failed, outputLog string, timeout int) string {
	return fmt.Sprintf(`set -u
deadline=$(( $(date +%%s) + %[4]d ))
rc=0
# One bound for the whole wait: a cloud-init that never finishes (a hung
# package mirror) must not hold `+"`pulumi up`"+` forever.
sudo timeout %[4]d cloud-init status --wait >/dev/null || rc=$?
if [ "$rc" -eq 124 ]; then
  echo "%[1]s: cloud-init still running after %[4]d s; see %[5]s on the node" >&2
  exit 1
fi
# The boot script runs inside cloud-init: its own reason beats cloud-init's.
if sudo test -e %[3]s; then
  echo "%[1]s: boot failed: $(sudo cat %[3]s)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  long=$(sudo cloud-init status --long 2>&1 || true)
  modules=$(printf '%%s\n' "$long" | sed -n "s/^('\([^']*\)'.*/\1/p" | paste -sd, - | sed 's/,/, /g')
  apt_error=$(sudo grep -ho 'E: .*' %[5]s 2>/dev/null | tail -n 1 || true)
  echo "%[1]s: cloud-init failed${modules:+ in $modules}${apt_error:+ ($apt_error)}; see %[5]s on the node" >&2
  printf '%%s\n' "$long" | sed 's/^/    /' >&2
  exit 1
fi
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
`, node, ready, failed, timeout, outputLog)
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
		// cloud-init 22.4 also makes a DSA host key on first boot (its
		// default key types include dsa). No SSH client of pgha accepts
		// one, so it is not recorded; the node's other keys are.
		if strings.HasPrefix(line, "ssh-dss ") {
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
func ClusterCheckScript(api, caFile string, timeout int) string {
	return fmt.Sprintf(`python3 - <<'PY'
import json, ssl, sys, time, urllib.request

API = %q
# The REST API is HTTPS with the cluster CA's certificates: verified, names
# included, as every other client of it does.
TLS = ssl.create_default_context(cafile=%q)
deadline = time.time() + %d
last = "no answer from Patroni yet"

def get(url):
    with urllib.request.urlopen(url, timeout=5, context=TLS) as r:
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
`, api, caFile, timeout, timeout)
}
