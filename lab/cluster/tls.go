package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// The lab's TLS material: a cluster CA of its own, made at up, and the
// certificates it signs, with the profiles the Pulumi program gives
// pulumi-tls (internal/pki). It lives in <lab>/secrets/tls, root's, 0700.

func (l *Lab) tlsDir(parts ...string) string {
	return filepath.Join(append([]string{l.secretsDir(), "tls"}, parts...)...)
}

// TLSCAFile is the lab CA's certificate, for clients that verify the
// nodes (`lab status` prints commands that use it).
func (l *Lab) TLSCAFile() string { return l.tlsDir("ca.crt") }

// generateTLS makes the lab's CA and every certificate it needs: one per
// node (its name, its address and, for a PostgreSQL node, the HAProxy
// addresses clients reach it through) and the client certificate of
// pgha's tools. Run again, it makes new ones.
func (l *Lab) generateTLS() error {
	if err := os.MkdirAll(l.tlsDir(), 0o700); err != nil {
		return err
	}
	ca, err := pki.NewCA(pki.CACommonName(l.Name))
	if err != nil {
		return err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := writeAll(map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": key}, l.tlsDir()); err != nil {
		return err
	}
	issue := func(name string, leaf pki.Leaf) error {
		cert, key, err := ca.Issue(leaf)
		if err != nil {
			return fmt.Errorf("certificate of %s: %w", name, err)
		}
		return writeAll(map[string][]byte{name + ".crt": cert, name + ".key": key}, l.tlsDir())
	}
	for _, n := range l.Plan.Nodes {
		leaf := pki.NodeLeaf(l.Plan, n, nil)
		if l.Loopback() && n.Role == topology.RoleEtcd {
			// etcd admits a peer only from an address its certificate
			// names; on the loopback lab's shared stack every connection
			// leaves from 127.0.0.1.
			leaf.IPs = append(leaf.IPs, netip.MustParseAddr("127.0.0.1"))
		}
		if err := issue(n.Name, leaf); err != nil {
			return err
		}
	}
	if l.Monitored() {
		if err := issue(l.Plan.Monitor().Name, pki.NodeLeaf(l.Plan, l.Plan.Monitor(), nil)); err != nil {
			return err
		}
	}
	return issue("client", pki.ClientLeaf())
}

func writeAll(files map[string][]byte, dir string) error {
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// NodeTLSFiles are the files of a node's certificate and key in the lab's
// store (the booted lab serves them as the node's SSM parameters).
func (l *Lab) NodeTLSFiles(node string) (cert, key string) {
	return l.tlsDir(node + ".crt"), l.tlsDir(node + ".key")
}

// writeNodeTLS installs the CA and the node's certificate and key where
// its daemons read them (userdata.Paths), the key its daemon user's.
func (l *Lab) writeNodeTLS(n topology.Node, owner string) error {
	p := l.Paths(n.Name)
	ca, err := os.ReadFile(l.TLSCAFile())
	if err != nil {
		return missingTLS(err)
	}
	certFile, keyFile := l.NodeTLSFiles(n.Name)
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return missingTLS(err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return missingTLS(err)
	}
	for _, d := range []string{filepath.Dir(p.TLSCAFile), filepath.Dir(p.TLSCertFile)} {
		if err := mkdirOwned(d, "root", 0o755); err != nil {
			return err
		}
	}
	if err := writeOwned(p.TLSCAFile, ca, "root:root", 0o644); err != nil {
		return err
	}
	if err := writeOwned(p.TLSCertFile, cert, "root:root", 0o644); err != nil {
		return err
	}
	return writeOwned(p.TLSKeyFile, key, owner+":"+owner, 0o600)
}

func missingTLS(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the lab's TLS material is missing (%v): bring the lab down and up again", err)
	}
	return err
}

// trustOutputs are the outputs' caCertificate and clientTls.
func (l *Lab) trustOutputs(s *outputs.Stack) error {
	ca, err := os.ReadFile(l.TLSCAFile())
	if err != nil {
		return missingTLS(err)
	}
	cert, err := os.ReadFile(l.tlsDir("client.crt"))
	if err != nil {
		return missingTLS(err)
	}
	key, err := os.ReadFile(l.tlsDir("client.key"))
	if err != nil {
		return missingTLS(err)
	}
	s.CACertificate = string(ca)
	s.ClientTLS = &outputs.ClientTLS{Certificate: string(cert), PrivateKey: string(key)}
	return nil
}
