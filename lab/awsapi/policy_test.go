package awsapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePolicyRefusesWhatItCannotEvaluate(t *testing.T) {
	cases := map[string]struct{ doc, err string }{
		"not JSON":          {`{`, "malformed policy document"},
		"lower-case name":   {`{"Version":"2012-10-17","Statement":{"effect":"Allow","Action":"*","Resource":"*"}}`, `unknown element "effect"`},
		"bad version":       {`{"Version":"2012-10-18","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, "Version must be"},
		"no statement":      {`{"Version":"2012-10-17","Statement":[]}`, "no Statement"},
		"bad effect":        {`{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}`, `Effect must be "Allow" or "Deny"`},
		"principal":         {`{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`, "the Principal element is not allowed"},
		"both actions":      {`{"Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}}`, "cannot be used together"},
		"no resource":       {`{"Statement":{"Effect":"Allow","Action":"*"}}`, "needs Resource or NotResource"},
		"bad action":        {`{"Statement":{"Effect":"Allow","Action":"GetParameter","Resource":"*"}}`, "service:Action"},
		"bad resource":      {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"parameter/x"}}`, "must be \"*\" or an ARN"},
		"short ARN":         {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ssm:eu-*:parameter/x"}}`, "must be \"*\" or an ARN"},
		"variable":          {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ssm:*:*:parameter/${aws:username}"}}`, "policy variable"},
		"unknown operator":  {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`, `condition operator "IpAddress" is not supported`},
		"set operator":      {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}}}`, "not supported"},
		"unknown key":       {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}}}`, `condition key "aws:SourceVpc" is not one the lab supplies`},
		"typo key":          {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"kms:ViaServices":"x"}}}}`, "not one the lab supplies"},
		"null not boolean":  {`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:ResourceTag/a":"yes"}}}}`, "true or false"},
		"empty values list": {`{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}`, "non-empty list"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePolicy("p", tc.doc)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

func mustPolicies(t *testing.T, docs ...string) []*Policy {
	t.Helper()
	var out []*Policy
	for _, d := range docs {
		p, err := ParsePolicy("p", d)
		require.NoError(t, err)
		out = append(out, p)
	}
	return out
}

const param = "arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/x"

func TestEvaluate(t *testing.T) {
	allowAll := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`
	cases := []struct {
		name     string
		policies []string
		action   string
		resource string
		ctx      map[string]string
		want     Decision
	}{
		{"default deny", nil, "ssm:GetParameter", param, nil, ImplicitDeny},
		{"allow all", []string{allowAll}, "ssm:GetParameter", param, nil, Allowed},
		{"explicit deny wins, in another policy", []string{allowAll,
			`{"Statement":{"Effect":"Deny","Action":"ssm:*","Resource":"*"}}`}, "ssm:GetParameter", param, nil, ExplicitDeny},
		{"action case-insensitive with wildcard", []string{`{"Statement":{"Effect":"Allow","Action":"SSM:getparam*","Resource":"*"}}`},
			"ssm:GetParameter", param, nil, Allowed},
		{"action ? wildcard", []string{`{"Statement":{"Effect":"Allow","Action":"ssm:GetParameter?","Resource":"*"}}`},
			"ssm:GetParameter", param, nil, ImplicitDeny},
		{"NotAction", []string{`{"Statement":{"Effect":"Allow","NotAction":"ssm:PutParameter","Resource":"*"}}`},
			"ssm:GetParameter", param, nil, Allowed},
		{"NotAction excludes", []string{`{"Statement":{"Effect":"Allow","NotAction":"ssm:Get*","Resource":"*"}}`},
			"ssm:GetParameter", param, nil, ImplicitDeny},
		{"resource case-sensitive", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ssm:eu-west-1:123456789012:parameter/PGHA/*"}}`},
			"ssm:GetParameter", param, nil, ImplicitDeny},
		{"resource wildcard per ARN field", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ssm:*:*:parameter/pgha/*/x"}}`},
			"ssm:GetParameter", param, nil, Allowed},
		{"other account", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ssm:eu-west-1:210987654321:*"}}`},
			"ssm:GetParameter", param, nil, ImplicitDeny},
		{"NotResource", []string{`{"Statement":{"Effect":"Allow","Action":"*","NotResource":"arn:aws:ssm:*:*:parameter/pgha/prod/*"}}`},
			"ssm:GetParameter", param, nil, Allowed},
		{"Deny with NotResource", []string{allowAll, `{"Statement":{"Effect":"Deny","Action":"*","NotResource":"arn:aws:ssm:*:*:parameter/pgha/prod/*"}}`},
			"ssm:GetParameter", param, nil, ExplicitDeny},
		{"describe needs Resource *", []string{`{"Statement":{"Effect":"Allow","Action":"ec2:*","Resource":"arn:aws:ec2:*:*:instance/*"}}`},
			"ec2:DescribeInstances", "*", nil, ImplicitDeny},
		{"StringEquals holds", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/pgha:stack":["prod","dev"]}}}}`},
			"ec2:StopInstances", "i", map[string]string{"aws:ResourceTag/pgha:stack": "dev"}, Allowed},
		{"StringEquals is case-sensitive in the value", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/pgha:stack":"DEV"}}}}`},
			"ec2:StopInstances", "i", map[string]string{"aws:ResourceTag/pgha:stack": "dev"}, ImplicitDeny},
		{"key names are case-insensitive", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"KMS:VIASERVICE":"ssm.eu-west-1.amazonaws.com"}}}}`},
			"kms:Decrypt", "k", map[string]string{"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}, Allowed},
		{"missing key fails StringEquals", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/pgha:stack":"dev"}}}}`},
			"ec2:StopInstances", "i", nil, ImplicitDeny},
		{"missing key passes StringNotEquals (IAM's rule)", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/pgha:stack":"prod"}}}}`},
			"ec2:StopInstances", "i", nil, Allowed},
		{"StringNotEquals", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/pgha:stack":["prod","staging"]}}}}`},
			"ec2:StopInstances", "i", map[string]string{"aws:ResourceTag/pgha:stack": "prod"}, ImplicitDeny},
		{"StringLike", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"kms:ViaService":"ssm.*.amazonaws.com"}}}}`},
			"kms:Decrypt", "k", map[string]string{"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}, Allowed},
		{"IfExists on a missing key", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:ResourceTag/x":"y"}}}}`},
			"ec2:StopInstances", "i", nil, Allowed},
		{"all conditions must hold", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/a":"1","aws:ResourceTag/b":"2"}}}}`},
			"ec2:StopInstances", "i", map[string]string{"aws:ResourceTag/a": "1", "aws:ResourceTag/b": "3"}, ImplicitDeny},
		{"Null", []string{`{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:ResourceTag/pgha:stack":"true"}}}}`, allowAll},
			"ec2:StopInstances", "i", nil, ExplicitDeny},
		{"RequestedRegion", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":"eu-west-1"}}}}`},
			"ssm:GetParameter", param, map[string]string{"aws:RequestedRegion": "us-east-1"}, ImplicitDeny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Evaluate(mustPolicies(t, tc.policies...), tc.action, tc.resource, tc.ctx))
		})
	}
}

func TestWildcard(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"", "", true}, {"", "a", false}, {"a*", "abc", true}, {"*c", "abc", true},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*b*", "abc", true}, {"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false}, {"**", "x", true}, {"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	} {
		assert.Equal(t, tc.want, wildcard(tc.p, tc.s, false), "%q ~ %q", tc.p, tc.s)
	}
}
