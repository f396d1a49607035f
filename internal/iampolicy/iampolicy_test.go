package iampolicy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPolicies(t *testing.T) {
	var trust map[string]any
	require.NoError(t, json.Unmarshal([]byte(AssumeRole()), &trust))
	st := trust["Statement"].([]any)[0].(map[string]any)
	assert.Equal(t, "ec2.amazonaws.com", st["Principal"].(map[string]any)["Service"])

	arns := []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/stats-password"}
	var pol struct {
		Statement []struct {
			Effect    string
			Action    any
			Resource  any
			Condition map[string]map[string]string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(SecretsRead(arns, "aws", "eu-west-1", "123456789012")), &pol))
	require.Len(t, pol.Statement, 2)
	assert.Equal(t, []any{"ssm:GetParameter", "ssm:GetParameters"}, pol.Statement[0].Action)
	assert.Equal(t, []any{arns[0]}, pol.Statement[0].Resource)
	assert.Equal(t, "kms:Decrypt", pol.Statement[1].Action)
	assert.Equal(t, "ssm.eu-west-1.amazonaws.com", pol.Statement[1].Condition["StringEquals"]["kms:ViaService"])
	for _, s := range pol.Statement {
		assert.Equal(t, "Allow", s.Effect)
		assert.NotContains(t, s.Action, "*")
	}
}

// The policy the docs give operators is the one the booted lab's operator
// holds, word for word (for the docs' stack "dev").
func TestValidateIsTheDocumentedPolicy(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "validate-aws.md"))
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)## IAM permissions validate needs.*?```json\n(.*?)```").FindSubmatch(doc)
	require.NotNil(t, m, "no ```json block under \"## IAM permissions validate needs\" in docs/validate-aws.md")
	assert.JSONEq(t, string(m[1]), Validate("dev"))
}
