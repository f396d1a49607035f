package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

const (
	tParameter = "aws:ssm/parameter:Parameter"
	tKey       = "tls:index/privateKey:PrivateKey"
	tCSR       = "tls:index/certRequest:CertRequest"
	tSigned    = "tls:index/locallySignedCert:LocallySignedCert"
	tlsPrefix  = "/pgha/dev/tls/"
)

// named returns the one registered resource of a type and name.
func (m *mocks) named(t *testing.T, typ, name string) registered {
	t.Helper()
	var found []registered
	for _, r := range m.byType(typ) {
		if r.Name == name {
			found = append(found, r)
		}
	}
	require.Len(t, found, 1, "%s %s", typ, name)
	return found[0]
}

// parameters are the SSM parameters by name.
func (r *run) parameters() map[string]registered {
	ps := map[string]registered{}
	for _, p := range r.mocks.byType(tParameter) {
		ps[str(p.Inputs, "name")] = p
	}
	return ps
}

// paramValue is a parameter's value, whichever input carries it.
func paramValue(p registered) string {
	if v := str(p.Inputs, "value"); v != "" {
		return v
	}
	return str(p.Inputs, "insecureValue")
}

func parseCert(t *testing.T, what, p string) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificate([]byte(p))
	require.NoError(t, err, what)
	return c
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	sort.Strings(s)
	return s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestClusterTLSMaterial: one CA, its certificate in a String parameter
// and in the plain caCertificate output; each node a certificate the CA
// signed (String parameter) and its own key (SecureString parameter, the
// key resource's secret PEM); pgha's tools a client-only certificate,
// exported only as the secret clientTls.
func TestClusterTLSMaterial(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)

	// The CA.
	assert.False(t, r.secret[outputs.KeyCACertificate], "the CA certificate is public")
	caPEM, ok := r.values[outputs.KeyCACertificate].(string)
	require.True(t, ok, "caCertificate is a string")
	ca := parseCert(t, "caCertificate", caPEM)
	assert.True(t, ca.IsCA)
	assert.Equal(t, pki.CACommonName("pgha"), ca.Subject.CommonName)
	assert.Equal(t, []string{pki.Organization}, ca.Subject.Organization)
	assert.NotZero(t, ca.KeyUsage&x509.KeyUsageCertSign)
	ss := r.mocks.named(t, "tls:index/selfSignedCert:SelfSignedCert", "tls-ca")
	assert.Equal(t, fmt.Sprint(pki.CAValidityHours), str(ss.Inputs, "validityPeriodHours"))
	assert.Equal(t, "ECDSA", str(r.mocks.named(t, tKey, "tls-ca-key").Inputs, "algorithm"))
	assert.Equal(t, "P256", str(r.mocks.named(t, tKey, "tls-ca-key").Inputs, "ecdsaCurve"))
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	params := r.parameters()
	caParam, ok := params[tlsPrefix+"ca-certificate"]
	require.True(t, ok, "no CA parameter")
	assert.Equal(t, "String", str(caParam.Inputs, "type"))
	assert.Equal(t, caPEM, paramValue(caParam))

	// Every node's certificate and key, the monitoring node's too.
	for _, n := range append(slices.Clone(plan.Nodes), plan.Monitor()) {
		cp, ok := params[tlsPrefix+n.Name+"-certificate"]
		require.True(t, ok, "%s: no certificate parameter", n.Name)
		kp, ok := params[tlsPrefix+n.Name+"-key"]
		require.True(t, ok, "%s: no key parameter", n.Name)
		assert.Equal(t, "String", str(cp.Inputs, "type"), n.Name)
		assert.Equal(t, "SecureString", str(kp.Inputs, "type"), n.Name)
		assert.True(t, kp.Inputs["value"].ContainsSecrets(), "%s: the key must travel as a secret", n.Name)
		for _, p := range []registered{cp, kp} {
			tags := obj(p.Inputs, "tags")
			assert.Equal(t, "tls", str(tags, outputs.TagRole), p.Name)
			assert.Equal(t, "dev", str(tags, outputs.TagStack), p.Name)
			assert.NotContains(t, str(p.Inputs, "description"), "PRIVATE KEY", p.Name)
			assert.NotContains(t, str(p.Inputs, "description"), "BEGIN", p.Name)
		}

		key := r.mocks.named(t, tKey, "tls-"+n.Name+"-key")
		assert.Equal(t, "ECDSA", str(key.Inputs, "algorithm"), n.Name)
		assert.True(t, key.Outputs["privateKeyPem"].IsSecret(), n.Name)
		assert.Equal(t, str(key.Outputs, "privateKeyPem"), paramValue(kp), "%s: the key parameter holds the node's key", n.Name)

		cert := parseCert(t, n.Name, paramValue(cp))
		assert.Equal(t, n.Name, cert.Subject.CommonName)
		assert.Equal(t, []string{pki.Organization}, cert.Subject.Organization)
		for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{use}, DNSName: n.Name})
			assert.NoError(t, err, "%s: use %v", n.Name, use)
		}
		_, err := tls.X509KeyPair([]byte(paramValue(cp)), []byte(paramValue(kp)))
		assert.NoError(t, err, "%s: the certificate is not the key's", n.Name)
		signed := r.mocks.named(t, tSigned, "tls-"+n.Name+"-cert")
		assert.Equal(t, fmt.Sprint(pki.LeafValidityHours), str(signed.Inputs, "validityPeriodHours"), n.Name)
		assert.Equal(t, fmt.Sprint(pki.EarlyRenewalHours), str(signed.Inputs, "earlyRenewalHours"), n.Name)
		assert.True(t, signed.Inputs["caPrivateKeyPem"].ContainsSecrets(), n.Name)
	}
	// Nothing else under the TLS prefix: the client's key is in no parameter.
	n := 0
	for name := range params {
		if strings.HasPrefix(name, tlsPrefix) {
			n++
		}
	}
	assert.Equal(t, 1+2*(len(plan.Nodes)+1), n)

	// pgha's tools' certificate: client authentication only, secret.
	assert.True(t, r.secret[outputs.KeyClientTLS], "clientTls must be secret")
	s, err := outputs.Parse(r.stackJSON(t))
	require.NoError(t, err)
	require.NotNil(t, s.ClientTLS)
	assert.Equal(t, caPEM, s.CACertificate)
	client := parseCert(t, "clientTls", s.ClientTLS.Certificate)
	assert.Equal(t, pki.ClientCommonName, client.Subject.CommonName)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, client.ExtKeyUsage, "the client certificate can serve nothing")
	assert.Empty(t, client.DNSNames)
	assert.Empty(t, client.IPAddresses)
	_, err = client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
	_, err = tls.X509KeyPair([]byte(s.ClientTLS.Certificate), []byte(s.ClientTLS.PrivateKey))
	assert.NoError(t, err)
	cfg, err := s.Trust().Config("")
	require.NoError(t, err)
	assert.Len(t, cfg.Certificates, 1)
	for _, p := range params {
		assert.NotEqual(t, s.ClientTLS.PrivateKey, paramValue(p), "%s holds the client key", p.Name)
	}
}

// TestCertificatesNameEveryWayIn: a PostgreSQL node's certificate names
// the node, every HAProxy node's private address and every endpoint (the
// HAProxy nodes' public addresses, and the load balancer's name when there
// is one), so that a client verifies it by any name it connects with; an
// HAProxy node's names the node, its own private address and the same
// endpoints (PgBouncer serves it on 6432); etcd's names only the node.
func TestCertificatesNameEveryWayIn(t *testing.T) {
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	var haproxyIPs []string
	for _, h := range plan.ByRole(topology.RoleHAProxy) {
		haproxyIPs = append(haproxyIPs, h.IP.String())
	}
	publicIPs := []string{"198.51.100.201", "198.51.100.202"}
	const nlbName = "pgha-nlb-0123.elb.eu-west-1.amazonaws.com"

	for _, nlb := range []bool{false, true} {
		t.Run(fmt.Sprintf("nlb=%v", nlb), func(t *testing.T) {
			cfg := baseConfig()
			cfg["pgha:networkLoadBalancer"] = fmt.Sprint(nlb)
			r := runProgram(t, cfg, nil, nil)
			require.NoError(t, r.err)
			params := r.parameters()
			s, err := outputs.Parse(r.stackJSON(t))
			require.NoError(t, err)
			pool := x509.NewCertPool()
			require.True(t, pool.AppendCertsFromPEM([]byte(s.CACertificate)))

			for _, n := range plan.Nodes {
				wantDNS, wantIPs := []string{n.Name}, []string{n.IP.String()}
				if n.Role == topology.RolePatroni {
					wantIPs = append(wantIPs, haproxyIPs...)
				}
				if n.Role == topology.RolePatroni || n.Role == topology.RoleHAProxy {
					wantIPs = append(wantIPs, publicIPs...)
					if nlb {
						wantDNS = append(wantDNS, nlbName)
					}
				}
				csr := r.mocks.named(t, tCSR, "tls-"+n.Name+"-csr")
				assert.Equal(t, n.Name, str(obj(csr.Inputs, "subject"), "commonName"))
				var dns, ips []string
				for _, v := range csr.Inputs["dnsNames"].ArrayValue() {
					dns = append(dns, v.StringValue())
				}
				for _, v := range csr.Inputs["ipAddresses"].ArrayValue() {
					ips = append(ips, v.StringValue())
				}
				assert.Equal(t, wantDNS, dns, "%s: the request's names", n.Name)
				assert.Equal(t, sorted(wantIPs), sorted(ips), "%s: the request's addresses", n.Name)

				cert := parseCert(t, n.Name, paramValue(params[tlsPrefix+n.Name+"-certificate"]))
				assert.Equal(t, wantDNS, cert.DNSNames, n.Name)
				assert.Equal(t, sorted(wantIPs), ipStrings(cert.IPAddresses), n.Name)
			}

			// Every host of the exported connection URIs verifies against
			// the certificate of every node that may answer it
			// (sslmode=verify-full): any PostgreSQL node through 5000 and
			// 5001, any HAProxy node's PgBouncer through 6432.
			verifies := func(uri string, role topology.Role) {
				hosts, _, _, _, err := outputs.ParseConnectionURI(uri)
				require.NoError(t, err)
				for _, hp := range hosts {
					host, _, err := net.SplitHostPort(hp)
					require.NoError(t, err)
					for _, n := range plan.ByRole(role) {
						cert := parseCert(t, n.Name, paramValue(params[tlsPrefix+n.Name+"-certificate"]))
						_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
						assert.NoError(t, err, "%s does not answer to %s", n.Name, host)
					}
				}
			}
			verifies(s.Connection.Write, topology.RolePatroni)
			verifies(s.Connection.Read, topology.RolePatroni)
			verifies(s.Connection.Pooled, topology.RoleHAProxy)
			require.NotNil(t, s.PoolerEndpoint)
			verifies("postgresql://app@"+s.PoolerEndpoint.String()+"/app", topology.RoleHAProxy)
		})
	}
}

// pemPrivateKey is the header of a PEM private key of any kind.
var pemPrivateKey = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)

// pemBody is a PEM block's first line of base64, which no other text holds.
func pemBody(p string) string {
	lines := strings.Split(p, "\n")
	if len(lines) < 2 || len(lines[1]) < 32 {
		panic("not a PEM block: " + p)
	}
	return lines[1]
}

// TestNoPrivateKeyInUserDataOrPlainValues: the nodes read their keys from
// SSM; no key is in user data, in a plain input of any resource, or in a
// plain stack output.
func TestNoPrivateKeyInUserDataOrPlainValues(t *testing.T) {
	r := runProgram(t, baseConfig(), nil, nil)
	require.NoError(t, r.err)
	var keys []string
	for _, k := range r.mocks.byType(tKey) {
		if p := str(k.Outputs, "privateKeyPem"); p != "" {
			keys = append(keys, p)
		}
	}
	require.Len(t, keys, 1+1+8+1, "the CA's, the client's, the nodes', the monitoring node's")
	for _, i := range r.mocks.byType(tInstance) {
		ud := userData(t, i)
		assert.NotRegexp(t, pemPrivateKey, ud, i.Name)
		for _, key := range keys {
			assert.NotContains(t, ud, pemBody(key), i.Name)
		}
		assert.NotContains(t, ud, "-----BEGIN CERTIFICATE-----", "%s: not even a certificate: the user data is the lab's, byte for byte", i.Name)
	}
	for _, res := range r.mocks.snapshot() {
		for k, v := range res.Inputs {
			if v.ContainsSecrets() {
				continue
			}
			b, err := json.Marshal(v.Mappable())
			require.NoError(t, err)
			assert.NotRegexp(t, pemPrivateKey, string(b), "%s input %s holds a private key in plain text", res.Name, k)
		}
	}
	for k, v := range r.values {
		if r.secret[k] {
			continue
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		assert.NotRegexp(t, pemPrivateKey, string(b), "output %s", k)
		for _, key := range keys {
			assert.NotContains(t, string(b), pemBody(key), "output %s", k)
		}
	}
}

// reaches is every resource name a resource depends on, through its
// inputs and dependsOn, transitively.
func reaches(rs []registered, from registered) map[string]bool {
	byURNSuffix := map[string]registered{}
	for _, r := range rs {
		byURNSuffix[r.Type+"::"+r.Name] = r
	}
	seen := map[string]bool{}
	var walk func(r registered)
	walk = func(r registered) {
		for _, d := range r.Deps {
			// urn:pulumi:stack::project::parent$type::name
			i := strings.LastIndex(d, "::")
			name, typ := d[i+2:], d[:i]
			typ = typ[strings.LastIndex(typ, "::")+2:]
			typ = typ[strings.LastIndex(typ, "$")+1:]
			if k := typ + "::" + name; !seen[k] {
				seen[k] = true
				if next, ok := byURNSuffix[k]; ok {
					walk(next)
				}
			}
		}
	}
	walk(from)
	names := map[string]bool{}
	for k := range seen {
		names[k[strings.LastIndex(k, "::")+2:]] = true
	}
	return names
}

// TestTLSBootOrder: each instance boots after the CA's parameter and its
// own certificate's and key's. The PostgreSQL nodes' certificates name the
// HAProxy nodes' public addresses and the load balancer, so they come
// after those; nothing of the etcd or HAProxy tiers may wait for them (a
// cycle, or an HAProxy node that cannot boot until PostgreSQL's
// certificates exist).
func TestTLSBootOrder(t *testing.T) {
	for _, nlb := range []bool{false, true} {
		t.Run(fmt.Sprintf("nlb=%v", nlb), func(t *testing.T) {
			cfg := baseConfig()
			cfg["pgha:networkLoadBalancer"] = fmt.Sprint(nlb)
			r := runProgram(t, cfg, nil, nil)
			require.NoError(t, r.err)
			all := r.mocks.snapshot()
			for _, i := range r.mocks.byType(tInstance) {
				node := i.Name[strings.Index(i.Name, "-")+1:]
				deps := reaches(all, i)
				for _, p := range []string{"tls-ca-param", "tls-" + node + "-cert-param", "tls-" + node + "-key-param"} {
					assert.True(t, deps[p], "%s boots before %s exists", i.Name, p)
				}
			}
			for _, res := range all {
				if !strings.HasPrefix(res.Name, "etcd-") && !strings.HasPrefix(res.Name, "haproxy-") &&
					!strings.HasPrefix(res.Name, "endpoint-") && !(strings.HasPrefix(res.Name, "tls-") && !strings.HasPrefix(res.Name, "tls-pg-")) {
					continue
				}
				for d := range reaches(all, res) {
					assert.False(t, strings.HasPrefix(d, "tls-pg-"), "%s waits for %s", res.Name, d)
					assert.False(t, strings.HasPrefix(d, "patroni-"), "%s waits for %s", res.Name, d)
				}
			}
			// A PostgreSQL node's request waits for what it names.
			csr := reaches(all, r.mocks.named(t, tCSR, "tls-pg-1-csr"))
			assert.True(t, csr["haproxy-haproxy-1-eip"] && csr["haproxy-haproxy-2-eip"], "pg-1's request names the Elastic IPs")
			assert.Equal(t, nlb, csr["endpoint-nlb"], "pg-1's request names the load balancer")
		})
	}
}
