// Package promgraph asks the cluster's Prometheus what it recorded during a
// destructive check (the Patroni roles, the replication lag, the
// transactions per second, HAProxy's servers up) and turns the answer into
// the panels report draws beside the traffic timeline. The client speaks
// Prometheus's documented HTTP API with net/http alone.
package promgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client queries one Prometheus server.
type Client struct {
	// BaseURL is the server's root, e.g. https://10.0.3.10:9090 (a path
	// prefix, as behind --web.route-prefix, is kept).
	BaseURL string
	// HTTP carries the requests: the cluster's dial path and TLS
	// configuration (its CA and pgha's client certificate).
	HTTP *http.Client
}

// Sample is one value at one instant.
type Sample struct {
	At    time.Time
	Value float64 // may be NaN or ±Inf, as Prometheus computed it
}

// Series is one labelled stream of samples. An instant vector has one
// sample per series; a scalar is one series without labels.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Result is the answer to one query.
type Result struct {
	Type     string // vector, matrix, scalar or string
	Series   []Series
	Warnings []string
}

// Error is Prometheus refusing a query, or something other than
// Prometheus answering.
type Error struct {
	Endpoint string // e.g. /api/v1/query_range
	Status   int    // HTTP status
	// Type and Message are Prometheus's errorType and error (bad_data,
	// execution, timeout, ...); empty when the body was not its JSON.
	Type    string
	Message string
	// Body is the start of a body that was not Prometheus's JSON.
	Body string
}

func (e *Error) Error() string {
	if e.Type != "" || e.Message != "" {
		return fmt.Sprintf("prometheus %s: HTTP %d: %s: %s", e.Endpoint, e.Status, e.Type, e.Message)
	}
	return fmt.Sprintf("prometheus %s: HTTP %d, not Prometheus's JSON: %q", e.Endpoint, e.Status, e.Body)
}

// Query evaluates q at one instant (/api/v1/query). A range selector
// (up[30s]) gives a matrix of the raw samples with their scrape times.
func (c *Client) Query(ctx context.Context, q string, at time.Time) (Result, error) {
	v := url.Values{"query": {q}}
	if !at.IsZero() {
		v.Set("time", promTime(at))
	}
	return c.do(ctx, "/api/v1/query", v)
}

// QueryRange evaluates q at every step from start to end
// (/api/v1/query_range); the result is a matrix.
func (c *Client) QueryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) (Result, error) {
	if step <= 0 {
		return Result{}, errors.New("prometheus query_range: step must be positive")
	}
	v := url.Values{"query": {q}, "start": {promTime(start)}, "end": {promTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	return c.do(ctx, "/api/v1/query_range", v)
}

// envelope is the API's answer, success or error.
type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// do asks a query endpoint and decodes its result.
func (c *Client) do(ctx context.Context, endpoint string, form url.Values) (Result, error) {
	env, err := c.call(ctx, http.MethodPost, endpoint, form)
	if err != nil {
		return Result{}, err
	}
	r, err := decodeData(env.Data)
	if err != nil {
		return Result{}, fmt.Errorf("prometheus %s: %w", endpoint, err)
	}
	r.Warnings = env.Warnings
	return r, nil
}

// call sends the form, POSTed where the endpoint takes it (a form keeps
// long queries out of the URL), else in the URL of a GET, and returns a
// successful answer's envelope.
func (c *Client) call(ctx context.Context, method, endpoint string, form url.Values) (envelope, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return envelope{}, fmt.Errorf("prometheus: %q is not an http(s) URL", c.BaseURL)
	}
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequestWithContext(ctx, method, base+endpoint, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, method, base+endpoint+"?"+form.Encode(), nil)
	}
	if err != nil {
		return envelope{}, err
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return envelope{}, fmt.Errorf("prometheus %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return envelope{}, fmt.Errorf("prometheus %s: reading the answer: %w", endpoint, err)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Status == "" {
		return envelope{}, &Error{Endpoint: endpoint, Status: resp.StatusCode, Body: snippet(body)}
	}
	if env.Status != "success" {
		return envelope{}, &Error{Endpoint: endpoint, Status: resp.StatusCode, Type: env.ErrorType, Message: env.Error}
	}
	return env, nil
}

// AlertRule is one alerting rule as the server loaded it.
type AlertRule struct {
	Name     string
	For      time.Duration // the rule's `for:`
	Severity string        // its severity label, if any
}

// AlertRules lists the server's alerting rules (/api/v1/rules?type=alert,
// which takes GET only).
func (c *Client) AlertRules(ctx context.Context) ([]AlertRule, error) {
	const endpoint = "/api/v1/rules"
	env, err := c.call(ctx, http.MethodGet, endpoint, url.Values{"type": {"alert"}})
	if err != nil {
		return nil, err
	}
	var d struct {
		Groups []struct {
			Rules []struct {
				Type     string            `json:"type"`
				Name     string            `json:"name"`
				Duration float64           `json:"duration"` // seconds
				Labels   map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return nil, fmt.Errorf("prometheus %s: unexpected data: %w", endpoint, err)
	}
	var out []AlertRule
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			if r.Type != "alerting" {
				continue
			}
			out = append(out, AlertRule{Name: r.Name, For: time.Duration(r.Duration * float64(time.Second)), Severity: r.Labels["severity"]})
		}
	}
	return out, nil
}

func decodeData(raw json.RawMessage) (Result, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return Result{}, fmt.Errorf("unexpected data: %w", err)
	}
	r := Result{Type: d.ResultType}
	switch d.ResultType {
	case "matrix", "vector":
		var items []struct {
			Metric map[string]string   `json:"metric"`
			Value  []json.RawMessage   `json:"value"`
			Values [][]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(d.Result, &items); err != nil {
			return Result{}, fmt.Errorf("unexpected %s: %w", d.ResultType, err)
		}
		for _, it := range items {
			s := Series{Labels: it.Metric}
			pairs := it.Values
			if d.ResultType == "vector" {
				pairs = [][]json.RawMessage{it.Value}
			}
			for _, p := range pairs {
				smp, err := decodePair(p)
				if err != nil {
					return Result{}, err
				}
				s.Samples = append(s.Samples, smp)
			}
			r.Series = append(r.Series, s)
		}
	case "scalar", "string":
		var p []json.RawMessage
		if err := json.Unmarshal(d.Result, &p); err != nil {
			return Result{}, fmt.Errorf("unexpected %s: %w", d.ResultType, err)
		}
		if d.ResultType == "scalar" {
			smp, err := decodePair(p)
			if err != nil {
				return Result{}, err
			}
			r.Series = []Series{{Labels: map[string]string{}, Samples: []Sample{smp}}}
		}
	default:
		return Result{}, fmt.Errorf("unknown resultType %q", d.ResultType)
	}
	return r, nil
}

// decodePair reads [unix seconds (a number), "value" (a string, as
// Prometheus writes NaN and ±Inf too)].
func decodePair(p []json.RawMessage) (Sample, error) {
	if len(p) != 2 {
		return Sample{}, fmt.Errorf("a sample is [time, value], got %d elements", len(p))
	}
	var ts float64
	if err := json.Unmarshal(p[0], &ts); err != nil {
		return Sample{}, fmt.Errorf("sample time %s: %w", p[0], err)
	}
	var vs string
	if err := json.Unmarshal(p[1], &vs); err != nil {
		return Sample{}, fmt.Errorf("sample value %s: %w", p[1], err)
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil {
		return Sample{}, fmt.Errorf("sample value %q: %w", vs, err)
	}
	sec, frac := math.Modf(ts)
	return Sample{At: time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)), Value: v}, nil
}

// promTime is an RFC 3339 time with milliseconds, which the API accepts
// as well as Unix seconds.
func promTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
