package promgraph

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/report"
)

// answer serves one fixed body with a status, and records the form asked.
func answer(t *testing.T, status int, body string, got *http.Request) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		*got = *r
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL + "/prom/", HTTP: srv.Client()}
}

func TestQueryRangeDecodesTheMatrix(t *testing.T) {
	var req http.Request
	c := answer(t, 200, `{"status":"success","warnings":["w1"],"data":{"resultType":"matrix","result":[
		{"metric":{"__name__":"patroni_master","instance":"10.42.4.20:8008","node":"pg-1"},"values":[[1700000000,"1"],[1700000001.5,"0"]]},
		{"metric":{"instance":"10.42.5.20:8008"},"values":[[1700000000,"NaN"],[1700000001.5,"+Inf"]]}]}}`, &req)
	start := time.Unix(1700000000, 0)
	r, err := c.QueryRange(context.Background(), `patroni_master{job="patroni"}`, start, start.Add(90*time.Second), 1500*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "/prom/api/v1/query_range", req.URL.Path, "the base URL's path is kept")
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, `patroni_master{job="patroni"}`, req.PostForm.Get("query"))
	assert.Equal(t, "2023-11-14T22:13:20.000Z", req.PostForm.Get("start"))
	assert.Equal(t, "2023-11-14T22:14:50.000Z", req.PostForm.Get("end"))
	assert.Equal(t, "1.5", req.PostForm.Get("step"))
	assert.Equal(t, "matrix", r.Type)
	assert.Equal(t, []string{"w1"}, r.Warnings)
	require.Len(t, r.Series, 2)
	assert.Equal(t, "pg-1", r.Series[0].Labels["node"])
	assert.Equal(t, []Sample{{time.Unix(1700000000, 0), 1}, {time.Unix(1700000001, 5e8), 0}}, r.Series[0].Samples)
	assert.True(t, math.IsNaN(r.Series[1].Samples[0].Value))
	assert.True(t, math.IsInf(r.Series[1].Samples[1].Value, 1))

	// NaN and Inf are no points of a graph.
	ms := toSeries(r, map[string]string{"10.42.5.20": "pg-2"})
	require.Len(t, ms, 1)
	assert.Equal(t, "pg-1", ms[0].Name)
}

func TestQueryDecodesVectorAndScalar(t *testing.T) {
	var req http.Request
	c := answer(t, 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"x"},"value":[1700000000.25,"3"]}]}}`, &req)
	r, err := c.Query(context.Background(), "up", time.Unix(1700000000, 0))
	require.NoError(t, err)
	assert.Equal(t, "/prom/api/v1/query", req.URL.Path)
	assert.Equal(t, "2023-11-14T22:13:20.000Z", req.PostForm.Get("time"))
	require.Len(t, r.Series, 1)
	assert.Equal(t, []Sample{{time.Unix(1700000000, 25e7), 3}}, r.Series[0].Samples)

	c = answer(t, 200, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}`, &req)
	r, err = c.Query(context.Background(), "42", time.Time{})
	require.NoError(t, err)
	assert.False(t, req.PostForm.Has("time"), "no time: Prometheus's now")
	assert.Equal(t, 42.0, r.Series[0].Samples[0].Value)
}

func TestErrorsSayWhatWentWrong(t *testing.T) {
	var req http.Request
	c := answer(t, 400, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}`, &req)
	_, err := c.Query(context.Background(), "sum(", time.Time{})
	var pe *Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 400, pe.Status)
	assert.Equal(t, "bad_data", pe.Type)
	assert.Equal(t, "prometheus /api/v1/query: HTTP 400: bad_data: 1:5: parse error: unclosed left parenthesis", err.Error())

	c = answer(t, 502, "<html><body>Bad Gateway</body></html>", &req)
	_, err = c.QueryRange(context.Background(), "up", time.Now(), time.Now(), time.Second)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 502, pe.Status)
	assert.Empty(t, pe.Type)
	assert.Contains(t, err.Error(), "HTTP 502, not Prometheus's JSON")
	assert.Contains(t, err.Error(), "Bad Gateway")

	c = answer(t, 200, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}`, &req)
	_, err = c.QueryRange(context.Background(), "up", time.Now(), time.Now(), time.Second)
	require.ErrorContains(t, err, `sample value "x"`)
	require.False(t, errors.As(err, &pe), "a garbled answer is not Prometheus refusing")

	_, err = (&Client{BaseURL: "10.42.3.10:9090"}).Query(context.Background(), "up", time.Time{})
	require.ErrorContains(t, err, "is not an http(s) URL")
	_, err = c.QueryRange(context.Background(), "up", time.Now(), time.Now(), 0)
	require.ErrorContains(t, err, "step must be positive")
}

func TestCollectSaysWhyThereIsNothing(t *testing.T) {
	// Nothing listens: one line, no panels.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	m := Collect(context.Background(), &Client{BaseURL: url}, Request{From: time.Now().Add(-time.Minute), To: time.Now().Add(-time.Second)})
	assert.False(t, m.HasData())
	assert.Contains(t, m.Note, "Prometheus at "+url+" did not answer: prometheus /api/v1/query:")

	// Prometheus answers, but scrapes none of the cluster's jobs.
	var req http.Request
	c := answer(t, 200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, &req)
	m = Collect(context.Background(), c, Request{From: time.Now().Add(-time.Minute), To: time.Now().Add(-time.Second)})
	assert.False(t, m.HasData())
	assert.Contains(t, m.Note, "scraped none of the jobs patroni, postgres, haproxy")
}

func TestNodeName(t *testing.T) {
	nodes := map[string]string{"10.42.4.20": "pg-1", "fd00::5": "pg-2"}
	assert.Equal(t, "pg-3", NodeName(map[string]string{"node": "pg-3", "instance": "10.42.4.20:8008"}, nodes), "the node label wins")
	assert.Equal(t, "pg-1", NodeName(map[string]string{"instance": "10.42.4.20:8008"}, nodes))
	assert.Equal(t, "pg-2", NodeName(map[string]string{"instance": "[fd00::5]:9187"}, nodes))
	assert.Equal(t, "10.9.9.9:9100", NodeName(map[string]string{"instance": "10.9.9.9:9100"}, nodes))
}

func TestRoles(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(1700000000+s), 0) }
	series := func(node string, vs ...float64) report.MetricSeries {
		s := report.MetricSeries{Name: node, Node: node}
		for i, v := range vs {
			if !math.IsNaN(v) {
				s.Points = append(s.Points, report.Point{At: at(i), Value: v})
			}
		}
		return s
	}
	gap := math.NaN()
	master := []report.MetricSeries{series("pg-1", 1, 1, gap, 0), series("pg-2", 0, 0, 1, 1)}
	running := []report.MetricSeries{series("pg-1", 1, 1, gap, 0), series("pg-2", 1, 1, 1, 1)}
	got := Roles(master, running)
	require.Len(t, got, 2)
	values := func(s report.MetricSeries) []float64 {
		var out []float64
		for _, p := range s.Points {
			out = append(out, p.Value)
		}
		return out
	}
	assert.Equal(t, []float64{report.RoleLeader, report.RoleLeader, report.RoleStopped}, values(got[0]), "no sample stays blank")
	assert.Equal(t, []float64{report.RoleReplica, report.RoleReplica, report.RoleLeader, report.RoleLeader}, values(got[1]))
}
