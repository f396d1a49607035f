package components

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// SecretSpec is one password: its short name (used in resource and
// parameter names) and, optionally, a value from a config secret.
type SecretSpec struct {
	Name  string // e.g. "superuser-password"
	Value string // empty: generate
}

// SecretsArgs describe the cluster's passwords.
type SecretsArgs struct {
	// ParameterPrefix is the SSM path of this stack, e.g. "/pgha/dev/".
	ParameterPrefix string
	Secrets         []SecretSpec
	Tags            Tagger
}

// Secrets holds every password as a secret Output and as an SSM SecureString
// parameter that the nodes read at boot.
type Secrets struct {
	pulumi.ResourceState

	// Values and ParameterNames are keyed by SecretSpec.Name.
	Values         map[string]pulumi.StringOutput
	ParameterNames map[string]string
	// Parameters must exist before a node boots and reads them.
	Parameters Dependencies
}

// ParameterName is the SSM name of one secret.
func ParameterName(prefix, name string) string { return prefix + name }

// NewSecrets generates the missing passwords and stores all of them in SSM.
func NewSecrets(ctx *pulumi.Context, name string, args *SecretsArgs, opts ...pulumi.ResourceOption) (*Secrets, error) {
	s := &Secrets{Values: map[string]pulumi.StringOutput{}, ParameterNames: map[string]string{}}
	if err := ctx.RegisterComponentResource(TypeSecrets, name, s, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(s)
	outs := pulumi.Map{}
	for _, spec := range args.Secrets {
		var value pulumi.StringOutput
		if spec.Value != "" {
			value = pulumi.ToSecret(pulumi.String(spec.Value)).(pulumi.StringOutput)
		} else {
			pw, err := random.NewRandomPassword(ctx, name+"-"+spec.Name, &random.RandomPasswordArgs{
				Length: pulumi.Int(32),
				// Letters and digits only: the value travels through
				// pgpass, YAML, an environment file and haproxy.cfg.
				Special: pulumi.Bool(false),
			}, parent)
			if err != nil {
				return nil, err
			}
			value = pw.Result // already secret
		}
		paramName := ParameterName(args.ParameterPrefix, spec.Name)
		param, err := ssm.NewParameter(ctx, name+"-"+spec.Name+"-param", &ssm.ParameterArgs{
			Name:        pulumi.String(paramName),
			Type:        pulumi.String("SecureString"), // encrypted with the account's aws/ssm key
			Value:       value,
			Description: pulumi.String(fmt.Sprintf("pgha %s of stack %s", spec.Name, args.Tags.Stack)),
			Tags:        args.Tags.Tags(RoleSecrets, "param-"+spec.Name),
		}, parent)
		if err != nil {
			return nil, err
		}
		s.Parameters = append(s.Parameters, param)
		s.Values[spec.Name] = value
		s.ParameterNames[spec.Name] = paramName
		outs[spec.Name+"-parameter"] = pulumi.String(paramName)
	}
	if err := ctx.RegisterResourceOutputs(s, outs); err != nil {
		return nil, err
	}
	return s, nil
}
