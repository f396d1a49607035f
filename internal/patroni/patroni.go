// Package patroni is a small client for the Patroni REST API (3.0.x): the
// read-only views validate uses to judge a cluster (/cluster, /patroni,
// /primary, /replica) and the one unsafe call it makes (POST /switchover),
// which needs basic auth.
//
// Every request goes through the http.Client the caller passes, so it takes
// the same dial path (direct, lab namespace or SSH jump) as everything else.
package patroni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// DefaultPort is Patroni's REST API port.
const DefaultPort = 8008

// Client talks to the REST API of any member.
type Client struct {
	HTTP     *http.Client
	Scheme   string // "http" unless the API is served over TLS
	Port     int
	User     string // basic auth for unsafe endpoints
	Password string
}

// Member is one entry of /cluster.
type Member struct {
	Name     string `json:"name"`
	Role     string `json:"role"`  // leader | replica | sync_standby | standby_leader
	State    string `json:"state"` // running | streaming | stopped | starting ...
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Timeline int    `json:"timeline"`
	// Lag is bytes behind the leader; Patroni prints "unknown" when it cannot
	// tell, so keep the raw value.
	Lag json.RawMessage `json:"lag,omitempty"`
	// PendingRestart: a parameter changed that PostgreSQL takes only at a
	// restart (Patroni 3.0.2's cluster_as_json sets it then, omits it
	// otherwise).
	PendingRestart bool `json:"pending_restart,omitempty"`
}

// LagBytes returns the lag in bytes, or -1 when Patroni does not know it.
func (m Member) LagBytes() int64 {
	if len(m.Lag) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(strings.Trim(string(m.Lag), `"`), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Member roles as Patroni 3.0 names them in /cluster.
const (
	RoleLeader        = "leader"
	RoleStandbyLeader = "standby_leader"
	RoleReplica       = "replica"
	RoleSyncStandby   = "sync_standby"
)

// IsLeader is true for the member that holds the leader key.
func (m Member) IsLeader() bool { return m.Role == RoleLeader || m.Role == RoleStandbyLeader }

// IsSyncStandby is true for the synchronous standby of synchronous mode.
func (m Member) IsSyncStandby() bool { return m.Role == RoleSyncStandby }

// Cluster is the /cluster view.
type Cluster struct {
	Members []Member `json:"members"`
	Scope   string   `json:"scope,omitempty"`
}

// Leader returns the leader member, if exactly one exists.
func (c Cluster) Leader() (Member, bool) {
	var out Member
	n := 0
	for _, m := range c.Members {
		if m.IsLeader() {
			out = m
			n++
		}
	}
	return out, n == 1
}

// Leaders returns every member that claims to lead.
func (c Cluster) Leaders() []Member {
	var out []Member
	for _, m := range c.Members {
		if m.IsLeader() {
			out = append(out, m)
		}
	}
	return out
}

// Replicas returns the members that are not the leader.
func (c Cluster) Replicas() []Member {
	var out []Member
	for _, m := range c.Members {
		if !m.IsLeader() {
			out = append(out, m)
		}
	}
	return out
}

// Member finds one by name.
func (c Cluster) Member(name string) (Member, bool) {
	for _, m := range c.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// Status is the /patroni view of one node.
type Status struct {
	State    string `json:"state"`
	Role     string `json:"role"` // master | primary | replica (3.0.2 says "master")
	Timeline int    `json:"timeline"`
	Server   int    `json:"server_version"`
	Patroni  struct {
		Version string `json:"version"`
		Scope   string `json:"scope"`
	} `json:"patroni"`
	Replication []struct {
		ApplicationName string `json:"application_name"`
		State           string `json:"state"`
		SyncState       string `json:"sync_state"`
		ClientAddr      string `json:"client_addr"`
	} `json:"replication,omitempty"`
	Xlog struct {
		Location         int64 `json:"location"`
		ReceivedLocation int64 `json:"received_location"`
		ReplayedLocation int64 `json:"replayed_location"`
	} `json:"xlog"`
}

// IsPrimary is true when the node runs as the primary.
func (s Status) IsPrimary() bool {
	return s.Role == "master" || s.Role == "primary"
}

func (c *Client) url(host, path string) string {
	scheme := c.Scheme
	if scheme == "" {
		scheme = "http"
	}
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path
}

// get fetches path and decodes JSON into out. Patroni answers /primary and
// /replica with 503 plus a JSON body, so the status is returned as well.
func (c *Client) get(ctx context.Context, host, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(host, path), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("patroni %s on %s: %w", path, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("patroni %s on %s: reading body: %w", path, host, err)
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return resp.StatusCode, fmt.Errorf("patroni %s on %s: unexpected answer (HTTP %d): %w", path, host, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// Cluster reads /cluster from the member at host.
func (c *Client) Cluster(ctx context.Context, host string) (Cluster, error) {
	var cl Cluster
	code, err := c.get(ctx, host, "/cluster", &cl)
	if err != nil {
		return Cluster{}, err
	}
	if code != http.StatusOK {
		return Cluster{}, fmt.Errorf("patroni /cluster on %s: HTTP %d", host, code)
	}
	return cl, nil
}

// Status reads /patroni from the member at host.
func (c *Client) Status(ctx context.Context, host string) (Status, error) {
	var s Status
	// /patroni answers 503 while PostgreSQL is down, with a useful body.
	if _, err := c.get(ctx, host, "/patroni", &s); err != nil {
		return Status{}, err
	}
	return s, nil
}

// IsPrimary asks /primary: 200 means this member is the running leader. It is
// exactly the check HAProxy makes for port 5000.
func (c *Client) IsPrimary(ctx context.Context, host string) (bool, error) {
	code, err := c.get(ctx, host, "/primary", nil)
	return code == http.StatusOK, err
}

// IsReplica asks /replica: 200 means a running replica (HAProxy's 5001 check).
func (c *Client) IsReplica(ctx context.Context, host string) (bool, error) {
	code, err := c.get(ctx, host, "/replica", nil)
	return code == http.StatusOK, err
}

// Switchover asks the member at host to hand leadership from leader to
// candidate now. Patroni answers 200 once the candidate has taken over (or
// 503/412 with a reason, which is returned as the error).
func (c *Client) Switchover(ctx context.Context, host, leader, candidate string) (string, error) {
	body, _ := json.Marshal(map[string]string{"leader": leader, "candidate": candidate})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(host, "/switchover"), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.User != "" {
		req.SetBasicAuth(c.User, c.Password)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("patroni POST /switchover on %s: %w", host, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	text := strings.TrimSpace(string(msg))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted:
		return text, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return text, fmt.Errorf("patroni POST /switchover on %s: HTTP %d: REST API credentials rejected (check credentials.restApiName/restApiPassword)", host, resp.StatusCode)
	default:
		return text, fmt.Errorf("patroni POST /switchover on %s: HTTP %d: %s", host, resp.StatusCode, text)
	}
}
