package main

import (
	"fmt"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
)

// dialers map an access kind to the way validate reaches private addresses:
// directly (a loopback lab), from the lab's client namespace, or through
// the stack's SSH jump host (AWS).
var dialers = []struct {
	kind string
	dial func(s outputs.Stack) (access.DialFunc, error)
}{
	{outputs.AccessDirect, func(outputs.Stack) (access.DialFunc, error) { return access.Direct(), nil }},
	{outputs.AccessNetns, func(s outputs.Stack) (access.DialFunc, error) { return access.Netns(s.Access.Namespace) }},
	{outputs.AccessSSH, func(s outputs.Stack) (access.DialFunc, error) {
		cfg, err := access.SSHConfigFromStack(s)
		if err != nil {
			return nil, err
		}
		return access.SSH(cfg)
	}},
}

func dialerFor(s outputs.Stack) (access.DialFunc, error) {
	for _, d := range dialers {
		if d.kind == s.Access.Kind {
			return d.dial(s)
		}
	}
	return nil, fmt.Errorf("output %q: kind %q is not one validate knows (direct, netns or ssh)", outputs.KeyAccess, s.Access.Kind)
}
