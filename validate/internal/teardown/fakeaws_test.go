package teardown

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAWS answers EC2, ELBv2, IAM (query protocol, XML) and SSM (JSON 1.1)
// the way the services document their wire formats, from an in-memory
// account. It pages every list by pageSize and can throttle or deny chosen
// actions, so the SDK's real pagination, retry and error paths run.
type fakeAWS struct {
	t        *testing.T
	mu       sync.Mutex
	pageSize int
	res      []fakeRes
	// throttle[action] is how many throttling answers to give before
	// answering normally.
	throttle map[string]int
	deny     map[string]bool
	calls    map[string]int
	services map[string]bool
}

// fakeRes is one resource; attrs hold the fields a filter or the response
// needs (state, vpc-id, ...).
type fakeRes struct {
	kind  string
	id    string
	name  string
	tags  map[string]string
	attrs map[string]string
}

func newFakeAWS(t *testing.T) (*fakeAWS, *httptest.Server) {
	f := &fakeAWS{t: t, pageSize: 2, throttle: map[string]int{}, deny: map[string]bool{}, calls: map[string]int{}, services: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAWS) add(r fakeRes) {
	if r.attrs == nil {
		r.attrs = map[string]string{}
	}
	f.res = append(f.res, r)
}

func (f *fakeAWS) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

// service reads the signing name from the SigV4 credential scope
// ("Credential=AKID/20260101/us-east-1/ec2/aws4_request").
func service(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	i := strings.Index(auth, "Credential=")
	if i < 0 {
		return ""
	}
	parts := strings.Split(strings.SplitN(auth[i+len("Credential="):], ",", 2)[0], "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	svc := service(r)
	var action string
	var form url.Values
	var js map[string]any
	if svc == "ssm" || svc == "tagging" {
		target := r.Header.Get("X-Amz-Target")
		action = target[strings.LastIndex(target, ".")+1:]
		if err := json.Unmarshal(body, &js); err != nil {
			f.t.Errorf("%s %s: body is not JSON: %v", svc, action, err)
		}
	} else {
		var err error
		form, err = url.ParseQuery(string(body))
		if err != nil {
			f.t.Errorf("%s: body is not a query string: %v", svc, err)
		}
		action = form.Get("Action")
	}
	f.mu.Lock()
	f.calls[action]++
	f.services[svc] = true
	throttled := f.throttle[action] > 0
	if throttled {
		f.throttle[action]--
	}
	denied := f.deny[action]
	f.mu.Unlock()

	if throttled {
		f.errorResponse(w, svc, true, action)
		return
	}
	if denied {
		f.errorResponse(w, svc, false, action)
		return
	}
	switch svc {
	case "ec2":
		f.ec2(w, action, form)
	case "elasticloadbalancing":
		f.elb(w, action, form)
	case "iam":
		f.iam(w, action, form)
	case "ssm":
		f.ssm(w, action, js)
	case "tagging":
		f.tagging(w, action, js)
	default:
		f.t.Errorf("request for unknown service %q (Authorization %q)", svc, r.Header.Get("Authorization"))
		w.WriteHeader(400)
	}
}

func (f *fakeAWS) errorResponse(w http.ResponseWriter, svc string, throttle bool, action string) {
	switch svc {
	case "ec2":
		code, status := "UnauthorizedOperation", 403
		if throttle {
			code, status = "RequestLimitExceeded", 503
		}
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>You are not authorized to perform %s (or: Request limit exceeded).</Message></Error></Errors><RequestID>req-err</RequestID></Response>`, code, action)
	case "ssm", "tagging":
		code := "AccessDeniedException"
		if throttle {
			code = "ThrottlingException"
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"__type":"%s","message":"Rate exceeded or denied: %s"}`, code, action)
	default: // ELBv2 and IAM share the query protocol's error shape
		code, status := "AccessDenied", 403
		if throttle {
			code, status = "Throttling", 400
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>Rate exceeded or denied: %s</Message></Error><RequestId>req-err</RequestId></ErrorResponse>`, code, action)
	}
}

// page cuts list at the token (an offset) and returns the next token.
func (f *fakeAWS) page(list []fakeRes, token string) ([]fakeRes, string) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil {
			f.t.Errorf("bad pagination token %q", token)
		}
		start = n
	}
	if start > len(list) {
		start = len(list)
	}
	end := min(start+f.pageSize, len(list))
	next := ""
	if end < len(list) {
		next = strconv.Itoa(end)
	}
	return list[start:end], next
}

func (f *fakeAWS) ofKind(kind string) []fakeRes {
	var out []fakeRes
	for _, r := range f.res {
		if r.kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// ec2Filter applies Filter.N.Name / Filter.N.Value.M: every filter must
// match, a filter matches when any of its values does.
func ec2Filter(form url.Values, list []fakeRes, filterKey string) []fakeRes {
	type flt struct {
		name   string
		values []string
	}
	var fs []flt
	for n := 1; ; n++ {
		name := form.Get(fmt.Sprintf("%s.%d.Name", filterKey, n))
		if name == "" {
			break
		}
		var vals []string
		for m := 1; ; m++ {
			v, ok := form[fmt.Sprintf("%s.%d.Value.%d", filterKey, n, m)]
			if !ok {
				break
			}
			vals = append(vals, v[0])
		}
		fs = append(fs, flt{name, vals})
	}
	var out []fakeRes
	for _, r := range list {
		ok := true
		for _, fl := range fs {
			have, present := r.attrs[fl.name]
			if k, isTag := strings.CutPrefix(fl.name, "tag:"); isTag {
				have, present = r.tags[k]
			}
			match := false
			for _, v := range fl.values {
				if present && v == have {
					match = true
				}
			}
			ok = ok && match
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func x(s string) string { return html.EscapeString(s) }

func ec2TagSet(tags map[string]string) string {
	var keys []string
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("<tagSet>")
	for _, k := range keys {
		fmt.Fprintf(&b, "<item><key>%s</key><value>%s</value></item>", x(k), x(tags[k]))
	}
	b.WriteString("</tagSet>")
	return b.String()
}

// ec2Items describes each EC2 action: the resource kind, the list element
// and how one item is written.
var ec2Items = map[string]struct {
	kind, set string
	item      func(r fakeRes) string
	filterKey string
	paged     bool
}{
	"DescribeInstances": {KindInstance, "reservationSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><reservationId>r-%s</reservationId><ownerId>123456789012</ownerId><instancesSet><item><instanceId>%s</instanceId><instanceState><code>16</code><name>%s</name></instanceState>%s</item></instancesSet></item>`,
			r.id, r.id, r.attrs["instance-state-name"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeVolumes": {KindVolume, "volumeSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><volumeId>%s</volumeId><size>%s</size><status>%s</status>%s</item>`, r.id, r.attrs["size"], r.attrs["status"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeNatGateways": {KindNATGateway, "natGatewaySet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><natGatewayId>%s</natGatewayId><state>%s</state><vpcId>%s</vpcId>%s</item>`, r.id, r.attrs["state"], r.attrs["vpc-id"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeAddresses": {KindElasticIP, "addressesSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><allocationId>%s</allocationId><publicIp>%s</publicIp><domain>vpc</domain>%s</item>`, r.id, r.attrs["public-ip"], ec2TagSet(r.tags))
	}, "Filter", false},
	"DescribeNetworkInterfaces": {KindNetworkInterface, "networkInterfaceSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><networkInterfaceId>%s</networkInterfaceId><status>%s</status><description>%s</description><vpcId>%s</vpcId>%s</item>`,
			r.id, r.attrs["status"], x(r.name), r.attrs["vpc-id"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeSecurityGroups": {KindSecurityGroup, "securityGroupInfo", func(r fakeRes) string {
		return fmt.Sprintf(`<item><groupId>%s</groupId><groupName>%s</groupName><vpcId>%s</vpcId>%s</item>`, r.id, x(r.name), r.attrs["vpc-id"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeSubnets": {KindSubnet, "subnetSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><subnetId>%s</subnetId><cidrBlock>10.42.1.0/24</cidrBlock><availabilityZone>eu-west-1a</availabilityZone>%s</item>`, r.id, ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeRouteTables": {KindRouteTable, "routeTableSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><routeTableId>%s</routeTableId><vpcId>%s</vpcId>%s</item>`, r.id, r.attrs["vpc-id"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeInternetGateways": {KindInternetGateway, "internetGatewaySet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><internetGatewayId>%s</internetGatewayId><attachmentSet><item><vpcId>%s</vpcId><state>available</state></item></attachmentSet>%s</item>`, r.id, r.attrs["vpc-id"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeVpcs": {KindVPC, "vpcSet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><vpcId>%s</vpcId><cidrBlock>10.42.0.0/16</cidrBlock><isDefault>%s</isDefault><state>available</state>%s</item>`, r.id, r.attrs["is-default"], ec2TagSet(r.tags))
	}, "Filter", true},
	"DescribeKeyPairs": {KindKeyPair, "keySet", func(r fakeRes) string {
		return fmt.Sprintf(`<item><keyPairId>%s</keyPairId><keyName>%s</keyName>%s</item>`, r.id, x(r.name), ec2TagSet(r.tags))
	}, "Filter", false},
}

func (f *fakeAWS) ec2(w http.ResponseWriter, action string, form url.Values) {
	spec, ok := ec2Items[action]
	if !ok {
		f.t.Errorf("unexpected EC2 action %q", action)
		w.WriteHeader(400)
		return
	}
	list := ec2Filter(form, f.ofKind(spec.kind), spec.filterKey)
	next := ""
	if spec.paged {
		list, next = f.page(list, form.Get("NextToken"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><%s>`, action, spec.set)
	for _, r := range list {
		b.WriteString(spec.item(r))
	}
	fmt.Fprintf(&b, "</%s>", spec.set)
	if next != "" {
		fmt.Fprintf(&b, "<nextToken>%s</nextToken>", next)
	}
	fmt.Fprintf(&b, "</%sResponse>", action)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	io.WriteString(w, b.String())
}

func queryTags(tags map[string]string) string {
	var keys []string
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("<Tags>")
	for _, k := range keys {
		fmt.Fprintf(&b, "<member><Key>%s</Key><Value>%s</Value></member>", x(k), x(tags[k]))
	}
	b.WriteString("</Tags>")
	return b.String()
}

func (f *fakeAWS) elb(w http.ResponseWriter, action string, form url.Values) {
	var inner string
	switch action {
	case "DescribeLoadBalancers", "DescribeTargetGroups":
		kind, set := KindLoadBalancer, "LoadBalancers"
		if action == "DescribeTargetGroups" {
			kind, set = KindTargetGroup, "TargetGroups"
		}
		list, next := f.page(f.ofKind(kind), form.Get("Marker"))
		var b strings.Builder
		fmt.Fprintf(&b, "<%s>", set)
		for _, r := range list {
			if kind == KindLoadBalancer {
				fmt.Fprintf(&b, `<member><LoadBalancerArn>%s</LoadBalancerArn><LoadBalancerName>%s</LoadBalancerName><Type>network</Type><Scheme>internet-facing</Scheme><State><Code>active</Code></State></member>`, x(r.id), x(r.name))
			} else {
				fmt.Fprintf(&b, `<member><TargetGroupArn>%s</TargetGroupArn><TargetGroupName>%s</TargetGroupName><Protocol>TCP</Protocol><Port>5000</Port></member>`, x(r.id), x(r.name))
			}
		}
		fmt.Fprintf(&b, "</%s>", set)
		if next != "" {
			fmt.Fprintf(&b, "<NextMarker>%s</NextMarker>", next)
		}
		inner = b.String()
	case "DescribeTags":
		var arns []string
		for n := 1; ; n++ {
			v := form.Get(fmt.Sprintf("ResourceArns.member.%d", n))
			if v == "" {
				break
			}
			arns = append(arns, v)
		}
		if len(arns) > 20 {
			// The real limit: more than 20 ARNs is a validation error.
			w.WriteHeader(400)
			io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>too many resource ARNs</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
			return
		}
		var b strings.Builder
		b.WriteString("<TagDescriptions>")
		for _, arn := range arns {
			for _, r := range f.res {
				if r.id == arn {
					fmt.Fprintf(&b, "<member><ResourceArn>%s</ResourceArn>%s</member>", x(arn), queryTags(r.tags))
				}
			}
		}
		b.WriteString("</TagDescriptions>")
		inner = b.String()
	default:
		f.t.Errorf("unexpected ELBv2 action %q", action)
		w.WriteHeader(400)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></%sResponse>`,
		action, action, inner, action, action)
}

func (f *fakeAWS) iam(w http.ResponseWriter, action string, form url.Values) {
	var inner string
	truncated := func(next string) string {
		if next == "" {
			return "<IsTruncated>false</IsTruncated>"
		}
		return "<IsTruncated>true</IsTruncated><Marker>" + next + "</Marker>"
	}
	switch action {
	case "ListRoles", "ListInstanceProfiles":
		kind, set := KindRole, "Roles"
		if action == "ListInstanceProfiles" {
			kind, set = KindInstanceProfile, "InstanceProfiles"
		}
		list, next := f.page(f.ofKind(kind), form.Get("Marker"))
		var b strings.Builder
		fmt.Fprintf(&b, "<%s>", set)
		for _, r := range list {
			if kind == KindRole {
				fmt.Fprintf(&b, `<member><Path>/</Path><RoleName>%s</RoleName><RoleId>AROA%s</RoleId><Arn>arn:aws:iam::123456789012:role/%s</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate></member>`, x(r.id), x(r.id), x(r.id))
			} else {
				fmt.Fprintf(&b, `<member><Path>/</Path><InstanceProfileName>%s</InstanceProfileName><InstanceProfileId>AIPA%s</InstanceProfileId><Arn>arn:aws:iam::123456789012:instance-profile/%s</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate><Roles/></member>`, x(r.id), x(r.id), x(r.id))
			}
		}
		fmt.Fprintf(&b, "</%s>", set)
		inner = b.String() + truncated(next)
	case "ListRoleTags", "ListInstanceProfileTags":
		kind, name := KindRole, form.Get("RoleName")
		if action == "ListInstanceProfileTags" {
			kind, name = KindInstanceProfile, form.Get("InstanceProfileName")
		}
		found := false
		for _, r := range f.ofKind(kind) {
			if r.id == name {
				found = true
				inner = queryTags(r.tags) + truncated("")
			}
		}
		if !found {
			w.WriteHeader(404)
			fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>cannot be found: %s</Message></Error><RequestId>r</RequestId></ErrorResponse>`, x(name))
			return
		}
	default:
		f.t.Errorf("unexpected IAM action %q", action)
		w.WriteHeader(400)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></%sResponse>`,
		action, action, inner, action, action)
}

func (f *fakeAWS) ssm(w http.ResponseWriter, action string, in map[string]any) {
	if action != "DescribeParameters" {
		f.t.Errorf("unexpected SSM action %q", action)
		w.WriteHeader(400)
		return
	}
	// ParameterFilters: Path (Recursive) or tag:KEY, all of which must match.
	list := f.ofKind(KindSSMParameter)
	filters, _ := in["ParameterFilters"].([]any)
	var out []fakeRes
	for _, r := range list {
		ok := true
		for _, fa := range filters {
			fm := fa.(map[string]any)
			key, _ := fm["Key"].(string)
			vals, _ := fm["Values"].([]any)
			match := false
			for _, v := range vals {
				s := v.(string)
				switch {
				case key == "Path":
					match = match || strings.HasPrefix(r.id, strings.TrimSuffix(s, "/")+"/")
				case strings.HasPrefix(key, "tag:"):
					tv, present := r.tags[strings.TrimPrefix(key, "tag:")]
					match = match || (present && tv == s)
				default:
					f.t.Errorf("unexpected SSM filter key %q", key)
				}
			}
			ok = ok && match
		}
		if ok {
			out = append(out, r)
		}
	}
	token, _ := in["NextToken"].(string)
	page, next := f.page(out, token)
	resp := map[string]any{}
	var params []map[string]any
	for _, r := range page {
		params = append(params, map[string]any{"Name": r.id, "Type": "SecureString", "Version": 1, "Tier": "Standard"})
	}
	resp["Parameters"] = params
	if next != "" {
		resp["NextToken"] = next
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(resp)
}

// tagging answers the Resource Groups Tagging API's GetResources (JSON 1.1)
// for the kinds it serves here: S3 buckets and KMS keys, filtered by
// resource type and by every tag filter, paged by PaginationToken.
func (f *fakeAWS) tagging(w http.ResponseWriter, action string, in map[string]any) {
	if action != "GetResources" {
		f.t.Errorf("unexpected tagging action %q", action)
		w.WriteHeader(400)
		return
	}
	types := map[string]bool{}
	for _, t := range in["ResourceTypeFilters"].([]any) {
		types[t.(string)] = true
	}
	var out []fakeRes
	for _, r := range append(f.ofKind(KindBucket), f.ofKind(KindKMSKey)...) {
		if (r.kind == KindBucket && !types["s3:bucket"]) || (r.kind == KindKMSKey && !types["kms:key"]) {
			continue
		}
		ok := true
		filters, _ := in["TagFilters"].([]any)
		for _, fa := range filters {
			fm := fa.(map[string]any)
			key, _ := fm["Key"].(string)
			match := false
			for _, v := range fm["Values"].([]any) {
				tv, present := r.tags[key]
				match = match || (present && tv == v.(string))
			}
			ok = ok && match
		}
		if ok {
			out = append(out, r)
		}
	}
	token, _ := in["PaginationToken"].(string)
	page, next := f.page(out, token)
	var list []map[string]any
	for _, r := range page {
		arn := "arn:aws:s3:::" + r.id
		if r.kind == KindKMSKey {
			arn = "arn:aws:kms:eu-west-1:123456789012:key/" + r.id
		}
		var tags []map[string]string
		for k, v := range r.tags {
			tags = append(tags, map[string]string{"Key": k, "Value": v})
		}
		list = append(list, map[string]any{"ResourceARN": arn, "Tags": tags})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{"ResourceTagMappingList": list, "PaginationToken": next})
}
