package awsapi

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// snsNamespace is the XML namespace of SNS API version 2010-03-31, the only
// one.
const snsNamespace = "http://sns.amazonaws.com/doc/2010-03-31/"

// maxMessageBytes is SNS's limit for one message: 256 KiB, counting the
// body and every attribute's name, type and value.
const maxMessageBytes = 256 << 10

// maxSubject is the longest Subject SNS accepts.
const maxSubject = 100

// maxAttributes is how many MessageAttributes a message may carry.
const maxAttributes = 10

// SNSEndpoint is SNS's regional endpoint name, sns.REGION.amazonaws.com.
func SNSEndpoint(region string) string { return "sns." + region + ".amazonaws.com" }

type snsService struct{}

// authError words authentication failures as SNS does. SNS is a Query
// service like EC2, but an older one: its codes are IAM's and STS's
// (InvalidClientTokenId, not AuthFailure), all 403 but a malformed header.
func (snsService) authError(e *authError) *apiError {
	const sigMsg = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	codes := map[authFailure]apiError{
		authMissing:      {Code: "MissingAuthenticationToken", Status: http.StatusForbidden, Message: "Request is missing Authentication Token"},
		authIncomplete:   {Code: "IncompleteSignature", Status: http.StatusBadRequest},
		authUnknownKey:   {Code: "InvalidClientTokenId", Status: http.StatusForbidden, Message: "The security token included in the request is invalid."},
		authBadToken:     {Code: "InvalidClientTokenId", Status: http.StatusForbidden, Message: "The security token included in the request is invalid."},
		authExpiredToken: {Code: "ExpiredToken", Status: http.StatusForbidden, Message: "The security token included in the request is expired"},
		authBadSignature: {Code: "SignatureDoesNotMatch", Status: http.StatusForbidden, Message: sigMsg},
		authSkew:         {Code: "SignatureDoesNotMatch", Status: http.StatusForbidden},
		authWrongRegion:  {Code: "SignatureDoesNotMatch", Status: http.StatusForbidden, Message: "Credential should be scoped to a valid region."},
	}
	out := codes[e.kind]
	if e.msg != "" {
		out.Message = e.msg
	}
	return &out
}

func (snsService) payloadHash(c *call) (string, *apiError) { return c.readBody() }

// snsError is SNS's error document. Unlike EC2's it says whose fault the
// error is (Type), and it has no Errors list.
type snsError struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (snsService) writeError(c *call, e *apiError) {
	x := snsError{Xmlns: snsNamespace, Type: "Sender", Code: e.Code, Message: e.Message, RequestID: c.id}
	if e.Status >= 500 {
		x.Type = "Receiver"
	}
	c.w.Header().Set("x-amzn-RequestId", c.id)
	writeXML(c.w, e.Status, x)
}

type snsPublishResponse struct {
	XMLName   xml.Name `xml:"PublishResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	MessageID string   `xml:"PublishResult>MessageId"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

func (s snsService) serve(c *call) {
	params, e := c.queryParams()
	if e != nil {
		c.fail(e)
		return
	}
	action := params.Get("Action")
	if action != "" {
		c.ev.action = "sns:" + action
	}
	var out any
	switch action {
	case "Publish":
		out, e = s.publish(c, params)
	default:
		e = &apiError{Code: "InvalidAction", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Could not find operation %s for version %s (the lab's SNS implements Publish)", action, params.Get("Version"))}
	}
	if e != nil {
		c.fail(e)
		return
	}
	body, _ := xml.Marshal(out)
	c.w.Header().Set("x-amzn-RequestId", c.id)
	c.ok("text/xml", append([]byte(xml.Header), body...))
}

func invalidParameter(what string) *apiError {
	return &apiError{Code: "InvalidParameter", Status: http.StatusBadRequest, Message: "Invalid parameter: " + what}
}

func invalidAttribute(format string, args ...any) *apiError {
	return &apiError{Code: "ParameterValueInvalid", Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// publish checks the message as SNS does, then the caller's permission on
// the topic, then that the topic exists, and delivers.
func (s snsService) publish(c *call, params url.Values) (any, *apiError) {
	arn := params.Get("TopicArn")
	if arn == "" {
		// TargetArn may name a topic too (or a mobile endpoint, which the
		// lab does not have).
		arn = params.Get("TargetArn")
	}
	switch {
	case params.Get("PhoneNumber") != "":
		return nil, invalidParameter("PhoneNumber Reason: the lab's SNS publishes to topics only, not SMS")
	case arn == "":
		return nil, invalidParameter("TopicArn or TargetArn Reason: no value for required parameter")
	case !validTopicARN(arn, c.h.acct):
		return nil, invalidParameter("TopicArn")
	case params.Get("MessageStructure") != "":
		return nil, invalidParameter("MessageStructure Reason: the lab's SNS takes plain messages only")
	}
	c.ev.resources = []string{arn}
	m := Message{TopicARN: arn, Message: params.Get("Message"), RequestID: c.id}
	switch {
	case m.Message == "":
		return nil, invalidParameter("Empty message")
	case !utf8.ValidString(m.Message):
		return nil, invalidParameter("Message Reason: not UTF-8")
	}
	if subj, ok := params["Subject"]; ok {
		m.Subject = subj[0]
		if !validSubject(m.Subject) {
			return nil, invalidParameter("Subject")
		}
	}
	var e *apiError
	if m.Attributes, e = messageAttributes(params); e != nil {
		return nil, e
	}
	if messageSize(m) > maxMessageBytes {
		return nil, invalidParameter("Message too long")
	}

	if d := c.authorize("sns:Publish", arn, nil); d != Allowed {
		e := c.denied("AuthorizationError", http.StatusForbidden, "", "sns:Publish", arn, d)
		// SNS spells its service prefix in capitals in what it says.
		e.Message = deniedMessage(c.caller.arn, "SNS:Publish", arn, d)
		return nil, e
	}
	m.MessageID, m.Time, m.Caller = newKeyUUID(), c.h.acct.Now().UTC(), c.caller.arn
	switch err := c.h.acct.deliver(m); {
	case errors.Is(err, errNoTopic):
		return nil, &apiError{Code: "NotFound", Status: http.StatusNotFound, Message: "Topic does not exist",
			detail: fmt.Sprintf("no topic %s in account %s (add it with Account.AddTopic)", arn, c.h.acct.ID)}
	case err != nil:
		return nil, &apiError{Code: "InternalError", Status: http.StatusInternalServerError,
			Message: "Internal Error", detail: "the lab could not keep the message: " + err.Error()}
	}
	c.ev.detail = "MessageId " + m.MessageID
	return snsPublishResponse{Xmlns: snsNamespace, MessageID: m.MessageID, RequestID: c.id}, nil
}

// topicARNPattern is any topic ARN: a Publish to one in another account
// is authorized (and then not found: the lab has one account), one in
// another region is not SNS's to take.
var topicARNPattern = regexp.MustCompile(`^arn:[a-z-]+:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)

func validTopicARN(arn string, a *Account) bool {
	m := topicARNPattern.FindStringSubmatch(arn)
	return m != nil && m[1] == a.Region && strings.HasPrefix(arn, "arn:"+a.Partition+":")
}

// validSubject: ASCII text that starts with a letter, digit or
// punctuation, without line breaks or control characters, at most 100
// characters (SNS's words). Alertmanager's default subject lists the
// group's labels and easily exceeds that.
func validSubject(s string) bool {
	if s == "" || len(s) > maxSubject || s[0] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

var attributeTypePattern = regexp.MustCompile(`^(String|Number|Binary|String\.Array)(\..+)?$`)

// messageAttributes reads MessageAttributes.entry.N.{Name,Value.DataType,
// Value.StringValue,Value.BinaryValue}, the Query protocol's spelling of
// a map, and checks them as SNS does.
func messageAttributes(params url.Values) (map[string]MessageAttribute, *apiError) {
	const prefix = "MessageAttributes.entry."
	var ns []int
	seen := map[int]bool{}
	for k := range params {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			return nil, invalidAttribute("Invalid message attribute entry %q", k)
		}
		if !seen[n] {
			seen[n] = true
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		return nil, nil
	}
	if len(ns) > maxAttributes {
		return nil, invalidAttribute("Number of message attributes [%d] exceeds the allowed maximum [%d].", len(ns), maxAttributes)
	}
	sort.Ints(ns)
	out := map[string]MessageAttribute{}
	for _, n := range ns {
		p := fmt.Sprintf("%s%d.", prefix, n)
		name := params.Get(p + "Name")
		v := MessageAttribute{DataType: params.Get(p + "Value.DataType"), StringValue: params.Get(p + "Value.StringValue")}
		switch {
		case name == "":
			return nil, invalidAttribute("The message attribute name can not be empty.")
		case out[name].DataType != "":
			return nil, invalidAttribute("Message attribute name '%s' is used more than once.", name)
		case v.DataType == "":
			return nil, invalidAttribute("The message attribute '%s' must contain non-empty message attribute type.", name)
		case !attributeTypePattern.MatchString(v.DataType):
			return nil, invalidAttribute("The message attribute '%s' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.", name)
		}
		base := strings.SplitN(v.DataType, ".", 2)[0]
		if base == "Binary" {
			b, err := base64.StdEncoding.DecodeString(params.Get(p + "Value.BinaryValue"))
			if err != nil {
				return nil, invalidAttribute("The message attribute '%s' has an invalid binary value.", name)
			}
			v.BinaryValue = b
		}
		if v.StringValue == "" && len(v.BinaryValue) == 0 {
			return nil, invalidAttribute("The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, base)
		}
		if base == "Number" {
			if _, err := strconv.ParseFloat(v.StringValue, 64); err != nil {
				return nil, invalidAttribute("Could not cast message attribute '%s' value to number.", name)
			}
		}
		out[name] = v
	}
	return out, nil
}

// messageSize is what SNS counts against its limit.
func messageSize(m Message) int {
	n := len(m.Message)
	for k, v := range m.Attributes {
		n += len(k) + len(v.DataType) + len(v.StringValue) + len(v.BinaryValue)
	}
	return n
}
