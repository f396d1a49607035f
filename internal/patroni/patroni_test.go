package patroni

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The REST answers below are the shapes Patroni 3.0.2 returns; the real
// daemons are exercised by validate's integration test against the lab.
const clusterJSON = `{"members":[
 {"name":"pg-1","role":"leader","state":"running","api_url":"http://10.42.4.20:8008/patroni","host":"10.42.4.20","port":5432,"timeline":3},
 {"name":"pg-2","role":"sync_standby","state":"running","host":"10.42.5.20","port":5432,"timeline":3,"lag":0},
 {"name":"pg-3","role":"replica","state":"running","host":"10.42.6.20","port":5432,"timeline":3,"lag":"unknown","pending_restart":true}],
 "scope":"pgha"}`

func server(t *testing.T) (*Client, string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(clusterJSON)) })
	mux.HandleFunc("GET /primary", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		_, _ = w.Write([]byte(`{"state":"running","role":"replica"}`))
	})
	mux.HandleFunc("GET /replica", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"role":"replica"}`)) })
	mux.HandleFunc("POST /switchover", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "patroni" || p != "s3cret" {
			w.WriteHeader(401)
			return
		}
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["leader"] != "pg-1" || b["candidate"] != "pg-2" {
			w.WriteHeader(412)
			_, _ = w.Write([]byte("candidate name does not match with sync_standby"))
			return
		}
		_, _ = w.Write([]byte("Successfully switched over to \"pg-2\""))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	p, _ := strconv.Atoi(port)
	return &Client{HTTP: &http.Client{Timeout: 2 * time.Second}, Port: p, User: "patroni", Password: "s3cret"}, host
}

func TestClusterParsing(t *testing.T) {
	c, host := server(t)
	cl, err := c.Cluster(context.Background(), host)
	require.NoError(t, err)
	l, ok := cl.Leader()
	require.True(t, ok)
	require.Equal(t, "pg-1", l.Name)
	require.Len(t, cl.Replicas(), 2)
	m, _ := cl.Member("pg-3")
	require.Equal(t, int64(-1), m.LagBytes())
	require.True(t, m.PendingRestart, "Patroni 3.0.2 sets pending_restart only where a restart is owed")
	m, _ = cl.Member("pg-2")
	require.Equal(t, int64(0), m.LagBytes())
	require.False(t, m.PendingRestart)
	require.Equal(t, 3, m.Timeline)
}

func TestPrimaryReplica(t *testing.T) {
	c, host := server(t)
	p, err := c.IsPrimary(context.Background(), host)
	require.NoError(t, err)
	require.False(t, p)
	r, err := c.IsReplica(context.Background(), host)
	require.NoError(t, err)
	require.True(t, r)
}

func TestSwitchover(t *testing.T) {
	c, host := server(t)
	msg, err := c.Switchover(context.Background(), host, "pg-1", "pg-2")
	require.NoError(t, err)
	require.Contains(t, msg, "pg-2")

	_, err = c.Switchover(context.Background(), host, "pg-1", "pg-3")
	require.ErrorContains(t, err, "sync_standby")

	c.Password = "wrong"
	_, err = c.Switchover(context.Background(), host, "pg-1", "pg-2")
	require.ErrorContains(t, err, "credentials rejected")
}
