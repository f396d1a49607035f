package outputs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// validJSON is a complete lab-style outputs document: baseJSON with a
// real cluster CA and client certificate.
var validJSON = withTLS(baseJSON)

// withTLS adds caCertificate and clientTls, signed by a new CA, to a
// document.
func withTLS(doc string) string {
	ca, err := pki.NewCA(pki.CACommonName("pgha"))
	if err != nil {
		panic(err)
	}
	cert, key, err := ca.Issue(pki.ClientLeaf())
	if err != nil {
		panic(err)
	}
	b, err := json.Marshal(map[string]any{
		"caCertificate": string(ca.CertPEM),
		"clientTls":     map[string]string{"certificate": string(cert), "privateKey": string(key)},
	})
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(strings.TrimSpace(doc), "}") + ", " + string(b[1:])
}

// baseJSON is validJSON without its TLS material.
const baseJSON = `{
 "target": "lab", "clusterName": "pgha", "region": "lab", "profile": "fast", "synchronousMode": false,
 "vpcCidr": "10.42.0.0/16",
 "writeEndpoint": {"host": "10.42.0.30", "port": 5000},
 "readEndpoint": {"host": "10.42.0.30", "port": 5001},
 "statsEndpoint": {"host": "10.42.0.30", "port": 7000},
 "nodes": [
  {"name": "etcd-1", "role": "etcd", "az": "a", "privateIp": "10.42.4.10"},
  {"name": "etcd-2", "role": "etcd", "az": "b", "privateIp": "10.42.5.10"},
  {"name": "etcd-3", "role": "etcd", "az": "c", "privateIp": "10.42.6.10"},
  {"name": "pg-1", "role": "patroni", "az": "a", "privateIp": "10.42.4.20"},
  {"name": "pg-2", "role": "patroni", "az": "b", "privateIp": "10.42.5.20"},
  {"name": "pg-3", "role": "patroni", "az": "c", "privateIp": "10.42.6.20"},
  {"name": "haproxy-1", "role": "haproxy", "az": "a", "privateIp": "10.42.0.30"},
  {"name": "haproxy-2", "role": "haproxy", "az": "b", "privateIp": "10.42.1.30"}],
 "access": {"kind": "netns", "namespace": "pgha-client", "labDir": "/var/lib/pgha-lab/pgha"},
 "credentials": {"superuserName": "postgres", "superuserPassword": "a", "replicationName": "replicator",
  "replicationPassword": "b", "appName": "app", "appPassword": "c", "appDatabase": "app",
  "restApiName": "patroni", "restApiPassword": "d", "statsName": "stats", "statsPassword": "e",
  "monitorName": "pgha_monitor", "monitorPassword": "f"}
}`

func TestParseValid(t *testing.T) {
	s, err := Parse([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ByRole(topology.RolePatroni)) != 3 || s.Access.Namespace != "pgha-client" {
		t.Fatalf("parsed wrongly: %+v", s)
	}
}

// FuzzParse feeds Parse arbitrary documents. It must never panic, every
// error must be one line that names what is wrong, the same input must
// always give the same error (so a user rerunning sees the same message),
// and whatever it accepts must survive a round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validJSON))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"target":"aws","access":{"kind":"ssh"}}`))
	f.Add([]byte(strings.Replace(validJSON, `"port": 5000`, `"port": 70000`, 1)))
	f.Add([]byte(strings.Replace(validJSON, `"10.42.4.20"`, `"10.42.4.10"`, 1)))
	f.Add([]byte(strings.Replace(validJSON, `"pg-3"`, `"pg-2"`, 1)))
	f.Add([]byte(strings.Replace(validJSON, `"a", "replicationName"`, `"[secret]", "replicationName"`, 1)))
	f.Add([]byte(strings.Replace(validJSON, `"netns"`, `"carrier-pigeon"`, 1)))
	f.Add([]byte(validJSON[:200]))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			msg := err.Error()
			if msg == "" {
				t.Fatal("empty error")
			}
			_, err2 := Parse(data)
			if err2 == nil || err2.Error() != msg {
				t.Fatalf("error is not deterministic:\n%s\n---\n%v", msg, err2)
			}
			for _, line := range strings.Split(msg, "\n") {
				if !strings.HasPrefix(line, "output ") && !strings.HasPrefix(line, "stack outputs ") {
					t.Fatalf("error line does not name an output: %q", line)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted a stack that does not validate: %v", err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Parse(b)
		if err != nil {
			t.Fatalf("round trip of an accepted stack fails: %v", err)
		}
		if len(s2.Nodes) != len(s.Nodes) || s2.WriteEndpoint != s.WriteEndpoint || s2.Credentials != s.Credentials {
			t.Fatal("round trip changed the stack")
		}
	})
}
