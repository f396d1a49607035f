package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/pgha/pgha"

// The three wings (the Pulumi program, the lab, validate) share only
// internal/ and userdata/, and the compiler keeps validate/internal/ to
// validate. What it cannot keep apart is a wing linking another wing's
// packages; these rules do (docs/architecture.md, "Package map").
var boundaries = []struct {
	from      string   // a package pattern, as go list takes it
	forbidden []string // import path prefixes it must not link
	why       string
}{
	{".", []string{module + "/lab", module + "/validate"},
		"the Pulumi program runs on the operator's machine and in CI; it must not carry the lab or validate"},
	{"./components/...", []string{module + "/lab", module + "/validate"}, "components are the program's"},
	{"./userdata/...", []string{module + "/lab", module + "/validate", module + "/components"},
		"the renderers are pure functions every wing calls"},
	{"./validate", []string{module + "/lab", module + "/components"},
		"validate runs against AWS: it reaches the lab only through the lab command (fault.LabCommand)"},
	{"./lab/...", []string{module + "/validate", module + "/components"}, "the lab stands alone"},
	{"./internal/...", []string{module + "/lab", module + "/validate", module + "/components"},
		"internal/ is shared by every wing and depends on none"},
}

// deps maps each package matching pattern to everything it links.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	own, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", pattern).Output()
	require.NoError(t, err, "go list %s", pattern)
	out := map[string][]string{}
	for _, root := range strings.Fields(string(own)) {
		ds, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", root).Output()
		require.NoError(t, err, "go list -deps %s", root)
		out[root] = strings.Fields(string(ds))
	}
	return out
}

func TestWingsDoNotLinkEachOther(t *testing.T) {
	for _, b := range boundaries {
		for root, ds := range deps(t, b.from) {
			for _, d := range ds {
				if d == root {
					continue
				}
				for _, f := range b.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s links %s: %s", root, d, b.why)
					}
				}
			}
		}
	}
}

// TestTopLevel keeps the top of the repository to the design's rooms.
func TestTopLevel(t *testing.T) {
	allowed := []string{".ci", ".git", ".gitignore", "Makefile", "Pulumi.dev.yaml", "Pulumi.yaml", "README.md",
		"components", "docs", "go.mod", "go.sum", "internal", "lab", "scripts", "tools", "userdata", "validate"}
	ents, err := os.ReadDir(".")
	require.NoError(t, err)
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".go") || slices.Contains(allowed, name) {
			continue
		}
		if _, err := exec.Command("git", "ls-files", "--error-unmatch", name).Output(); err != nil {
			continue // not part of the repository (a build output, a report)
		}
		assert.Fail(t, "unexpected top-level entry", "%s: the top level holds the program (main.go, program.go), components/, userdata/, internal/, lab/, validate/, docs/, scripts/, tools/ and .ci/ only", name)
	}
}
