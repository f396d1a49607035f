package main

import (
	"fmt"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
)

// dialers map an access kind to the way validate reaches private addresses.
// The SSH jump is registered by its own file.
var dialers = map[string]func(s outputs.Stack) (access.DialFunc, error){
	outputs.AccessDirect: func(outputs.Stack) (access.DialFunc, error) { return access.Direct(), nil },
	outputs.AccessNetns: func(s outputs.Stack) (access.DialFunc, error) {
		return access.Netns(s.Access.Namespace)
	},
}

func dialerFor(s outputs.Stack) (access.DialFunc, error) {
	d, ok := dialers[s.Access.Kind]
	if !ok {
		return nil, fmt.Errorf("output \"access\": kind %q is not supported by this build of validate", s.Access.Kind)
	}
	return d(s)
}
