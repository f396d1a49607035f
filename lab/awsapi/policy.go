package awsapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Policy is a validated identity-based policy document.
type Policy struct {
	Name       string
	Statements []Statement
}

// Statement is one statement of a policy. Exactly one of Action and
// NotAction, and one of Resource and NotResource, is set.
type Statement struct {
	Sid         string
	Effect      string // "Allow" or "Deny"
	Action      []string
	NotAction   []string
	Resource    []string
	NotResource []string
	Conditions  []Condition
}

// Condition is one operator and key of a Condition block, with the values
// the key is compared with. An operator with several keys is split into one
// Condition per key; all of them must hold.
type Condition struct {
	Operator string // as written, e.g. "StringEquals" or "StringLikeIfExists"
	Key      string
	Values   []string
}

// ParsePolicy validates a policy document the way IAM does when a policy is
// attached, and refuses what the lab cannot evaluate faithfully: an unknown
// operator or condition key, policy variables, Principal. Refusing at attach
// time matters because a policy the lab misread would silently allow (or
// deny) at boot, far from the cause.
func ParsePolicy(name, document string) (*Policy, error) {
	p, err := parsePolicy(document)
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", name, err)
	}
	p.Name = name
	return p, nil
}

func parsePolicy(document string) (*Policy, error) {
	top, err := strictObject([]byte(document), "Version", "Id", "Statement")
	if err != nil {
		return nil, fmt.Errorf("malformed policy document: %w", err)
	}
	if v, ok := top["Version"]; ok {
		var s string
		if json.Unmarshal(v, &s) != nil || (s != "2012-10-17" && s != "2008-10-17") {
			return nil, fmt.Errorf(`the Version must be "2012-10-17" (or the old "2008-10-17"), got %s`, v)
		}
	}
	raw, ok := top["Statement"]
	if !ok {
		return nil, fmt.Errorf("the policy has no Statement")
	}
	var list []json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("the Statement: %w", err)
		}
	} else {
		list = []json.RawMessage{raw}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("the policy has no Statement")
	}
	p := &Policy{}
	for i, r := range list {
		st, err := parseStatement(r)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func parseStatement(raw json.RawMessage) (Statement, error) {
	var st Statement
	m, err := strictObject(raw, "Sid", "Effect", "Action", "NotAction", "Resource",
		"NotResource", "Condition", "Principal", "NotPrincipal")
	if err != nil {
		return st, err
	}
	if _, ok := m["Principal"]; ok {
		return st, fmt.Errorf("the Principal element is not allowed in an identity-based policy (it belongs in a trust or resource policy)")
	}
	if _, ok := m["NotPrincipal"]; ok {
		return st, fmt.Errorf("the NotPrincipal element is not allowed in an identity-based policy")
	}
	if v, ok := m["Sid"]; ok {
		if err := json.Unmarshal(v, &st.Sid); err != nil {
			return st, fmt.Errorf("the Sid: %w", err)
		}
	}
	if err := json.Unmarshal(m["Effect"], &st.Effect); err != nil || (st.Effect != "Allow" && st.Effect != "Deny") {
		return st, fmt.Errorf(`the Effect must be "Allow" or "Deny"`)
	}
	if st.Action, st.NotAction, err = exactlyOne(m, "Action", "NotAction"); err != nil {
		return st, err
	}
	for _, a := range append(append([]string{}, st.Action...), st.NotAction...) {
		if a != "*" && !validAction(a) {
			return st, fmt.Errorf("action %q must be \"*\" or service:Action (wildcards allowed in the action)", a)
		}
	}
	if st.Resource, st.NotResource, err = exactlyOne(m, "Resource", "NotResource"); err != nil {
		return st, err
	}
	for _, r := range append(append([]string{}, st.Resource...), st.NotResource...) {
		if err := validResource(r); err != nil {
			return st, err
		}
	}
	if c, ok := m["Condition"]; ok {
		if st.Conditions, err = parseConditions(c); err != nil {
			return st, fmt.Errorf("the Condition: %w", err)
		}
	}
	return st, nil
}

// strictObject decodes a JSON object and refuses members IAM does not know.
// IAM element names are case-sensitive, which encoding/json's struct
// matching is not, hence the map.
func strictObject(raw []byte, allowed ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("expected a JSON object")
	}
	for k := range m {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		if !known {
			return nil, fmt.Errorf("unknown element %q (element names are case-sensitive; expected one of %s)", k, strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

func exactlyOne(m map[string]json.RawMessage, a, notA string) ([]string, []string, error) {
	ra, hasA := m[a]
	rn, hasN := m[notA]
	switch {
	case hasA && hasN:
		return nil, nil, fmt.Errorf("%s and %s cannot be used together", a, notA)
	case hasA:
		v, err := stringList(ra)
		if err != nil || len(v) == 0 {
			return nil, nil, fmt.Errorf("%s must be a string or a non-empty list of strings", a)
		}
		return v, nil, nil
	case hasN:
		v, err := stringList(rn)
		if err != nil || len(v) == 0 {
			return nil, nil, fmt.Errorf("%s must be a string or a non-empty list of strings", notA)
		}
		return nil, v, nil
	}
	return nil, nil, fmt.Errorf("the statement needs %s or %s", a, notA)
}

// stringList accepts "x" or ["x", "y"]. Condition values may also be JSON
// booleans or numbers, which IAM compares as their text.
func stringList(raw json.RawMessage) ([]string, error) {
	var many []any
	if err := json.Unmarshal(raw, &many); err != nil {
		var one any
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, err
		}
		many = []any{one}
	}
	out := make([]string, 0, len(many))
	for _, v := range many {
		switch t := v.(type) {
		case string:
			out = append(out, t)
		case bool, float64:
			out = append(out, fmt.Sprint(t))
		default:
			return nil, fmt.Errorf("expected strings, got %s", raw)
		}
	}
	return out, nil
}

func validAction(a string) bool {
	svc, name, ok := strings.Cut(a, ":")
	return ok && svc != "" && name != "" && !strings.ContainsAny(svc, "*?:") && !strings.Contains(name, ":")
}

func validResource(r string) error {
	if strings.Contains(r, "${") {
		return fmt.Errorf("resource %q uses a policy variable, which the lab does not substitute; write the value out", r)
	}
	if r == "*" {
		return nil
	}
	if parts := strings.SplitN(r, ":", 6); len(parts) != 6 || parts[0] != "arn" {
		return fmt.Errorf(`resource %q must be "*" or an ARN (arn:partition:service:region:account:resource)`, r)
	}
	return nil
}

func parseConditions(raw json.RawMessage) ([]Condition, error) {
	var block map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &block); err != nil {
		return nil, fmt.Errorf("expected {operator: {key: value(s)}}: %w", err)
	}
	var out []Condition
	ops := make([]string, 0, len(block))
	for op := range block {
		ops = append(ops, op)
	}
	sort.Strings(ops) // deterministic errors and evaluation order
	for _, op := range ops {
		if _, err := lookupOperator(op); err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(block[op]))
		for k := range block[op] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !knownConditionKey(k) {
				return nil, fmt.Errorf("condition key %q is not one the lab supplies (%s); the lab refuses it rather than guess how AWS would evaluate it", k, strings.Join(conditionKeyHelp, ", "))
			}
			vals, err := stringList(block[op][k])
			if err != nil || len(vals) == 0 {
				return nil, fmt.Errorf("%s %s: values must be a string or a non-empty list of strings", op, k)
			}
			if op == "Null" && (len(vals) != 1 || (vals[0] != "true" && vals[0] != "false")) {
				return nil, fmt.Errorf("operator Null, key %s: the value must be true or false", k)
			}
			for _, v := range vals {
				if strings.Contains(v, "${") {
					return nil, fmt.Errorf("%s %s: policy variables (%q) are not substituted by the lab", op, k, v)
				}
			}
			out = append(out, Condition{Operator: op, Key: k, Values: vals})
		}
	}
	return out, nil
}
