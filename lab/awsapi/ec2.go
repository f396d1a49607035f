package awsapi

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

type ec2Service struct{}

// authError words authentication failures as EC2 (a query/XML service)
// does; they differ from SSM's in code and HTTP status.
func (ec2Service) authError(e *authError) *apiError {
	const sigMsg = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	codes := map[authFailure]apiError{
		authMissing:      {Code: "MissingAuthenticationToken", Status: http.StatusUnauthorized, Message: "The request must contain valid credentials."},
		authIncomplete:   {Code: "IncompleteSignature", Status: http.StatusBadRequest},
		authUnknownKey:   {Code: "AuthFailure", Status: http.StatusUnauthorized, Message: "AWS was not able to validate the provided access credentials"},
		authBadToken:     {Code: "AuthFailure", Status: http.StatusUnauthorized, Message: "AWS was not able to validate the provided access credentials"},
		authExpiredToken: {Code: "RequestExpired", Status: http.StatusBadRequest, Message: "Request has expired."},
		authBadSignature: {Code: "SignatureDoesNotMatch", Status: http.StatusForbidden, Message: sigMsg},
		authSkew:         {Code: "RequestExpired", Status: http.StatusBadRequest, Message: "Request has expired."},
		authWrongRegion:  {Code: "AuthFailure", Status: http.StatusUnauthorized, Message: "Credential should be scoped to a valid region."},
	}
	out := codes[e.kind]
	if e.msg != "" && (e.kind == authIncomplete || e.kind == authBadSignature) {
		out.Message = e.msg
	}
	return &out
}

func (ec2Service) payloadHash(c *call) (string, *apiError) { return c.readBody() }

func (ec2Service) writeError(c *call, e *apiError) {
	var x xmlErrorResponse
	x.Errors.Error.Code, x.Errors.Error.Message, x.RequestID = e.Code, e.Message, c.id
	writeXML(c.w, e.Status, x)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, _ := xml.Marshal(v)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// queryParams are a Query-protocol call's parameters (EC2, SNS): those of
// the URL, and for a POST those of the form-encoded body, where the SDKs
// and awscli put them.
func (c *call) queryParams() (url.Values, *apiError) {
	params := c.r.URL.Query()
	if c.r.Method == http.MethodPost {
		form, err := url.ParseQuery(string(c.body))
		if err != nil {
			return nil, &apiError{Code: "MalformedQueryString", Status: http.StatusBadRequest, Message: err.Error()}
		}
		for k, v := range form {
			params[k] = v
		}
	}
	return params, nil
}

func (s ec2Service) serve(c *call) {
	params, e := c.queryParams()
	if e != nil {
		c.fail(e)
		return
	}
	action := params.Get("Action")
	if action == "" {
		c.fail(&apiError{Code: "MissingAction", Status: http.StatusBadRequest, Message: "The request must contain the parameter Action"})
		return
	}
	c.ev.action = "ec2:" + action
	var out any
	switch action {
	case "DescribeInstances":
		out, e = s.describeInstances(c, params)
	case "StopInstances":
		out, e = s.changeState(c, params, "StopInstancesResponse", "ec2:StopInstances")
	case "StartInstances":
		out, e = s.changeState(c, params, "StartInstancesResponse", "ec2:StartInstances")
	default:
		e = &apiError{Code: "InvalidAction", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("The action %s is not valid for this web service. (The lab's EC2 implements DescribeInstances, StopInstances and StartInstances.)", action)}
	}
	if e != nil {
		c.fail(e)
		return
	}
	body, _ := xml.Marshal(out)
	c.ok("text/xml;charset=UTF-8", append([]byte(xml.Header), body...))
}

// indexed collects Prefix.1, Prefix.2, … in index order.
func indexed(params url.Values, prefix string) []string {
	type kv struct {
		n int
		v string
	}
	var items []kv
	for k, vs := range params {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok || strings.Contains(rest, ".") {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && len(vs) > 0 {
			items = append(items, kv{n, vs[0]})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// instanceIDs checks the InstanceId.N list: malformed ids first, then
// unknown ones, worded as EC2 words them.
func (c *call) instanceIDs(params url.Values) ([]string, *apiError) {
	ids := indexed(params, "InstanceId")
	for _, id := range ids {
		if !instanceIDPattern.MatchString(id) {
			return nil, &apiError{Code: "InvalidInstanceID.Malformed", Status: http.StatusBadRequest, Message: fmt.Sprintf("Invalid id: \"%s\"", id)}
		}
	}
	var missing []string
	for _, id := range ids {
		if _, ok := c.h.acct.Instance(id); !ok {
			missing = append(missing, id)
		}
	}
	switch len(missing) {
	case 0:
		return ids, nil
	case 1:
		return nil, &apiError{Code: "InvalidInstanceID.NotFound", Status: http.StatusBadRequest, Message: fmt.Sprintf("The instance ID '%s' does not exist", missing[0])}
	}
	return nil, &apiError{Code: "InvalidInstanceID.NotFound", Status: http.StatusBadRequest, Message: fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", "))}
}

func dryRun(params url.Values) bool { return strings.EqualFold(params.Get("DryRun"), "true") }

var errDryRun = &apiError{Code: "DryRunOperation", Status: http.StatusPreconditionFailed, Message: "Request would have succeeded, but DryRun flag is set."}

func (s ec2Service) describeInstances(c *call, params url.Values) (any, *apiError) {
	c.ev.resources = []string{"*"}
	// DescribeInstances has no resource-level permissions: only a
	// statement with Resource "*" can allow it.
	if d := c.authorize("ec2:DescribeInstances", "*", map[string]string{"ec2:Region": c.h.acct.Region}); d != Allowed {
		return nil, c.denied("UnauthorizedOperation", http.StatusForbidden, "You are not authorized to perform this operation. ", "ec2:DescribeInstances", "*", d)
	}
	ids, e := c.instanceIDs(params)
	if e != nil {
		return nil, e
	}
	filters, e := parseFilters(params)
	if e != nil {
		return nil, e
	}
	if dryRun(params) {
		return nil, errDryRun
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := xmlDescribeInstances{Xmlns: ec2Namespace, RequestID: c.id}
	for _, in := range c.h.acct.snapshot() {
		if len(want) > 0 && !want[in.ID] {
			continue
		}
		if !filters.match(c.h.acct, in) {
			continue
		}
		r := xmlReservation{ReservationID: in.reservationID, OwnerID: c.h.acct.ID}
		r.InstancesSet.Items = []xmlInstance{xmlInstanceOf(c.h.acct, in)}
		out.ReservationSet.Items = append(out.ReservationSet.Items, r)
	}
	return out, nil
}

// changeState serves StopInstances and StartInstances. Every instance is
// authorized (with its tags as aws:ResourceTag/…) before any is touched,
// so one foreign instance in the list fails the whole call, as on EC2.
func (s ec2Service) changeState(c *call, params url.Values, root, action string) (any, *apiError) {
	ids := indexed(params, "InstanceId")
	if len(ids) == 0 {
		return nil, &apiError{Code: "MissingParameter", Status: http.StatusBadRequest, Message: "The request must contain the parameter InstanceId"}
	}
	ids, e := c.instanceIDs(params)
	if e != nil {
		return nil, e
	}
	for _, id := range ids {
		arn := c.h.acct.InstanceARN(id)
		c.ev.resources = append(c.ev.resources, arn)
		in, _ := c.h.acct.Instance(id)
		ctx := map[string]string{"ec2:Region": c.h.acct.Region}
		for k, v := range in.Tags {
			ctx["aws:ResourceTag/"+k] = v
			ctx["ec2:ResourceTag/"+k] = v
		}
		if d := c.authorize(action, arn, ctx); d != Allowed {
			return nil, c.denied("UnauthorizedOperation", http.StatusForbidden, "You are not authorized to perform this operation. ", action, arn, d)
		}
	}
	if dryRun(params) {
		return nil, errDryRun
	}
	force := strings.EqualFold(params.Get("Force"), "true")
	out := xmlStateChanges{XMLName: xml.Name{Local: root}, Xmlns: ec2Namespace, RequestID: c.id}
	for _, id := range ids {
		var prev, cur InstanceState
		var err error
		if action == "ec2:StopInstances" {
			prev, cur, err = c.h.acct.stop(id, force)
		} else {
			prev, cur, err = c.h.acct.start(id)
		}
		var bad errIncorrectState
		if errors.As(err, &bad) {
			return nil, &apiError{Code: "IncorrectInstanceState", Status: http.StatusBadRequest, Message: err.Error()}
		} else if err != nil {
			return nil, &apiError{Code: "InvalidInstanceID.NotFound", Status: http.StatusBadRequest, Message: err.Error()}
		}
		out.InstancesSet.Items = append(out.InstancesSet.Items, xmlStateChange{InstanceID: id,
			CurrentState: xmlState{Code: cur.Code(), Name: string(cur)}, PreviousState: xmlState{Code: prev.Code(), Name: string(prev)}})
	}
	if force {
		c.ev.detail = "force"
	}
	return out, nil
}
