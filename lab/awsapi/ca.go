package awsapi

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pgha/pgha/internal/pki"
)

// CA is the lab's certificate authority. The nodes trust it (its
// certificate goes into the image's system store) so that awscli, which
// verifies TLS, accepts the stand-in's certificate for
// ssm.REGION.amazonaws.com. Keys are ECDSA P-256, which Python's ssl
// (OpenSSL 3) and Go both accept. The mechanics are internal/pki's; the
// profile (a "pgha lab" subject, server certificates named after AWS
// endpoints, valid for a year) is this package's.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	signer  *pki.CA // Cert with its key
}

func newCA(signer *pki.CA) *CA {
	return &CA{Cert: signer.Cert, CertPEM: signer.CertPEM, signer: signer}
}

// ServerCert is a certificate the CA issued, with its private key.
type ServerCert struct {
	CertPEM []byte
	KeyPEM  []byte
}

// EndpointNames are the host names the stand-in answers for in a region:
// what awscli and the SDKs resolve when no endpoint URL is given. Each
// bucket addressed in virtual-host style adds its own (BucketHost).
func EndpointNames(region string) []string {
	return []string{"ssm." + region + ".amazonaws.com", "ec2." + region + ".amazonaws.com", S3Endpoint(region), SNSEndpoint(region)}
}

// CertificateNames are the DNS names the stand-in's certificate needs in
// a region: EndpointNames and *.s3.REGION.amazonaws.com, which covers
// every BucketHost (awscli's OpenSSL and pgBackRest 2.45 both accept a
// wildcard SAN for one label).
func CertificateNames(region string) []string {
	return append(EndpointNames(region), "*."+S3Endpoint(region))
}

// backdate keeps certificates valid on machines whose clocks lag the
// host's a little (a container's clock is the host's, but a VM's may not be).
const backdate = time.Hour

// NewCA creates a CA valid for ten years.
func NewCA(commonName string) (*CA, error) {
	now := time.Now()
	signer, err := pki.SelfSign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"pgha lab"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	})
	if err != nil {
		return nil, err
	}
	return newCA(signer), nil
}

// LoadCA reads a CA written by WriteFiles, so that a lab keeps one CA (the
// one baked into its image) across runs.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA %s / %s: %w", certFile, keyFile, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("CA key %s is not an ECDSA key: create the CA with NewCA", keyFile)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certFile)
	}
	return newCA(&pki.CA{Cert: cert, Key: key, CertPEM: certPEM}), nil
}

// WriteFiles writes the CA certificate (0644: it is public, the nodes
// install it) and its key (0600).
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	keyPEM, err := ca.signer.KeyPEM()
	if err != nil {
		return err
	}
	return writePair(certFile, ca.CertPEM, keyFile, keyPEM)
}

// Pool is a certificate pool holding only this CA, for Go clients.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue makes a server certificate for the hosts, each a DNS name or an
// IP address, valid for a year. Python's ssl checks the names against
// subjectAltName only, so every name goes there.
func (ca *CA) Issue(hosts ...string) (*ServerCert, error) {
	if len(hosts) == 0 {
		return nil, errors.New("issue: name at least one DNS name or IP address")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	certPEM, keyPEM, err := ca.signer.Sign(tmpl)
	if err != nil {
		return nil, err
	}
	return &ServerCert{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// TLSCertificate is the certificate for a tls.Config.
func (c *ServerCert) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(c.CertPEM, c.KeyPEM)
}

// WriteFiles writes the certificate (0644) and its key (0600).
func (c *ServerCert) WriteFiles(certFile, keyFile string) error {
	return writePair(certFile, c.CertPEM, keyFile, c.KeyPEM)
}

func writePair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) error {
	if err := writeFileMode(certFile, certPEM, 0o644); err != nil {
		return err
	}
	return writeFileMode(keyFile, keyPEM, 0o600)
}

// writeFileMode writes data with exactly mode, through a temporary file
// (created 0600) renamed into place: os.WriteFile would keep the mode of
// an existing file, and a key could be readable while it is written.
func writeFileMode(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
