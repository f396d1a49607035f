package awsapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
)

// awscli (botocore) signs differently from the Go SDK (other headers, no
// Content-Length): this is the client the nodes run, checked end to end
// over TLS with the lab CA as its only trust.
func TestAWSCLIAgainstSSMAndEC2(t *testing.T) {
	cli := awsapitest.AWSCLI(t)
	f := newFixture(t)
	f.acct.SetMachines(nil)
	srv := awsapitest.Start(t, f.acct)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	withKeys := func(c awsapi.Credentials) []string {
		env := append(awsapitest.CLIEnv(t, srv.CAFile, ""),
			"AWS_ACCESS_KEY_ID="+c.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey)
		if c.SessionToken != "" {
			env = append(env, "AWS_SESSION_TOKEN="+c.SessionToken)
		}
		return env
	}
	aws := func(env []string, args ...string) awsapitest.Result {
		return awsapitest.Run(ctx, env, cli, append([]string{"--endpoint-url", srv.URL, "--region", testRegion}, args...)...)
	}

	// The user data's command, under a Patroni role session.
	patroni := withKeys(f.roleCreds(t, "pgha-dev-patroni"))
	r := aws(patroni, "ssm", "get-parameter", "--with-decryption", "--name", pgPassword, "--query", "Parameter.Value", "--output", "text")
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	assert.Equal(t, "pg-secret\n", r.Stdout)

	r = aws(patroni, "ssm", "get-parameter", "--with-decryption", "--name", statsPassword)
	assert.Equal(t, 254, r.ExitCode, "awscli v2 exits 254 on a service error")
	assert.Contains(t, r.Stderr, "An error occurred (AccessDeniedException) when calling the GetParameter operation: User: arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/"+devInstance+
		" is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/haproxy-stats-password because no identity-based policy allows the ssm:GetParameter action")

	// The CA is the only trust: without it, awscli refuses the endpoint.
	rc := f.roleCreds(t, "pgha-dev-patroni")
	noCA := append(awsapitest.CLIEnv(t, "", ""), "AWS_ACCESS_KEY_ID="+rc.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+rc.SecretAccessKey, "AWS_SESSION_TOKEN="+rc.SessionToken)
	r = aws(noCA, "ssm", "get-parameter", "--name", pgPassword)
	assert.Equal(t, 255, r.ExitCode)
	assert.Contains(t, r.Stderr, "SSL validation failed")

	r = aws(patroni, "ssm", "get-parameters", "--with-decryption", "--names", pgPassword, replPassword)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	var gp struct {
		Parameters []struct{ Name, Value string }
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &gp))
	require.Len(t, gp.Parameters, 2)
	assert.Equal(t, "repl-secret", gp.Parameters[1].Value)

	bad := withKeys(awsapi.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
	r = aws(bad, "ssm", "get-parameter", "--name", pgPassword)
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "(UnrecognizedClientException) when calling the GetParameter operation: The security token included in the request is invalid.")
	wrongSecret := f.roleCreds(t, "pgha-dev-patroni")
	// Change the first character, whatever it was (a random secret starts
	// with "x" once in 64 runs).
	first := "x"
	if strings.HasPrefix(wrongSecret.SecretAccessKey, "x") {
		first = "y"
	}
	wrongSecret.SecretAccessKey = first + wrongSecret.SecretAccessKey[1:]
	r = aws(withKeys(wrongSecret), "ssm", "get-parameter", "--name", pgPassword)
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "(InvalidSignatureException)")

	// validate's operator, with the documented policy.
	op := withKeys(operator(t, f, validatePolicy(t)))
	r = aws(op, "ec2", "describe-instances", "--instance-ids", devInstance)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	var di struct {
		Reservations []struct {
			Instances []struct {
				InstanceId, PrivateIpAddress string
				State                        struct{ Name string }
				Placement                    struct{ AvailabilityZone string }
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &di))
	require.Len(t, di.Reservations, 1)
	assert.Equal(t, "10.42.2.10", di.Reservations[0].Instances[0].PrivateIpAddress)
	assert.Equal(t, "running", di.Reservations[0].Instances[0].State.Name)

	r = aws(op, "ec2", "stop-instances", "--force", "--instance-ids", prodInstance)
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "An error occurred (UnauthorizedOperation) when calling the StopInstances operation: You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/operator is not authorized to perform: ec2:StopInstances on resource: arn:aws:ec2:eu-west-1:123456789012:instance/"+prodInstance)

	r = aws(op, "ec2", "stop-instances", "--force", "--instance-ids", devInstance)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	assert.Contains(t, r.Stdout, `"StoppingInstances"`)
	// botocore's own waiter polls DescribeInstances until stopped.
	r = aws(op, "ec2", "wait", "instance-stopped", "--instance-ids", devInstance)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
}
