package awsapi_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
)

// machines records the stops and starts and holds each until released,
// so that the test sees the intermediate states.
type machines struct {
	mu      sync.Mutex
	calls   []string
	release chan error
}

func newMachines() *machines { return &machines{release: make(chan error, 8)} }

func (m *machines) record(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, s)
}

func (m *machines) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

func (m *machines) Stop(ctx context.Context, id string, force bool) error {
	m.record("stop " + id + map[bool]string{true: " force", false: ""}[force])
	select {
	case err := <-m.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *machines) Start(ctx context.Context, id string) error {
	m.record("start " + id)
	select {
	case err := <-m.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validatePolicy reads the policy docs/validate-aws.md tells operators
// to give validate, so that the test checks the documented policy itself.
func validatePolicy(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "validate-aws.md"))
	require.NoError(t, err, "docs/validate-aws.md holds the policy under test")
	m := regexp.MustCompile("(?s)## IAM permissions validate needs.*?```json\n(.*?)```").FindSubmatch(doc)
	require.NotNil(t, m, "no ```json block under \"## IAM permissions validate needs\" in docs/validate-aws.md")
	return string(m[1])
}

func operator(t *testing.T, f *fixture, policy string) awsapi.Credentials {
	t.Helper()
	require.NoError(t, f.acct.AddUser("operator"))
	require.NoError(t, f.acct.PutUserPolicy("operator", "validate", policy))
	k, err := f.acct.CreateAccessKey("operator")
	require.NoError(t, err)
	return k
}

func state(t *testing.T, c *ec2.Client, id string) string {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1)
	return string(out.Reservations[0].Instances[0].State.Name)
}

// The stop fault's path, as validate runs it: StopInstances with Force,
// the SDK's stopped waiter, StartInstances, the running waiter; with the
// documented policy, on an instance of the stack. An instance of another
// stack is refused.
func TestEC2StopStartWithValidatePolicy(t *testing.T) {
	f := newFixture(t)
	m := newMachines()
	f.acct.SetMachines(m)
	srv := awsapitest.Start(t, f.acct)
	c := srv.EC2(operator(t, f, validatePolicy(t)).Provider())
	ctx := context.Background()

	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{devInstance}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1)
	in := out.Reservations[0].Instances[0]
	assert.Equal(t, devInstance, aws.ToString(in.InstanceId))
	assert.Equal(t, "10.42.2.10", aws.ToString(in.PrivateIpAddress))
	assert.Equal(t, "eu-west-1a", aws.ToString(in.Placement.AvailabilityZone))
	assert.Equal(t, ec2types.InstanceStateNameRunning, in.State.Name)
	assert.EqualValues(t, 16, aws.ToInt32(in.State.Code))
	assert.Equal(t, "ip-10-42-2-10.eu-west-1.compute.internal", aws.ToString(in.PrivateDnsName))
	assert.Contains(t, in.Tags, ec2types.Tag{Key: aws.String("pgha:stack"), Value: aws.String("dev")})
	assert.Equal(t, testAccount, aws.ToString(out.Reservations[0].OwnerId))

	stop, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{devInstance}, Force: aws.Bool(true)})
	require.NoError(t, err)
	require.Len(t, stop.StoppingInstances, 1)
	assert.Equal(t, ec2types.InstanceStateNameStopping, stop.StoppingInstances[0].CurrentState.Name)
	assert.Equal(t, ec2types.InstanceStateNameRunning, stop.StoppingInstances[0].PreviousState.Name)
	assert.Equal(t, "stopping", state(t, c, devInstance), "EC2 shows stopping until the machine is down")

	m.release <- nil
	require.NoError(t, ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	}).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{devInstance}}, 10*time.Second))
	assert.Equal(t, []string{"stop " + devInstance + " force"}, m.Calls())

	start, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{devInstance}})
	require.NoError(t, err)
	assert.Equal(t, ec2types.InstanceStateNamePending, start.StartingInstances[0].CurrentState.Name)
	assert.Equal(t, ec2types.InstanceStateNameStopped, start.StartingInstances[0].PreviousState.Name)
	assert.Equal(t, "pending", state(t, c, devInstance))
	m.release <- nil
	require.NoError(t, ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	}).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{devInstance}}, 10*time.Second))

	// The other stack's instance: refused, untouched.
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{prodInstance}, Force: aws.Bool(true)})
	code, msg := apiCode(t, err)
	assert.Equal(t, "UnauthorizedOperation", code)
	assert.Equal(t, "You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/operator is not authorized to perform: ec2:StopInstances on resource: arn:aws:ec2:eu-west-1:123456789012:instance/"+prodInstance+" because no identity-based policy allows the ec2:StopInstances action", msg)
	var re interface{ HTTPStatusCode() int }
	require.True(t, errors.As(err, &re))
	assert.Equal(t, 403, re.HTTPStatusCode())
	assert.Equal(t, "running", state(t, c, prodInstance))
	// Mixed with an allowed one, the whole call fails and nothing stops.
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{devInstance, prodInstance}})
	code, _ = apiCode(t, err)
	assert.Equal(t, "UnauthorizedOperation", code)
	assert.Equal(t, "running", state(t, c, devInstance))
	assert.Len(t, m.Calls(), 2)
	assert.Contains(t, srv.Log(), "action=ec2:StopInstances caller=arn:aws:iam::123456789012:user/operator resource=arn:aws:ec2:eu-west-1:123456789012:instance/"+prodInstance+" decision=deny status=403 error=UnauthorizedOperation")
}

func TestEC2DescribeFiltersAndErrors(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	c := srv.EC2(operator(t, f, validatePolicy(t)).Provider())
	ctx := context.Background()

	ids := func(out *ec2.DescribeInstancesOutput) []string {
		var s []string
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				s = append(s, aws.ToString(in.InstanceId))
			}
		}
		return s
	}
	filter := func(name string, values ...string) ec2types.Filter {
		return ec2types.Filter{Name: aws.String(name), Values: values}
	}
	// The filters validate teardown uses.
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		filter("tag:pgha:project", "pgha"), filter("tag:pgha:stack", "dev"),
		filter("instance-state-name", "pending", "running", "stopping", "stopped"),
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{devInstance}, ids(out))
	out, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("private-ip-address", "10.4?.2.*")}})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{devInstance, prodInstance}, ids(out))
	out, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("tag:pgha:stack", "staging")}})
	require.NoError(t, err)
	assert.Empty(t, out.Reservations)

	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("owner-alias", "x")}})
	code, msg := apiCode(t, err)
	assert.Equal(t, "InvalidParameterValue", code)
	assert.Equal(t, "The filter 'owner-alias' is invalid", msg)
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{unknownInstance}})
	code, msg = apiCode(t, err)
	assert.Equal(t, "InvalidInstanceID.NotFound", code)
	assert.Equal(t, "The instance ID '"+unknownInstance+"' does not exist", msg)
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{"i-nope"}})
	code, _ = apiCode(t, err)
	assert.Equal(t, "InvalidInstanceID.Malformed", code)

	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{devInstance}, DryRun: aws.Bool(true)})
	code, _ = apiCode(t, err)
	assert.Equal(t, "DryRunOperation", code)
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{prodInstance}, DryRun: aws.Bool(true)})
	code, _ = apiCode(t, err)
	assert.Equal(t, "UnauthorizedOperation", code)

	// A caller without ec2:DescribeInstances.
	rc := roleWith(t, f, "nothing", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"*"}}`)
	_, err = srv.EC2(rc.Provider()).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	code, msg = apiCode(t, err)
	assert.Equal(t, "UnauthorizedOperation", code)
	assert.Contains(t, msg, "is not authorized to perform: ec2:DescribeInstances because no identity-based policy allows")
}

// A machine that fails to stop leaves the instance running, and says why.
func TestEC2MachineFailure(t *testing.T) {
	f := newFixture(t)
	m := newMachines()
	f.acct.SetMachines(m)
	srv := awsapitest.Start(t, f.acct)
	c := srv.EC2(operator(t, f, validatePolicy(t)).Provider())
	ctx := context.Background()

	_, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{devInstance}})
	require.NoError(t, err)
	// Starting while stopping is EC2's IncorrectInstanceState.
	_, err = c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{devInstance}})
	code, _ := apiCode(t, err)
	assert.Equal(t, "IncorrectInstanceState", code)
	// Stopping again while stopping changes nothing.
	again, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{devInstance}})
	require.NoError(t, err)
	assert.Equal(t, ec2types.InstanceStateNameStopping, again.StoppingInstances[0].PreviousState.Name)

	m.release <- errors.New("machine pgha-patroni-1 did not power off")
	require.Eventually(t, func() bool { return state(t, c, devInstance) == "running" }, 5*time.Second, 10*time.Millisecond)
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{devInstance}})
	require.NoError(t, err)
	reason := out.Reservations[0].Instances[0].StateReason
	require.NotNil(t, reason)
	assert.Equal(t, "Server.InternalError", aws.ToString(reason.Code))
	assert.Contains(t, aws.ToString(reason.Message), "did not power off")
	var ae smithy.APIError
	assert.False(t, errors.As(err, &ae))
}
