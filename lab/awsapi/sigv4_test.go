package awsapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/awsapi/awsapitest"
)

const getParameterBody = `{"Name":"/pgha/dev/postgres-password","WithDecryption":true}`

// signedSSM sends a GetParameter signed by hand, so that the test can
// tamper with what the SDK would get right.
type signedSSM struct {
	srv     *awsapitest.Server
	creds   aws.Credentials
	region  string
	at      time.Time
	body    string
	tamper  func(*http.Request) // after signing
	noToken bool                // drop X-Amz-Security-Token after signing
}

func (s signedSSM) send(t *testing.T) (status int, errType, msg string) {
	t.Helper()
	body := s.body
	if body == "" {
		body = getParameterBody
	}
	req, err := http.NewRequest(http.MethodPost, s.srv.URL+"/", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonSSM.GetParameter")
	sum := sha256.Sum256([]byte(body))
	region, at := s.region, s.at
	if region == "" {
		region = testRegion
	}
	if at.IsZero() {
		at = time.Now()
	}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), s.creds, req, hex.EncodeToString(sum[:]), "ssm", region, at))
	if s.noToken {
		req.Header.Del("X-Amz-Security-Token")
	}
	if s.tamper != nil {
		s.tamper(req)
	}
	resp, err := s.srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Type, e.Message
}

func TestSigV4Checks(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	rc := f.roleCreds(t, "pgha-dev-patroni")
	good := aws.Credentials{AccessKeyID: rc.AccessKeyID, SecretAccessKey: rc.SecretAccessKey, SessionToken: rc.SessionToken}

	status, typ, _ := signedSSM{srv: srv, creds: good}.send(t)
	require.Equal(t, http.StatusOK, status, typ)

	cases := []struct {
		name    string
		req     signedSSM
		errType string
		msg     string
	}{
		{"unknown key", signedSSM{creds: aws.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "x"}},
			"UnrecognizedClientException", "The security token included in the request is invalid."},
		{"wrong secret", signedSSM{creds: aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: "wrong", SessionToken: good.SessionToken}},
			"InvalidSignatureException", "The request signature we calculated does not match"},
		{"temporary key without token", signedSSM{creds: good, noToken: true},
			"UnrecognizedClientException", "The security token included in the request is invalid."},
		{"token of another session", signedSSM{creds: aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: good.SecretAccessKey, SessionToken: f.roleCreds(t, "pgha-dev-patroni").SessionToken}},
			"UnrecognizedClientException", ""},
		{"body changed after signing", signedSSM{creds: good, tamper: func(r *http.Request) {
			b := `{"Name":"/pgha/prod/postgres-password","WithDecryption":true}`
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
		}}, "InvalidSignatureException", ""},
		{"signed header changed", signedSSM{creds: good, tamper: func(r *http.Request) { r.Header.Set("X-Amz-Target", "AmazonSSM.GetParameters") }},
			"InvalidSignatureException", ""},
		{"clock skew", signedSSM{creds: good, at: time.Now().Add(-20 * time.Minute)},
			"InvalidSignatureException", "Signature expired: "},
		{"future date", signedSSM{creds: good, at: time.Now().Add(20 * time.Minute)},
			"InvalidSignatureException", "Signature not yet current: "},
		{"other region", signedSSM{creds: good, region: "us-east-1"},
			"InvalidSignatureException", "Credential should be scoped to a valid region."},
		{"unsigned", signedSSM{creds: good, tamper: func(r *http.Request) { r.Header.Del("Authorization") }},
			"MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"not SigV4", signedSSM{creds: good, tamper: func(r *http.Request) { r.Header.Set("Authorization", "AWS AKIA:sig") }},
			"IncompleteSignatureException", "Unsupported AWS 'algorithm'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.srv = srv
			status, typ, msg := tc.req.send(t)
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, tc.errType, typ)
			assert.Contains(t, msg, tc.msg)
		})
	}
	// The trail says why, in the lab's words, for the people debugging.
	assert.Contains(t, srv.Log(), "temporary credentials (ASIA…) need X-Amz-Security-Token")
	assert.Contains(t, srv.Log(), "canonical request the lab computed: POST")
}

// Role credentials stop working when they expire, with SSM's error.
func TestExpiredRoleCredentials(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	creds, err := f.acct.RoleCredentials("pgha-dev-patroni", devInstance, 15*time.Minute)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(creds.AccessKeyID, "ASIA"))
	later := time.Now().Add(20 * time.Minute)
	f.acct.SetClock(func() time.Time { return later })
	status, typ, _ := signedSSM{srv: srv, at: later, creds: aws.Credentials{AccessKeyID: creds.AccessKeyID,
		SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}}.send(t)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "ExpiredTokenException", typ)
}

// EC2 spells the same failures its own way, in XML.
func TestEC2AuthErrors(t *testing.T) {
	f := newFixture(t)
	srv := awsapitest.Start(t, f.acct)
	ctx := context.Background()
	_, err := srv.EC2(credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "x", "")).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	code, msg := apiCode(t, err)
	assert.Equal(t, "AuthFailure", code)
	assert.Equal(t, "AWS was not able to validate the provided access credentials", msg)

	require.NoError(t, f.acct.AddUser("operator"))
	key, err := f.acct.CreateAccessKey("operator")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(key.AccessKeyID, "AKIA"))
	_, err = srv.EC2(credentials.NewStaticCredentialsProvider(key.AccessKeyID, "wrong", "")).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	code, _ = apiCode(t, err)
	assert.Equal(t, "SignatureDoesNotMatch", code)
}

// Plain HTTP is refused: the clients only speak HTTPS to AWS, and a
// stand-in that accepted it would hide a missing CA in the image.
func TestPlainHTTPRefused(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(awsapi.NewHandler(f.acct, awsapi.HandlerOptions{}))
	defer srv.Close()
	c := ssm.NewFromConfig(aws.Config{Region: testRegion, BaseEndpoint: aws.String(srv.URL),
		Credentials: f.roleCreds(t, "pgha-dev-patroni").Provider()})
	_, err := c.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(pgPassword)})
	code, _ := apiCode(t, err)
	assert.Equal(t, "UnsupportedProtocol", code)

	// And a service the stand-in does not serve is named in the answer.
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(nil))
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIAX", SecretAccessKey: "x"},
		req, hex.EncodeToString(sha256.New().Sum(nil)), "sts", testRegion, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), `serves the ssm, ec2, s3 and sns APIs only; this request is for service "sts"`)
}
