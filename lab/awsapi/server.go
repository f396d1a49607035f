package awsapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HandlerOptions tune NewHandler.
type HandlerOptions struct {
	// Log receives one line per request (see the package doc); nil
	// discards them.
	Log io.Writer
	// MaxClockSkew bounds how far X-Amz-Date may be from the account's
	// clock. Zero means AWS's 15 minutes.
	MaxClockSkew time.Duration
}

// maxBody bounds SSM, EC2 and SNS request bodies, which are small (an SNS
// message is at most 256 KiB, form-encoded). S3 bodies are not read here:
// they stream to the object store (see s3.go).
const maxBody = 1 << 20

// NewHandler serves the account's SSM, EC2, S3 and SNS APIs. Serve it over
// TLS (awscli and the SDKs speak only HTTPS to these endpoints; see CA); a
// plain HTTP request is refused. Requests are routed by the service of
// their SigV4 credential scope, so every endpoint name
// (ssm.REGION.amazonaws.com, ec2.REGION.amazonaws.com,
// s3.REGION.amazonaws.com, BUCKET.s3.REGION.amazonaws.com and
// sns.REGION.amazonaws.com) may point at one listener. S3 needs an object
// store: see Account.SetObjectStore.
func NewHandler(a *Account, o HandlerOptions) http.Handler {
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = 15 * time.Minute
	}
	return &handler{acct: a, opts: o, trail: &trail{w: o.Log}}
}

type handler struct {
	acct  *Account
	opts  HandlerOptions
	trail *trail
}

// service is one AWS API: how it words errors and how it serves calls.
type service interface {
	authError(e *authError) *apiError
	writeError(c *call, e *apiError)
	// payloadHash is the hex SHA-256 the signature covers for the body.
	payloadHash(c *call) (string, *apiError)
	serve(c *call)
}

// apiError is an error as a service returns it.
type apiError struct {
	Code    string
	Message string
	Status  int
	detail  string // for the trail only
	deny    bool   // an authorization denial
}

// call is one request on its way through the handler.
type call struct {
	h      *handler
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	svc    service
	caller *caller
	id     string
	ev     *event
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{h: h, w: w, r: r, id: newRequestID()}
	c.ev = &event{at: h.acct.Now(), source: r.RemoteAddr, requestID: c.id}
	defer func() { h.trail.write(c.ev) }()

	c.svc = h.pick(r)
	if c.svc == nil {
		sc, _ := scopeOf(r)
		c.plainError(http.StatusBadRequest, fmt.Sprintf("the lab's AWS stand-in serves the ssm, ec2, s3 and sns APIs only; this request is for service %q", sc.service))
		return
	}
	if r.TLS == nil {
		c.fail(&apiError{Code: "UnsupportedProtocol", Status: http.StatusBadRequest,
			Message: "This API requires HTTPS; connect with TLS (see awsapi.CA for a certificate the clients trust)."})
		return
	}
	hash, e := c.svc.payloadHash(c)
	if e != nil {
		c.fail(e)
		return
	}
	caller, aerr := h.acct.authenticate(r, hash, h.opts.MaxClockSkew)
	if aerr != nil {
		c.ev.caller = aerr.keyID
		e := c.svc.authError(aerr)
		e.detail = aerr.detail
		c.fail(e)
		return
	}
	c.caller = caller
	c.ev.caller = caller.arn
	c.svc.serve(c)
}

// pick routes by the credential scope's service. An unsigned request has
// none; it is routed by its shape, so that it gets the service's own
// "missing authentication" error: SNS and EC2 share the Query protocol's
// shape, so SNS's are told by the host they were sent to; S3's REST
// requests have no shape of their own, so whatever is none of the others
// is S3's (anonymous S3 requests are what unsigned requests usually are).
func (h *handler) pick(r *http.Request) service {
	sc, ok := scopeOf(r)
	if !ok {
		switch {
		case strings.HasPrefix(r.Header.Get("X-Amz-Target"), ssmTargetPrefix):
			return ssmService{}
		case strings.HasPrefix(r.Host, "sns."):
			return snsService{}
		case strings.Contains(r.Header.Get("Content-Type"), "x-www-form-urlencoded") || r.URL.Query().Get("Action") != "":
			return ec2Service{}
		}
		return s3Service{}
	}
	switch sc.service {
	case "ssm":
		return ssmService{}
	case "ec2":
		return ec2Service{}
	case "s3":
		return s3Service{}
	case "sns":
		return snsService{}
	}
	return nil
}

// readBody reads a small (SSM, EC2, SNS) body into c.body and hashes it.
func (c *call) readBody() (string, *apiError) {
	body, err := io.ReadAll(io.LimitReader(c.r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		return "", &apiError{Code: "RequestEntityTooLarge", Status: http.StatusRequestEntityTooLarge,
			Message: "the request body could not be read or exceeds 1 MiB"}
	}
	c.body = body
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), nil
}

// fail answers with the service's error format and records the failure.
func (c *call) fail(e *apiError) {
	c.ev.status, c.ev.code = e.Status, e.Code
	c.ev.decision = "error"
	if e.deny {
		c.ev.decision = "deny"
	}
	if c.ev.detail == "" {
		c.ev.detail = e.detail
	}
	if c.ev.detail == "" && e.deny {
		c.ev.detail = e.Message
	}
	c.svc.writeError(c, e)
}

// ok answers a successful call.
func (c *call) ok(contentType string, body []byte) {
	c.ev.status, c.ev.decision = http.StatusOK, "allow"
	c.w.Header().Set("Content-Type", contentType)
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(body)
}

func (c *call) plainError(status int, msg string) {
	c.ev.status, c.ev.decision, c.ev.detail = status, "error", msg
	http.Error(c.w, msg, status)
}

// authorize evaluates the caller's policies for one action on one
// resource. The context always carries the global keys AWS supplies for
// every request; extra adds the service-specific ones.
func (c *call) authorize(action, resource string, extra map[string]string) Decision {
	ctx := requestContext{}
	ctx.set("aws:RequestedRegion", c.caller.region)
	ctx.set("aws:PrincipalArn", c.caller.principal)
	ctx.set("aws:PrincipalAccount", c.h.acct.ID)
	ctx.set("aws:SecureTransport", "true")
	for k, v := range extra {
		ctx.set(k, v)
	}
	return evaluate(c.caller.policies, action, resource, ctx)
}

// deny builds the denial error a service returns, worded like AWS's.
func (c *call) denied(code string, status int, prefix, action, resource string, d Decision) *apiError {
	return &apiError{Code: code, Status: status, deny: true,
		Message: prefix + deniedMessage(c.caller.arn, action, resource, d),
		detail:  fmt.Sprintf("%s %s on %s (policies: %s)", d, action, resource, policyNames(c.caller.policies))}
}

func policyNames(ps []*Policy) string {
	if len(ps) == 0 {
		return "none"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ",")
}
