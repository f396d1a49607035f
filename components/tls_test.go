package components

import (
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// tlsMocks records registrations and answers pulumi-tls with placeholders:
// the program's tests at the repository root sign for real.
type tlsMocks struct {
	mu  sync.Mutex
	reg map[string]resource.PropertyMap // inputs by resource name
}

func (m *tlsMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.reg[args.Name] = args.Inputs
	m.mu.Unlock()
	outs := args.Inputs.Copy()
	switch args.TypeToken {
	case "tls:index/privateKey:PrivateKey":
		outs["privateKeyPem"] = resource.MakeSecret(resource.NewStringProperty("-----BEGIN EC PRIVATE KEY-----\n" + args.Name + "\n-----END EC PRIVATE KEY-----\n"))
	case "tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert":
		outs["certPem"] = resource.NewStringProperty("-----BEGIN CERTIFICATE-----\n" + args.Name + "\n-----END CERTIFICATE-----\n")
	case "tls:index/certRequest:CertRequest":
		outs["certRequestPem"] = resource.NewStringProperty("-----BEGIN CERTIFICATE REQUEST-----\n" + args.Name + "\n-----END CERTIFICATE REQUEST-----\n")
	}
	return args.Name + "_id", outs, nil
}

func (m *tlsMocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func strs(v resource.PropertyValue) []string {
	var out []string
	for _, e := range v.ArrayValue() {
		out = append(out, e.StringValue())
	}
	return out
}

func TestClusterTLSNodeNames(t *testing.T) {
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	pg1, _ := plan.Node("pg-1")
	etcd1, _ := plan.Node("etcd-1")
	h1, _ := plan.Node("haproxy-1")
	m := &tlsMocks{reg: map[string]resource.PropertyMap{}}
	var refused []error
	err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewClusterTLS(ctx, "nop", &ClusterTLSArgs{ClusterName: "pgha", Plan: plan, Tags: Tagger{Project: "pgha", Stack: "dev"}})
		refused = append(refused, err)
		c, err := NewClusterTLS(ctx, "tls", &ClusterTLSArgs{
			ClusterName: "pgha", Plan: plan, Params: userdata.TLSParams{Prefix: "/pgha/dev/tls/"}, Tags: Tagger{Project: "pgha", Stack: "dev"},
		})
		if err != nil {
			return err
		}
		_, err = c.Node(ctx, etcd1, pulumi.String("198.51.100.1"))
		refused = append(refused, err)
		_, err = c.Node(ctx, plan.Monitor(), pulumi.String("198.51.100.1"))
		refused = append(refused, err)
		_, err = c.Node(ctx, topology.Node{Name: "pg-9", Role: topology.RolePatroni}, pulumi.String("198.51.100.1"))
		refused = append(refused, err)
		if _, err := c.Node(ctx, etcd1); err != nil {
			return err
		}
		// An endpoint known only later, a duplicate and a DNS name.
		later := pulumi.String("198.51.100.202").ToStringOutput().ApplyT(func(s string) string { return s }).(pulumi.StringOutput)
		if _, err = c.Node(ctx, pg1, pulumi.String("198.51.100.201"), later, pulumi.String("nlb.example.com"), pulumi.String("198.51.100.201")); err != nil {
			return err
		}
		// PgBouncer on an HAProxy node is reached by the same names.
		_, err = c.Node(ctx, h1, pulumi.String("198.51.100.201"), later, pulumi.String("nlb.example.com"))
		return err
	}, pulumi.WithMocks("pgha", "dev", m))
	require.NoError(t, err)
	require.Len(t, refused, 4)
	for _, e := range refused {
		assert.Error(t, e)
	}

	csr := m.reg["tls-pg-1-csr"]
	require.NotNil(t, csr)
	assert.Equal(t, []string{"pg-1", "nlb.example.com"}, strs(csr["dnsNames"]))
	assert.Equal(t, []string{"10.42.4.20", "10.42.0.30", "10.42.1.30", "198.51.100.201", "198.51.100.202"}, strs(csr["ipAddresses"]))
	assert.Equal(t, "pg-1", csr["subject"].ObjectValue()["commonName"].StringValue())
	assert.Equal(t, pki.Organization, csr["subject"].ObjectValue()["organization"].StringValue())
	assert.Equal(t, []string{"etcd-1"}, strs(m.reg["tls-etcd-1-csr"]["dnsNames"]))
	assert.Equal(t, []string{"10.42.4.10"}, strs(m.reg["tls-etcd-1-csr"]["ipAddresses"]))
	assert.Equal(t, []string{"haproxy-1", "nlb.example.com"}, strs(m.reg["tls-haproxy-1-csr"]["dnsNames"]))
	assert.Equal(t, []string{"10.42.0.30", "198.51.100.201", "198.51.100.202"}, strs(m.reg["tls-haproxy-1-csr"]["ipAddresses"]))
	assert.NotContains(t, m.reg, "tls-monitor-1-csr", "refused before anything is registered")

	cert := m.reg["tls-pg-1-cert"]
	assert.Equal(t, pki.NodeLeaf(plan, pg1, nil).Uses(), strs(cert["allowedUses"]))
	assert.True(t, cert["caPrivateKeyPem"].ContainsSecrets())
	assert.Equal(t, []string{pki.UseDigitalSignature, pki.UseClientAuth}, strs(m.reg["tls-client-cert"]["allowedUses"]))
	assert.NotContains(t, m.reg, "tls-client-cert-param", "the client certificate is in no parameter")

	ca := m.reg["tls-ca"]
	assert.True(t, ca["isCaCertificate"].BoolValue())
	assert.Equal(t, pki.CAUses, strs(ca["allowedUses"]))
	assert.Equal(t, pki.CACommonName("pgha"), ca["subject"].ObjectValue()["commonName"].StringValue())

	for name, want := range map[string][2]string{
		"tls-ca-param":        {"/pgha/dev/tls/ca-certificate", "String"},
		"tls-pg-1-cert-param": {"/pgha/dev/tls/pg-1-certificate", "String"},
		"tls-pg-1-key-param":  {"/pgha/dev/tls/pg-1-key", "SecureString"},
	} {
		p := m.reg[name]
		require.NotNil(t, p, name)
		assert.Equal(t, want[0], p["name"].StringValue(), name)
		assert.Equal(t, want[1], p["type"].StringValue(), name)
		assert.Equal(t, RoleTLS, p["tags"].ObjectValue()["pgha:role"].StringValue(), name)
	}
	assert.True(t, m.reg["tls-pg-1-key-param"]["value"].ContainsSecrets())
	assert.False(t, m.reg["tls-pg-1-cert-param"]["insecureValue"].ContainsSecrets(), "a certificate is public")
}
