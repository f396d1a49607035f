// Package pki is the cluster's certificate authority and what it signs: one
// certificate per node, which every daemon of that node serves and presents
// (etcd's client and peer ports, Patroni's REST API and its etcd client,
// PostgreSQL, HAProxy's stats page), and one for pgha's own tools (validate,
// the lab), which etcd requires of every client.
//
// The profile of each certificate (names, uses, lifetime) is defined here
// once: the Pulumi program hands it to pulumi-tls, the labs sign it with
// crypto/x509, so the labs run the material the cloud runs.
package pki

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/pgha/pgha/internal/topology"
)

// Lifetimes. A node certificate is renewed by `pulumi up` once it is within
// EarlyRenewalHours of its end (nodes read the new one from SSM when they
// run pgha-fetch-secrets; see docs/security.md).
const (
	CAValidityHours   = 10 * 365 * 24
	LeafValidityHours = 3 * 365 * 24
	EarlyRenewalHours = 60 * 24
)

// Uses, by the names pulumi-tls gives them.
const (
	UseDigitalSignature = "digital_signature"
	UseServerAuth       = "server_auth"
	UseClientAuth       = "client_auth"
	UseCertSigning      = "cert_signing"
	UseCRLSigning       = "crl_signing"
)

// Organization is the subject's O of every certificate pgha signs.
const Organization = "pgha"

// CAUses are the CA certificate's uses.
var CAUses = []string{UseCertSigning, UseCRLSigning, UseDigitalSignature}

// CACommonName names a cluster's CA.
func CACommonName(cluster string) string { return cluster + " cluster CA" }

// Leaf is one certificate the CA signs.
type Leaf struct {
	CommonName string
	DNSNames   []string
	IPs        []netip.Addr
	// Server and Client are the extended key uses: a node is both (etcd
	// peers and Patroni's etcd connections present the node's certificate
	// as a client), pgha's tools only Client.
	Server, Client bool
}

// Uses are the leaf's uses, by pulumi-tls's names.
func (l Leaf) Uses() []string {
	u := []string{UseDigitalSignature}
	if l.Server {
		u = append(u, UseServerAuth)
	}
	if l.Client {
		u = append(u, UseClientAuth)
	}
	return u
}

// IPStrings are the leaf's addresses as strings.
func (l Leaf) IPStrings() []string {
	var s []string
	for _, ip := range l.IPs {
		s = append(s, ip.String())
	}
	return s
}

// NodeLeaf is the certificate of a node: its name and private address,
// which is how every other node and pgha's tools address it. A PostgreSQL
// node's certificate also names every way a client reaches it through
// HAProxy: the HAProxy nodes' private addresses and the endpoints (their
// public addresses, the load balancer's name), so that a client of port
// 5000 or 5001 can connect with sslmode=verify-full whichever node leads.
// An HAProxy node's certificate names the endpoints too: PgBouncer serves
// it on 6432, which clients reach by the same names. Other nodes'
// certificates name no endpoint: nothing outside the VPC reaches them.
func NodeLeaf(plan topology.Plan, n topology.Node, endpoints []string) Leaf {
	l := Leaf{CommonName: n.Name, DNSNames: []string{n.Name}, IPs: []netip.Addr{n.IP}, Server: true, Client: true}
	switch n.Role {
	case topology.RolePatroni:
		for _, h := range plan.ByRole(topology.RoleHAProxy) {
			l.IPs = append(l.IPs, h.IP)
		}
	case topology.RoleHAProxy:
	default:
		return l
	}
	for _, e := range endpoints {
		if ip, err := netip.ParseAddr(e); err == nil {
			l.IPs = append(l.IPs, ip)
		} else if e != "" {
			l.DNSNames = append(l.DNSNames, e)
		}
	}
	l.IPs = uniq(l.IPs, func(a, b netip.Addr) int { return a.Compare(b) })
	l.DNSNames = append(l.DNSNames[:1], uniq(l.DNSNames[1:], func(a, b string) int {
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})...)
	return l
}

// uniq keeps the first of equal elements, in their order.
func uniq[T any](s []T, cmp func(a, b T) int) []T {
	var out []T
	for _, x := range s {
		if !slices.ContainsFunc(out, func(y T) bool { return cmp(x, y) == 0 }) {
			out = append(out, x)
		}
	}
	return out
}

// ClientCommonName is the subject of the certificate pgha's own tools
// present to etcd.
const ClientCommonName = "pgha-operator"

// ClientLeaf is that certificate: client authentication only, so it can
// serve nothing.
func ClientLeaf() Leaf { return Leaf{CommonName: ClientCommonName, Client: true} }

// Check refuses a leaf no daemon could use.
func (l Leaf) Check() error {
	if l.CommonName == "" {
		return fmt.Errorf("certificate without a common name")
	}
	if l.Server && len(l.DNSNames)+len(l.IPs) == 0 {
		return fmt.Errorf("server certificate %q names no host", l.CommonName)
	}
	if !l.Server && !l.Client {
		return fmt.Errorf("certificate %q has no use", l.CommonName)
	}
	return nil
}
