package awsapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
)

// ssmTargetPrefix starts the X-Amz-Target header of every SSM call
// (awsJson1_1 protocol: POST /, the operation in the header).
const ssmTargetPrefix = "AmazonSSM."

type ssmService struct{}

// authError words authentication failures as SSM (a JSON service) does.
func (ssmService) authError(e *authError) *apiError {
	const sigMsg = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	codes := map[authFailure]apiError{
		authMissing:      {Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"},
		authIncomplete:   {Code: "IncompleteSignatureException"},
		authUnknownKey:   {Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."},
		authBadToken:     {Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."},
		authExpiredToken: {Code: "ExpiredTokenException", Message: "The security token included in the request is expired"},
		authBadSignature: {Code: "InvalidSignatureException", Message: sigMsg},
		authSkew:         {Code: "InvalidSignatureException"},
		authWrongRegion:  {Code: "InvalidSignatureException", Message: "Credential should be scoped to a valid region."},
	}
	out := codes[e.kind]
	out.Status = http.StatusBadRequest
	if e.msg != "" {
		out.Message = e.msg
	}
	return &out
}

func (ssmService) payloadHash(c *call) (string, *apiError) { return c.readBody() }

func (ssmService) writeError(c *call, e *apiError) {
	body, _ := json.Marshal(map[string]string{"__type": e.Code, "message": e.Message})
	c.w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	c.w.Header().Set("x-amzn-RequestId", c.id)
	c.w.WriteHeader(e.Status)
	_, _ = c.w.Write(body)
}

func (s ssmService) serve(c *call) {
	op, ok := strings.CutPrefix(c.r.Header.Get("X-Amz-Target"), ssmTargetPrefix)
	if !ok || c.r.Method != http.MethodPost {
		c.fail(&apiError{Code: "UnknownOperationException", Status: http.StatusBadRequest,
			Message: "SSM calls are POST / with X-Amz-Target: AmazonSSM.<Operation>"})
		return
	}
	c.ev.action = "ssm:" + op
	c.w.Header().Set("x-amzn-RequestId", c.id)
	var out any
	var e *apiError
	switch op {
	case "GetParameter":
		out, e = s.getParameter(c)
	case "GetParameters":
		out, e = s.getParameters(c)
	default:
		e = &apiError{Code: "UnknownOperationException", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("The lab's SSM implements GetParameter and GetParameters; %s is not implemented.", op)}
	}
	if e != nil {
		c.fail(e)
		return
	}
	body, _ := json.Marshal(out)
	c.ok("application/x-amz-json-1.1", body)
}

// ssmParameter is the wire shape of a parameter in SSM responses.
type ssmParameter struct {
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	LastModifiedDate float64 `json:"LastModifiedDate"` // epoch seconds
	Name             string  `json:"Name"`
	Selector         string  `json:"Selector,omitempty"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
}

func validation(format string, args ...any) *apiError {
	return &apiError{Code: "ValidationException", Status: http.StatusBadRequest,
		Message: "1 validation error detected: " + fmt.Sprintf(format, args...)}
}

func (s ssmService) getParameter(c *call) (any, *apiError) {
	var in struct {
		Name           *string
		WithDecryption bool
	}
	if err := json.Unmarshal(c.body, &in); err != nil {
		return nil, &apiError{Code: "SerializationException", Status: http.StatusBadRequest, Message: err.Error()}
	}
	if in.Name == nil || *in.Name == "" {
		return nil, validation("Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	ref := c.h.acct.lookupParameter(*in.Name)
	c.ev.resources = []string{ref.arn}
	if d := c.authorize("ssm:GetParameter", ref.arn, nil); d != Allowed {
		return nil, c.denied("AccessDeniedException", http.StatusBadRequest, "", "ssm:GetParameter", ref.arn, d)
	}
	switch {
	case ref.badSelector:
		return nil, &apiError{Code: "ParameterVersionNotFound", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Systems Manager could not find version %s of %s. Verify the version and try again.", ref.selector[1:], *in.Name)}
	case !ref.found:
		return nil, s.notFound(c, *in.Name)
	}
	wire, e := s.wire(c, ref.p, in.WithDecryption)
	if e != nil {
		return nil, e
	}
	wire.Selector = ref.selector
	return map[string]any{"Parameter": wire}, nil
}

// notFound answers ParameterNotFound with AWS's empty message; the trail
// line says which names exist nearby, since a typo is the usual cause.
func (ssmService) notFound(c *call, name string) *apiError {
	near := c.h.acct.parameterNamesUnder(path.Dir(name) + "/")
	return &apiError{Code: "ParameterNotFound", Status: http.StatusBadRequest,
		detail: fmt.Sprintf("no parameter %s (under %s/: %s)", name, path.Dir(name), strings.Join(near, " "))}
}

func (s ssmService) getParameters(c *call) (any, *apiError) {
	var in struct {
		Names          []string
		WithDecryption bool
	}
	if err := json.Unmarshal(c.body, &in); err != nil {
		return nil, &apiError{Code: "SerializationException", Status: http.StatusBadRequest, Message: err.Error()}
	}
	if len(in.Names) < 1 || len(in.Names) > 10 {
		return nil, validation("Value '%v' at 'names' failed to satisfy constraint: Member must have length less than or equal to 10 and greater than or equal to 1", in.Names)
	}
	type hit struct {
		arn   string
		p     Parameter
		found bool
	}
	hits := make([]hit, 0, len(in.Names))
	// AWS authorizes every name before answering any: one denied name
	// fails the whole call.
	for _, n := range in.Names {
		ref := c.h.acct.lookupParameter(n)
		c.ev.resources = append(c.ev.resources, ref.arn)
		if d := c.authorize("ssm:GetParameters", ref.arn, nil); d != Allowed {
			return nil, c.denied("AccessDeniedException", http.StatusBadRequest, "", "ssm:GetParameters", ref.arn, d)
		}
		hits = append(hits, hit{arn: ref.arn, p: ref.p, found: ref.found})
	}
	params := []ssmParameter{}
	invalid := []string{}
	seen := map[string]bool{}
	for i, h := range hits {
		if seen[in.Names[i]] {
			continue
		}
		seen[in.Names[i]] = true
		if !h.found {
			invalid = append(invalid, in.Names[i])
			continue
		}
		wire, e := s.wire(c, h.p, in.WithDecryption)
		if e != nil {
			return nil, e
		}
		params = append(params, wire)
	}
	return map[string]any{"Parameters": params, "InvalidParameters": invalid}, nil
}

// wire renders a parameter, decrypting a SecureString only if the caller
// may also use the aws/ssm key: SSM calls kms:Decrypt on the caller's
// behalf, with kms:ViaService naming SSM in this region, and the caller's
// policies decide, as on AWS.
func (ssmService) wire(c *call, p Parameter, decrypt bool) (ssmParameter, *apiError) {
	w := ssmParameter{ARN: p.ARN, DataType: "text", Name: p.Name, Type: string(p.Type), Value: p.Value, Version: p.Version,
		LastModifiedDate: float64(p.LastModifiedDate.UnixMilli()) / 1000}
	if p.Type != SecureString {
		return w, nil
	}
	if !decrypt {
		w.Value = c.h.acct.ciphertext(p.Name, p.Version)
		return w, nil
	}
	acct := c.h.acct
	key := acct.KMSKeyARN()
	d := c.authorize("kms:Decrypt", key, map[string]string{
		"kms:ViaService":                      "ssm." + acct.Region + ".amazonaws.com",
		"kms:CallerAccount":                   acct.ID,
		"kms:EncryptionContext:PARAMETER_ARN": p.ARN,
	})
	if d != Allowed {
		e := c.denied("AccessDeniedException", http.StatusBadRequest, "", "kms:Decrypt", key, d)
		// SSM passes KMS's refusal on, with the Java-style suffix AWS shows.
		e.Message += fmt.Sprintf(" (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException; Request ID: %s; Proxy: null)", newRequestID())
		e.detail = fmt.Sprintf("ssm:GetParameter allowed, but %s kms:Decrypt on %s for %s (policies: %s)", d, key, p.ARN, policyNames(c.caller.policies))
		c.ev.resources = append(c.ev.resources, key)
		return w, e
	}
	return w, nil
}
