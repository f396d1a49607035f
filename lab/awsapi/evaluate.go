package awsapi

import (
	"fmt"
	"strings"
)

// Decision is the outcome of evaluating a principal's policies for one
// action on one resource.
type Decision int

const (
	// ImplicitDeny: no statement allowed the request (IAM's default).
	ImplicitDeny Decision = iota
	// Allowed: some statement allowed it and none denied it.
	Allowed
	// ExplicitDeny: a Deny statement matched; it wins over any Allow.
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case Allowed:
		return "allow"
	case ExplicitDeny:
		return "explicit-deny"
	}
	return "implicit-deny"
}

// Evaluate applies IAM's identity-policy logic: an explicit Deny wins, then
// any Allow, else the request is denied by default.
func Evaluate(policies []*Policy, action, resource string, ctx map[string]string) Decision {
	rc := requestContext{}
	for k, v := range ctx {
		rc.set(k, v)
	}
	return evaluate(policies, action, resource, rc)
}

func evaluate(policies []*Policy, action, resource string, ctx requestContext) Decision {
	d := ImplicitDeny
	for _, p := range policies {
		for _, st := range p.Statements {
			if !st.applies(action, resource, ctx) {
				continue
			}
			if st.Effect == "Deny" {
				return ExplicitDeny
			}
			d = Allowed
		}
	}
	return d
}

func (st *Statement) applies(action, resource string, ctx requestContext) bool {
	if st.Action != nil && !anyMatch(st.Action, action, true) {
		return false
	}
	if st.NotAction != nil && anyMatch(st.NotAction, action, true) {
		return false
	}
	if st.Resource != nil && !anyARN(st.Resource, resource) {
		return false
	}
	if st.NotResource != nil && anyARN(st.NotResource, resource) {
		return false
	}
	for _, c := range st.Conditions {
		if !ctx.holds(c) {
			return false
		}
	}
	return true
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if wildcard(p, s, fold) {
			return true
		}
	}
	return false
}

// anyARN matches a resource against Resource patterns. IAM matches ARNs
// field by field: a wildcard does not run from the region into the account,
// and the last field (the resource, which may hold ':' and '/') is matched
// as a whole. The resource "*" stands for actions without resource-level
// permissions (ec2:DescribeInstances), which only Resource "*" matches.
func anyARN(patterns []string, resource string) bool {
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		if resource == "*" {
			continue
		}
		pp := strings.SplitN(p, ":", 6)
		rp := strings.SplitN(resource, ":", 6)
		if len(pp) != 6 || len(rp) != 6 {
			continue
		}
		ok := true
		for i := range pp {
			if !wildcard(pp[i], rp[i], false) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// wildcard reports whether s matches pattern, where '*' matches any run of
// characters (also none) and '?' any one character.
func wildcard(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	// Iterative matching with backtracking to the last '*': linear in
	// practice, no recursion on hostile patterns.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// deniedMessage words a denial the way IAM-integrated services do.
func deniedMessage(callerARN, action, resource string, d Decision) string {
	on := ""
	if resource != "" && resource != "*" {
		on = " on resource: " + resource
	}
	why := fmt.Sprintf("because no identity-based policy allows the %s action", action)
	if d == ExplicitDeny {
		why = "with an explicit deny in an identity-based policy"
	}
	return fmt.Sprintf("User: %s is not authorized to perform: %s%s %s", callerARN, action, on, why)
}
