package teardown

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/validate/internal/stackout"
)

// Exit statuses of Main.
const (
	ExitClean    = 0 // nothing left
	ExitLeftover = 1 // something of the stack is still there
	ExitError    = 2 // the check could not run
)

// Main is `validate teardown`: it checks that a destroyed stack left nothing
// in AWS. The project defaults to the name in Pulumi.yaml, the stack to the
// selected one and the region to the stack's aws:region (then the AWS
// SDK's usual AWS_REGION / profile lookup).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("teardown", flag.ContinueOnError)
	fs.SetOutput(stderr)
	project := fs.String("project", "", "Pulumi project name (default: name in Pulumi.yaml)")
	stack := fs.String("stack", "", "stack name (default: the selected stack)")
	region := fs.String("region", "", "AWS region (default: the stack's aws:region, then AWS_REGION)")
	dir := fs.String("dir", "", "directory of Pulumi.yaml (default: here or above)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	strict := fs.Bool("strict", false, "also exit 1 for the data volumes kept on purpose (pgha:protectDataVolumes)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: validate teardown [--project P] [--stack S] [--region R] [--json] [--strict]")
		fmt.Fprintln(stderr, "Lists by the stack's tags everything it left in AWS; exits 1 when anything is left")
		fmt.Fprintln(stderr, "but the data volumes the stack keeps on purpose (listed too; --strict counts them).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitClean
		}
		return ExitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "teardown: unexpected argument %q; see --help\n", fs.Arg(0))
		return ExitError
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "teardown: %v\n", err)
		return ExitError
	}

	if *project == "" {
		p, err := projectName(*dir)
		if err != nil {
			return fail(fmt.Errorf("%w (or pass --project)", err))
		}
		*project = p
	}
	if *stack == "" {
		s, err := stackout.CurrentStack(ctx, *dir)
		if err != nil {
			return fail(fmt.Errorf("finding the stack: %w (or pass --stack)", err))
		}
		*stack = s
	}
	// The tag holds the bare stack name, as the program sees it.
	*stack = (*stack)[strings.LastIndex(*stack, "/")+1:]
	if *region == "" {
		if r, err := stackout.Config(ctx, stackout.Options{Dir: *dir, Stack: *stack}, "aws:region"); err == nil {
			*region = r
		}
	}
	var opts []func(*config.LoadOptions) error
	if *region != "" {
		opts = append(opts, config.WithRegion(*region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fail(fmt.Errorf("loading AWS configuration: %w", err))
	}
	if cfg.Region == "" {
		return fail(errors.New("no AWS region: pass --region, set aws:region on the stack, or set AWS_REGION"))
	}
	// Credentials are resolved lazily by the SDK; asking once up front turns
	// "none found" into one clear line instead of an error per service.
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return fail(errors.New("no usable AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, for an identity with the read-only permissions in docs/validate-aws.md"))
	}
	rep, err := Check(ctx, cfg, *project, *stack)
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(err)
		}
	} else {
		rep.Write(stdout)
	}
	if !rep.Clean() || (*strict && len(rep.Kept()) > 0) {
		return ExitLeftover
	}
	return ExitClean
}

// projectName reads the name from Pulumi.yaml.
func projectName(dir string) (string, error) {
	pdir, err := stackout.ProjectDir(dir)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(pdir, "Pulumi.yaml"))
	if err != nil {
		return "", err
	}
	var p struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(b, &p); err != nil || p.Name == "" {
		return "", fmt.Errorf("%s has no project name", filepath.Join(pdir, "Pulumi.yaml"))
	}
	return p.Name, nil
}
