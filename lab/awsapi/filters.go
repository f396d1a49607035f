package awsapi

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ec2Filter is one Filter.N of a Describe call: the instance matches if
// its value for Name matches any of Values (EC2 allows * and ? in them).
type ec2Filter struct {
	name   string
	values []string
}

type ec2Filters []ec2Filter

// instanceFilterValues are the DescribeInstances filters the lab knows,
// with how to read each from an instance. tag:<key> and tag-key are
// handled apart. An unknown filter is refused, as EC2 does, rather than
// ignored: ignoring it would return instances the caller meant to exclude.
var instanceFilterValues = map[string]func(a *Account, in instance) []string{
	"instance-id":         func(_ *Account, in instance) []string { return []string{in.ID} },
	"instance-state-name": func(_ *Account, in instance) []string { return []string{string(in.State)} },
	"instance-state-code": func(_ *Account, in instance) []string { return []string{strconv.Itoa(in.State.Code())} },
	"private-ip-address":  func(_ *Account, in instance) []string { return []string{in.PrivateIP.String()} },
	"availability-zone":   func(_ *Account, in instance) []string { return []string{in.AvailabilityZone} },
	"instance-type":       func(_ *Account, in instance) []string { return []string{in.InstanceType} },
	"image-id":            func(_ *Account, in instance) []string { return []string{in.ImageID} },
	"vpc-id":              func(_ *Account, in instance) []string { return []string{in.VPCID} },
	"subnet-id":           func(_ *Account, in instance) []string { return []string{in.SubnetID} },
	"key-name":            func(_ *Account, in instance) []string { return []string{in.KeyName} },
	"private-dns-name":    func(a *Account, in instance) []string { return []string{PrivateDNSName(a.Region, in.PrivateIP)} },
	"tag-value":           func(_ *Account, in instance) []string { return mapValues(in.Tags) },
	"tag-key":             func(_ *Account, in instance) []string { return sortedKeys(in.Tags) },
	"iam-instance-profile.arn": func(a *Account, in instance) []string {
		ip, _ := a.InstanceProfile(in.InstanceProfile)
		return []string{ip.ARN}
	},
}

func parseFilters(params url.Values) (ec2Filters, *apiError) {
	var out ec2Filters
	for i := 1; ; i++ {
		prefix := fmt.Sprintf("Filter.%d.", i)
		name := params.Get(prefix + "Name")
		if name == "" {
			break
		}
		vals := indexed(params, prefix+"Value")
		if _, ok := instanceFilterValues[name]; !ok && !strings.HasPrefix(name, "tag:") {
			return nil, &apiError{Code: "InvalidParameterValue", Status: http.StatusBadRequest,
				Message: fmt.Sprintf("The filter '%s' is invalid", name)}
		}
		out = append(out, ec2Filter{name: name, values: vals})
	}
	return out, nil
}

// match reports whether the instance passes every filter.
func (fs ec2Filters) match(a *Account, in instance) bool {
	for _, f := range fs {
		var have []string
		if key, ok := strings.CutPrefix(f.name, "tag:"); ok {
			if v, ok := in.Tags[key]; ok {
				have = []string{v}
			}
		} else {
			have = instanceFilterValues[f.name](a, in)
		}
		if !anyValueMatches(f.values, have) {
			return false
		}
	}
	return true
}

func anyValueMatches(patterns, have []string) bool {
	for _, p := range patterns {
		for _, h := range have {
			if wildcard(p, h, false) {
				return true
			}
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}
