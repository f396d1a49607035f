package outputs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestConnectionURIRoundTrip(t *testing.T) {
	uri := ConnectionURI("app", "appdb", []string{"100.20.30.1", "100.20.30.2"}, 5000, "read-write")
	require.Equal(t, "postgresql://app@100.20.30.1:5000,100.20.30.2:5000/appdb?connect_timeout=5&sslmode=verify-full&target_session_attrs=read-write", uri)
	hosts, user, db, attrs, err := ParseConnectionURI(uri)
	require.NoError(t, err)
	require.Equal(t, []string{"100.20.30.1:5000", "100.20.30.2:5000"}, hosts)
	require.Equal(t, []string{"app", "appdb", "read-write"}, []string{user, db, attrs})
	// pgx, which validate's clients use, reads it as one host and a fallback.
	cfg, err := pgconn.ParseConfig(uri + "&password=x")
	require.NoError(t, err)
	require.Equal(t, "100.20.30.1", cfg.Host)
	require.Len(t, cfg.Fallbacks, 1)
	require.Equal(t, "100.20.30.2", cfg.Fallbacks[0].Host)
	_, _, _, _, err = ParseConnectionURI("mysql://x@h:1/db")
	require.Error(t, err)
	_, _, _, _, err = ParseConnectionURI("postgresql://x@h/db")
	require.Error(t, err, "a host without a port")
}

func TestPrometheusEndpoint(t *testing.T) {
	with := func(v string) string {
		return strings.Replace(validJSON, `"vpcCidr"`, `"prometheusEndpoint": "`+v+`", "vpcCidr"`, 1)
	}
	s, err := Parse([]byte(with("https://10.42.3.10:9090")))
	require.NoError(t, err)
	require.Equal(t, "https://10.42.3.10:9090", s.PrometheusEndpoint)
	s, err = Parse([]byte(validJSON))
	require.NoError(t, err)
	require.Empty(t, s.PrometheusEndpoint, "absent: monitoring is off")
	for _, bad := range []string{"http://10.42.3.10:9090", "10.42.3.10:9090", "https://"} {
		_, err := Parse([]byte(with(bad)))
		require.ErrorContains(t, err, `output "prometheusEndpoint": `, bad)
	}
}

func TestPoolerEndpoint(t *testing.T) {
	with := func(v string) string {
		return strings.Replace(validJSON, `"vpcCidr"`, `"poolerEndpoint": `+v+`, "vpcCidr"`, 1)
	}
	s, err := Parse([]byte(with(`{"host": "10.42.0.30", "port": 6432}`)))
	require.NoError(t, err)
	require.Equal(t, &Endpoint{Host: "10.42.0.30", Port: 6432}, s.PoolerEndpoint)
	s, err = Parse([]byte(validJSON))
	require.NoError(t, err)
	require.Nil(t, s.PoolerEndpoint, "absent: no pooler serves clients")
	for _, bad := range []string{`{"host": "", "port": 6432}`, `{"host": "10.42.0.30", "port": 0}`} {
		_, err := Parse([]byte(with(bad)))
		require.ErrorContains(t, err, `output "poolerEndpoint": `, bad)
	}
}

// The pooled URI is PgBouncer's port over the same hosts, with no
// target_session_attrs; a bad one is refused, an absent one (a stack not
// updated since it was added) is not.
func TestConnectionPooled(t *testing.T) {
	c := NewConnection("app", "appdb", []string{"100.20.30.1", "100.20.30.2"})
	require.Equal(t, "postgresql://app@100.20.30.1:6432,100.20.30.2:6432/appdb?connect_timeout=5&sslmode=verify-full", c.Pooled)
	doc := func(pooled string) string {
		conn := map[string]string{"write": c.Write, "read": c.Read}
		if pooled != "" {
			conn["pooled"] = pooled
		}
		b, err := json.Marshal(conn)
		require.NoError(t, err)
		return strings.Replace(validJSON, `"vpcCidr"`, `"connection": `+string(b)+`, "vpcCidr"`, 1)
	}
	s, err := Parse([]byte(doc(c.Pooled)))
	require.NoError(t, err)
	require.Equal(t, c, s.Connection)
	s, err = Parse([]byte(doc("")))
	require.NoError(t, err)
	require.Empty(t, s.Connection.Pooled)
	for _, bad := range []string{"postgresql://app@100.20.30.1/appdb", "mysql://app@h:6432/appdb"} {
		_, err := Parse([]byte(doc(bad)))
		require.ErrorContains(t, err, `output "connection": `, bad)
	}
}
