package components

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// ClusterTLSArgs describe the cluster's certificate authority.
type ClusterTLSArgs struct {
	ClusterName string
	// Plan is the IP plan the node certificates name addresses from.
	Plan topology.Plan
	// Params are the SSM parameters the nodes read their material from.
	Params userdata.TLSParams
	Tags   Tagger
}

// ClusterTLS is the cluster CA (an ECDSA P-256 key and its self-signed
// certificate, see internal/pki for the profiles), the certificates it
// signs, and the SSM parameters the nodes read them from at boot with
// their instance role: the CA certificate and each node's certificate as
// String parameters, each node's private key as a SecureString. None of
// it is in the user data.
//
// The CA's private key lives only in the stack's state (a secret).
type ClusterTLS struct {
	pulumi.ResourceState

	// CACertificate is the CA certificate, PEM; not secret.
	CACertificate pulumi.StringOutput
	// ClientCertificate and ClientKey (secret) are pgha's own tools'
	// client certificate (client authentication only); they go to the
	// stack outputs, not to SSM.
	ClientCertificate pulumi.StringOutput
	ClientKey         pulumi.StringOutput
	// Parameters are the CA certificate's parameter: every node reads it
	// at boot, so it must exist before any instance.
	Parameters Dependencies

	name   string
	plan   topology.Plan
	params userdata.TLSParams
	tags   Tagger
	caKey  *tls.PrivateKey
	caCert *tls.SelfSignedCert
}

// NodeCertificate is one node's certificate and its SSM parameters.
type NodeCertificate struct {
	Node        string
	Certificate pulumi.StringOutput // PEM
	PrivateKey  pulumi.StringOutput // PEM, secret
	// Parameters are the certificate's and the key's parameters, which the
	// node reads at boot: its instance must depend on them.
	Parameters Dependencies
}

// NewClusterTLS creates the CA, stores its certificate in SSM, and signs
// the client certificate of pgha's tools. Node certificates are issued by
// Node, each when the names it must carry are known.
func NewClusterTLS(ctx *pulumi.Context, name string, args *ClusterTLSArgs, opts ...pulumi.ResourceOption) (*ClusterTLS, error) {
	if args.Params.Prefix == "" {
		return nil, fmt.Errorf("%s: no SSM prefix for the TLS parameters", name)
	}
	c := &ClusterTLS{name: name, plan: args.Plan, params: args.Params, tags: args.Tags}
	if err := ctx.RegisterComponentResource(TypeTLS, name, c, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(c)
	var err error
	if c.caKey, err = newECDSAKey(ctx, name+"-ca-key", parent); err != nil {
		return nil, err
	}
	if c.caCert, err = tls.NewSelfSignedCert(ctx, name+"-ca", &tls.SelfSignedCertArgs{
		PrivateKeyPem: c.caKey.PrivateKeyPem,
		Subject: tls.SelfSignedCertSubjectArgs{
			CommonName:   pulumi.String(pki.CACommonName(args.ClusterName)),
			Organization: pulumi.String(pki.Organization),
		},
		IsCaCertificate:     pulumi.Bool(true),
		AllowedUses:         pulumi.ToStringArray(pki.CAUses),
		ValidityPeriodHours: pulumi.Int(pki.CAValidityHours),
		// A subject key id, which the leaves then carry as their authority
		// key id, as crypto/x509 (and so the labs' CA) does: OpenSSL's
		// strict verification asks for both.
		SetSubjectKeyId: pulumi.Bool(true),
	}, parent); err != nil {
		return nil, err
	}
	c.CACertificate = c.caCert.CertPem
	caParam, err := c.parameter(ctx, name+"-ca-param", args.Params.CA(), "String", c.CACertificate,
		"pgha cluster CA certificate of stack "+args.Tags.Stack, "tls-ca-certificate")
	if err != nil {
		return nil, err
	}
	c.Parameters = Dependencies{caParam}

	client := pki.ClientLeaf()
	// No names at all (not empty lists, which the provider could read back
	// as none and so replace the request at every update).
	clientKey, clientCert, err := c.sign(ctx, name+"-client", client, nil, nil)
	if err != nil {
		return nil, err
	}
	c.ClientCertificate, c.ClientKey = clientCert.CertPem, clientKey.PrivateKeyPem

	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"caCertificate":   c.CACertificate,
		"caParameter":     pulumi.String(args.Params.CA()),
		"clientSubject":   pulumi.String(client.CommonName),
		"parameterPrefix": pulumi.String(args.Params.Prefix),
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Node issues a plan node's certificate (pki.NodeLeaf) and stores it and
// its key in SSM. endpoints are the names clients reach the cluster by
// from outside (the HAProxy nodes' public addresses, the load balancer's
// DNS name), as they become known: a PostgreSQL node's certificate names
// them (clients reach it through HAProxy's 5000 and 5001), and so does an
// HAProxy node's (PgBouncer serves it on 6432). etcd's and the monitoring
// node's certificates name only the node, and take none.
func (c *ClusterTLS) Node(ctx *pulumi.Context, n topology.Node, endpoints ...pulumi.StringInput) (*NodeCertificate, error) {
	if _, ok := c.plan.Node(n.Name); !ok && n != c.plan.Monitor() {
		return nil, fmt.Errorf("%s: node %s is not in the plan", c.name, n.Name)
	}
	if n.Role != topology.RolePatroni && n.Role != topology.RoleHAProxy && len(endpoints) > 0 {
		return nil, fmt.Errorf("%s: node %s is neither a PostgreSQL nor an HAProxy node: its certificate names no endpoint", c.name, n.Name)
	}
	eps := make([]any, len(endpoints))
	for i, e := range endpoints {
		eps[i] = e
	}
	leaf := func(vs []any) (pki.Leaf, error) {
		var names []string
		for _, v := range vs {
			names = append(names, v.(string))
		}
		l := pki.NodeLeaf(c.plan, n, names)
		return l, l.Check()
	}
	all := pulumi.All(eps...)
	dns := all.ApplyT(func(vs []any) ([]string, error) {
		l, err := leaf(vs)
		return l.DNSNames, err
	}).(pulumi.StringArrayOutput)
	ips := all.ApplyT(func(vs []any) ([]string, error) {
		l, err := leaf(vs)
		return l.IPStrings(), err
	}).(pulumi.StringArrayOutput)

	prefix := c.name + "-" + n.Name
	key, cert, err := c.sign(ctx, prefix, pki.NodeLeaf(c.plan, n, nil), dns, ips)
	if err != nil {
		return nil, err
	}
	nc := &NodeCertificate{Node: n.Name, Certificate: cert.CertPem, PrivateKey: key.PrivateKeyPem}
	certParam, err := c.parameter(ctx, prefix+"-cert-param", c.params.Certificate(n.Name), "String", cert.CertPem,
		fmt.Sprintf("pgha TLS certificate of node %s of stack %s", n.Name, c.tags.Stack), "tls-"+n.Name+"-certificate")
	if err != nil {
		return nil, err
	}
	keyParam, err := c.parameter(ctx, prefix+"-key-param", c.params.Key(n.Name), "SecureString", key.PrivateKeyPem,
		fmt.Sprintf("pgha TLS private key of node %s of stack %s", n.Name, c.tags.Stack), "tls-"+n.Name+"-key")
	if err != nil {
		return nil, err
	}
	nc.Parameters = Dependencies{certParam, keyParam}
	return nc, nil
}

// sign creates a key and has the CA sign a certificate for it: the
// subject and uses from the leaf, the names from dns and ips (nil: none).
func (c *ClusterTLS) sign(ctx *pulumi.Context, prefix string, l pki.Leaf, dns, ips pulumi.StringArrayInput) (*tls.PrivateKey, *tls.LocallySignedCert, error) {
	parent := pulumi.Parent(c)
	key, err := newECDSAKey(ctx, prefix+"-key", parent)
	if err != nil {
		return nil, nil, err
	}
	csr, err := tls.NewCertRequest(ctx, prefix+"-csr", &tls.CertRequestArgs{
		PrivateKeyPem: key.PrivateKeyPem,
		Subject: tls.CertRequestSubjectArgs{
			CommonName:   pulumi.String(l.CommonName),
			Organization: pulumi.String(pki.Organization),
		},
		DnsNames:    dns,
		IpAddresses: ips,
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.NewLocallySignedCert(ctx, prefix+"-cert", &tls.LocallySignedCertArgs{
		CertRequestPem:      csr.CertRequestPem,
		CaPrivateKeyPem:     c.caKey.PrivateKeyPem,
		CaCertPem:           c.caCert.CertPem,
		AllowedUses:         pulumi.ToStringArray(l.Uses()),
		ValidityPeriodHours: pulumi.Int(pki.LeafValidityHours),
		// `pulumi up` replaces a certificate this close to its end.
		EarlyRenewalHours: pulumi.Int(pki.EarlyRenewalHours),
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// parameter stores one PEM in SSM. A certificate is public: a String
// parameter, its value not secret in the state either. A key is a
// SecureString, encrypted with the account's aws/ssm key.
func (c *ClusterTLS) parameter(ctx *pulumi.Context, resName, paramName, typ string, value pulumi.StringOutput, description, tagName string) (*ssm.Parameter, error) {
	args := &ssm.ParameterArgs{
		Name:        pulumi.String(paramName),
		Type:        pulumi.String(typ),
		Description: pulumi.String(description),
		Tags:        c.tags.Tags(RoleTLS, tagName),
	}
	if typ == "SecureString" {
		args.Value = value
	} else {
		args.InsecureValue = value
	}
	return ssm.NewParameter(ctx, resName, args, pulumi.Parent(c))
}

func newECDSAKey(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) (*tls.PrivateKey, error) {
	return tls.NewPrivateKey(ctx, name, &tls.PrivateKeyArgs{
		Algorithm:  pulumi.String("ECDSA"),
		EcdsaCurve: pulumi.String("P256"),
	}, opts...)
}
