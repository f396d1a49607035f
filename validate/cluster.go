package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/report"
)

// ---- etcd ----

type etcdMember struct {
	node     outputs.Node
	healthy  bool
	memberID string
	leader   string
	term     string
	version  string
	err      string
}

type etcdState struct {
	members   []etcdMember
	listed    []string // member names from the member list
	leaderIDs map[string]bool
	leader    string // name of the leader node
	problems  []string
}

func (s etcdState) ok() bool { return len(s.problems) == 0 }

// etcdPost calls etcd's v3 JSON gateway (etcd 3.4 serves it on /v3/).
func (e *env) etcdPost(ctx context.Context, ip, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(ip, "2379")+path, bytes.NewReader([]byte("{}")))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc, err := e.etcdHTTP(ctx, ip)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func (e *env) assessEtcd(ctx context.Context) etcdState {
	st := etcdState{leaderIDs: map[string]bool{}}
	nodes := e.etcdNodes()
	for _, n := range nodes {
		m := etcdMember{node: n}
		var health struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(n.PrivateIP, "2379")+"/health", nil)
		hc, err := e.etcdHTTP(ctx, n.PrivateIP)
		var resp *http.Response
		if err == nil {
			resp, err = hc.Do(req)
		}
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
		}
		switch {
		case err != nil:
			m.err = err.Error()
		case health.Health != "true":
			m.err = "GET /health says " + health.Health + " " + health.Reason
		default:
			m.healthy = true
		}
		var status struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Version  string `json:"version"`
			Leader   string `json:"leader"`
			RaftTerm string `json:"raftTerm"`
		}
		if err := e.etcdPost(ctx, n.PrivateIP, "/v3/maintenance/status", &status); err != nil {
			if m.err == "" {
				m.err = err.Error()
			}
			m.healthy = false
		} else {
			m.memberID, m.leader, m.term, m.version = status.Header.MemberID, status.Leader, status.RaftTerm, status.Version
			if m.leader != "" && m.leader != "0" {
				st.leaderIDs[m.leader] = true
			}
		}
		if !m.healthy {
			st.problems = append(st.problems, fmt.Sprintf("etcd member %s (%s) is not healthy: %s", n.Name, n.PrivateIP, m.err))
		}
		st.members = append(st.members, m)
	}
	for _, n := range nodes {
		var list struct {
			Members []struct {
				Name string `json:"name"`
			} `json:"members"`
		}
		if err := e.etcdPost(ctx, n.PrivateIP, "/v3/cluster/member/list", &list); err == nil {
			for _, m := range list.Members {
				st.listed = append(st.listed, m.Name)
			}
			sort.Strings(st.listed)
			break
		}
	}
	if len(st.listed) != 3 {
		st.problems = append(st.problems, fmt.Sprintf("etcd lists %d members %v; want 3", len(st.listed), st.listed))
	}
	switch len(st.leaderIDs) {
	case 0:
		st.problems = append(st.problems, "no etcd member reports a leader")
	case 1:
		for _, m := range st.members {
			if st.leaderIDs[m.memberID] {
				st.leader = m.node.Name
			}
		}
		if st.leader == "" {
			st.problems = append(st.problems, "the etcd leader is not one of the cluster's etcd nodes")
		}
	default:
		st.problems = append(st.problems, fmt.Sprintf("etcd members disagree on the leader (%d different leaders reported)", len(st.leaderIDs)))
	}
	return st
}

// ---- Patroni formation ----

type replRow struct {
	state, syncState, clientAddr string
	lagBytes                     int64
}

type formation struct {
	at        time.Time
	cluster   patroni.Cluster
	leader    patroni.Member
	replicas  []patroni.Member
	repl      map[string]replRow // pg_stat_replication on the leader, by application_name
	timelines map[string]int     // /patroni timeline by member
	timeline  int                // the leader's
	sync      string             // the synchronous standby, if any
	problems  []string
}

func (f formation) ok() bool { return len(f.problems) == 0 }

func (f formation) problem() string { return strings.Join(f.problems, "; ") }

// clusterView reads /cluster from the first Patroni node that answers,
// skipping the named ones (a node under a fault may answer with a stale view).
func (e *env) clusterView(ctx context.Context, skip ...string) (patroni.Cluster, error) {
	var errs []string
	for _, n := range e.pgNodes() {
		if slices.Contains(skip, n.Name) {
			continue
		}
		cl, err := e.pat.Cluster(ctx, n.PrivateIP)
		if err == nil && len(cl.Members) > 0 {
			return cl, nil
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	return patroni.Cluster{}, fmt.Errorf("no Patroni node answered /cluster: %s", strings.Join(errs, "; "))
}

// assessFormation checks for exactly one leader and two replicas streaming
// from it (pg_stat_replication on the leader, by member name, because Patroni
// 3.0.2's /cluster says only "running"), all on one timeline, and a sync
// standby in synchronous mode.
func (e *env) assessFormation(ctx context.Context, skip ...string) formation {
	f := formation{at: time.Now(), repl: map[string]replRow{}, timelines: map[string]int{}}
	cl, err := e.clusterView(ctx, skip...)
	if err != nil {
		f.problems = append(f.problems, err.Error())
		return f
	}
	f.cluster = cl
	leaders := cl.Leaders()
	switch len(leaders) {
	case 1:
		f.leader = leaders[0]
	case 0:
		f.problems = append(f.problems, "Patroni reports no leader")
	default:
		var names []string
		for _, l := range leaders {
			names = append(names, l.Name)
		}
		f.problems = append(f.problems, fmt.Sprintf("Patroni reports %d leaders: %s", len(leaders), strings.Join(names, ", ")))
	}
	f.replicas = cl.Replicas()
	var want []string
	for _, n := range e.pgNodes() {
		want = append(want, n.Name)
		if _, ok := cl.Member(n.Name); !ok {
			f.problems = append(f.problems, fmt.Sprintf("member %s is missing from Patroni's /cluster", n.Name))
		}
	}
	if len(f.replicas) != 2 {
		f.problems = append(f.problems, fmt.Sprintf("Patroni reports %d replicas; want 2", len(f.replicas)))
	}
	for _, m := range cl.Members {
		if !slices.Contains(want, m.Name) {
			f.problems = append(f.problems, fmt.Sprintf("unexpected member %s in /cluster", m.Name))
		}
		if m.Role == "sync_standby" {
			f.sync = m.Name
		}
	}
	if f.leader.Name == "" {
		return f
	}
	// Streaming, as the leader's PostgreSQL sees it.
	rows, err := e.replicationOn(ctx, f.leader.Host)
	if err != nil {
		f.problems = append(f.problems, fmt.Sprintf("reading pg_stat_replication on leader %s: %v", f.leader.Name, err))
	} else {
		f.repl = rows
	}
	for _, r := range f.replicas {
		row, ok := f.repl[r.Name]
		switch {
		case err != nil:
		case !ok:
			f.problems = append(f.problems, fmt.Sprintf("replica %s is not streaming from leader %s (no pg_stat_replication entry)", r.Name, f.leader.Name))
		case row.state != "streaming":
			f.problems = append(f.problems, fmt.Sprintf("replica %s is in state %q on leader %s, not streaming", r.Name, row.state, f.leader.Name))
		}
	}
	// One timeline, as each member reports it.
	for _, m := range cl.Members {
		n, ok := e.nodeByName(m.Name)
		if !ok {
			continue
		}
		s, err := e.pat.Status(ctx, n.PrivateIP)
		if err != nil {
			f.problems = append(f.problems, fmt.Sprintf("member %s: %v", m.Name, err))
			continue
		}
		f.timelines[m.Name] = s.Timeline
	}
	f.timeline = f.timelines[f.leader.Name]
	if f.timeline == 0 {
		f.timeline = f.leader.Timeline
	}
	for name, tl := range f.timelines {
		if tl != f.timeline {
			f.problems = append(f.problems, fmt.Sprintf("member %s is on timeline %d, the leader %s on %d", name, tl, f.leader.Name, f.timeline))
		}
	}
	if e.stack.SynchronousMode {
		syncs := 0
		for name, r := range f.repl {
			if r.syncState == "sync" {
				syncs++
				if f.sync == "" {
					f.sync = name
				}
			}
		}
		if syncs == 0 {
			f.problems = append(f.problems, "synchronous mode is on but the leader has no synchronous standby (no sync_state = 'sync' in pg_stat_replication)")
		}
	}
	sort.Strings(f.problems)
	return f
}

// replicationOn reads pg_stat_replication on one node.
func (e *env) replicationOn(ctx context.Context, host string) (map[string]replRow, error) {
	c, err := e.super(host).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT application_name, coalesce(state, ''), coalesce(sync_state, ''),
		coalesce(host(client_addr), ''), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), -1)::bigint
		FROM pg_stat_replication`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]replRow{}
	for rows.Next() {
		var name string
		var r replRow
		if err := rows.Scan(&name, &r.state, &r.syncState, &r.clientAddr, &r.lagBytes); err != nil {
			return nil, err
		}
		out[name] = r
	}
	return out, rows.Err()
}

// waitFormation polls until the formation is healthy and pred holds.
func (e *env) waitFormation(ctx context.Context, bound time.Duration, pred func(formation) string, skip ...string) (formation, bool) {
	var last formation
	shown, start := "", time.Now()
	ok := wait.Poll(ctx, bound, 500*time.Millisecond, func() bool {
		last = e.assessFormation(ctx, skip...)
		if pred != nil && last.leader.Name != "" {
			if p := pred(last); p != "" {
				last.problems = append(last.problems, p)
			}
		}
		// Say what is being waited for, once per change, so a slow rejoin
		// is visible while it happens rather than only as a figure.
		if p := last.problem(); p != "" && p != shown && time.Since(start) > 2*time.Second && ctx.Err() == nil {
			e.logf("  waiting: %s", p)
			shown = p
		}
		return last.ok()
	})
	return last, ok
}

// snapshot turns a formation into a report table.
func (f formation) snapshot() *report.Snapshot {
	s := &report.Snapshot{At: f.at}
	if len(f.cluster.Members) == 0 && len(f.problems) > 0 {
		s.Error = f.problem()
	}
	for _, m := range f.cluster.Members {
		row := report.Member{Name: m.Name, Host: m.Host, Role: m.Role, State: m.State, Timeline: m.Timeline, LagBytes: m.LagBytes()}
		if tl, ok := f.timelines[m.Name]; ok {
			row.Timeline = tl
		}
		if r, ok := f.repl[m.Name]; ok {
			row.Streaming = r.state + "/" + r.syncState
		}
		s.Members = append(s.Members, row)
	}
	return s
}
