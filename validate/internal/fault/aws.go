package fault

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/userdata"
)

// Remote runs commands on nodes; *access.Jump is the real one.
type Remote interface {
	Run(ctx context.Context, host access.Host, cmd string, stdin io.Reader) (string, error)
	RunRoot(ctx context.Context, host access.Host, script string) (string, error)
}

// AWSFaults is the AWS table: kill and partition over the SSH jump host,
// stop through the EC2 API.
func AWSFaults(s outputs.Stack, jump *access.Jump, ec2c func(context.Context) (*ec2.Client, error)) Set {
	var r Remote = jump
	hosts := stackHosts(s)
	return Set{
		&awsKill{remote: r, host: hosts, paths: userdata.CloudPaths()},
		&awsStop{ec2: ec2c},
		&awsPartition{remote: r, host: hosts, spec: DefaultPartitionSpec()},
		&awsKillPostgres{remote: r, host: hosts, paths: userdata.CloudPaths()},
	}
}

// stackHosts says how to log in to a node: the jump host itself, or its
// private address through the jump with the host keys the stack recorded.
func stackHosts(s outputs.Stack) func(outputs.Node) access.Host {
	jumpHost, _, err := net.SplitHostPort(s.Access.JumpHost)
	if err != nil {
		jumpHost = s.Access.JumpHost
	}
	return func(n outputs.Node) access.Host {
		if n.PublicIP == jumpHost || n.PrivateIP == jumpHost {
			return access.Host{}
		}
		return access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}
	}
}

// lazyEC2 builds the EC2 client on first use, so kill and partition work
// without AWS credentials on the machine running validate.
func lazyEC2(region string) func(context.Context) (*ec2.Client, error) {
	var (
		once sync.Once
		c    *ec2.Client
		err  error
	)
	return func(ctx context.Context) (*ec2.Client, error) {
		once.Do(func() {
			cfg, e := config.LoadDefaultConfig(ctx, config.WithRegion(region))
			if e != nil {
				err = fmt.Errorf("loading AWS configuration for the stop fault: %w", e)
				return
			}
			c = ec2.NewFromConfig(cfg)
		})
		return c, err
	}
}
