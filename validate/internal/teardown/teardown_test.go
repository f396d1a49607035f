package teardown

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

const (
	project = "pgha"
	stack   = "dev"
)

func ourTags(name string) map[string]string {
	return map[string]string{outputs.TagProject: project, outputs.TagStack: stack, outputs.TagRole: "test", "Name": "dev-" + name}
}

// otherTags belong to another stack of the same project: never ours.
func otherTags(name string) map[string]string {
	return map[string]string{outputs.TagProject: project, outputs.TagStack: "prod", "Name": "prod-" + name}
}

// awsConfig points the real SDK at the fake, with static credentials and the
// SDK's default retryer.
func awsConfig(t *testing.T, srv *httptest.Server) aws.Config {
	t.Helper()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("eu-west-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
		config.WithBaseEndpoint(srv.URL),
	)
	require.NoError(t, err)
	return cfg
}

// foreign fills the account with things that are not the stack's: another
// stack's copies of every kind, untagged resources and the default VPC.
func foreign(f *fakeAWS) {
	f.add(fakeRes{kind: KindInstance, id: "i-prod", tags: otherTags("pg"), attrs: map[string]string{"instance-state-name": "running"}})
	f.add(fakeRes{kind: KindInstance, id: "i-gone", tags: ourTags("pg-old"), attrs: map[string]string{"instance-state-name": "terminated"}})
	f.add(fakeRes{kind: KindInstance, id: "i-untagged", attrs: map[string]string{"instance-state-name": "running"}})
	f.add(fakeRes{kind: KindVolume, id: "vol-prod", tags: otherTags("vol"), attrs: map[string]string{"status": "in-use", "size": "20"}})
	f.add(fakeRes{kind: KindNATGateway, id: "nat-prod", tags: otherTags("nat"), attrs: map[string]string{"state": "available"}})
	f.add(fakeRes{kind: KindNATGateway, id: "nat-deleted", tags: ourTags("nat-old"), attrs: map[string]string{"state": "deleted"}})
	f.add(fakeRes{kind: KindElasticIP, id: "eipalloc-prod", tags: otherTags("eip"), attrs: map[string]string{"public-ip": "198.51.100.9"}})
	f.add(fakeRes{kind: KindNetworkInterface, id: "eni-prod", name: "prod eni", attrs: map[string]string{"status": "in-use", "vpc-id": "vpc-prod"}})
	f.add(fakeRes{kind: KindSecurityGroup, id: "sg-prod", name: "prod-sg", tags: otherTags("sg"), attrs: map[string]string{"vpc-id": "vpc-prod"}})
	f.add(fakeRes{kind: KindSecurityGroup, id: "sg-default", name: "default", attrs: map[string]string{"vpc-id": "vpc-default"}})
	f.add(fakeRes{kind: KindSubnet, id: "subnet-prod", tags: otherTags("subnet")})
	f.add(fakeRes{kind: KindRouteTable, id: "rtb-prod", tags: otherTags("rt")})
	f.add(fakeRes{kind: KindInternetGateway, id: "igw-prod", tags: otherTags("igw")})
	f.add(fakeRes{kind: KindVPC, id: "vpc-prod", tags: otherTags("vpc"), attrs: map[string]string{"is-default": "false"}})
	// A default VPC that someone tagged like the stack is still not reported.
	f.add(fakeRes{kind: KindVPC, id: "vpc-default", tags: ourTags("default"), attrs: map[string]string{"is-default": "true"}})
	f.add(fakeRes{kind: KindKeyPair, id: "key-prod", name: "prod-ssh", tags: otherTags("key")})
	f.add(fakeRes{kind: KindSSMParameter, id: "/pgha/prod/superuser-password", tags: otherTags("p")})
	f.add(fakeRes{kind: KindSSMParameter, id: "/pgha/devx/other", tags: otherTags("p")})
	f.add(fakeRes{kind: KindRole, id: "prod-patroni-role", tags: otherTags("role")})
	f.add(fakeRes{kind: KindRole, id: "AWSServiceRoleForSupport"})
	f.add(fakeRes{kind: KindInstanceProfile, id: "prod-patroni-profile", tags: otherTags("profile")})
	// More load balancers than one DescribeTags call takes (20).
	for i := 0; i < 22; i++ {
		f.add(fakeRes{kind: KindLoadBalancer, id: fmt.Sprintf("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/other-%d/%d", i, i), name: fmt.Sprintf("other-%d", i), tags: otherTags("nlb")})
	}
	f.add(fakeRes{kind: KindTargetGroup, id: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/prod-w/1", name: "prod-w", tags: otherTags("tg")})
}

// leftovers adds one or more of every kind that the stack left.
func leftovers(f *fakeAWS) map[string][]string {
	want := map[string][]string{}
	add := func(r fakeRes) {
		if r.tags == nil && r.kind != KindNetworkInterface {
			r.tags = ourTags(r.id)
		}
		f.add(r)
		want[r.kind] = append(want[r.kind], r.id)
	}
	for i := 1; i <= 3; i++ { // more than one page
		add(fakeRes{kind: KindInstance, id: fmt.Sprintf("i-0pg%d", i), attrs: map[string]string{"instance-state-name": []string{"running", "stopped", "stopping"}[i-1]}})
		add(fakeRes{kind: KindVolume, id: fmt.Sprintf("vol-0pg%d", i), attrs: map[string]string{"status": "available", "size": "20"}})
		add(fakeRes{kind: KindSubnet, id: fmt.Sprintf("subnet-priv%d", i)})
		add(fakeRes{kind: KindSSMParameter, id: fmt.Sprintf("/pgha/dev/secret-%d", i)})
	}
	add(fakeRes{kind: KindNATGateway, id: "nat-0dev", attrs: map[string]string{"state": "deleting"}})
	add(fakeRes{kind: KindBucket, id: "pgha-dev-123456789012-eu-west-1"})
	add(fakeRes{kind: KindKMSKey, id: "1234abcd-12ab-34cd-56ef-1234567890ab"})
	add(fakeRes{kind: KindElasticIP, id: "eipalloc-0dev", attrs: map[string]string{"public-ip": "198.51.100.7"}})
	add(fakeRes{kind: KindLoadBalancer, id: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/dev-nlb/abc", name: "dev-nlb"})
	add(fakeRes{kind: KindTargetGroup, id: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/dev-w/abc", name: "dev-w"})
	add(fakeRes{kind: KindSecurityGroup, id: "sg-0dev", name: "dev-patroni", attrs: map[string]string{"vpc-id": "vpc-0dev"}})
	add(fakeRes{kind: KindRouteTable, id: "rtb-0dev", attrs: map[string]string{"vpc-id": "vpc-0dev"}})
	add(fakeRes{kind: KindInternetGateway, id: "igw-0dev", attrs: map[string]string{"vpc-id": "vpc-0dev"}})
	add(fakeRes{kind: KindVPC, id: "vpc-0dev", attrs: map[string]string{"is-default": "false"}})
	add(fakeRes{kind: KindKeyPair, id: "key-0dev", name: "dev-ssh"})
	add(fakeRes{kind: KindRole, id: "patroni-role-1a2b3c4"})
	add(fakeRes{kind: KindInstanceProfile, id: "patroni-profile-1a2b3c4"})
	// An interface AWS made for an instance: untagged, found through the VPC.
	add(fakeRes{kind: KindNetworkInterface, id: "eni-0untagged", name: "Primary network interface", attrs: map[string]string{"status": "in-use", "vpc-id": "vpc-0dev"}})
	// One with the stack's tags, outside any leftover VPC.
	add(fakeRes{kind: KindNetworkInterface, id: "eni-0tagged", tags: ourTags("eni"), attrs: map[string]string{"status": "available", "vpc-id": "vpc-elsewhere"}})
	// An SSM parameter outside the path, found by its tags.
	add(fakeRes{kind: KindSSMParameter, id: "/elsewhere/dev-extra"})
	return want
}

func TestReportsEveryKindOfLeftoverBillableFirst(t *testing.T) {
	f, srv := newFakeAWS(t)
	foreign(f)
	want := leftovers(f)
	// Throttle a few calls, including a second page, to prove the SDK's
	// retry runs through this code.
	f.throttle["DescribeInstances"] = 1
	f.throttle["DescribeLoadBalancers"] = 1
	f.throttle["ListRoles"] = 1
	f.throttle["DescribeParameters"] = 1

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Check(ctx, awsConfig(t, srv), project, stack)
	require.NoError(t, err)
	require.False(t, rep.Clean())

	got := map[string][]string{}
	for _, l := range rep.Leftovers {
		got[l.Kind] = append(got[l.Kind], l.ID)
	}
	for _, k := range Kinds {
		require.ElementsMatch(t, want[k], got[k], "kind %s", k)
	}
	require.Len(t, got, len(Kinds), "every kind has a leftover")

	// Billable first, in the documented order.
	seenFree := false
	for _, l := range rep.Leftovers {
		if !l.Billable {
			seenFree = true
		}
		require.False(t, seenFree && l.Billable, "billable %s %s after a free one", l.Kind, l.ID)
	}
	require.Equal(t, KindInstance, rep.Leftovers[0].Kind)

	for _, a := range []string{"DescribeInstances", "DescribeLoadBalancers", "ListRoles", "DescribeParameters"} {
		require.Greater(t, f.count(a), 1, "%s was throttled once and retried", a)
	}
	// Pagination happened: 3 instances at 2 per page, plus the retry.
	require.GreaterOrEqual(t, f.count("DescribeInstances"), 3)
	require.GreaterOrEqual(t, f.count("DescribeTags"), 3, "22+ load balancers and target groups need batches of 20")
	for _, svc := range []string{"ec2", "elasticloadbalancing", "ssm", "iam", "tagging"} {
		require.True(t, f.services[svc], "service %s was asked", svc)
	}

	var b bytes.Buffer
	rep.Write(&b)
	out := b.String()
	t.Log("\n" + out)
	require.Contains(t, out, "billable")
	require.Contains(t, out, "i-0pg1")
	require.Less(t, strings.Index(out, "nat-0dev"), strings.Index(out, "sg-0dev"))
	require.NotContains(t, out, "prod")
	require.NotContains(t, out, "vpc-default")
}

func TestCleanAccountPasses(t *testing.T) {
	f, srv := newFakeAWS(t)
	foreign(f)
	f.throttle["DescribeVpcs"] = 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Check(ctx, awsConfig(t, srv), project, stack)
	require.NoError(t, err)
	require.True(t, rep.Clean(), "leftovers: %+v", rep.Leftovers)
	require.Equal(t, 3, f.count("DescribeVpcs"))
}

func TestAccessDeniedIsAnErrorNotAPass(t *testing.T) {
	f, srv := newFakeAWS(t)
	f.deny["DescribeNatGateways"] = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Check(ctx, awsConfig(t, srv), project, stack)
	require.ErrorContains(t, err, "listing NAT gateways")
	require.ErrorContains(t, err, "UnauthorizedOperation")
	require.Equal(t, 1, f.count("DescribeNatGateways"), "an authorization error is not retried")
}

// TestMain exercises the CLI entry with the SDK's own environment lookup.
func TestMainExitStatus(t *testing.T) {
	f, srv := newFakeAWS(t)
	foreign(f)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// A project directory, so the project name comes from Pulumi.yaml.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), []byte("name: pgha\nruntime: go\n"), 0o644))

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := run("--dir", dir, "--stack", "org/pgha/dev", "--region", "eu-west-1")
	require.Equal(t, ExitClean, code)
	require.Contains(t, out, "nothing of project \"pgha\" stack \"dev\"")

	leftovers(f)
	code, out, _ = run("--project", "pgha", "--stack", "dev", "--region", "eu-west-1", "--json")
	require.Equal(t, ExitLeftover, code)
	require.Contains(t, out, `"kind": "ec2 instance"`)

	code, _, errs := run("--dir", t.TempDir(), "--stack", "dev", "--region", "eu-west-1")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, "Pulumi.yaml")
	require.Equal(t, 1, strings.Count(errs, "\n"), "one line: %q", errs)

	// No credentials anywhere (and the instance metadata service off, so
	// nothing leaves this machine): one line saying what to set.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_PROFILE", "")
	code, _, errs = run("--project", "pgha", "--stack", "dev", "--region", "eu-west-1")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, "no usable AWS credentials")
	require.Equal(t, 1, strings.Count(errs, "\n"), "one line: %q", errs)
}

// TestKeptDataVolumes: after `pulumi destroy --exclude-protected` only the
// protected data volumes, backup bucket and key remain. They are reported, with how to delete
// them, but they are not leftovers unless --strict; a data volume without
// the keep tag (protection was turned off) is a leftover like any other.
func TestKeptDataVolumes(t *testing.T) {
	f, srv := newFakeAWS(t)
	foreign(f)
	kept := func(id string, keep string) {
		tags := ourTags(id)
		tags[outputs.TagKeep] = keep
		f.add(fakeRes{kind: KindVolume, id: id, tags: tags, attrs: map[string]string{"status": "available", "size": "50"}})
	}
	kept("vol-0pgdata1", "true")
	kept("vol-0etcddata1", "true")
	bucketTags := ourTags("backups")
	bucketTags[outputs.TagKeep] = "true"
	f.add(fakeRes{kind: KindBucket, id: "pgha-dev-123456789012-eu-west-1", tags: bucketTags})
	f.add(fakeRes{kind: KindKMSKey, id: "1234abcd-12ab-34cd-56ef-1234567890ab", tags: bucketTags})
	// Another stack's bucket is none of ours.
	f.add(fakeRes{kind: KindBucket, id: "pgha-prod-123456789012-eu-west-1", tags: otherTags("backups")})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Check(ctx, awsConfig(t, srv), project, stack)
	require.NoError(t, err)
	require.True(t, rep.Clean(), "kept data volumes are no leftover: %+v", rep.Leftovers)
	require.Len(t, rep.Kept(), 4)
	var b bytes.Buffer
	rep.Write(&b)
	out := b.String()
	t.Log("\n" + out)
	require.Contains(t, out, "but the 4 resource(s) it keeps on purpose")
	require.Contains(t, out, "aws s3 rb --region eu-west-1 --force s3://pgha-dev-123456789012-eu-west-1")
	require.Contains(t, out, "aws kms schedule-key-deletion --region eu-west-1 --key-id 1234abcd-12ab-34cd-56ef-1234567890ab")
	require.NotContains(t, out, "pgha-prod")
	require.Contains(t, out, "aws ec2 delete-volume --region eu-west-1 --volume-id $v")
	require.Contains(t, out, "vol-0pgdata1")

	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	args := []string{"--project", project, "--stack", stack, "--region", "eu-west-1"}
	var sink bytes.Buffer
	require.Equal(t, ExitClean, Main(context.Background(), args, &sink, &sink))
	require.Equal(t, ExitLeftover, Main(context.Background(), append(args, "--strict"), &sink, &sink))

	kept("vol-0unprotected", "false")
	rep, err = Check(ctx, awsConfig(t, srv), project, stack)
	require.NoError(t, err)
	require.False(t, rep.Clean(), "a volume the stack did not protect is a leftover")
	require.Equal(t, "vol-0unprotected", rep.left()[0].ID)
}
