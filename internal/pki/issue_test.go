package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/pki"
)

func pool(ca *pki.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func TestIssue(t *testing.T) {
	ca, err := pki.NewCA(pki.CACommonName("c1"))
	require.NoError(t, err)
	assert.Equal(t, pkix.Name{CommonName: "c1 cluster CA", Organization: []string{pki.Organization}}.String(), ca.Cert.Subject.String())
	assert.True(t, ca.Cert.IsCA && ca.Cert.BasicConstraintsValid)
	assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature, ca.Cert.KeyUsage)
	assert.Equal(t, (pki.CAValidityHours+1)*time.Hour, ca.Cert.NotAfter.Sub(ca.Cert.NotBefore), "backdated an hour")

	certPEM, keyPEM, err := ca.Issue(pki.Leaf{CommonName: "pg-1", DNSNames: []string{"pg-1"},
		IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Server: true, Client: true})
	require.NoError(t, err)
	_, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	b, _ := pem.Decode(keyPEM)
	assert.Equal(t, "EC PRIVATE KEY", b.Type)
	leaf := parse(t, certPEM)
	assert.Equal(t, []string{pki.Organization}, leaf.Subject.Organization)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	assert.Equal(t, (pki.LeafValidityHours+1)*time.Hour, leaf.NotAfter.Sub(leaf.NotBefore))
	assert.True(t, leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")))
	for _, name := range []string{"pg-1", "10.0.0.1"} {
		_, err = leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		assert.NoError(t, err, name)
	}

	// A CA read back signs what the original verifies.
	caKey, err := ca.KeyPEM()
	require.NoError(t, err)
	loaded, err := pki.LoadCA(ca.CertPEM, caKey)
	require.NoError(t, err)
	certPEM2, _, err := loaded.Issue(pki.ClientLeaf())
	require.NoError(t, err)
	client := parse(t, certPEM2)
	_, err = client.Verify(x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
	assert.NotEqual(t, leaf.SerialNumber, client.SerialNumber)

	_, err = pki.LoadCA(certPEM, keyPEM)
	assert.ErrorContains(t, err, "is not a CA")
	_, _, err = ca.Issue(pki.Leaf{CommonName: "nothing"})
	assert.ErrorContains(t, err, "has no use")
}

// SelfSign and Sign take another profile as it is: only the key and the
// serial are theirs, and the caller's template is left alone.
func TestSign(t *testing.T) {
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "other CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}
	ca, err := pki.SelfSign(tmpl)
	require.NoError(t, err)
	assert.Nil(t, tmpl.SerialNumber)
	assert.Equal(t, "CN=other CA", ca.Cert.Subject.String())
	assert.True(t, ca.Cert.MaxPathLenZero)
	assert.Equal(t, x509.KeyUsageCertSign, ca.Cert.KeyUsage)
	assert.Equal(t, ca.Cert.Raw, parse(t, ca.CertPEM).Raw)

	server := &x509.Certificate{
		Subject: pkix.Name{CommonName: "a.example"}, DNSNames: []string{"a.example"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	c1, k1, err := ca.Sign(server)
	require.NoError(t, err)
	c2, _, err := ca.Sign(server)
	require.NoError(t, err)
	assert.Nil(t, server.SerialNumber)
	_, err = tls.X509KeyPair(c1, k1)
	require.NoError(t, err)
	l1, l2 := parse(t, c1), parse(t, c2)
	assert.NotEqual(t, l1.SerialNumber, l2.SerialNumber)
	assert.Empty(t, l1.Subject.Organization)
	assert.NotEmpty(t, l1.AuthorityKeyId)
	_, err = l1.Verify(x509.VerifyOptions{DNSName: "a.example", Roots: pool(ca)})
	assert.NoError(t, err)
}

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificate(certPEM)
	require.NoError(t, err)
	return c
}
