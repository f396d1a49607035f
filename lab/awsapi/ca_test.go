package awsapi_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
)

func TestCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := awsapi.NewCA("pgha lab CA")
	require.NoError(t, err)
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	// A key file left world-readable by someone else gets 0600 anyway.
	require.NoError(t, os.WriteFile(caKey, []byte("old"), 0o644))
	require.NoError(t, ca.WriteFiles(caCert, caKey))
	mode := func(p string) os.FileMode {
		st, err := os.Stat(p)
		require.NoError(t, err)
		return st.Mode().Perm()
	}
	assert.Equal(t, os.FileMode(0o644), mode(caCert))
	assert.Equal(t, os.FileMode(0o600), mode(caKey))
	keyPEM, err := os.ReadFile(caKey)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(keyPEM), "-----BEGIN EC PRIVATE KEY-----\n"), "SEC1, as LoadCA and internal/pki read it")

	// The lab's profile, not the cluster CA's (internal/pki signs both).
	assert.Equal(t, "CN=pgha lab CA,O=pgha lab", ca.Cert.Subject.String())
	assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, ca.Cert.KeyUsage)
	assert.True(t, ca.Cert.MaxPathLenZero)
	assert.Equal(t, 0, ca.Cert.MaxPathLen)
	assert.Equal(t, ca.Cert.NotBefore.Add(time.Hour).AddDate(10, 0, 0).Unix(), ca.Cert.NotAfter.Unix(), "ten years, backdated an hour")

	// The lab keeps its CA across runs.
	loaded, err := awsapi.LoadCA(caCert, caKey)
	require.NoError(t, err)
	assert.True(t, loaded.Cert.Equal(ca.Cert))

	names := append(awsapi.CertificateNames("eu-west-1"), "127.0.0.1", "10.42.0.2")
	assert.Equal(t, []string{"ssm.eu-west-1.amazonaws.com", "ec2.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com",
		"sns.eu-west-1.amazonaws.com", "*.s3.eu-west-1.amazonaws.com"}, names[:5])
	sc, err := loaded.Issue(names...)
	require.NoError(t, err)
	require.NoError(t, sc.WriteFiles(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")))
	assert.Equal(t, os.FileMode(0o600), mode(filepath.Join(dir, "server-key.pem")))

	block, _ := pem.Decode(sc.CertPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	for _, n := range append(names, awsapi.BucketHost("pgha-backup", "eu-west-1")) {
		if strings.HasPrefix(n, "*.") {
			continue
		}
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: ca.Pool()})
		assert.NoError(t, err, n)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "sts.eu-west-1.amazonaws.com", Roots: ca.Pool()})
	assert.Error(t, err)
	assert.True(t, ca.Cert.BasicConstraintsValid && ca.Cert.IsCA)
	assert.NotEmpty(t, leaf.AuthorityKeyId, "strict verifiers (Python 3.13's ssl) want the AKI")
	assert.Equal(t, "CN="+names[0], leaf.Subject.String())
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, leaf.ExtKeyUsage)
	assert.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
	assert.Len(t, leaf.IPAddresses, 2)
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	assert.True(t, life >= 365*24*time.Hour+time.Hour && life <= 366*24*time.Hour+time.Hour, "a year, backdated an hour: %s", life)

	_, err = awsapi.LoadCA(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	assert.ErrorContains(t, err, "is not a CA certificate")
}
