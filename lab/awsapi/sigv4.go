package awsapi

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/logging"
)

// authFailure is why a request was not authenticated. Each service words
// and codes these differently (see ssmAuthErrors, ec2AuthErrors).
type authFailure int

const (
	authMissing      authFailure = iota // no Authorization header
	authIncomplete                      // a malformed Authorization header
	authUnknownKey                      // no such key, or temporary credentials without their token
	authExpiredToken                    // temporary credentials past their expiry
	authBadSignature                    // the signature does not match
	authSkew                            // X-Amz-Date too far from the server's clock
	authWrongRegion                     // signed for another region
	authBadToken                        // a session token that is not the key's, or one sent with a long-term key
)

type authError struct {
	kind   authFailure
	msg    string // replaces the service's default message when set
	detail string // for the log only: why, in the lab's words
	keyID  string
}

// scope is the parsed Credential= element of a SigV4 Authorization header.
type scope struct {
	keyID, date, region, service string
}

// sigv4Header is a parsed SigV4 Authorization header.
type sigv4Header struct {
	scope
	signedHeaders string
	signature     string
}

const sigv4Algorithm = "AWS4-HMAC-SHA256"

func parseAuthorization(h string) (sigv4Header, *authError) {
	var out sigv4Header
	rest, ok := strings.CutPrefix(h, sigv4Algorithm+" ")
	if !ok {
		return out, &authError{kind: authIncomplete, msg: "Unsupported AWS 'algorithm': only " + sigv4Algorithm + " (SigV4) is accepted."}
	}
	var cred string
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			out.signedHeaders = v
		case "Signature":
			out.signature = v
		}
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"Credential", cred}, {"Signature", out.signature}, {"SignedHeaders", out.signedHeaders}} {
		if f.v == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", f.name))
		}
	}
	if len(missing) > 0 {
		return out, &authError{kind: authIncomplete, msg: strings.Join(missing, " ")}
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return out, &authError{kind: authIncomplete, msg: fmt.Sprintf("Credential should be of the form ACCESSKEYID/YYYYMMDD/REGION/SERVICE/aws4_request, got '%s'.", cred)}
	}
	out.scope = scope{keyID: parts[0], date: parts[1], region: parts[2], service: parts[3]}
	return out, nil
}

// scopeOf returns the credential scope of a request, if it has a
// parsable Authorization header; the router uses it to pick the service.
func scopeOf(r *http.Request) (scope, bool) {
	h, err := parseAuthorization(r.Header.Get("Authorization"))
	return h.scope, err == nil
}

// caller is an authenticated request's identity.
type caller struct {
	arn       string // the user, or the assumed-role session
	principal string // the user or role ARN (aws:PrincipalArn)
	keyID     string
	policies  []*Policy
	region    string
}

// authenticate checks a request's SigV4 signature the way AWS does:
// algorithm and scope, key and session token, clock skew, then the
// signature itself, recomputed with aws-sdk-go-v2's signer from what was
// received. payloadHash is the hex SHA-256 of the body (SSM, EC2: the
// body as read) or what S3's X-Amz-Content-Sha256 header declares.
func (a *Account) authenticate(r *http.Request, payloadHash string, maxSkew time.Duration) (*caller, *authError) {
	raw := r.Header.Get("Authorization")
	if raw == "" {
		if r.URL.Query().Get("X-Amz-Algorithm") != "" {
			return nil, &authError{kind: authIncomplete, msg: "Presigned (query string) requests are not supported by the lab; sign with the Authorization header.", detail: "presigned URL"}
		}
		return nil, &authError{kind: authMissing}
	}
	h, aerr := parseAuthorization(raw)
	if aerr != nil {
		return nil, aerr
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return nil, &authError{kind: authIncomplete, keyID: h.keyID, msg: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.", detail: "the lab accepts X-Amz-Date only"}
	}
	signedAt, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return nil, &authError{kind: authIncomplete, keyID: h.keyID, msg: fmt.Sprintf("X-Amz-Date '%s' must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'.", amzDate)}
	}
	if h.date != signedAt.Format("20060102") {
		return nil, &authError{kind: authBadSignature, keyID: h.keyID,
			msg: fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", h.date, signedAt.Format("20060102"), amzDate)}
	}
	if h.region != a.Region {
		return nil, &authError{kind: authWrongRegion, keyID: h.keyID, detail: fmt.Sprintf("signed for region %s, the account is in %s", h.region, a.Region)}
	}

	a.mu.Lock()
	now := a.clock()
	k, ok := a.keys[h.keyID]
	var c *caller
	var key accessKey
	if ok {
		key = *k
		c = &caller{arn: k.callerARN(a), principal: k.principal.arn, keyID: k.id,
			policies: k.principal.sortedPolicies(), region: h.region}
	}
	a.mu.Unlock()

	token := r.Header.Get("X-Amz-Security-Token")
	switch {
	case !ok:
		return nil, &authError{kind: authUnknownKey, keyID: h.keyID, detail: "no such access key in the account"}
	case key.token == "" && token != "":
		return nil, &authError{kind: authBadToken, keyID: h.keyID, detail: "a session token was sent with a long-term key"}
	case key.token != "" && token == "":
		return nil, &authError{kind: authUnknownKey, keyID: h.keyID, detail: "temporary credentials (ASIA…) need X-Amz-Security-Token"}
	case key.token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(key.token)) != 1:
		return nil, &authError{kind: authBadToken, keyID: h.keyID, detail: "the session token does not belong to this key"}
	case !key.expires.IsZero() && now.After(key.expires):
		return nil, &authError{kind: authExpiredToken, keyID: h.keyID, detail: "credentials expired at " + key.expires.Format(time.RFC3339)}
	}
	if d := now.Sub(signedAt); d > maxSkew || d < -maxSkew {
		ts := func(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
		msg := fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s.)", amzDate, ts(now.Add(-maxSkew)), ts(now), skewText(maxSkew))
		if d < 0 {
			msg = fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %s.)", amzDate, ts(now.Add(maxSkew)), ts(now), skewText(maxSkew))
		}
		return nil, &authError{kind: authSkew, keyID: h.keyID, msg: msg, detail: fmt.Sprintf("clock skew %s exceeds %s", d.Round(time.Second), maxSkew)}
	}

	want, canonical, why := recompute(r, payloadHash, h, key, token != "", signedAt)
	if why != "" || subtle.ConstantTimeCompare([]byte(want), []byte(h.signature)) != 1 {
		if why == "" {
			why = "signature mismatch (wrong secret key, or the request changed after signing)"
		}
		return nil, &authError{kind: authBadSignature, keyID: h.keyID, detail: why + "; canonical request the lab computed: " + canonical}
	}
	return c, nil
}

func skewText(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return d.String()
}

// ignoredBySigner are headers aws-sdk-go-v2's signer never signs. A client
// that did sign one cannot be verified by recomputing with that signer.
var ignoredBySigner = map[string]bool{"authorization": true, "user-agent": true,
	"x-amzn-trace-id": true, "expect": true, "transfer-encoding": true}

// recompute signs a copy of the received request that holds only the
// headers the client says it signed, and returns the signature the
// client should have sent, the canonical request, and a reason when the
// request cannot match whatever the signature.
func recompute(r *http.Request, payloadHash string, h sigv4Header, key accessKey, tokenSent bool, at time.Time) (sig, canonical, why string) {
	signed := strings.Split(h.signedHeaders, ";")
	hdr := http.Header{}
	var contentLength int64
	for _, name := range signed {
		switch {
		case ignoredBySigner[name]:
			return "", "", fmt.Sprintf("the client signed %q, which the lab's verifier (aws-sdk-go-v2's signer) never signs", name)
		case name == "host", name == "x-amz-date", name == "x-amz-security-token":
			// The signer writes these itself, from r.Host, at and the token.
		case name == "content-length":
			contentLength = r.ContentLength
		default:
			if vals, ok := r.Header[http.CanonicalHeaderKey(name)]; ok {
				hdr[http.CanonicalHeaderKey(name)] = vals
			}
		}
	}
	u := &url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: hdr, ContentLength: contentLength}
	creds := aws.Credentials{AccessKeyID: key.id, SecretAccessKey: key.secret, SessionToken: key.token}
	err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, h.service, h.region, at,
		func(o *v4.SignerOptions) {
			// S3 alone takes the path as sent (encoded once); every other
			// service's canonical URI encodes it again.
			o.DisableURIPathEscaping = h.service == "s3"
			// A client that sent the token without signing it is still
			// authenticated by it (checked above); sign as it did.
			o.DisableSessionToken = !strings.Contains(";"+h.signedHeaders+";", ";x-amz-security-token;") || !tokenSent
			o.LogSigning = true
			o.Logger = logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
				canonical = fmt.Sprintf(format, v...)
			})
		})
	if err != nil {
		return "", canonical, "signing failed: " + err.Error()
	}
	got, perr := parseAuthorization(req.Header.Get("Authorization"))
	if perr != nil {
		return "", canonical, "signing produced no Authorization header"
	}
	canonical = canonicalPart(canonical)
	if got.signedHeaders != h.signedHeaders {
		return "", canonical, fmt.Sprintf("signed headers %q do not match the request's %q (a signed header is missing from the request?)", h.signedHeaders, got.signedHeaders)
	}
	return got.signature, canonical, ""
}

// canonicalPart keeps the canonical request out of the signer's debug log.
func canonicalPart(log string) string {
	const start = "---[ CANONICAL STRING  ]-----------------------------\n"
	const end = "\n---[ STRING TO SIGN ]"
	if i := strings.Index(log, start); i >= 0 {
		log = log[i+len(start):]
		if j := strings.Index(log, end); j >= 0 {
			log = log[:j]
		}
	}
	return log
}
