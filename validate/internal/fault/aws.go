package fault

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
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

// stackHosts says how to log in to a node: its private address through the
// jump host, with the host keys the stack recorded, or, when the node is the
// jump host in use, directly.
func stackHosts(s outputs.Stack) func(outputs.Node) access.Host {
	jump := s.Access.JumpHost
	jumpHost, _, err := net.SplitHostPort(jump)
	if err != nil {
		jumpHost, jump = jump, net.JoinHostPort(jump, "22")
	}
	return func(n outputs.Node) access.Host {
		h := access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}
		switch {
		case n.PublicIP == jumpHost || n.PrivateIP == jumpHost:
			h.JumpAddr = jump
		case n.PublicIP != "":
			h.JumpAddr = access.JumpAddr(n)
		}
		return h
	}
}

// lazyEC2 builds the EC2 client on first use, so kill and partition work
// without AWS credentials on the machine running validate. A booted lab's
// outputs name its EC2 stand-in and the operator's key; on AWS the SDK's
// own configuration (environment, profiles) applies.
func lazyEC2(s outputs.Stack) func(context.Context) (*ec2.Client, error) {
	var (
		once sync.Once
		c    *ec2.Client
		err  error
	)
	return func(ctx context.Context) (*ec2.Client, error) {
		once.Do(func() { c, err = newEC2(ctx, s) })
		return c, err
	}
}

func newEC2(ctx context.Context, s outputs.Stack) (*ec2.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(s.Region)}
	api := s.Access.AWSAPI
	if api != nil {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(api.CABundle)) {
			return nil, fmt.Errorf("output %q: awsApi.caBundle holds no PEM certificate", outputs.KeyAccess)
		}
		opts = append(opts, config.WithCustomCABundle(strings.NewReader(api.CABundle)),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(api.AccessKeyID, api.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for the stop fault: %w", err)
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if api != nil {
			o.BaseEndpoint = aws.String(api.Endpoint)
		}
	}), nil
}
