package imds_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi/awsapitest"
	"github.com/pgha/pgha/lab/imds"
)

// aws-sdk-go-v2's IMDS client and its role credentials provider, then
// those credentials against the signed SSM API: what a Go program on a
// node would do.
func TestSDKClientAndRoleCredentials(t *testing.T) {
	l := newLab(t, imds.Options{})
	ctx := context.Background()
	client := sdkimds.New(sdkimds.Options{Endpoint: l.url + "/",
		// No IMDSv1 fallback: the instance requires tokens.
		EnableFallback: aws.FalseTernary})

	md, err := client.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: "instance-id"})
	require.NoError(t, err)
	id, _ := io.ReadAll(md.Content)
	assert.Equal(t, instanceID, string(id))
	reg, err := client.GetRegion(ctx, &sdkimds.GetRegionInput{})
	require.NoError(t, err)
	assert.Equal(t, region, reg.Region)
	info, err := client.GetIAMInfo(ctx, &sdkimds.GetIAMInfoInput{})
	require.NoError(t, err)
	assert.Equal(t, "arn:aws:iam::123456789012:instance-profile/pgha-dev-patroni-profile", info.InstanceProfileArn)
	doc, err := client.GetInstanceIdentityDocument(ctx, &sdkimds.GetInstanceIdentityDocumentInput{})
	require.NoError(t, err)
	assert.Equal(t, instanceID, doc.InstanceID)
	assert.Equal(t, "10.42.2.10", doc.PrivateIP)
	assert.Equal(t, region+"b", doc.AvailabilityZone)
	assert.False(t, doc.PendingTime.IsZero())
	ud, err := client.GetUserData(ctx, &sdkimds.GetUserDataInput{})
	require.NoError(t, err)
	b, _ := io.ReadAll(ud.Content)
	assert.Equal(t, userData, string(b))

	provider := aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client }))
	creds, err := provider.Retrieve(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(creds.AccessKeyID, "ASIA"))
	assert.NotEmpty(t, creds.SessionToken)
	assert.True(t, creds.CanExpire)
	assert.NotContains(t, l.log.String(), `auth="no token"`, "the SDK used IMDSv2 tokens throughout")

	api := awsapitest.Start(t, l.acct)
	c := api.SSM(provider)
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(pgPassword), WithDecryption: aws.Bool(true)})
	require.NoError(t, err)
	assert.Equal(t, "pg-secret", aws.ToString(out.Parameter.Value))
	_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(haPassword), WithDecryption: aws.Bool(true)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AccessDeniedException")
	assert.Contains(t, err.Error(), "User: arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/"+instanceID+
		" is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/haproxy-stats-password")
}
