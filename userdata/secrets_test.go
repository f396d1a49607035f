package userdata

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

// Every secret lands in the credentials output under its own fields: a new
// line in Secrets without a field in outputs.Credentials fails here.
func TestEverySecretIsAnOutputCredential(t *testing.T) {
	pw := testPasswords()
	m := Credentials(DefaultUsers(), pw)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var c outputs.Credentials
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&c), "outputs.Credentials must have a field for every secret")
	back, err := json.Marshal(c)
	require.NoError(t, err)
	var round map[string]string
	require.NoError(t, json.Unmarshal(back, &round))
	assert.Equal(t, m, round, "and nothing else")
	assert.Equal(t, pw["app"], c.AppPassword)
	assert.Equal(t, "app", c.AppName)
}

func TestSecretTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Secrets {
		for _, v := range []string{s.Name, s.ConfigKey, s.Env, s.ParamName()} {
			assert.False(t, seen[v], "%q appears twice in Secrets", v)
			seen[v] = true
		}
		assert.NotEmpty(t, s.Roles, s.Name)
		assert.Regexp(t, `^[a-z][A-Za-z]*Password$`, s.ConfigKey)
		assert.NotEmpty(t, s.User(DefaultUsers()), s.Name)
	}
	p := ParamsUnder("/pgha/dev/")
	assert.Equal(t, "/pgha/dev/restapi-password", p["restapi"])
	assert.Len(t, p, len(Secrets))
}
