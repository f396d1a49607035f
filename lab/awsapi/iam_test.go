package awsapi

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestImportAccessKey(t *testing.T) {
	a, err := NewAccount("123456789012", "eu-west-1")
	require.NoError(t, err)
	require.NoError(t, a.AddUser("operator"))
	made, err := a.CreateAccessKey("operator")
	require.NoError(t, err)

	b, err := NewAccount("123456789012", "eu-west-1")
	require.NoError(t, err)
	require.NoError(t, b.AddUser("operator"))
	got, err := b.ImportAccessKey("operator", Credentials{AccessKeyID: made.AccessKeyID, SecretAccessKey: made.SecretAccessKey})
	require.NoError(t, err)
	require.Equal(t, made.ARN, got.ARN, "the same key acts as the same user in the rebuilt account")
	_, err = b.ImportAccessKey("operator", made)
	require.ErrorContains(t, err, "exists already")
	_, err = b.ImportAccessKey("operator", Credentials{AccessKeyID: "ASIA0000000000000000", SecretAccessKey: made.SecretAccessKey})
	require.ErrorContains(t, err, "want AKIA")
	_, err = b.ImportAccessKey("nobody", Credentials{AccessKeyID: "AKIA0000000000000000", SecretAccessKey: made.SecretAccessKey})
	require.Error(t, err)
}
