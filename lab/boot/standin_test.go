package boot

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/lab/awsapi"
)

// A state with the backup bucket and a role carrying two policies
// survives its file, and builds an account whose bucket exists in the
// object store under ObjectStoreDir.
func TestStateBucketsAndRolePolicies(t *testing.T) {
	dir := t.TempDir()
	key := awsapi.NewKMSKeyARN("aws", "eu-west-1", "123456789012")
	s := State{
		AccountID: "123456789012", Region: "eu-west-1",
		Operator: Operator{User: "operator", AccessKeyID: "AKIAPGHALAB000000001", SecretAccessKey: "0123456789012345678901234567890123456789",
			Policy: iampolicy.Validate("dev")},
		Roles: []Role{{Name: "pgha-dev-postgres", Profile: "pgha-dev-postgres",
			Policy:   iampolicy.SecretsRead([]string{"arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/x"}, "aws", "eu-west-1", "123456789012"),
			Policies: map[string]string{"pgha-dev-backup": iampolicy.BackupRepo("aws", "eu-west-1", "pgha-backup", "pgha/dev", key)}}},
		Buckets:        []Bucket{{Name: "pgha-backup", KMSKeyARN: key, BucketKeyEnabled: true}},
		ObjectStoreDir: filepath.Join(dir, "objects"),
	}
	path := filepath.Join(dir, "state.json")
	require.NoError(t, s.Save(path))
	loaded, err := LoadState(path)
	require.NoError(t, err)
	assert.Equal(t, s.Roles, loaded.Roles)
	assert.Equal(t, s.Buckets, loaded.Buckets)
	assert.Equal(t, key, loaded.BackupKeyARN())

	acct, err := loaded.Account()
	require.NoError(t, err)
	defer acct.Close()
	b, ok := acct.Bucket("pgha-backup")
	require.True(t, ok)
	assert.Equal(t, key, b.KMSKeyARN)
	require.NoError(t, loaded.serveObjects(acct))
	st, err := os.Stat(filepath.Join(s.ObjectStoreDir, "buckets", "pgha-backup"))
	require.NoError(t, err)
	assert.True(t, st.IsDir())

	loaded.Roles[0].Policies["broken"] = `{"Statement":[]}`
	_, err = loaded.Account()
	assert.ErrorContains(t, err, "role pgha-dev-postgres")
	loaded.Roles[0].Policies = nil
	loaded.ObjectStoreDir = ""
	acct2, err := loaded.Account()
	require.NoError(t, err)
	defer acct2.Close()
	assert.ErrorContains(t, loaded.serveObjects(acct2), "no ObjectStoreDir")
}
