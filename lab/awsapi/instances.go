package awsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"sort"
	"time"
)

// Machines acts out EC2 state changes on whatever stands for the
// instances (in the boot lab: the nspawn machines). Stop and Start block
// until the machine is down or booted; meanwhile DescribeInstances shows
// stopping or pending, as EC2 does. A force stop must not wait for a clean
// shutdown.
type Machines interface {
	Stop(ctx context.Context, id string, force bool) error
	Start(ctx context.Context, id string) error
}

// InstanceState is an EC2 instance state name.
type InstanceState string

// The EC2 instance states the lab uses.
const (
	Pending  InstanceState = "pending"
	Running  InstanceState = "running"
	Stopping InstanceState = "stopping"
	Stopped  InstanceState = "stopped"
)

// Code is EC2's numeric state code (the low byte of instanceState/code).
func (s InstanceState) Code() int {
	return map[InstanceState]int{Pending: 0, Running: 16, Stopping: 64, Stopped: 80}[s]
}

// Instance is an EC2 instance as DescribeInstances shows it.
type Instance struct {
	ID               string // i-0123456789abcdef0
	ImageID          string
	InstanceType     string
	PrivateIP        netip.Addr
	AvailabilityZone string
	SubnetID         string
	VPCID            string
	KeyName          string
	InstanceProfile  string // name of an instance profile (AddInstanceProfile), if any
	Tags             map[string]string
	LaunchTime       time.Time
	// State is the initial state for AddInstance (default running) and
	// the current one from Instance.
	State InstanceState
	// StateReason explains the last stop, or a state change that failed.
	StateReason string
}

type instance struct {
	Instance
	reservationID string
}

var instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// NewInstanceID returns a random instance id of EC2's long form.
func NewInstanceID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "i-" + hex.EncodeToString(b)[:17]
}

// InstanceARN is the ARN policies name an instance by.
func (a *Account) InstanceARN(id string) string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", a.Partition, a.Region, a.ID, id)
}

// AddInstance registers an instance. Its availability zone must be in
// the account's region, and its instance profile, if any, must exist.
func (a *Account) AddInstance(in Instance) error {
	if !instanceIDPattern.MatchString(in.ID) {
		return fmt.Errorf("instance id %q must look like i-0123456789abcdef0 (see NewInstanceID)", in.ID)
	}
	if !in.PrivateIP.IsValid() {
		return fmt.Errorf("instance %s: a private IP is required", in.ID)
	}
	if len(in.AvailabilityZone) != len(a.Region)+1 || in.AvailabilityZone[:len(a.Region)] != a.Region {
		return fmt.Errorf("instance %s: availability zone %q is not in region %s (e.g. %sa)", in.ID, in.AvailabilityZone, a.Region, a.Region)
	}
	switch in.State {
	case "":
		in.State = Running
	case Running, Stopped:
	default:
		return fmt.Errorf("instance %s: start it running or stopped, not %s", in.ID, in.State)
	}
	if in.LaunchTime.IsZero() {
		in.LaunchTime = a.Now()
	}
	in.Tags = maps.Clone(in.Tags)
	a.mu.Lock()
	defer a.mu.Unlock()
	if in.InstanceProfile != "" {
		if _, ok := a.profiles[in.InstanceProfile]; !ok {
			return fmt.Errorf("instance %s: no instance profile %q: add it first", in.ID, in.InstanceProfile)
		}
	}
	if _, ok := a.instances[in.ID]; ok {
		return fmt.Errorf("instance %s already exists", in.ID)
	}
	a.instances[in.ID] = &instance{Instance: in, reservationID: "r-" + NewInstanceID()[2:]}
	return nil
}

// Instance returns an instance's current description.
func (a *Account) Instance(id string) (Instance, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, ok := a.instances[id]
	if !ok {
		return Instance{}, false
	}
	out := in.Instance
	out.Tags = maps.Clone(in.Tags)
	return out, true
}

// SetMachines sets what acts out stops and starts. Without it, they
// complete at once.
func (a *Account) SetMachines(m Machines) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.machines = m
}

// snapshot returns copies of the instances, sorted by id.
func (a *Account) snapshot() []instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]instance, 0, len(a.instances))
	for _, in := range a.instances {
		c := *in
		c.Tags = maps.Clone(in.Tags)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// errNoInstance carries EC2's message for an unknown instance id.
type errNoInstance string

func (e errNoInstance) Error() string {
	return fmt.Sprintf("The instance ID '%s' does not exist", string(e))
}

// errIncorrectState is returned by stop and start for a state that allows
// neither.
type errIncorrectState struct{ id, verb string }

func (e errIncorrectState) Error() string {
	return fmt.Sprintf("The instance '%s' is not in a state from which it can be %s.", e.id, e.verb)
}

// stop begins stopping a running instance, as StopInstances does: the
// state is stopping at once, and stopped when Machines.Stop returns. A
// stopping or stopped instance is left as it is.
func (a *Account) stop(id string, force bool) (prev, cur InstanceState, err error) {
	return a.transition(id, "stopped", Running, Stopping, Stopped, func(ctx context.Context, m Machines) error {
		return m.Stop(ctx, id, force)
	}, func(in *instance) {
		in.StateReason = "Client.UserInitiatedShutdown: User initiated shutdown"
	})
}

// start begins starting a stopped instance: pending, then running.
func (a *Account) start(id string) (prev, cur InstanceState, err error) {
	return a.transition(id, "started", Stopped, Pending, Running, func(ctx context.Context, m Machines) error {
		return m.Start(ctx, id)
	}, func(in *instance) {
		in.StateReason = ""
		in.LaunchTime = a.clock()
	})
}

// transition moves an instance from `from` through `via` to `to`, acting
// it out in the background. An instance already in via or to is left
// alone (EC2 answers such calls with the unchanged state); any other state
// is an error. If the machine fails, the instance returns to `from` and
// StateReason says why.
func (a *Account) transition(id, verb string, from, via, to InstanceState,
	act func(context.Context, Machines) error, done func(*instance)) (InstanceState, InstanceState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, ok := a.instances[id]
	if !ok {
		return "", "", errNoInstance(id)
	}
	prev := in.State
	switch prev {
	case via, to:
		return prev, prev, nil
	case from:
	default:
		return prev, prev, errIncorrectState{id: id, verb: verb}
	}
	in.State = via
	m := a.machines
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		var err error
		if m != nil {
			err = act(a.ctx, m)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			in.State = from
			in.StateReason = fmt.Sprintf("Server.InternalError: the lab could not act this out: %v", err)
			return
		}
		in.State = to
		done(in)
	}()
	return prev, via, nil
}
