package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

// fakeEC2 is one instance's life cycle behind EC2's query/XML protocol:
// StopInstances moves it to stopping and, two DescribeInstances later, to
// stopped; StartInstances likewise through pending to running.
type fakeEC2 struct {
	mu       sync.Mutex
	state    string
	polls    int
	calls    []string
	forced   bool
	throttle int
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "stopping": 64, "stopped": 80}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	action := form.Get("Action")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, action)
	if f.throttle > 0 {
		f.throttle--
		w.WriteHeader(503)
		io.WriteString(w, `<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>`)
		return
	}
	if id := form.Get("InstanceId.1"); id != "i-0abc" {
		w.WriteHeader(400)
		fmt.Fprintf(w, `<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID '%s' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>`, id)
		return
	}
	change := func(to string) {
		prev := f.state
		f.state, f.polls = to, 0
		fmt.Fprintf(w, `<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><instancesSet><item><instanceId>i-0abc</instanceId><currentState><code>%d</code><name>%s</name></currentState><previousState><code>%d</code><name>%s</name></previousState></item></instancesSet></%sResponse>`,
			action, stateCodes[to], to, stateCodes[prev], prev, action)
	}
	switch action {
	case "StopInstances":
		f.forced = form.Get("Force") == "true"
		if f.state == "running" || f.state == "pending" {
			change("stopping")
		} else {
			change(f.state)
		}
	case "StartInstances":
		if f.state == "stopped" {
			change("pending")
		} else {
			change(f.state) // a running instance is left as it is
		}
	case "DescribeInstances":
		f.polls++
		if f.polls > 2 {
			switch f.state {
			case "stopping":
				f.state = "stopped"
			case "pending":
				f.state = "running"
			}
		}
		fmt.Fprintf(w, `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-0abc</instanceId><instanceState><code>%d</code><name>%s</name></instanceState></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`,
			stateCodes[f.state], f.state)
	default:
		w.WriteHeader(400)
	}
}

func TestAWSStopForcesAStopAndStartsAgain(t *testing.T) {
	fake := &fakeEC2{state: "running", throttle: 1}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("eu-west-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
		config.WithBaseEndpoint(srv.URL))
	require.NoError(t, err)
	client := ec2.NewFromConfig(cfg)
	f := &awsStop{ec2: func(context.Context) (*ec2.Client, error) { return client, nil }, poll: 50 * time.Millisecond, timeout: 30 * time.Second}
	require.Equal(t, Stop, f.Name())
	node := outputs.Node{Name: "pg-1", Role: "patroni", InstanceID: "i-0abc"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	require.NoError(t, f.Inject(ctx, node))
	fake.mu.Lock()
	require.Equal(t, "stopped", fake.state, "Inject returns once the instance is stopped")
	require.True(t, fake.forced, "the stop is forced")
	require.Equal(t, "StopInstances", fake.calls[0])
	require.Equal(t, "StopInstances", fake.calls[1], "a throttled call is retried")
	fake.mu.Unlock()

	require.NoError(t, f.Restore(ctx, node))
	fake.mu.Lock()
	require.Equal(t, "running", fake.state, "Restore returns once it runs")
	require.Contains(t, fake.calls, "StartInstances")
	fake.mu.Unlock()

	// Restore on a running instance is harmless.
	require.NoError(t, f.Restore(ctx, node))

	err = f.Inject(ctx, outputs.Node{Name: "pg-2", InstanceID: "i-0nope"})
	require.ErrorContains(t, err, "InvalidInstanceID.NotFound")
	err = f.Inject(ctx, outputs.Node{Name: "pg-3"})
	require.ErrorContains(t, err, "no instanceId")
}
