package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// The pulumi-tls resources under mocks do what the provider does, with
// crypto/x509: real keys, a real CA, real requests and real signatures, so
// that the tests can parse what the program stores and exports.
//
// Like the provider's state, what was made once is kept: a resource
// registered again with the same inputs (the next update of a stack) gets
// the same key or certificate, so an update that changes nothing changes
// no certificate either.
var mockTLS = struct {
	sync.Mutex
	made map[string]string
}{made: map[string]string{}}

// mockTLSOnce returns what create gave for the same resource and inputs,
// or creates it.
func mockTLSOnce(token, name string, in resource.PropertyMap, create func() (string, error)) (string, error) {
	id := token + "::" + name + "::" + fmt.Sprint(in)
	mockTLS.Lock()
	defer mockTLS.Unlock()
	if v, ok := mockTLS.made[id]; ok {
		return v, nil
	}
	v, err := create()
	if err == nil {
		mockTLS.made[id] = v
	}
	return v, err
}

// mockECKey is a P-256 key as pulumi-tls gives it: the private key as
// SEC1 PEM, the public key as PKIX PEM.
func mockECKey(name string) (priv, pub string, err error) {
	priv, err = mockTLSOnce("key", name, nil, func() (string, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", err
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), nil
	})
	if err != nil {
		return "", "", err
	}
	k, err := mockParseKey(priv)
	if err != nil {
		return "", "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", err
	}
	return priv, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), nil
}

// mockSign answers a self-signed certificate, a certificate request or a
// locally signed certificate: the output's name and its PEM.
func mockSign(token, name string, in resource.PropertyMap) (string, string, error) {
	out := "certPem"
	if token == "tls:index/certRequest:CertRequest" {
		out = "certRequestPem"
	}
	v, err := mockTLSOnce(token, name, in, func() (string, error) {
		_, pem, err := mockMake(token, in)
		return string(pem), err
	})
	return out, v, err
}

func mockMake(token string, in resource.PropertyMap) (string, []byte, error) {
	strs := func(key string) []string {
		v, ok := in[resource.PropertyKey(key)]
		if !ok || !v.IsArray() {
			return nil
		}
		var out []string
		for _, e := range v.ArrayValue() {
			out = append(out, e.StringValue())
		}
		return out
	}
	subject := func() pkix.Name {
		sub := obj(in, "subject")
		n := pkix.Name{CommonName: str(sub, "commonName")}
		if o := str(sub, "organization"); o != "" {
			n.Organization = []string{o}
		}
		return n
	}
	ips := func() ([]net.IP, error) {
		var out []net.IP
		for _, s := range strs("ipAddresses") {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("ipAddresses: %q is no address", s)
			}
			out = append(out, ip)
		}
		return out, nil
	}
	switch token {
	case "tls:index/certRequest:CertRequest":
		key, err := mockParseKey(str(in, "privateKeyPem"))
		if err != nil {
			return "", nil, err
		}
		addrs, err := ips()
		if err != nil {
			return "", nil, err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: subject(), DNSNames: strs("dnsNames"), IPAddresses: addrs,
		}, key)
		if err != nil {
			return "", nil, err
		}
		return "certRequestPem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil

	case "tls:index/selfSignedCert:SelfSignedCert":
		key, err := mockParseKey(str(in, "privateKeyPem"))
		if err != nil {
			return "", nil, err
		}
		addrs, err := ips()
		if err != nil {
			return "", nil, err
		}
		tmpl, err := mockTemplate(in, strs("allowedUses"))
		if err != nil {
			return "", nil, err
		}
		tmpl.Subject, tmpl.DNSNames, tmpl.IPAddresses = subject(), strs("dnsNames"), addrs
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return "", nil, err
		}
		return "certPem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil

	case "tls:index/locallySignedCert:LocallySignedCert":
		b, _ := pem.Decode([]byte(str(in, "certRequestPem")))
		if b == nil {
			return "", nil, errors.New("certRequestPem: no PEM")
		}
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			return "", nil, err
		}
		if err := csr.CheckSignature(); err != nil {
			return "", nil, err
		}
		caKey, err := mockParseKey(str(in, "caPrivateKeyPem"))
		if err != nil {
			return "", nil, fmt.Errorf("caPrivateKeyPem: %w", err)
		}
		cb, _ := pem.Decode([]byte(str(in, "caCertPem")))
		if cb == nil {
			return "", nil, errors.New("caCertPem: no PEM")
		}
		ca, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return "", nil, err
		}
		tmpl, err := mockTemplate(in, strs("allowedUses"))
		if err != nil {
			return "", nil, err
		}
		tmpl.Subject, tmpl.DNSNames, tmpl.IPAddresses = csr.Subject, csr.DNSNames, csr.IPAddresses
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
		if err != nil {
			return "", nil, err
		}
		return "certPem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
	}
	return "", nil, fmt.Errorf("unexpected %s", token)
}

// mockTemplate is a certificate's lifetime and uses, from pulumi-tls's
// names; an unknown use is an error, as it is to the provider.
func mockTemplate(in resource.PropertyMap, uses []string) (*x509.Certificate, error) {
	hours := in["validityPeriodHours"]
	if !hours.IsNumber() || hours.NumberValue() <= 0 {
		return nil, errors.New("no validityPeriodHours")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	t := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now,
		NotAfter:     now.Add(time.Duration(hours.NumberValue()) * time.Hour),
	}
	if v := in["isCaCertificate"]; v.IsBool() && v.BoolValue() {
		t.IsCA, t.BasicConstraintsValid = true, true
	}
	for _, u := range uses {
		switch u {
		case "digital_signature":
			t.KeyUsage |= x509.KeyUsageDigitalSignature
		case "cert_signing":
			t.KeyUsage |= x509.KeyUsageCertSign
		case "crl_signing":
			t.KeyUsage |= x509.KeyUsageCRLSign
		case "server_auth":
			t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		case "client_auth":
			t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		default:
			return nil, fmt.Errorf("unknown use %q", u)
		}
	}
	return t, nil
}

// inputString is str, for where a local name hides it.
func inputString(m resource.PropertyMap, key string) string { return str(m, key) }

func mockParseKey(p string) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	return x509.ParseECPrivateKey(b.Bytes)
}
