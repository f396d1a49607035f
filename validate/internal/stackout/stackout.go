// Package stackout reads a Pulumi stack's outputs, secrets included, by
// running the pulumi CLI (`pulumi stack output --json`), and turns them into
// the outputs contract that validate checks. It is the AWS counterpart of
// the JSON file the lab writes.
package stackout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pulumicli"
)

// Options choose the project and stack.
type Options struct {
	// Dir holds Pulumi.yaml. Empty: the nearest one at or above the working
	// directory.
	Dir string
	// Stack is the stack name ("dev" or "org/project/dev"). Empty: the
	// stack currently selected in Dir.
	Stack string
}

// ErrNoCLI says that no pulumi CLI was found.
var ErrNoCLI = pulumicli.ErrNoCLI

// ProjectDir finds the directory holding Pulumi.yaml, starting at dir (or
// the working directory) and walking up.
func ProjectDir(dir string) (string, error) {
	start := dir
	if start == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		start = wd
	}
	d, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "Pulumi.yaml")); err == nil {
			return d, nil
		}
		if dir != "" {
			break // an explicit directory must hold the project itself
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return "", fmt.Errorf("no Pulumi.yaml in %s%s: run from the pgha repository (where Pulumi.yaml is) or pass its directory",
		d, map[bool]string{true: " or any directory above it", false: ""}[dir == ""])
}

// project finds the project and refuses early what commonly fails before
// any stack is touched: no CLI, no backend.
func project(dir string) (string, error) {
	pdir, err := ProjectDir(dir)
	if err != nil {
		return "", err
	}
	if _, _, err := pulumicli.Find(); err != nil {
		return "", err
	}
	if err := checkBackend(pdir); err != nil {
		return "", err
	}
	return pdir, nil
}

// checkBackend refuses early when no state backend is configured. Without
// one the CLI would try to log in to Pulumi Cloud, which fails without a
// token and is not what a user of a self-managed backend wants.
func checkBackend(projectDir string) error {
	if os.Getenv("PULUMI_BACKEND_URL") != "" || os.Getenv("PULUMI_ACCESS_TOKEN") != "" {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(projectDir, "Pulumi.yaml")); err == nil && strings.Contains(string(b), "\nbackend:") {
		return nil
	}
	home := os.Getenv("PULUMI_HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil // let the CLI decide
		}
		home = filepath.Join(h, ".pulumi")
	}
	var creds struct {
		Current string `json:"current"`
	}
	if b, err := os.ReadFile(filepath.Join(home, "credentials.json")); err == nil && json.Unmarshal(b, &creds) == nil && creds.Current != "" {
		return nil
	}
	return errors.New("no Pulumi backend is set: run `pulumi login` (for example `pulumi login --local` or `pulumi login s3://<bucket>`) or set PULUMI_BACKEND_URL")
}

// explain turns the CLI's failures into one line that says what to change.
func explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no stack named") || strings.Contains(msg, "not found") && strings.Contains(msg, "stack"):
		return fmt.Errorf("the stack does not exist in this backend: list stacks with `pulumi stack ls`, or create one with `pulumi stack init` and `pulumi up`")
	case strings.Contains(msg, "incorrect passphrase"):
		return errors.New("PULUMI_CONFIG_PASSPHRASE does not decrypt this stack's secrets: set the passphrase the stack was created with")
	case strings.Contains(msg, "passphrase must be set") || strings.Contains(msg, "PULUMI_CONFIG_PASSPHRASE"):
		return errors.New("the stack's secrets are encrypted with a passphrase: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)")
	case strings.Contains(msg, "PULUMI_ACCESS_TOKEN must be set"):
		return errors.New("no Pulumi backend is set: run `pulumi login` (for example `pulumi login --local`) or set PULUMI_BACKEND_URL")
	case strings.Contains(msg, "no stack selected") || strings.Contains(msg, "no current stack"):
		return errors.New("no stack is selected: pass --stack NAME or run `pulumi stack select NAME`")
	}
	return errors.New(oneLine(err))
}

// oneLine keeps what the CLI said went wrong (its "error: ..." lines).
func oneLine(err error) string {
	var ce *pulumicli.Error
	if !errors.As(err, &ce) {
		first, _, _ := strings.Cut(err.Error(), "\n")
		return first
	}
	var errs []string
	for _, l := range strings.Split(ce.Stderr, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "error:") {
			errs = append(errs, strings.TrimSpace(strings.TrimPrefix(l, "error:")))
		}
	}
	cmd := "pulumi " + strings.Join(ce.Args, " ")
	if len(errs) == 0 {
		first, _, _ := strings.Cut(strings.TrimSpace(ce.Stderr), "\n")
		if first == "" {
			first = ce.Err.Error()
		}
		return cmd + ": " + first
	}
	return cmd + ": " + strings.Join(errs, "; ")
}

// CurrentStack returns the stack selected in the project directory.
func CurrentStack(ctx context.Context, dir string) (string, error) {
	pdir, err := project(dir)
	if err != nil {
		return "", err
	}
	return currentStack(ctx, pdir)
}

func currentStack(ctx context.Context, pdir string) (string, error) {
	out, err := pulumicli.Run(ctx, pdir, "stack", "--show-name")
	if err != nil {
		return "", explain(err)
	}
	name := strings.TrimSpace(string(out))
	if name == "" {
		return "", errors.New("no stack is selected: pass --stack NAME or run `pulumi stack select NAME`")
	}
	return name, nil
}

// stack resolves the project directory and the stack name.
func stack(ctx context.Context, opts Options) (pdir, name string, err error) {
	if pdir, err = project(opts.Dir); err != nil {
		return "", "", err
	}
	name = opts.Stack
	if name == "" {
		if name, err = currentStack(ctx, pdir); err != nil {
			return "", "", err
		}
	}
	return pdir, name, nil
}

// Read returns the stack's outputs, secrets included, checked against the
// contract.
func Read(ctx context.Context, opts Options) (outputs.Stack, error) {
	pdir, name, err := stack(ctx, opts)
	if err != nil {
		return outputs.Stack{}, err
	}
	// Without --show-secrets the CLI masks every secret output as
	// "[secret]": that is how to tell which outputs the stack holds as
	// secrets. The second read reveals them.
	masked, err := pulumicli.Run(ctx, pdir, "stack", "output", "--json", "--stack", name)
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("stack %q: reading outputs: %w", name, explain(err))
	}
	shown, err := pulumicli.Run(ctx, pdir, "stack", "output", "--json", "--show-secrets", "--stack", name)
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("stack %q: reading outputs: %w", name, explain(err))
	}
	s, err := Parse(masked, shown)
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("stack %q: %w", name, err)
	}
	return s, nil
}

// Config returns one config value of the stack ("aws:region"), "" when unset.
func Config(ctx context.Context, opts Options, key string) (string, error) {
	pdir, name, err := stack(ctx, opts)
	if err != nil {
		return "", err
	}
	out, err := pulumicli.Run(ctx, pdir, "config", "--json", "--stack", name)
	if err != nil {
		return "", fmt.Errorf("stack %q: reading config: %w", name, explain(err))
	}
	var all map[string]struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(out, &all); err != nil {
		return "", fmt.Errorf("stack %q: the CLI printed no JSON config: %w", name, err)
	}
	return all[key].Value, nil
}

// SecretMask is how `pulumi stack output --json` prints a secret.
const SecretMask = "[secret]"

// Parse turns the CLI's two JSON documents (masked: without --show-secrets;
// shown: with it) into the contract. The outputs that hold secrets must be
// masked in the first: a plain one would mean the program leaked it into
// the state in clear text.
func Parse(masked, shown []byte) (outputs.Stack, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(masked, &m); err != nil {
		return outputs.Stack{}, fmt.Errorf("the CLI printed no JSON outputs: %w", err)
	}
	if len(m) == 0 {
		return outputs.Stack{}, errors.New("the stack has no outputs: run `pulumi up` first")
	}
	var leaked []string
	for _, k := range outputs.SecretKeys {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil || s != SecretMask {
			leaked = append(leaked, k)
		}
	}
	if len(leaked) > 0 {
		sort.Strings(leaked)
		return outputs.Stack{}, fmt.Errorf("output(s) %s hold secrets but are not marked secret in the stack; export them with pulumi.ToSecret", strings.Join(leaked, ", "))
	}
	if bytes.Contains(shown, []byte(`"`+SecretMask+`"`)) {
		return outputs.Stack{}, errors.New("the CLI did not reveal the secret outputs (is --show-secrets refused by the backend?)")
	}
	return outputs.Parse(shown)
}
