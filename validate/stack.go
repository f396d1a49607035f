package main

import (
	"context"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/validate/internal/stackout"
)

// loadStack reads the stack outputs from a file (--outputs, what the lab
// writes) or from a Pulumi stack (--stack), through the pulumi CLI.
func loadStack(ctx context.Context, o *options) (outputs.Stack, error) {
	if o.outputsFile != "" {
		s, err := outputs.Load(o.outputsFile)
		if err != nil {
			return outputs.Stack{}, userError{err}
		}
		return s, nil
	}
	s, err := stackout.Read(ctx, stackout.Options{Dir: o.dir, Stack: o.stack})
	if err != nil {
		return outputs.Stack{}, userError{err}
	}
	return s, s.Validate()
}
