package awsapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
)

const alertTopic = "pgha-dev-alerts"

// publishPolicy is what the monitoring node's role is meant to get:
// sns:Publish on its stack's alert topic alone.
func publishPolicy(topicARN string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sns:Publish","Resource":%q}]}`, topicARN)
}

// snsFixture is the dev fixture plus an alert topic whose messages are
// kept in a directory, and a monitoring role allowed to publish to it.
type snsFixture struct {
	*fixture
	srv        *awsapitest.Server
	topicARN   string
	dir        string
	monitoring awsapi.Credentials
}

func newSNSFixture(t *testing.T) *snsFixture {
	t.Helper()
	f := &snsFixture{fixture: newFixture(t), dir: filepath.Join(t.TempDir(), "sns")}
	var err error
	f.topicARN, err = f.acct.AddTopic(alertTopic)
	require.NoError(t, err)
	require.NoError(t, f.acct.SetMessageDir(f.dir))
	f.monitoring = roleWith(t, f.fixture, "pgha-dev-monitoring", publishPolicy(f.topicARN))
	f.srv = awsapitest.Start(t, f.acct)
	return f
}

// snsReply is an SNS answer as it came over the wire.
type snsReply struct {
	status    int
	requestID string // the x-amzn-RequestId header
	body      string
	errType   string // Sender or Receiver
	code      string
	message   string
}

// publish sends a Query-protocol call signed by hand, as aws-sdk-go v1
// (Alertmanager's SDK) and botocore send it: a form-encoded POST to /.
func (f *snsFixture) publish(t *testing.T, c awsapi.Credentials, form url.Values) snsReply {
	t.Helper()
	if form.Get("Action") == "" {
		form.Set("Action", "Publish")
	}
	form.Set("Version", "2010-03-31")
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if c.AccessKeyID != "" {
		sum := sha256.Sum256([]byte(body))
		creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
		require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sns", testRegion, time.Now()))
	} else {
		// Unsigned: only the host it was sent to says it is for SNS.
		req.Host = awsapi.SNSEndpoint(testRegion)
	}
	resp, err := f.srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := snsReply{status: resp.StatusCode, requestID: resp.Header.Get("x-amzn-RequestId"), body: string(raw)}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			XMLName xml.Name `xml:"http://sns.amazonaws.com/doc/2010-03-31/ ErrorResponse"`
			Type    string   `xml:"Error>Type"`
			Code    string   `xml:"Error>Code"`
			Message string   `xml:"Error>Message"`
			ReqID   string   `xml:"RequestId"`
		}
		require.NoError(t, xml.Unmarshal(raw, &e), r.body)
		assert.Equal(t, r.requestID, e.ReqID)
		r.errType, r.code, r.message = e.Type, e.Code, e.Message
	}
	return r
}

func publishForm(topicARN, subject, message string) url.Values {
	v := url.Values{"TopicArn": {topicARN}, "Message": {message}}
	if subject != "" {
		v.Set("Subject", subject)
	}
	return v
}

// A Publish answers in SNS's XML, and the message is kept: in memory for
// Go, and as a JSON line in the topic's file for the lab.
func TestSNSPublishWire(t *testing.T) {
	f := newSNSFixture(t)
	form := publishForm(f.topicARN, "[FIRING:1] PatroniNoLeader", "pgha-dev has no leader")
	form.Set("MessageAttributes.entry.1.Name", "severity")
	form.Set("MessageAttributes.entry.1.Value.DataType", "String")
	form.Set("MessageAttributes.entry.1.Value.StringValue", "critical")
	form.Set("MessageAttributes.entry.2.Name", "raw")
	form.Set("MessageAttributes.entry.2.Value.DataType", "Binary")
	form.Set("MessageAttributes.entry.2.Value.BinaryValue", "AAEC")
	r := f.publish(t, f.monitoring, form)
	require.Equal(t, http.StatusOK, r.status, r.body)

	var out struct {
		XMLName   xml.Name `xml:"http://sns.amazonaws.com/doc/2010-03-31/ PublishResponse"`
		MessageID string   `xml:"PublishResult>MessageId"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	require.NoError(t, xml.Unmarshal([]byte(r.body), &out), r.body)
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, out.MessageID)
	assert.Equal(t, r.requestID, out.RequestID)

	msgs := f.acct.Messages(alertTopic)
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, out.MessageID, m.MessageID)
	assert.Equal(t, out.RequestID, m.RequestID)
	assert.Equal(t, f.topicARN, m.TopicARN)
	assert.Equal(t, "[FIRING:1] PatroniNoLeader", m.Subject)
	assert.Equal(t, "pgha-dev has no leader", m.Message)
	assert.Equal(t, map[string]awsapi.MessageAttribute{
		"severity": {DataType: "String", StringValue: "critical"},
		"raw":      {DataType: "Binary", BinaryValue: []byte{0, 1, 2}},
	}, m.Attributes)
	assert.Equal(t, f.monitoring.ARN, m.Caller)
	assert.WithinDuration(t, time.Now(), m.Time, time.Minute)
	assert.Equal(t, msgs, f.acct.Messages(f.topicARN), "by name or ARN")

	file := f.acct.MessageFile(alertTopic)
	assert.Equal(t, filepath.Join(f.dir, alertTopic+".jsonl"), file)
	kept, err := awsapi.ReadMessages(file)
	require.NoError(t, err)
	require.Len(t, kept, 1)
	assert.Equal(t, m.MessageID, kept[0].MessageID)
	assert.Equal(t, m.Attributes, kept[0].Attributes)
	assert.True(t, m.Time.Equal(kept[0].Time))
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"topic":"arn:aws:sns:eu-west-1:123456789012:pgha-dev-alerts"`)
	assert.Contains(t, string(raw), `"caller":"arn:aws:sts::123456789012:assumed-role/pgha-dev-monitoring/`+devInstance+`"`)

	assert.Contains(t, f.srv.Log(), "action=sns:Publish caller="+f.monitoring.ARN+" resource="+f.topicARN+
		" decision=allow status=200")
	assert.Contains(t, f.srv.Log(), `detail="MessageId `+out.MessageID+`"`)

	// SNS takes a message of 256 KiB, body and attributes together.
	r = f.publish(t, f.monitoring, publishForm(f.topicARN, "", strings.Repeat("x", 256<<10)))
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Len(t, f.acct.Messages(alertTopic), 2)
}

// Refusals carry SNS's codes and statuses, and deliver nothing.
func TestSNSPublishErrors(t *testing.T) {
	f := newSNSFixture(t)
	etcd := f.roleCreds(t, "pgha-dev-etcd") // no policy at all
	wide := roleWith(t, f.fixture, "wide", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"sns:*","Resource":"arn:aws:sns:*:123456789012:pgha-dev-*"},
		{"Effect":"Allow","Action":"sns:Publish","Resource":"arn:aws:sns:*:210987654321:*"}]}`)
	denied := roleWith(t, f.fixture, "denied", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"*","Resource":"*"},
		{"Effect":"Deny","Action":"sns:Publish","Resource":"*"}]}`)
	tooBig := publishForm(f.topicARN, "", strings.Repeat("x", 256<<10-len("severity")-len("String")))
	tooBig.Set("MessageAttributes.entry.1.Name", "severity")
	tooBig.Set("MessageAttributes.entry.1.Value.DataType", "String")
	tooBig.Set("MessageAttributes.entry.1.Value.StringValue", "x")
	elevenAttributes := publishForm(f.topicARN, "", "m")
	for i := 1; i <= 11; i++ {
		elevenAttributes.Set(fmt.Sprintf("MessageAttributes.entry.%d.Name", i), fmt.Sprintf("a%d", i))
		elevenAttributes.Set(fmt.Sprintf("MessageAttributes.entry.%d.Value.DataType", i), "String")
		elevenAttributes.Set(fmt.Sprintf("MessageAttributes.entry.%d.Value.StringValue", i), "v")
	}
	emptyAttribute := publishForm(f.topicARN, "", "m")
	emptyAttribute.Set("MessageAttributes.entry.1.Name", "severity")
	emptyAttribute.Set("MessageAttributes.entry.1.Value.DataType", "String")
	badNumber := publishForm(f.topicARN, "", "m")
	badNumber.Set("MessageAttributes.entry.1.Name", "count")
	badNumber.Set("MessageAttributes.entry.1.Value.DataType", "Number")
	badNumber.Set("MessageAttributes.entry.1.Value.StringValue", "many")

	for _, tc := range []struct {
		name    string
		creds   awsapi.Credentials
		form    url.Values
		status  int
		code    string
		message string
	}{
		{"no policy", etcd, publishForm(f.topicARN, "s", "m"), 403, "AuthorizationError",
			"User: " + etcd.ARN + " is not authorized to perform: SNS:Publish on resource: " + f.topicARN +
				" because no identity-based policy allows the SNS:Publish action"},
		{"explicit deny", denied, publishForm(f.topicARN, "s", "m"), 403, "AuthorizationError",
			"User: " + denied.ARN + " is not authorized to perform: SNS:Publish on resource: " + f.topicARN +
				" with an explicit deny in an identity-based policy"},
		{"another stack's topic", f.monitoring, publishForm(f.acct.TopicARN("pgha-prod-alerts"), "s", "m"), 403, "AuthorizationError", ""},
		{"unknown topic", wide, publishForm(f.acct.TopicARN("pgha-dev-nothing"), "s", "m"), 404, "NotFound", "Topic does not exist"},
		{"another account's topic", wide, publishForm("arn:aws:sns:eu-west-1:210987654321:alerts", "s", "m"), 404, "NotFound", "Topic does not exist"},
		{"another region's topic", wide, publishForm("arn:aws:sns:us-east-1:123456789012:pgha-dev-alerts", "s", "m"), 400, "InvalidParameter", "Invalid parameter: TopicArn"},
		{"not an ARN", wide, publishForm("pgha-dev-alerts", "s", "m"), 400, "InvalidParameter", "Invalid parameter: TopicArn"},
		{"no topic", wide, url.Values{"Message": {"m"}}, 400, "InvalidParameter", "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter"},
		{"no message", wide, url.Values{"TopicArn": {f.topicARN}}, 400, "InvalidParameter", "Invalid parameter: Empty message"},
		{"empty message", wide, publishForm(f.topicARN, "s", ""), 400, "InvalidParameter", "Invalid parameter: Empty message"},
		{"message too long", wide, tooBig, 400, "InvalidParameter", "Invalid parameter: Message too long"},
		{"subject too long", wide, publishForm(f.topicARN, strings.Repeat("s", 101), "m"), 400, "InvalidParameter", "Invalid parameter: Subject"},
		{"subject with a line break", wide, publishForm(f.topicARN, "[FIRING:1]\nPatroniNoLeader", "m"), 400, "InvalidParameter", "Invalid parameter: Subject"},
		{"subject not ASCII", wide, publishForm(f.topicARN, "Ausfall – PatroniNoLeader", "m"), 400, "InvalidParameter", "Invalid parameter: Subject"},
		{"empty subject", wide, url.Values{"TopicArn": {f.topicARN}, "Message": {"m"}, "Subject": {""}}, 400, "InvalidParameter", "Invalid parameter: Subject"},
		{"eleven attributes", wide, elevenAttributes, 400, "ParameterValueInvalid", "Number of message attributes [11] exceeds the allowed maximum [10]."},
		{"attribute without value", wide, emptyAttribute, 400, "ParameterValueInvalid",
			"The message attribute 'severity' must contain non-empty message attribute value for message attribute type 'String'."},
		{"attribute not a number", wide, badNumber, 400, "ParameterValueInvalid", "Could not cast message attribute 'count' value to number."},
		{"other action", wide, url.Values{"Action": {"CreateTopic"}, "Name": {"x"}}, 400, "InvalidAction", ""},
		{"unsigned", awsapi.Credentials{}, publishForm(f.topicARN, "s", "m"), 403, "MissingAuthenticationToken", "Request is missing Authentication Token"},
		{"unknown key", awsapi.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
			publishForm(f.topicARN, "s", "m"), 403, "InvalidClientTokenId", "The security token included in the request is invalid."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.publish(t, tc.creds, tc.form)
			assert.Equal(t, tc.status, r.status, r.body)
			assert.Equal(t, "Sender", r.errType)
			assert.Equal(t, tc.code, r.code)
			if tc.message != "" {
				assert.Equal(t, tc.message, r.message)
			}
		})
	}
	assert.Empty(t, f.acct.Messages(alertTopic))
	raw, err := os.ReadFile(f.acct.MessageFile(alertTopic))
	assert.True(t, os.IsNotExist(err), "nothing delivered, nothing written: %s", raw)
	assert.Contains(t, f.srv.Log(), "action=sns:Publish caller="+etcd.ARN+" resource="+f.topicARN+
		" decision=deny status=403 error=AuthorizationError")
	assert.Contains(t, f.srv.Log(), "implicit-deny sns:Publish on "+f.topicARN+" (policies: none)")
	assert.Contains(t, f.srv.Log(), "no topic arn:aws:sns:eu-west-1:123456789012:pgha-dev-nothing in account 123456789012 (add it with Account.AddTopic)")
}

func TestAddTopic(t *testing.T) {
	a, err := awsapi.NewAccount(testAccount, testRegion)
	require.NoError(t, err)
	arn, err := a.AddTopic(alertTopic)
	require.NoError(t, err)
	assert.Equal(t, "arn:aws:sns:eu-west-1:123456789012:pgha-dev-alerts", arn)
	assert.Equal(t, arn, a.TopicARN(alertTopic))
	again, err := a.AddTopic(alertTopic)
	require.NoError(t, err, "like CreateTopic, adding an existing topic returns it")
	assert.Equal(t, arn, again)
	for _, bad := range []string{"", "alerts.fifo", "pgha dev", strings.Repeat("a", 257), "arn:aws:sns:eu-west-1:123456789012:x"} {
		_, err := a.AddTopic(bad)
		assert.Error(t, err, bad)
	}
	assert.Empty(t, a.Messages(alertTopic))
	assert.Empty(t, a.MessageFile(alertTopic), "no directory set")
	msgs, err := awsapi.ReadMessages(filepath.Join(t.TempDir(), "none.jsonl"))
	require.NoError(t, err)
	assert.Empty(t, msgs)
	assert.Contains(t, awsapi.EndpointNames(testRegion), "sns.eu-west-1.amazonaws.com")
}

// awscli's `sns publish`, the command an operator (or a node's script)
// would page with, against the stand-in over TLS with the lab CA.
func TestAWSCLIPublishesToSNS(t *testing.T) {
	cli := awsapitest.AWSCLI(t)
	f := newSNSFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	aws := func(c awsapi.Credentials, args ...string) awsapitest.Result {
		env := append(awsapitest.CLIEnv(t, f.srv.CAFile, ""), "AWS_ACCESS_KEY_ID="+c.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey, "AWS_SESSION_TOKEN="+c.SessionToken)
		return awsapitest.Run(ctx, env, cli, append([]string{"--endpoint-url", f.srv.URL, "--region", testRegion, "sns", "publish"}, args...)...)
	}

	r := aws(f.monitoring, "--topic-arn", f.topicARN, "--subject", "[FIRING:1] pgha-dev PatroniNoLeader",
		"--message", "pgha-dev has no leader\nrunbook: docs/runbook.md#patroninoleader",
		"--message-attributes", `{"severity":{"DataType":"String","StringValue":"critical"}}`)
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	var out struct{ MessageId string }
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &out), r.Stdout)
	msgs := f.acct.Messages(alertTopic)
	require.Len(t, msgs, 1)
	assert.Equal(t, out.MessageId, msgs[0].MessageID)
	assert.Equal(t, "[FIRING:1] pgha-dev PatroniNoLeader", msgs[0].Subject)
	assert.Equal(t, "pgha-dev has no leader\nrunbook: docs/runbook.md#patroninoleader", msgs[0].Message)
	assert.Equal(t, map[string]awsapi.MessageAttribute{"severity": {DataType: "String", StringValue: "critical"}}, msgs[0].Attributes)
	assert.Equal(t, f.monitoring.ARN, msgs[0].Caller)
	kept, err := awsapi.ReadMessages(f.acct.MessageFile(alertTopic))
	require.NoError(t, err)
	require.Len(t, kept, 1)
	assert.Equal(t, out.MessageId, kept[0].MessageID)

	etcd := f.roleCreds(t, "pgha-dev-etcd")
	r = aws(etcd, "--topic-arn", f.topicARN, "--message", "m")
	assert.Equal(t, 254, r.ExitCode, "awscli v2 exits 254 on a service error")
	assert.Contains(t, r.Stderr, "An error occurred (AuthorizationError) when calling the Publish operation: User: "+etcd.ARN+
		" is not authorized to perform: SNS:Publish on resource: "+f.topicARN+" because no identity-based policy allows the SNS:Publish action")

	wide := roleWith(t, f.fixture, "wide", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sns:Publish","Resource":"*"}]}`)
	r = aws(wide, "--topic-arn", f.acct.TopicARN("pgha-dev-nothing"), "--message", "m")
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "An error occurred (NotFound) when calling the Publish operation: Topic does not exist")

	r = aws(wide, "--topic-arn", f.topicARN, "--subject", strings.Repeat("s", 101), "--message", "m")
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "An error occurred (InvalidParameter) when calling the Publish operation: Invalid parameter: Subject")

	big := filepath.Join(t.TempDir(), "big.txt")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat("x", 256<<10+1)), 0o644))
	r = aws(wide, "--topic-arn", f.topicARN, "--message", "file://"+big)
	assert.Equal(t, 254, r.ExitCode)
	assert.Contains(t, r.Stderr, "An error occurred (InvalidParameter) when calling the Publish operation: Invalid parameter: Message too long")

	assert.Len(t, f.acct.Messages(alertTopic), 1, "no refused message was delivered")
}
