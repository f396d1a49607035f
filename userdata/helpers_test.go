package userdata

import (
	"crypto/tls"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// defaultCluster is the cluster the golden files show: the default 3+3+2
// plan, profile fast.
func defaultCluster(t testing.TB) Cluster {
	t.Helper()
	plan, err := topology.New(topology.DefaultVPCCIDR)
	if err != nil {
		t.Fatal(err)
	}
	return Cluster{
		Name:    "pgha",
		Plan:    plan,
		Profile: "fast",
		Region:  "eu-west-1",
		Users:   DefaultUsers(),
		Secrets: ParamsUnder("/pgha/dev/"),
		TLS:     TLSParams{Prefix: "/pgha/dev/tls/"},
	}
}

// testPasswords are distinct, recognisable values, so a leak into any
// non-secret file is caught by a plain substring search.
func testPasswords() Passwords {
	return Passwords{
		"superuser":    "SuperSecret-su-7f3a9c",
		"replication":  "SuperSecret-repl-2b8e1d",
		"rewind":       "SuperSecret-rw-5c0f4e",
		"app":          "SuperSecret-app-9d6a2b",
		"restapi":      "SuperSecret-api-1e7c3f",
		"stats":        "SuperSecret-stats-8a4b6d",
		"monitor":      "SuperSecret-mon-3f9e2a",
		"pooler":       "SuperSecret-pool-6b1d8e",
		"pooler-admin": "SuperSecret-pooladm-4c7f0a",
	}
}

func (p Passwords) all() []string {
	var out []string
	for _, s := range Secrets {
		out = append(out, p[s.Name])
	}
	return out
}

// testTLS is a cluster CA for the live tests, the certificates it issued
// into each node's labPaths, and pgha's client certificate.
type testTLS struct {
	ca               *pki.CA
	caFile           string
	clientCert       string // PEM files
	clientKey        string
	clientCertPEM    []byte
	clientKeyPEM     []byte
	installedForNode map[string]bool
}

func newTestTLS(t testing.TB, base string) *testTLS {
	t.Helper()
	ca, err := pki.NewCA(pki.CACommonName("pgha"))
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTLS{ca: ca, caFile: filepath.Join(base, "ca.crt"), installedForNode: map[string]bool{}}
	if err := os.WriteFile(tt.caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tt.clientCertPEM, tt.clientKeyPEM, err = ca.Issue(pki.ClientLeaf())
	if err != nil {
		t.Fatal(err)
	}
	tt.clientCert, tt.clientKey = filepath.Join(base, "client.crt"), filepath.Join(base, "client.key")
	if err := os.WriteFile(tt.clientCert, tt.clientCertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tt.clientKey, tt.clientKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return tt
}

// install issues a node's certificate into p, the key owned by owner
// ("" keeps root's).
func (tt *testTLS) install(t testing.TB, c Cluster, node string, p Paths, owner string) {
	t.Helper()
	n, ok := c.Plan.Node(node)
	if !ok {
		t.Fatalf("no node %s", node)
	}
	leaf := pki.NodeLeaf(c.Plan, n, nil)
	if n.Role == topology.RoleEtcd {
		// etcd admits a peer only from an address its certificate names.
		// Here every address is on one loopback, where a connection leaves
		// from the address it goes to: any member's.
		for _, e := range c.Plan.ByRole(topology.RoleEtcd) {
			leaf.IPs = append(leaf.IPs, e.IP)
		}
	}
	cert, key, err := tt.ca.Issue(leaf)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{p.TLSCAFile, tt.ca.CertPEM, 0o644}, {p.TLSCertFile, cert, 0o644}, {p.TLSKeyFile, key, 0o600}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(p.TLSKeyFile, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// client is the TLS configuration of pgha's tools: the CA, and the client
// certificate etcd requires.
func (tt *testTLS) client(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := pki.Trust{CA: tt.ca.CertPEM, Cert: tt.clientCertPEM, Key: tt.clientKeyPEM}.Config("")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// etcdctlTLS are etcdctl's flags for the cluster's TLS.
func (tt *testTLS) etcdctlTLS() []string {
	return []string{"--cacert=" + tt.caFile, "--cert=" + tt.clientCert, "--key=" + tt.clientKey}
}
