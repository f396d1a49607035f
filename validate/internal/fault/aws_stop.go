package fault

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/pgha/pgha/internal/outputs"
)

// awsStop stops the node's EC2 instance by force, the way a host failure
// looks to the rest of the cluster, and starts it again on Restore.
type awsStop struct {
	ec2 func(context.Context) (*ec2.Client, error)
	// poll overrides the waiters' delays (tests); zero keeps the SDK's.
	poll time.Duration
	// timeout bounds each wait (default 10 minutes).
	timeout time.Duration
}

func (*awsStop) Name() string { return Stop }

func (f *awsStop) client(ctx context.Context, n outputs.Node) (*ec2.Client, error) {
	if n.InstanceID == "" {
		return nil, fmt.Errorf("stop: node %q has no instanceId in the stack outputs", n.Name)
	}
	return f.ec2(ctx)
}

func (f *awsStop) wait() time.Duration {
	if f.timeout > 0 {
		return f.timeout
	}
	return 10 * time.Minute
}

func (f *awsStop) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	c, err := f.client(ctx, n)
	if err != nil {
		return err
	}
	// Force skips the guest's clean shutdown: Patroni and PostgreSQL get
	// no chance to hand over, as in a real host failure.
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{n.InstanceID}, Force: aws.Bool(true)}); err != nil {
		return fmt.Errorf("stop %s (%s): %w", n.Name, n.InstanceID, err)
	}
	w := ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) {
		if f.poll > 0 {
			o.MinDelay, o.MaxDelay = f.poll, f.poll
		}
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.InstanceID}}, f.wait()); err != nil {
		return fmt.Errorf("stop %s (%s): waiting for it to stop: %w", n.Name, n.InstanceID, err)
	}
	return nil
}

// Restore starts the instance and waits until EC2 reports it running. A
// running instance is left alone by StartInstances, so this is safe after a
// failed or missing Inject.
func (f *awsStop) Restore(ctx context.Context, n outputs.Node) error {
	c, err := f.client(ctx, n)
	if err != nil {
		return err
	}
	// An instance still "stopping" cannot be started yet.
	ws := ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) {
		if f.poll > 0 {
			o.MinDelay, o.MaxDelay = f.poll, f.poll
		}
	})
	desc, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.InstanceID}})
	if err != nil {
		return fmt.Errorf("start %s (%s): %w", n.Name, n.InstanceID, err)
	}
	if state(desc) == "stopping" {
		if err := ws.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.InstanceID}}, f.wait()); err != nil {
			return fmt.Errorf("start %s (%s): waiting for the stop to finish: %w", n.Name, n.InstanceID, err)
		}
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{n.InstanceID}}); err != nil {
		return fmt.Errorf("start %s (%s): %w", n.Name, n.InstanceID, err)
	}
	w := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		if f.poll > 0 {
			o.MinDelay, o.MaxDelay = f.poll, f.poll
		}
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.InstanceID}}, f.wait()); err != nil {
		return fmt.Errorf("start %s (%s): waiting for it to run: %w", n.Name, n.InstanceID, err)
	}
	return nil
}

func state(out *ec2.DescribeInstancesOutput) string {
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if i.State != nil {
				return string(i.State.Name)
			}
		}
	}
	return ""
}
