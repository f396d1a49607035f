package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pgha/pgha/internal/topology"
)

// What `validate roll` reads of the pulumi CLI's JSON: `pulumi stack export`
// (an apitype.UntypedDeployment of deployment.resources[], each an
// apitype.ResourceV3) and `pulumi preview --json` (a display.PreviewDigest
// of steps[], each with op, urn and the resource's old and new state as
// ResourceV3). Only the fields the roll needs are decoded.

// Resource types and the program's component types. validate may not link
// the program's components, so the tokens are repeated here;
// TestRollComponentTypesAreThePrograms holds them to components/tags.go.
const (
	typeInstance  = "aws:ec2/instance:Instance"
	typeRootStack = "pulumi:pulumi:Stack"
)

var tierTypes = map[topology.Role]string{
	topology.RoleEtcd:    "pgha:index:EtcdCluster",
	topology.RolePatroni: "pgha:index:PatroniCluster",
	topology.RoleHAProxy: "pgha:index:HAProxyTier",
}

// stateResource is one resource of a state, or of a preview step's state.
type stateResource struct {
	URN                  string              `json:"urn"`
	Type                 string              `json:"type"`
	Delete               bool                `json:"delete"`
	Parent               string              `json:"parent"`
	Dependencies         []string            `json:"dependencies"`
	PropertyDependencies map[string][]string `json:"propertyDependencies"`
	DeletedWith          string              `json:"deletedWith"`
}

// dependsOn is everything the resource waits for, as the engine's
// --target-dependents follows it: parent, dependencies, property
// dependencies and deleted-with.
func (r stateResource) dependsOn() []string {
	out := append([]string(nil), r.Dependencies...)
	if r.Parent != "" {
		out = append(out, r.Parent)
	}
	for _, ds := range r.PropertyDependencies {
		out = append(out, ds...)
	}
	if r.DeletedWith != "" {
		out = append(out, r.DeletedWith)
	}
	return out
}

type stackExport struct {
	Deployment struct {
		Resources []stateResource `json:"resources"`
	} `json:"deployment"`
}

func parseExport(b []byte) ([]stateResource, error) {
	var e stackExport
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("`pulumi stack export` printed no deployment: %w", err)
	}
	return e.Deployment.Resources, nil
}

// urnParts splits urn:pulumi:STACK::PROJECT::QUALIFIED$TYPE::NAME.
func urnParts(urn string) (qualifiedType, name string, ok bool) {
	p := strings.SplitN(urn, "::", 4)
	if len(p) != 4 || !strings.HasPrefix(p[0], "urn:pulumi:") {
		return "", "", false
	}
	return p[2], p[3], true
}

// lastType is the resource's own type in a qualified type (parent$child).
func lastType(qualified string) string { return qualified[strings.LastIndex(qualified, "$")+1:] }

// instanceURNs finds each node's EC2 instance in a stack's state. The
// program names an instance after its tier component and the node (tier
// "patroni", node pg-2: patroni-pg-2) and parents it to the component; so
// an instance is a node's when its parent is the node's tier component and
// its name is the component's name, a dash and the node's.
func instanceURNs(resources []stateResource, plan topology.Plan) (map[string]string, error) {
	found := map[string][]string{}
	for _, r := range resources {
		if r.Type != typeInstance || r.Delete {
			continue // delete: an old instance left for deletion by an interrupted replacement
		}
		_, name, ok := urnParts(r.URN)
		pqt, pname, pok := urnParts(r.Parent)
		if !ok || !pok {
			continue
		}
		for _, n := range plan.Nodes {
			if lastType(pqt) == tierTypes[n.Role] && name == pname+"-"+n.Name {
				found[n.Name] = append(found[n.Name], r.URN)
			}
		}
	}
	out := map[string]string{}
	var missing []string
	for _, n := range plan.Nodes {
		switch urns := found[n.Name]; len(urns) {
		case 1:
			out[n.Name] = urns[0]
		case 0:
			missing = append(missing, fmt.Sprintf("%s (an %s named <component>-%s under a %s component)", n.Name, typeInstance, n.Name, tierTypes[n.Role]))
		default:
			return nil, fmt.Errorf("node %s has %d instances in the stack's state: %s", n.Name, len(urns), strings.Join(urns, ", "))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the stack's state has no EC2 instance for %s; is this a stack of this program, and did its `pulumi up` complete?", strings.Join(missing, "; "))
	}
	return out, nil
}

// previewDigest is `pulumi preview --json`.
type previewDigest struct {
	Steps       []previewStep `json:"steps"`
	Diagnostics []struct {
		Message  string `json:"message"`
		Severity string `json:"severity"`
	} `json:"diagnostics"`
}

// previewStep is one step the update would take.
type previewStep struct {
	Op       string         `json:"op"`
	URN      string         `json:"urn"`
	OldState *stateResource `json:"oldState"`
	NewState *stateResource `json:"newState"`
}

func parsePreview(b []byte) (previewDigest, error) {
	var d previewDigest
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("`pulumi preview --json` printed no preview: %w", err)
	}
	return d, nil
}

// errors are the preview's error diagnostics, one line each.
func (d previewDigest) errors() []string {
	var out []string
	for _, g := range d.Diagnostics {
		if g.Severity == "error" {
			out = append(out, strings.TrimSpace(g.Message))
		}
	}
	return out
}

// change is one resource the update would change.
type change struct{ Op, URN string }

func (c change) String() string { return c.Op + " " + c.URN }

// previewPlan says what the update would do, in the roll's terms.
type previewPlan struct {
	// Nodes would have their instance replaced (or updated in place, which
	// may stop it): each is rolled, and the leader switched away from
	// first. Op is the instance's step.
	Nodes map[string]string
	// Finish are nodes whose instance is current but whose own dependents
	// would change (an earlier roll stopped part-way through the node):
	// each is rolled again, which touches only those dependents.
	Finish map[string]bool
	// Dependents would change with the instances: Elastic IPs, readiness
	// commands. `--target-dependents` applies them with their node.
	Dependents []change
	// Foreign would change and follow no node: a roll must not apply them.
	Foreign []change
}

// Rolled lists the nodes the roll takes, in plan order.
func (p previewPlan) Rolled(plan topology.Plan) []string {
	var out []string
	for _, n := range plan.Nodes {
		if _, ok := p.Nodes[n.Name]; ok || p.Finish[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out
}

// classify sorts the preview's changes into the nodes' and the rest. A
// change follows a node when it is the node's instance or depends on a
// replaced instance, directly or not (what `--target-dependents` would take
// along); reads and the stack's own outputs change nothing of the cluster.
func classify(d previewDigest, state []stateResource, urns map[string]string, plan topology.Plan) previewPlan {
	p := previewPlan{Nodes: map[string]string{}, Finish: map[string]bool{}}
	nodeOf := map[string]string{}
	for n, u := range urns {
		nodeOf[u] = n
	}
	deps := map[string][]string{}
	for _, r := range state {
		deps[r.URN] = r.dependsOn()
	}
	var changed []change
	for _, s := range d.Steps {
		for _, st := range []*stateResource{s.OldState, s.NewState} {
			if st != nil {
				deps[s.URN] = append(deps[s.URN], st.dependsOn()...)
			}
		}
		qt, _, _ := urnParts(s.URN)
		switch {
		case s.Op == "same" || s.Op == "read" || lastType(qt) == typeRootStack:
			continue
		case nodeOf[s.URN] != "" && s.Op != "delete" && s.Op != "discard":
			p.Nodes[nodeOf[s.URN]] = s.Op
		default:
			changed = append(changed, change{s.Op, s.URN})
		}
	}
	// reach lists the node instances urn depends on: directly, or all the
	// way down.
	reach := func(urn string, direct bool) []string {
		seen := map[string]bool{urn: true}
		var found []string
		frontier := []string{urn}
		for len(frontier) > 0 {
			next := frontier[0]
			frontier = frontier[1:]
			for _, d := range deps[next] {
				if seen[d] {
					continue
				}
				seen[d] = true
				if n := nodeOf[d]; n != "" {
					found = append(found, n)
				}
				if !direct {
					frontier = append(frontier, d)
				}
			}
		}
		sort.Strings(found)
		return found
	}
	// First what follows a replaced instance, or one node's instance only;
	// then what follows several current instances (the cluster check after
	// a stopped roll), which the first node to roll takes along, else the
	// first node it follows.
	replaced := func(ns []string) bool {
		return slices.ContainsFunc(ns, func(n string) bool { _, ok := p.Nodes[n]; return ok })
	}
	rolled := func(ns []string) bool {
		return replaced(ns) || slices.ContainsFunc(ns, func(n string) bool { return p.Finish[n] })
	}
	var shared []change
	for _, c := range changed {
		all := reach(c.URN, false)
		own := reach(c.URN, true)
		if len(own) == 0 {
			own = all
		}
		switch {
		case replaced(all):
			p.Dependents = append(p.Dependents, c)
		case len(own) == 1:
			p.Finish[own[0]] = true
			p.Dependents = append(p.Dependents, c)
		case len(own) > 1:
			shared = append(shared, c)
		default:
			p.Foreign = append(p.Foreign, c)
		}
	}
	for _, c := range shared {
		all := reach(c.URN, false)
		if !rolled(all) {
			p.Finish[firstInPlan(plan, all)] = true
		}
		p.Dependents = append(p.Dependents, c)
	}
	for n := range p.Nodes {
		delete(p.Finish, n)
	}
	return p
}

func firstInPlan(plan topology.Plan, names []string) string {
	for _, n := range plan.Nodes {
		if slices.Contains(names, n.Name) {
			return n.Name
		}
	}
	return names[0]
}
