package awsapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
	"github.com/pgha/pgha/lab/imds"
	"github.com/pgha/pgha/userdata"
)

// These tests run the monitoring node's pager, Debian 12's Alertmanager
// 0.25, against the stand-in: its SNS notifier (aws-sdk-go v1) signs and
// parses what the stand-in serves, and the IAM decisions are the lab's.

const (
	alertmanagerBin = "/usr/bin/prometheus-alertmanager"
	amtoolBin       = "/usr/bin/amtool"
)

// alertmanagerTools returns Debian's Alertmanager and amtool, or skips the
// test where they cannot be: not root (CI runs as root, and fails on a
// skip), or not installed.
func alertmanagerTools(t *testing.T) (alertmanager, amtool string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs Alertmanager as CI does, as root")
	}
	for _, p := range []string{alertmanagerBin, amtoolBin} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: apt-get install -y prometheus-alertmanager (scripts/install-deps.sh)", p)
		}
	}
	return alertmanagerBin, amtoolBin
}

// The templates the tests page with: short enough for SNS's subject, and
// a message that names every alert with its labels.
const (
	testSubject = `[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}`
	testMessage = `{{ range .Alerts }}{{ .Labels.alertname }}:{{ range .Labels.SortedPairs }} {{ .Name }}={{ .Value }}{{ end }}{{ "\n" }}{{ end }}`
)

// snsReceiver is one Alertmanager receiver publishing to a topic. Without
// creds the file holds no key and the SDK's default chain finds one (on
// a node: the instance role, through IMDS); without templates,
// Alertmanager's default subject and message are sent.
type snsReceiver struct {
	name      string
	apiURL    string
	topicARN  string
	creds     *awsapi.Credentials
	templates bool
}

func (r snsReceiver) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    sns_configs:\n      - api_url: %s\n        topic_arn: %s\n        sigv4:\n          region: %s\n",
		r.name, r.apiURL, r.topicARN, testRegion)
	if r.creds != nil {
		fmt.Fprintf(&b, "          access_key: %s\n          secret_key: %s\n", r.creds.AccessKeyID, r.creds.SecretAccessKey)
	}
	if r.templates {
		fmt.Fprintf(&b, "        subject: '%s'\n        message: '%s'\n        attributes:\n          severity: '{{ .CommonLabels.severity }}'\n",
			testSubject, testMessage)
	}
	return b.String()
}

// alertmanagerConfig routes alerts with pager="X" to receiver X and the
// rest to the first receiver. Each alert is a group of its own, sent one
// second after it arrives; a group is not sent again within the test.
func alertmanagerConfig(receivers ...snsReceiver) string {
	var b strings.Builder
	fmt.Fprintf(&b, "route:\n  receiver: %s\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1m\n  repeat_interval: 1h\n  routes:\n", receivers[0].name)
	for _, r := range receivers[1:] {
		fmt.Fprintf(&b, "    - matchers: ['pager=\"%s\"']\n      receiver: %s\n", r.name, r.name)
	}
	b.WriteString("receivers:\n")
	for _, r := range receivers {
		b.WriteString(r.yaml())
	}
	return b.String()
}

// alertmanager is one Alertmanager process on loopback.
type alertmanager struct {
	url string
	log *awsapitest.SyncBuffer
}

// startAlertmanager runs Alertmanager alone (no cluster) with the config,
// state in a temporary directory, and exactly env, until the test ends.
// The config is checked with amtool first, as the node's deployment would.
func startAlertmanager(t *testing.T, config string, env []string) *alertmanager {
	t.Helper()
	bin, amtool := alertmanagerTools(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	out, err := exec.Command(amtool, "check-config", cfg).CombinedOutput()
	require.NoError(t, err, "amtool check-config:\n%s\n%s", out, config)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	am := &alertmanager{url: "http://" + addr, log: &awsapitest.SyncBuffer{}}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=debug")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = am.log, am.log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager.yml:\n%s\nAlertmanager's log:\n%s", config, am.log.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(am.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "Alertmanager did not become ready:\n%s", am.log)
	return am
}

// alertmanagerEnv is all Alertmanager gets: no AWS_* variables or
// credential files from the caller (HOME is empty), the lab CA as the
// system trust (Go reads SSL_CERT_FILE), and extra.
func alertmanagerEnv(t *testing.T, caFile string, extra ...string) []string {
	return append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir(), "SSL_CERT_FILE=" + caFile}, extra...)
}

// post sends alerts to Alertmanager's API v2, as Prometheus does.
func (am *alertmanager) post(t *testing.T, alerts ...map[string]map[string]string) {
	t.Helper()
	var body []map[string]any
	for _, a := range alerts {
		body = append(body, map[string]any{"labels": a["labels"], "annotations": a["annotations"],
			"startsAt": time.Now().UTC().Format(time.RFC3339), "generatorURL": "http://prometheus.invalid/graph"})
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func alert(labels, annotations map[string]string) map[string]map[string]string {
	return map[string]map[string]string{"labels": labels, "annotations": annotations}
}

// published waits for a message on the topic whose subject names the
// alert.
func published(t *testing.T, a *awsapi.Account, topic, alertname string) awsapi.Message {
	t.Helper()
	var got awsapi.Message
	require.Eventually(t, func() bool {
		for _, m := range a.Messages(topic) {
			if strings.Contains(m.Subject, alertname) {
				got = m
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "no message about %s on %s", alertname, topic)
	return got
}

func TestAmtoolTellsSNSConfigsApart(t *testing.T) {
	_, amtool := alertmanagerTools(t)
	dir := t.TempDir()
	check := func(config string) (string, error) {
		cfg := filepath.Join(dir, "alertmanager.yml")
		require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
		out, err := exec.Command(amtool, "check-config", cfg).CombinedOutput()
		return string(out), err
	}
	keys := awsapi.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	ok := snsReceiver{name: "sns", apiURL: "https://127.0.0.1:1", topicARN: "arn:aws:sns:eu-west-1:123456789012:" + alertTopic, templates: true}
	out, err := check(alertmanagerConfig(ok))
	require.NoError(t, err, out)
	assert.Contains(t, out, "SUCCESS")
	withKeys := ok
	withKeys.creds = &keys
	out, err = check(alertmanagerConfig(withKeys))
	require.NoError(t, err, out)

	noTopic := strings.Replace(alertmanagerConfig(ok), "        topic_arn: "+ok.topicARN+"\n", "", 1)
	out, err = check(noTopic)
	require.Error(t, err)
	assert.Contains(t, out, "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config")
	halfKey := strings.Replace(alertmanagerConfig(withKeys), "secret_key: "+keys.SecretAccessKey, "", 1)
	out, err = check(halfKey)
	require.Error(t, err)
	assert.Contains(t, out, "must provide a AWS SigV4 Access key and Secret Key")

	// amtool does not parse a receiver's inline templates: a broken
	// subject passes here, and at notification time the SNS notifier
	// drops the template error and sends an empty subject (400 from SNS).
	// Templates are proven by sending, as the tests below do.
	broken := strings.Replace(alertmanagerConfig(ok), testSubject, "{{ .Status ", 1)
	out, err = check(broken)
	require.NoError(t, err, out)
}

// An alert posted to Alertmanager reaches the topic as a Publish signed
// with the configured key; a key whose user may not publish is refused,
// Alertmanager says so, and nothing lands.
func TestAlertmanagerPublishesToSNS(t *testing.T) {
	alertmanagerTools(t)
	f := newSNSFixture(t)
	require.NoError(t, f.acct.AddUser("alertmanager"))
	require.NoError(t, f.acct.PutUserPolicy("alertmanager", "publish", publishPolicy(f.topicARN)))
	allowed, err := f.acct.CreateAccessKey("alertmanager")
	require.NoError(t, err)
	require.NoError(t, f.acct.AddUser("bystander"))
	denied, err := f.acct.CreateAccessKey("bystander")
	require.NoError(t, err)

	am := startAlertmanager(t, alertmanagerConfig(
		snsReceiver{name: "sns", apiURL: f.srv.URL, topicARN: f.topicARN, creds: &allowed, templates: true},
		snsReceiver{name: "denied", apiURL: f.srv.URL, topicARN: f.topicARN, creds: &denied, templates: true},
	), alertmanagerEnv(t, f.srv.CAFile))
	am.post(t,
		alert(map[string]string{"alertname": "PatroniNoLeader", "cluster": "pgha-dev", "severity": "critical", "instance": "patroni-1"},
			map[string]string{"summary": "pgha-dev has no leader"}),
		alert(map[string]string{"alertname": "EtcdMemberDown", "cluster": "pgha-dev", "severity": "warning", "pager": "denied"}, nil))

	m := published(t, f.acct, alertTopic, "PatroniNoLeader")
	assert.Equal(t, "[FIRING] PatroniNoLeader", m.Subject)
	assert.Equal(t, "PatroniNoLeader: alertname=PatroniNoLeader cluster=pgha-dev instance=patroni-1 severity=critical\n", m.Message)
	assert.Equal(t, map[string]awsapi.MessageAttribute{"severity": {DataType: "String", StringValue: "critical"}}, m.Attributes)
	assert.Equal(t, "arn:aws:iam::123456789012:user/alertmanager", m.Caller)
	kept, err := awsapi.ReadMessages(f.acct.MessageFile(alertTopic))
	require.NoError(t, err)
	require.NotEmpty(t, kept)
	assert.Equal(t, m.MessageID, kept[0].MessageID)
	assert.Contains(t, f.srv.Log(), "action=sns:Publish caller=arn:aws:iam::123456789012:user/alertmanager resource="+f.topicARN+" decision=allow status=200")

	// The refusal: in the trail, and in Alertmanager's log, which does not
	// retry a 4xx.
	deniedLine := "action=sns:Publish caller=arn:aws:iam::123456789012:user/bystander resource=" + f.topicARN + " decision=deny status=403 error=AuthorizationError"
	require.Eventually(t, func() bool { return strings.Contains(f.srv.Log(), deniedLine) }, 30*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(am.log.String(), "Notify for alerts failed") }, 30*time.Second, 100*time.Millisecond)
	assert.Contains(t, am.log.String(), "denied/sns[0]: notify retry canceled due to unrecoverable error after 1 attempts: unexpected status code 403: "+
		"User: arn:aws:iam::123456789012:user/bystander is not authorized to perform: SNS:Publish on resource: "+f.topicARN)
	for _, m := range f.acct.Messages(alertTopic) {
		assert.NotContains(t, m.Message, "EtcdMemberDown")
	}
}

// On a node the file holds no key: sigv4 names the region alone, and
// aws-sdk-go v1's default chain takes the instance role's credentials
// from IMDS, with an IMDSv2 token (the lab's metadata service, like a
// node launched with HttpTokens=required, serves credentials to no
// tokenless request). The configuration is the monitoring node's own,
// as userdata renders it (but for the stand-in's endpoint and a short
// group wait): its subject must be one SNS takes.
func TestAlertmanagerPublishesWithInstanceRole(t *testing.T) {
	alertmanagerTools(t)
	f := newSNSFixture(t)
	_, err := f.acct.AddInstanceProfile("pgha-dev-monitoring", "pgha-dev-monitoring")
	require.NoError(t, err)
	const monitor = "i-0aaaaaaaaaaaaaaa1"
	require.NoError(t, f.acct.AddInstance(awsapi.Instance{ID: monitor, PrivateIP: netip.MustParseAddr("10.42.4.10"),
		AvailabilityZone: testRegion + "a", InstanceProfile: "pgha-dev-monitoring"}))
	mdLog := &awsapitest.SyncBuffer{}
	md, err := imds.New(imds.Options{Account: f.acct, Log: mdLog})
	require.NoError(t, err)
	// Alertmanager calls from loopback: that is the instance here.
	require.NoError(t, md.Add(imds.Instance{ID: monitor, Source: netip.MustParseAddr("127.0.0.1")}))
	meta := httptest.NewServer(md)
	t.Cleanup(meta.Close)

	am := startAlertmanager(t, renderedConfig(t, f.srv.URL, f.topicARN),
		alertmanagerEnv(t, f.srv.CAFile, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+meta.URL))
	am.post(t, alert(map[string]string{"alertname": "HAProxyNoPrimary", "cluster": "pgha-dev", "severity": "critical"},
		map[string]string{"summary": "HAProxy haproxy-1 has no server up in \"primary\"", "runbook": "If PatroniNoLeader fires too, fix that first"}))

	m := published(t, f.acct, alertTopic, "HAProxyNoPrimary")
	assert.Equal(t, "arn:aws:sts::123456789012:assumed-role/pgha-dev-monitoring/"+monitor, m.Caller)
	assert.Equal(t, "[FIRING] pgha-dev HAProxyNoPrimary", m.Subject)
	for _, want := range []string{"alertname = HAProxyNoPrimary", "severity = critical", "summary = HAProxy haproxy-1 has no server up", "runbook = If PatroniNoLeader fires too"} {
		assert.Contains(t, m.Message, want, "the page carries the alert's labels and annotations")
	}
	log := mdLog.String()
	assert.Contains(t, log, "PUT /latest/api/token status=200")
	assert.Contains(t, log, "GET /latest/meta-data/iam/security-credentials/pgha-dev-monitoring status=200 auth=\"token\"")
	assert.NotContains(t, log, "no token")
}

// Alertmanager's default SNS templates, which a receiver without subject
// and message gets, meet SNS's limits only for small groups: the default
// subject lists the values of all the group's common labels and passes
// SNS's 100 characters easily. SNS refuses it (400), and Alertmanager
// does not retry a 4xx: the page is lost. The lab refuses it as SNS does.
// The default message is never empty: it lists the alerts after the
// annotations they share (none, here, for PatroniNoSyncStandby).
func TestAlertmanagerDefaultTemplatesAgainstSNSLimits(t *testing.T) {
	alertmanagerTools(t)
	f := newSNSFixture(t)
	require.NoError(t, f.acct.AddUser("alertmanager"))
	require.NoError(t, f.acct.PutUserPolicy("alertmanager", "publish", publishPolicy(f.topicARN)))
	keys, err := f.acct.CreateAccessKey("alertmanager")
	require.NoError(t, err)

	am := startAlertmanager(t, alertmanagerConfig(snsReceiver{name: "sns", apiURL: f.srv.URL, topicARN: f.topicARN, creds: &keys}),
		alertmanagerEnv(t, f.srv.CAFile))
	am.post(t,
		alert(map[string]string{"alertname": "EtcdMemberDown", "cluster": "pgha-dev"}, map[string]string{"summary": "etcd-2 is down"}),
		alert(map[string]string{"alertname": "PostgreSQLReplicaNotStreaming", "cluster": "pgha-dev", "severity": "critical",
			"instance": "patroni-2.pgha-dev.eu-west-1.compute.internal:9187", "job": "postgres"}, map[string]string{"summary": "patroni-2 does not stream"}),
		alert(map[string]string{"alertname": "PatroniNoSyncStandby", "instance": "patroni-1"}, map[string]string{"summary": "one"}),
		alert(map[string]string{"alertname": "PatroniNoSyncStandby", "instance": "patroni-2"}, map[string]string{"summary": "two"}))

	m := published(t, f.acct, alertTopic, "EtcdMemberDown")
	assert.Equal(t, "[FIRING:1] EtcdMemberDown (pgha-dev)", m.Subject)
	assert.True(t, strings.HasPrefix(m.Message, "etcd-2 is down\n\nAlerts Firing:\nLabels:\n - alertname = EtcdMemberDown\n - cluster = pgha-dev\n"), m.Message)
	m = published(t, f.acct, alertTopic, "PatroniNoSyncStandby")
	assert.Equal(t, "[FIRING:2] PatroniNoSyncStandby ", m.Subject)
	assert.True(t, strings.HasPrefix(m.Message, "\n\nAlerts Firing:\n"), m.Message)
	assert.Contains(t, m.Message, " - instance = patroni-2\n")

	require.Eventually(t, func() bool {
		return strings.Contains(am.log.String(), "unexpected status code 400: Invalid parameter: Subject")
	}, 30*time.Second, 100*time.Millisecond)
	for _, m := range f.acct.Messages(alertTopic) {
		assert.NotContains(t, m.Subject, "PostgreSQLReplicaNotStreaming")
	}
	assert.Contains(t, f.srv.Log(), "decision=error status=400 error=InvalidParameter")
}

// renderedConfig is the monitoring node's alertmanager.yml for a cluster
// named pgha-dev, pointed at the stand-in.
func renderedConfig(t *testing.T, endpoint, topicARN string) string {
	t.Helper()
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	c := userdata.Cluster{
		Name: "pgha-dev", Plan: plan, Profile: "fast", Region: testRegion, Users: userdata.DefaultUsers(),
		Secrets: userdata.ParamsUnder("/pgha/dev/"), TLS: userdata.TLSParams{Prefix: "/pgha/dev/tls/"},
		Monitoring: &userdata.Monitoring{AlertTopicARN: topicARN, AlertSNSEndpoint: endpoint, GroupWait: "1s"},
	}
	b, err := userdata.RenderAlertmanagerConfig(c, userdata.CloudPaths())
	require.NoError(t, err)
	return string(b)
}
