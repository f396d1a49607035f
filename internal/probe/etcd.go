package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
)

// etcd 3.4 answers its v3 API as JSON on the client port (the gRPC
// gateway: POST /v3/...), which Debian's etcd-server 3.4.23 serves too
// (TestEtcdGatewayOfDebiansEtcd), so no etcd client library is needed.

// EtcdMember is one member's own view.
type EtcdMember struct {
	Node     outputs.Node
	Healthy  bool
	MemberID string
	LeaderID string // the leader this member follows
	RaftTerm string
	Version  string
	Err      string
}

// EtcdState is the etcd cluster as its members report it.
type EtcdState struct {
	Members []EtcdMember
	Listed  []string // names in the member list
	Leader  string   // the leader's node name, when the members agree
	// Problems says what is wrong, one line each; none means 3 healthy
	// members listed, agreeing on one leader among them.
	Problems []string
}

// OK is a healthy etcd.
func (s EtcdState) OK() bool { return len(s.Problems) == 0 }

// Err is the problems as one error, nil when OK.
func (s EtcdState) Err() error {
	if s.OK() {
		return nil
	}
	return fmt.Errorf("etcd: %s", strings.Join(s.Problems, "; "))
}

// Member finds a member by node name.
func (s EtcdState) Member(name string) (EtcdMember, bool) {
	for _, m := range s.Members {
		if m.Node.Name == name {
			return m, true
		}
	}
	return EtcdMember{}, false
}

func (p *Probe) etcdClient(ctx context.Context, n outputs.Node) (*http.Client, error) {
	if p.EtcdHTTP != nil {
		return p.EtcdHTTP(ctx, n)
	}
	return p.HTTP, nil
}

func etcdURL(n outputs.Node, path string) string {
	return "https://" + hostPort(n.PrivateIP, topology.PortEtcdClient) + path
}

// etcdCall does one request to a member and decodes its JSON answer.
func (p *Probe) etcdCall(ctx context.Context, n outputs.Node, method, path string, out any) error {
	hc, err := p.etcdClient(ctx, n)
	if err != nil {
		return err
	}
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader([]byte("{}"))
	}
	req, err := http.NewRequestWithContext(ctx, method, etcdURL(n, path), body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK && path != "/health" {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// Etcd asks every member for its health and status, and one of them for
// the member list.
func (p *Probe) Etcd(ctx context.Context) EtcdState {
	st := EtcdState{}
	nodes := p.Nodes(topology.RoleEtcd)
	leaderIDs := map[string]bool{}
	for _, n := range nodes {
		m := EtcdMember{Node: n}
		var health struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		}
		switch err := p.etcdCall(ctx, n, http.MethodGet, "/health", &health); {
		case err != nil:
			m.Err = err.Error()
		case health.Health != "true":
			m.Err = strings.TrimSpace("GET /health says " + health.Health + " " + health.Reason)
		default:
			m.Healthy = true
		}
		var status struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Version  string `json:"version"`
			Leader   string `json:"leader"`
			RaftTerm string `json:"raftTerm"`
		}
		if err := p.etcdCall(ctx, n, http.MethodPost, "/v3/maintenance/status", &status); err != nil {
			if m.Err == "" {
				m.Err = err.Error()
			}
			m.Healthy = false
		} else {
			m.MemberID, m.LeaderID, m.RaftTerm, m.Version = status.Header.MemberID, status.Leader, status.RaftTerm, status.Version
			if m.LeaderID != "" && m.LeaderID != "0" {
				leaderIDs[m.LeaderID] = true
			}
		}
		if !m.Healthy {
			st.Problems = append(st.Problems, fmt.Sprintf("etcd member %s (%s) is not healthy: %s", n.Name, n.PrivateIP, m.Err))
		}
		st.Members = append(st.Members, m)
	}
	for _, n := range nodes {
		var list struct {
			Members []struct {
				Name string `json:"name"`
			} `json:"members"`
		}
		if err := p.etcdCall(ctx, n, http.MethodPost, "/v3/cluster/member/list", &list); err == nil {
			for _, m := range list.Members {
				st.Listed = append(st.Listed, m.Name)
			}
			sort.Strings(st.Listed)
			break
		}
	}
	if len(st.Listed) != len(nodes) {
		st.Problems = append(st.Problems, fmt.Sprintf("etcd lists %d members %v; want %d", len(st.Listed), st.Listed, len(nodes)))
	}
	switch len(leaderIDs) {
	case 0:
		st.Problems = append(st.Problems, "no etcd member reports a leader")
	case 1:
		for _, m := range st.Members {
			if leaderIDs[m.MemberID] {
				st.Leader = m.Node.Name
			}
		}
		if st.Leader == "" {
			st.Problems = append(st.Problems, "the etcd leader is not one of the cluster's etcd nodes")
		}
	default:
		st.Problems = append(st.Problems, fmt.Sprintf("etcd members disagree on the leader (%d different leaders reported)", len(leaderIDs)))
	}
	return st
}
