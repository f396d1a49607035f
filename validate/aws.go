package main

import (
	"context"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/validate/internal/stackout"
	"github.com/pgha/pgha/validate/internal/teardown"
)

// On AWS: outputs come from the Pulumi stack through the Automation API,
// private addresses are reached through the stack's SSH jump host, and
// `validate teardown` proves a destroyed stack left nothing behind.
func init() {
	stackFromPulumi = func(ctx context.Context, stack string) (outputs.Stack, error) {
		return stackout.Read(ctx, stackout.Options{Stack: stack})
	}
	dialers[outputs.AccessSSH] = func(s outputs.Stack) (access.DialFunc, error) {
		cfg, err := access.SSHConfigFromStack(s)
		if err != nil {
			return nil, err
		}
		return access.SSH(cfg)
	}
	register("teardown", "after `pulumi destroy`, list anything of the stack left in AWS (exit 1 if any)", teardown.Main)
}
