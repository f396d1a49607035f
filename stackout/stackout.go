// Package stackout reads a Pulumi stack's outputs, secrets included, through
// the Automation API and turns them into the outputs contract that validate
// checks. It is the AWS counterpart of the JSON file the lab writes.
package stackout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/pgha/pgha/outputs"
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

// ToolsDir is where tools/pulumi/build.sh puts the CLI it builds:
// $PGHA_TOOLS, else ~/.cache/pgha. The binary is ToolsDir()/bin/pulumi.
func ToolsDir() string {
	if d := os.Getenv("PGHA_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "pgha-tools")
	}
	return filepath.Join(home, ".cache", "pgha")
}

// ErrNoCLI says that no pulumi CLI was found.
var ErrNoCLI = errors.New("the pulumi CLI was not found")

// FindCLI returns the directory to hand the Automation API as the CLI's root
// ("" means the pulumi on PATH) and the binary's path.
func FindCLI() (root, bin string, err error) {
	if p, err := exec.LookPath("pulumi"); err == nil {
		return "", p, nil
	}
	cached := filepath.Join(ToolsDir(), "bin", "pulumi")
	if st, err := os.Stat(cached); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return ToolsDir(), cached, nil
	}
	return "", "", fmt.Errorf("%w on PATH or at %s: install Pulumi (see Pulumi's \"Download & install\" page) or build it with tools/pulumi/build.sh", ErrNoCLI, cached)
}

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

// workspace opens a LocalWorkspace on the project with a clear error for
// each way that commonly fails before any stack is touched.
func workspace(ctx context.Context, dir string) (auto.Workspace, string, error) {
	pdir, err := ProjectDir(dir)
	if err != nil {
		return nil, "", err
	}
	root, _, err := FindCLI()
	if err != nil {
		return nil, "", err
	}
	if err := checkBackend(pdir); err != nil {
		return nil, "", err
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	if err != nil {
		return nil, "", fmt.Errorf("the pulumi CLI does not run: %w (rebuild it with tools/pulumi/build.sh)", err)
	}
	ws, err := auto.NewLocalWorkspace(ctx,
		auto.WorkDir(pdir),
		auto.Pulumi(cmd),
		// Reading outputs must never reach out for updates or plugins.
		auto.EnvVars(map[string]string{
			"PULUMI_SKIP_UPDATE_CHECK":                    "true",
			"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
		}),
	)
	if err != nil {
		return nil, "", fmt.Errorf("opening the Pulumi project in %s: %w", pdir, explain(err))
	}
	return ws, pdir, nil
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
	case auto.IsSelectStack404Error(err) || strings.Contains(msg, "no stack named"):
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
	return errors.New(oneLine(msg))
}

// oneLine keeps what the CLI said went wrong ("error: ..." on its stderr)
// and drops the rest of the Automation API's multi-line error.
func oneLine(msg string) string {
	first := msg
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		first = msg[:i]
	}
	if i := strings.Index(msg, "\nstderr: "); i >= 0 {
		var errs []string
		for _, l := range strings.Split(msg[i+len("\nstderr: "):], "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "error:") {
				errs = append(errs, strings.TrimSpace(strings.TrimPrefix(l, "error:")))
			}
		}
		if len(errs) > 0 {
			return first + ": " + strings.Join(errs, "; ")
		}
	}
	return first
}

// CurrentStack returns the stack selected in the project directory.
func CurrentStack(ctx context.Context, dir string) (string, error) {
	ws, _, err := workspace(ctx, dir)
	if err != nil {
		return "", err
	}
	return currentStack(ctx, ws)
}

func currentStack(ctx context.Context, ws auto.Workspace) (string, error) {
	sum, err := ws.Stack(ctx)
	if err != nil {
		return "", explain(err)
	}
	if sum == nil || sum.Name == "" {
		return "", errors.New("no stack is selected: pass --stack NAME or run `pulumi stack select NAME`")
	}
	return sum.Name, nil
}

// selectStack opens the named (or current) stack.
func selectStack(ctx context.Context, opts Options) (auto.Stack, error) {
	ws, _, err := workspace(ctx, opts.Dir)
	if err != nil {
		return auto.Stack{}, err
	}
	name := opts.Stack
	if name == "" {
		if name, err = currentStack(ctx, ws); err != nil {
			return auto.Stack{}, err
		}
	}
	st, err := auto.SelectStack(ctx, name, ws)
	if err != nil {
		return auto.Stack{}, fmt.Errorf("stack %q: %w", name, explain(err))
	}
	return st, nil
}

// Read returns the stack's outputs, secrets included, checked against the
// contract.
func Read(ctx context.Context, opts Options) (outputs.Stack, error) {
	st, err := selectStack(ctx, opts)
	if err != nil {
		return outputs.Stack{}, err
	}
	m, err := st.Outputs(ctx)
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("stack %q: reading outputs: %w", st.Name(), explain(err))
	}
	s, err := FromOutputMap(m)
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("stack %q: %w", st.Name(), err)
	}
	return s, nil
}

// Config returns one config value of the stack ("aws:region"), "" when unset.
func Config(ctx context.Context, opts Options, key string) (string, error) {
	st, err := selectStack(ctx, opts)
	if err != nil {
		return "", err
	}
	all, err := st.GetAllConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("stack %q: reading config: %w", st.Name(), explain(err))
	}
	return all[key].Value, nil
}

// FromOutputMap converts the Automation API's outputs into the contract by a
// JSON round trip, so the shape is exactly the one the lab's file has. The
// outputs that hold secrets must be marked secret in the stack: a plain one
// would mean the program leaked it into the state in clear text.
func FromOutputMap(m auto.OutputMap) (outputs.Stack, error) {
	if len(m) == 0 {
		return outputs.Stack{}, errors.New("the stack has no outputs: run `pulumi up` first")
	}
	var leaked []string
	for _, k := range outputs.SecretKeys {
		if v, ok := m[k]; ok && !v.Secret {
			leaked = append(leaked, k)
		}
	}
	if len(leaked) > 0 {
		sort.Strings(leaked)
		return outputs.Stack{}, fmt.Errorf("output(s) %s hold secrets but are not marked secret in the stack; export them with pulumi.ToSecret", strings.Join(leaked, ", "))
	}
	plain := make(map[string]any, len(m))
	for k, v := range m {
		plain[k] = v.Value
	}
	b, err := json.Marshal(plain)
	if err != nil {
		return outputs.Stack{}, fmt.Errorf("stack outputs: %w", err)
	}
	return outputs.Parse(b)
}
