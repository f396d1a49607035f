package imds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi/awsapitest"
	"github.com/pgha/pgha/lab/imds"
)

// The user data's command, as a node runs it: awscli with no credentials
// but the instance role's, found through IMDS, reading a SecureString
// from SSM over TLS. Allowed for the tier's parameter; AccessDenied, exit
// 254, for another tier's.
func TestAWSCLIReadsSecretWithInstanceRole(t *testing.T) {
	cli := awsapitest.AWSCLI(t)
	// The boot allowance is on, as in the boot lab: awscli must still use
	// a token for the credentials.
	l := newLab(t, imds.Options{AllowTokenlessBoot: true})
	api := awsapitest.Start(t, l.acct)
	env := awsapitest.CLIEnv(t, api.CAFile, l.url+"/")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	getParameter := func(name string) awsapitest.Result {
		return awsapitest.Run(ctx, env, cli, "ssm", "get-parameter", "--with-decryption",
			"--region", region, "--name", name, "--endpoint-url", api.URL,
			"--query", "Parameter.Value", "--output", "text")
	}

	r := getParameter(pgPassword)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	assert.Equal(t, "pg-secret\n", r.Stdout)

	r = getParameter(haPassword)
	assert.Equal(t, 254, r.ExitCode)
	assert.Equal(t, "\nAn error occurred (AccessDeniedException) when calling the GetParameter operation: "+
		"User: arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/"+instanceID+
		" is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/haproxy-stats-password"+
		" because no identity-based policy allows the ssm:GetParameter action\n", r.Stderr)

	// botocore took a token first, and read the credentials with it.
	log := l.log.String()
	assert.Contains(t, log, "PUT /latest/api/token status=200")
	assert.Contains(t, log, "GET /latest/meta-data/iam/security-credentials/"+role+` status=200 auth="token"`)
	assert.NotContains(t, log, `auth="tokenless"`)
	assert.Contains(t, api.Log(), "caller=arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/"+instanceID)
	assert.True(t, strings.Count(api.Log(), "\n") >= 2)
}

// Without IMDS (and no other credentials), awscli finds none: the test
// environment really is empty.
func TestAWSCLIWithoutIMDSHasNoCredentials(t *testing.T) {
	cli := awsapitest.AWSCLI(t)
	l := newLab(t, imds.Options{})
	api := awsapitest.Start(t, l.acct)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := awsapitest.Run(ctx, awsapitest.CLIEnv(t, api.CAFile, ""), cli, "ssm", "get-parameter",
		"--region", region, "--name", pgPassword, "--endpoint-url", api.URL)
	assert.Equal(t, 253, r.ExitCode, r.Stderr)
	assert.Contains(t, r.Stderr, "Unable to locate credentials")
}
