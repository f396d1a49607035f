package awsapi_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/lab/awsapi"
)

const (
	testAccount = "123456789012"
	testRegion  = "eu-west-1"
)

// tierSecretsPolicy is the policy the Pulumi program attaches to each
// tier's instance role: the tests evaluate exactly its output.
var tierSecretsPolicy = iampolicy.SecretsRead

// fixture is an account laid out like a pgha stack "dev", plus a second
// stack "prod" whose parameters and instances dev must not reach.
type fixture struct {
	acct *awsapi.Account
}

const (
	pgPassword      = "/pgha/dev/postgres-password"
	replPassword    = "/pgha/dev/replication-password"
	statsPassword   = "/pgha/dev/haproxy-stats-password"
	prodPgPassword  = "/pgha/prod/postgres-password"
	clusterName     = "/pgha/dev/cluster-name"
	devInstance     = "i-0123456789abcdef0"
	prodInstance    = "i-0fedcba9876543210"
	unknownInstance = "i-00000000000000000"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	a, err := awsapi.NewAccount(testAccount, testRegion)
	require.NoError(t, err)
	for name, value := range map[string]string{
		pgPassword: "pg-secret", replPassword: "repl-secret", statsPassword: "stats-secret", prodPgPassword: "prod-secret",
	} {
		_, err := a.PutParameter(name, value, awsapi.SecureString)
		require.NoError(t, err)
	}
	_, err = a.PutParameter(clusterName, "pgha-dev", awsapi.String)
	require.NoError(t, err)

	arns := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, a.ParameterARN(n))
		}
		return out
	}
	require.NoError(t, a.AddRole("pgha-dev-patroni"))
	require.NoError(t, a.PutRolePolicy("pgha-dev-patroni", "secrets",
		tierSecretsPolicy(arns(pgPassword, replPassword), "aws", testRegion, testAccount)))
	require.NoError(t, a.AddRole("pgha-dev-haproxy"))
	require.NoError(t, a.PutRolePolicy("pgha-dev-haproxy", "secrets",
		tierSecretsPolicy(arns(statsPassword), "aws", testRegion, testAccount)))
	require.NoError(t, a.AddRole("pgha-dev-etcd")) // reads no secret: no policy at all

	for id, stack := range map[string]string{devInstance: "dev", prodInstance: "prod"} {
		require.NoError(t, a.AddInstance(awsapi.Instance{
			ID: id, ImageID: "ami-0abcdef1234567890", InstanceType: "t3.small",
			PrivateIP:        netip.MustParseAddr(map[string]string{"dev": "10.42.2.10", "prod": "10.43.2.10"}[stack]),
			AvailabilityZone: testRegion + "a",
			Tags:             map[string]string{"pgha:project": "pgha", "pgha:stack": stack, "Name": "patroni-1"},
		}))
	}
	return &fixture{acct: a}
}

// roleCreds are the credentials IMDS would hand an instance of the role.
func (f *fixture) roleCreds(t *testing.T, role string) awsapi.Credentials {
	t.Helper()
	c, err := f.acct.RoleCredentials(role, devInstance, 0)
	require.NoError(t, err)
	return c
}

// apiCode unwraps the service error code a client got.
func apiCode(t *testing.T, err error) (code, msg string) {
	t.Helper()
	require.Error(t, err)
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "not an API error: %v", err)
	return ae.ErrorCode(), ae.ErrorMessage()
}
