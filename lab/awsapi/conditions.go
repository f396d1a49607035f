package awsapi

import (
	"fmt"
	"strings"
)

// operator compares a request's value for a key with a condition's values.
type operator struct {
	// negated operators (StringNotEquals, ...) hold when the key is
	// absent, as IAM documents; the others fail then.
	negated bool
	match   func(value, pattern string) bool
}

var operators = map[string]operator{
	"StringEquals":              {match: func(v, p string) bool { return v == p }},
	"StringNotEquals":           {negated: true, match: func(v, p string) bool { return v == p }},
	"StringEqualsIgnoreCase":    {match: strings.EqualFold},
	"StringNotEqualsIgnoreCase": {negated: true, match: strings.EqualFold},
	"StringLike":                {match: func(v, p string) bool { return wildcard(p, v, false) }},
	"StringNotLike":             {negated: true, match: func(v, p string) bool { return wildcard(p, v, false) }},
	"Bool":                      {match: strings.EqualFold},
}

// lookupOperator resolves an operator name, with the IfExists suffix. The
// set-operator prefixes (ForAnyValue:, ForAllValues:) and the numeric, date,
// IP and ARN operators are refused: the lab's context keys are single
// strings, and an operator it only half-understood could allow by mistake.
func lookupOperator(name string) (op operator, err error) {
	base := strings.TrimSuffix(name, "IfExists")
	if name == "Null" {
		return operator{}, nil
	}
	op, ok := operators[base]
	if !ok {
		return op, fmt.Errorf("condition operator %q is not supported by the lab (supported: StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, StringNotLike and Bool, each also with IfExists, and Null)", name)
	}
	return op, nil
}

// conditionKeyHelp lists, for error messages, the keys requests carry.
var conditionKeyHelp = []string{
	"aws:RequestedRegion", "aws:PrincipalArn", "aws:PrincipalAccount", "aws:SecureTransport",
	"aws:ResourceTag/<key>", "ec2:ResourceTag/<key>", "ec2:Region",
	"kms:ViaService", "kms:CallerAccount", "kms:EncryptionContext:<key>",
	"s3:prefix", "s3:delimiter", "s3:max-keys", "s3:signatureversion", "s3:authType", "s3:x-amz-content-sha256",
	"s3:ResourceAccount", "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id",
}

func knownConditionKey(k string) bool {
	l := strings.ToLower(k)
	for _, prefix := range []string{"aws:resourcetag/", "ec2:resourcetag/", "kms:encryptioncontext:"} {
		if strings.HasPrefix(l, prefix) && len(l) > len(prefix) {
			return true
		}
	}
	switch l {
	case "aws:requestedregion", "aws:principalarn", "aws:principalaccount", "aws:securetransport",
		"ec2:region", "kms:viaservice", "kms:calleraccount",
		"s3:prefix", "s3:delimiter", "s3:max-keys", "s3:signatureversion", "s3:authtype", "s3:x-amz-content-sha256",
		"s3:resourceaccount", "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id":
		return true
	}
	return false
}

// requestContext holds a request's condition keys, lower-cased: IAM key
// names are case-insensitive, their values are not.
type requestContext map[string]string

func (c requestContext) set(key, value string) { c[strings.ToLower(key)] = value }

// holds evaluates one condition against the context.
func (c requestContext) holds(cond Condition) bool {
	value, present := c[strings.ToLower(cond.Key)]
	if cond.Operator == "Null" {
		// "true" means the key must be absent, "false" present.
		want := strings.EqualFold(cond.Values[0], "true")
		return want != present
	}
	op, err := lookupOperator(cond.Operator)
	if err != nil {
		return false // unreachable: ParsePolicy refused it
	}
	if !present {
		return op.negated || strings.HasSuffix(cond.Operator, "IfExists")
	}
	matched := false
	for _, p := range cond.Values {
		if op.match(value, p) {
			matched = true
			break
		}
	}
	if op.negated {
		return !matched
	}
	return matched
}
