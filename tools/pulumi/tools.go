//go:build tools

// Package tools records that this module exists to build the pulumi CLI.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
