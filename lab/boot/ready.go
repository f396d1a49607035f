package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/readiness"
	"github.com/pgha/pgha/userdata"
)

// ReadyNode is one node the readiness gate waits for.
type ReadyNode struct {
	Name string
	Addr string // its sshd, host:port
}

// ReadyOptions say how to reach the nodes and what to wait for: what
// `pulumi up`'s readiness commands are given (components.Readiness).
type ReadyOptions struct {
	// Dial reaches the jump host's sshd.
	Dial access.DialFunc
	// Jump is the jump host's sshd; the other nodes are reached through it.
	Jump   string
	User   string
	Signer ssh.Signer
	Nodes  []ReadyNode
	// ReadyMarker and FailedMarker are the files the boot script writes.
	ReadyMarker, FailedMarker string
	// ClusterCheckNode polls Patroni's REST API at PatroniAPI until one
	// leader streams to two replicas.
	ClusterCheckNode string
	PatroniAPI       string
	// Timeout bounds the whole gate, each wait included.
	Timeout time.Duration
	Log     io.Writer
}

// ReadyResult is what the gate read on its way: every node's SSH host
// keys (over the session that saw it ready) and Patroni's cluster state.
type ReadyResult struct {
	HostKeys     map[string][]string
	ClusterState string
	// Took is, per node, launch of the gate → the node's ready marker.
	Took map[string]time.Duration
}

// Ready runs the readiness commands of `pulumi up` on the booted nodes,
// over SSH as the AMI's user with the stack's key, through the jump host:
// each node's wait for cloud-init and its ready marker (failing early with
// the boot script's own reason), its host keys, then the cluster check.
//
// Like pulumi-command, it does not check host keys here: this is the
// session that records them (trust on first use, as on AWS).
func Ready(ctx context.Context, o ReadyOptions) (ReadyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	res := ReadyResult{HostKeys: map[string][]string{}, Took: map[string]time.Duration{}}
	jump, err := o.connectJump(ctx)
	if err != nil {
		return res, err
	}
	defer jump.Close()

	secs := int(o.Timeout.Seconds())
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	for _, n := range o.Nodes {
		wg.Go(func() {
			out, err := o.run(ctx, jump, n, readiness.ReadyScript(n.Name, o.ReadyMarker, o.FailedMarker, secs))
			var keys []string
			if err == nil {
				keys, err = readiness.ParseReadyOutput(n.Name, out)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				problems = append(problems, err.Error())
				return
			}
			res.HostKeys[n.Name] = keys
			res.Took[n.Name] = time.Since(start)
			o.logf("  %-10s ready after %.1fs", n.Name, time.Since(start).Seconds())
		})
	}
	wg.Wait()
	if len(problems) > 0 {
		sort.Strings(problems)
		return res, fmt.Errorf("the nodes did not become ready:\n  %s", strings.Join(problems, "\n  "))
	}
	var check ReadyNode
	for _, n := range o.Nodes {
		if n.Name == o.ClusterCheckNode {
			check = n
		}
	}
	if check.Name == "" {
		return res, fmt.Errorf("cluster-check node %q is not among the nodes", o.ClusterCheckNode)
	}
	out, err := o.run(ctx, jump, check, readiness.ClusterCheckScript(strings.TrimRight(o.PatroniAPI, "/"), userdata.CloudPaths().TLSCAFile, secs))
	if err != nil {
		return res, err
	}
	res.ClusterState = strings.TrimSpace(out)
	return res, nil
}

func (o ReadyOptions) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", a...)
	}
}

func (o ReadyOptions) config() *ssh.ClientConfig {
	return &ssh.ClientConfig{User: o.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(o.Signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 15 * time.Second}
}

// connectJump logs in to the jump host, retrying while it boots (sshd
// comes up a little after the machine), as pulumi-command's dial retries.
func (o ReadyOptions) connectJump(ctx context.Context) (*ssh.Client, error) {
	var last error
	for {
		c, err := o.dialSSH(ctx, o.Dial, o.Jump)
		if err == nil {
			return c, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the jump host %s did not accept SSH: %v", o.Jump, last)
		case <-time.After(2 * time.Second):
		}
	}
}

func (o ReadyOptions) dialSSH(ctx context.Context, dial access.DialFunc, addr string) (*ssh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, o.config())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// run runs a script on a node (the jump host itself, or a node
// behind it, retrying the login while its sshd starts) and returns its
// standard output; a failure carries what the script printed on stderr:
// the node's own reason.
func (o ReadyOptions) run(ctx context.Context, jump *ssh.Client, n ReadyNode, script string) (string, error) {
	client := jump
	if n.Addr != o.Jump {
		var err error
		via := func(ctx context.Context, network, addr string) (net.Conn, error) {
			return jump.DialContext(ctx, network, addr)
		}
		for {
			client, err = o.dialSSH(ctx, via, n.Addr)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("%s: sshd at %s did not accept the stack's key: %v", n.Name, n.Addr, err)
			case <-time.After(2 * time.Second):
			}
		}
		defer client.Close()
	}
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.Name, err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	// The script is the command, run by the user's login shell, as
	// pulumi-command's remote.Command runs its create command.
	if err := sess.Run(script); err != nil {
		reason := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			reason = strings.TrimSpace(reason + " (gave up: " + ctx.Err().Error() + ")")
		}
		var ee *ssh.ExitError
		if reason == "" && !errors.As(err, &ee) {
			reason = err.Error()
		}
		if strings.HasPrefix(reason, n.Name+": ") {
			return stdout.String(), errors.New(reason) // the script named the node
		}
		return stdout.String(), fmt.Errorf("%s: %s", n.Name, reason)
	}
	return stdout.String(), nil
}
