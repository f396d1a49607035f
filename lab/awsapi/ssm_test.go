package awsapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
)

// A Patroni node's role, granted its tier's parameters by the policy the
// Pulumi program writes, reads them decrypted and is refused the others,
// through aws-sdk-go-v2's SSM client over TLS.
func TestSSMTierPolicyGrantsOnlyItsParameters(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	creds := f.roleCreds(t, "pgha-dev-patroni")
	c := srv.SSM(creds.Provider())
	ctx := context.Background()

	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword), WithDecryption: aws.Bool(true)})
	require.NoError(t, err)
	assert.Equal(t, "pg-secret", aws.ToString(out.Parameter.Value))
	assert.Equal(t, "SecureString", string(out.Parameter.Type))
	assert.Equal(t, "arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/postgres-password", aws.ToString(out.Parameter.ARN))
	assert.EqualValues(t, 1, out.Parameter.Version)
	assert.False(t, out.Parameter.LastModifiedDate.IsZero())

	for _, name := range []string{statsPassword, prodPgPassword, clusterName} {
		_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		code, msg := apiCode(t, err)
		assert.Equal(t, "AccessDeniedException", code)
		assert.Equal(t, fmt.Sprintf("User: arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/%s is not authorized to perform: ssm:GetParameter on resource: %s because no identity-based policy allows the ssm:GetParameter action",
			devInstance, f.acct.ParameterARN(name)), msg)
	}
	assert.Contains(t, srv.Log(), "action=ssm:GetParameter caller=arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/"+devInstance+
		" resource=arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/haproxy-stats-password decision=deny status=400 error=AccessDeniedException")

	// The HAProxy role is the mirror image; etcd's, with no policy, reads nothing.
	hc := srv.SSM(f.roleCreds(t, "pgha-dev-haproxy").Provider())
	out, err = hc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(statsPassword), WithDecryption: aws.Bool(true)})
	require.NoError(t, err)
	assert.Equal(t, "stats-secret", aws.ToString(out.Parameter.Value))
	_, err = hc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword), WithDecryption: aws.Bool(true)})
	code, _ := apiCode(t, err)
	assert.Equal(t, "AccessDeniedException", code)
	_, err = srv.SSM(f.roleCreds(t, "pgha-dev-etcd").Provider()).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(clusterName)})
	code, _ = apiCode(t, err)
	assert.Equal(t, "AccessDeniedException", code)
}

func TestSSMGetParameters(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	ctx := context.Background()
	c := srv.SSM(f.roleCreds(t, "pgha-dev-patroni").Provider())

	out, err := c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{pgPassword, replPassword}, WithDecryption: aws.Bool(true)})
	require.NoError(t, err)
	require.Len(t, out.Parameters, 2)
	assert.Equal(t, "pg-secret", aws.ToString(out.Parameters[0].Value))
	assert.Equal(t, "repl-secret", aws.ToString(out.Parameters[1].Value))
	assert.Empty(t, out.InvalidParameters)

	// One name outside the grant fails the whole call.
	_, err = c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{pgPassword, statsPassword}, WithDecryption: aws.Bool(true)})
	code, msg := apiCode(t, err)
	assert.Equal(t, "AccessDeniedException", code)
	assert.Contains(t, msg, "ssm:GetParameters on resource: "+f.acct.ParameterARN(statsPassword))

	// A missing name the policy covers is listed, not an error.
	wide := srv.SSM(roleWith(t, f, "wide", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"ssm:GetParameter*","Resource":"arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/*"},
		{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}`).Provider())
	out, err = wide.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{clusterName, "/pgha/dev/nope"}})
	require.NoError(t, err)
	require.Len(t, out.Parameters, 1)
	assert.Equal(t, "pgha-dev", aws.ToString(out.Parameters[0].Value))
	assert.Equal(t, []string{"/pgha/dev/nope"}, out.InvalidParameters)

	_, err = wide.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/pgha/dev/nope")})
	code, _ = apiCode(t, err)
	assert.Equal(t, "ParameterNotFound", code)

	// Without WithDecryption a SecureString comes back encrypted, and no
	// kms:Decrypt is needed.
	g, err := wide.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword)})
	require.NoError(t, err)
	assert.NotEqual(t, "pg-secret", aws.ToString(g.Parameter.Value))
	assert.NotEmpty(t, aws.ToString(g.Parameter.Value))

	// Versions, by selector and by ARN.
	_, err = f.acct.PutParameter(clusterName, "pgha-dev-2", awsapi.String)
	require.NoError(t, err)
	g, err = wide.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(clusterName + ":1")})
	require.NoError(t, err)
	assert.Equal(t, "pgha-dev", aws.ToString(g.Parameter.Value))
	assert.Equal(t, ":1", aws.ToString(g.Parameter.Selector))
	g, err = wide.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(f.acct.ParameterARN(clusterName))})
	require.NoError(t, err)
	assert.Equal(t, "pgha-dev-2", aws.ToString(g.Parameter.Value))
	assert.EqualValues(t, 2, g.Parameter.Version)
	_, err = wide.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(clusterName + ":7")})
	code, _ = apiCode(t, err)
	assert.Equal(t, "ParameterVersionNotFound", code)
}

// Decrypting a SecureString is a kms:Decrypt by SSM on the caller's
// behalf: without it, or through another region's SSM, the read is refused
// with KMS's message, as on AWS.
func TestSSMDecryptNeedsKMSThroughSSM(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	ctx := context.Background()
	read := `{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"*"}`

	noKMS := srv.SSM(roleWith(t, f, "no-kms", `{"Version":"2012-10-17","Statement":[`+read+`]}`).Provider())
	_, err := noKMS.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword), WithDecryption: aws.Bool(true)})
	code, msg := apiCode(t, err)
	assert.Equal(t, "AccessDeniedException", code)
	assert.Contains(t, msg, "assumed-role/no-kms/"+devInstance+" is not authorized to perform: kms:Decrypt on resource: "+f.acct.KMSKeyARN()+
		" because no identity-based policy allows the kms:Decrypt action (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException;")
	// A String parameter needs no key.
	_, err = noKMS.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(clusterName), WithDecryption: aws.Bool(true)})
	require.NoError(t, err)

	otherRegion := srv.SSM(roleWith(t, f, "other-region",
		tierSecretsPolicy([]string{f.acct.ParameterARN(pgPassword)}, "aws", "us-east-1", testAccount)).Provider())
	_, err = otherRegion.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword), WithDecryption: aws.Bool(true)})
	code, _ = apiCode(t, err)
	assert.Equal(t, "AccessDeniedException", code)

	denyKMS := srv.SSM(roleWith(t, f, "deny-kms", `{"Version":"2012-10-17","Statement":[`+read+`,
		{"Effect":"Allow","Action":"kms:*","Resource":"*"},
		{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*","Condition":{"StringLike":{"kms:EncryptionContext:PARAMETER_ARN":"*/prod/*"}}}]}`).Provider())
	_, err = denyKMS.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword), WithDecryption: aws.Bool(true)})
	require.NoError(t, err)
	_, err = denyKMS.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(prodPgPassword), WithDecryption: aws.Bool(true)})
	_, msg = apiCode(t, err)
	assert.Contains(t, msg, "kms:Decrypt on resource: "+f.acct.KMSKeyARN()+" with an explicit deny in an identity-based policy")
}

// roleWith adds a role with one policy and returns its credentials.
func roleWith(t *testing.T, f *fixture, role, policy string) awsapi.Credentials {
	t.Helper()
	require.NoError(t, f.acct.AddRole(role))
	require.NoError(t, f.acct.PutRolePolicy(role, "p", policy))
	return f.roleCreds(t, role)
}
