package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Trust is what a client of the cluster holds: the cluster CA, and for
// etcd the client certificate and key of pgha's tools. The zero Trust
// verifies nothing and is refused by Config.
type Trust struct {
	CA   []byte // PEM
	Cert []byte // PEM, optional
	Key  []byte // PEM, optional
}

// Empty reports whether there is no CA to verify against.
func (t Trust) Empty() bool { return len(t.CA) == 0 }

// Config is a TLS client configuration that verifies the server's chain
// against the cluster CA and its name (a DNS name or an address) against
// serverName, and presents the client certificate when there is one.
// serverName "" means the caller's transport fills it in from the address
// it dials (net/http does; pgx does).
func (t Trust) Config(serverName string) (*tls.Config, error) {
	if t.Empty() {
		return nil, errors.New("no cluster CA certificate: the stack outputs lack caCertificate (a stack from before TLS: run `pulumi up`)")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(t.CA) {
		return nil, errors.New("the cluster CA certificate is not PEM")
	}
	c := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if len(t.Cert) > 0 || len(t.Key) > 0 {
		pair, err := tls.X509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
