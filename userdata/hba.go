package userdata

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pgha/pgha/internal/topology"
)

// HBARule is one line of pg_hba.conf, as Patroni's pg_hba list takes it.
type HBARule struct {
	// Why, when set, is a comment rendered above the rule: the first rule
	// of each group says who the group admits and why.
	Why      string
	Type     string // local or hostssl
	Database string
	Users    []string
	Address  string // empty for local
	Method   string
}

// Line is the rule as pg_hba.conf spells it.
func (r HBARule) Line() string {
	f := []string{r.Type, r.Database, strings.Join(r.Users, ",")}
	if r.Address != "" {
		f = append(f, r.Address)
	}
	return strings.Join(append(f, r.Method), " ")
}

// HBA is the cluster's pg_hba, rendered from the IP plan: every node's
// address is known before anything exists, so each role is admitted from
// exactly the nodes that need it, one /32 each, and nothing else is:
//
//   - the superuser and the rewind user from the PostgreSQL nodes (Patroni,
//     pg_rewind of a former leader) and on the node's own socket;
//   - replication between the PostgreSQL nodes;
//   - the application user from the HAProxy nodes, through which clients
//     come (through PgBouncer there, or HAProxy's ports);
//   - PgBouncer's auth user, to the application database only (where its
//     auth_query runs), from the HAProxy nodes, where PgBouncer runs;
//   - the monitor, to the application database only, from the HAProxy
//     nodes (validate reaches the nodes on AWS through the jump host, an
//     HAProxy node), the PostgreSQL nodes (the booted lab's scenarios watch
//     each node from inside it) and MonitorFrom.
//
// With monitoring, postgres_exporter logs in on the node's socket as the
// exporter role, mapped from its OS user (PGIdent). Every network
// connection is TLS and scram-sha-256.
func (c Cluster) HBA() []HBARule {
	u := c.Users
	addrs := func(r topology.Role) []string {
		var out []string
		for _, n := range c.Plan.ByRole(r) {
			out = append(out, netip.PrefixFrom(n.IP, n.IP.BitLen()).String())
		}
		for _, p := range c.SharedStack {
			out = append(out, p.String())
		}
		return out
	}
	pgNodes, haNodes := addrs(topology.RolePatroni), addrs(topology.RoleHAProxy)
	var rules []HBARule
	group := func(why, typ, db string, users []string, from []string) {
		for i, a := range from {
			r := HBARule{Type: typ, Database: db, Users: users, Address: a, Method: "scram-sha-256"}
			if i == 0 {
				r.Why = why
			}
			rules = append(rules, r)
		}
	}
	if !c.Unprivileged {
		rules = append(rules, HBARule{
			Why:  "The OS user postgres (Patroni, pgBackRest, an operator's sudo -u postgres) is the superuser on the node's own socket, as Debian sets it up: no password on disk is needed for local tools.",
			Type: "local", Database: "all", Users: []string{u.Superuser}, Method: "peer",
		})
	}
	if c.Monitoring != nil {
		rules = append(rules, HBARule{
			Why:  "postgres_exporter, as the OS user " + ExporterUser + " on the node's own socket, is the exporter role (pg_monitor only): no password exists for it.",
			Type: "local", Database: "postgres", Users: []string{u.Exporter}, Method: "peer map=" + exporterIdentMap,
		})
	}
	rules = append(rules, HBARule{Why: "Every role with its password on the node's own socket.",
		Type: "local", Database: "all", Users: []string{"all"}, Method: "scram-sha-256"})
	group("Streaming replication only between the PostgreSQL nodes.",
		"hostssl", "replication", []string{u.Replication}, pgNodes)
	group("The superuser and pg_rewind only from the PostgreSQL nodes.",
		"hostssl", "all", []string{u.Superuser, u.Rewind}, pgNodes)
	group("The application only from the HAProxy nodes, through which clients come.",
		"hostssl", "all", []string{u.App}, haNodes)
	group("PgBouncer's auth_query, from the HAProxy nodes.",
		"hostssl", u.AppDatabase, []string{u.Pooler}, haNodes)
	group("pgha's monitor (validate's checks), to the application database only, from the HAProxy nodes (validate on AWS comes through the jump host, an HAProxy node) and the PostgreSQL nodes (where a lab's scenarios watch a partitioned node from; they may log in as the superuser anyway).",
		"hostssl", u.AppDatabase, []string{u.Monitor}, unique(append(append([]string(nil), haNodes...), pgNodes...)))
	var extra []string
	for _, p := range c.MonitorFrom {
		extra = append(extra, p.String())
	}
	group("pgha's monitor from where validate connects in a lab: its client.",
		"hostssl", u.AppDatabase, []string{u.Monitor}, extra)
	return rules
}

// unique keeps the first of each address (a shared stack's own address is
// every role's).
func unique(addrs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// hbaYAML is the pg_hba list as patroni.yml takes it, indented for its
// place there: one "- rule" item per rule, each group's reason above it.
func hbaYAML(c Cluster) string {
	var b strings.Builder
	for _, r := range c.HBA() {
		if r.Why != "" {
			for _, l := range wrap(r.Why, 69) {
				fmt.Fprintf(&b, "\n    # %s", l)
			}
		}
		fmt.Fprintf(&b, "\n    - %s", r.Line())
	}
	return b.String()
}

// PGIdent is the cluster's pg_ident.conf: with monitoring, the OS user the
// exporter runs as may log in as the exporter role, and nobody else may.
func (c Cluster) PGIdent() []string {
	if c.Monitoring == nil {
		return nil
	}
	return []string{exporterIdentMap + " " + ExporterUser + " " + c.Users.Exporter}
}

// wrap breaks s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
