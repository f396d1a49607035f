package probe

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
)

// Patroni answers POST /switchover only once the candidate leads, which
// takes longer than the probe's 3-second requests.
func TestSwitchoverWaitsForPatronisAnswer(t *testing.T) {
	var got map[string]string
	var user, pass string
	ca, err := pki.NewCA("switchover test CA")
	require.NoError(t, err)
	serve := func(h http.HandlerFunc) *httptest.Server {
		cfg, err := ca.ServerConfig(pki.Leaf{CommonName: "pg-2", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true})
		require.NoError(t, err)
		s := httptest.NewUnstartedServer(h)
		s.TLS = cfg
		s.StartTLS()
		return s
	}
	srv := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/switchover", r.URL.Path)
		user, pass, _ = r.BasicAuth()
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		time.Sleep(3500 * time.Millisecond)
		_, _ = w.Write([]byte("Successfully switched over to \"pg-3\""))
	}))
	defer srv.Close()
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	p := New(outputs.Stack{Credentials: outputs.Credentials{RestAPIName: "patroni", RestAPIPassword: "secret"},
		CACertificate: string(ca.CertPEM)}, access.Direct())
	p.Patroni.Port, _ = strconv.Atoi(port)
	require.NoError(t, p.Switchover(context.Background(), host, "pg-2", "pg-3"))
	require.Equal(t, map[string]string{"leader": "pg-2", "candidate": "pg-3"}, got)
	require.Equal(t, "patroni", user)
	require.Equal(t, "secret", pass)
	require.Equal(t, 3*time.Second, p.HTTP.Timeout, "the probe's other requests stay short")

	bad := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "candidate name does not match with sync_standby", http.StatusPreconditionFailed)
	}))
	defer bad.Close()
	_, port, _ = net.SplitHostPort(bad.Listener.Addr().String())
	p.Patroni.Port, _ = strconv.Atoi(port)
	require.ErrorContains(t, p.Switchover(context.Background(), host, "pg-2", "pg-1"), "HTTP 412: candidate name does not match")
}
