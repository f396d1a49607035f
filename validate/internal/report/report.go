// Package report turns one validate run into evidence a person can read
// afterwards: a console table, report.json for machines, report.md with every
// figure and the commands to reproduce it, and an SVG timeline of write and
// read success with the fault, promotion and rejoin marked.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgha/pgha/validate/internal/history"
)

// Verdicts.
const (
	Pass = "PASS"
	Fail = "FAIL"
	Skip = "SKIP"
)

// Figure is one measured value.
type Figure struct {
	Key   string  `json:"key"` // machine name, e.g. write_gap_s
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"` // s, ms, rows, bytes, ...
	Text  string  `json:"text,omitempty"` // non-numeric figures (a node name)
}

func (f Figure) String() string {
	if f.Text != "" {
		return f.Text
	}
	v := fmt.Sprintf("%.3f", f.Value)
	v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
	if f.Unit != "" {
		v += " " + f.Unit
	}
	return v
}

// Event is a moment worth marking on a timeline.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // switchover | fault | promotion | restore | rejoin | healthy | ...
	Detail string    `json:"detail,omitempty"`
	// Node is the node the event is about: the one broken, or promoted.
	Node string `json:"node,omitempty"`
}

// Timeline is everything a destructive check recorded: the traffic, the
// polls of every node, the events, and the rows that survived on each node.
// It is the whole evidence of the check's verdict on data and primaries:
// `validate judge report.json` judges it again without a cluster.
type Timeline struct {
	Check  string       `json:"check"`
	Start  time.Time    `json:"start"`
	End    time.Time    `json:"end"`
	Events []Event      `json:"events"`
	Writes []history.Op `json:"writes"`
	Reads  []history.Op `json:"reads"`
	// PooledWrites are the writer's through PgBouncer, beside Writes
	// (through HAProxy), in the same run with ids of their own; absent
	// where no pooler serves clients.
	PooledWrites []history.Op `json:"pooledWrites,omitempty"`

	// FaultAt is when the first fault was injected (or the switchover
	// asked for); the write gap and RTO are measured from it.
	FaultAt time.Time `json:"faultAt,omitempty"`
	// Rounds are the polls of /primary and pg_is_in_recovery() on every
	// Patroni node.
	Rounds []history.Round `json:"rounds,omitempty"`
	// Rows are the run's rows on each node, read at the end.
	Rows        map[string][]history.Row `json:"rows,omitempty"`
	FinalLeader string                   `json:"finalLeader,omitempty"`
	// Servers names the node behind each address the traffic reached.
	Servers         map[string]string `json:"servers,omitempty"`
	SynchronousMode bool              `json:"synchronousMode"`
	// Planned is a switchover: not even asynchronous replication may lose
	// an acknowledged write then.
	Planned       bool          `json:"planned,omitempty"`
	WriteInterval time.Duration `json:"writeIntervalNs,omitempty"`
}

// Property is one promise a check judged from its Timeline.
type Property struct {
	Name  string `json:"name"`
	Holds bool   `json:"holds"`
	// Tolerated marks a broken promise that does not fail the check: the
	// writes an asynchronous failover may lose, or two writable servers
	// where synchronous replication kept the old one from acknowledging.
	Tolerated bool     `json:"tolerated,omitempty"`
	Detail    []string `json:"detail,omitempty"`
}

// Check is one row of the final table.
type Check struct {
	Name     string    `json:"name"`
	Verdict  string    `json:"verdict"`
	Summary  string    `json:"summary"`
	Problems []string  `json:"problems,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
	Figures  []Figure  `json:"figures,omitempty"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"durationSeconds"`
	// Properties are the judge's verdicts on the Timeline.
	Properties []Property `json:"properties,omitempty"`
	Timeline   *Timeline  `json:"timeline,omitempty"`
	// Series are quantities the check sampled over time (see Series).
	Series []*Series `json:"series,omitempty"`
	// Metrics are what Prometheus recorded during the check, drawn in
	// MetricsFile(Name).
	Metrics *Metrics `json:"metrics,omitempty"`
	// Alerts are what Prometheus's alerting rules did during the check.
	Alerts *Alerts `json:"alerts,omitempty"`
}

// Figure returns the figure with key, if present.
func (c Check) Figure(key string) (Figure, bool) {
	for _, f := range c.Figures {
		if f.Key == key {
			return f, true
		}
	}
	return Figure{}, false
}

// FigureText is a figure as a table cell: its value, or – when the check
// did not measure it.
func (c Check) FigureText(key string) string {
	if f, ok := c.Figure(key); ok {
		return f.String()
	}
	return "–"
}

// Member is one row of a cluster table.
type Member struct {
	Name      string `json:"name"`
	Host      string `json:"host"`
	Role      string `json:"role"`
	State     string `json:"state"`
	Timeline  int    `json:"timeline"`
	LagBytes  int64  `json:"lagBytes"`            // -1 unknown
	Streaming string `json:"streaming,omitempty"` // pg_stat_replication state/sync_state on the leader
}

// Snapshot is the cluster as seen at one moment.
type Snapshot struct {
	At      time.Time `json:"at"`
	Members []Member  `json:"members"`
	Error   string    `json:"error,omitempty"`
}

// Report is one validate run.
type Report struct {
	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished"`
	Passed          bool      `json:"passed"`
	Target          string    `json:"target"`
	ClusterName     string    `json:"clusterName"`
	Profile         string    `json:"profile"`
	SynchronousMode bool      `json:"synchronousMode"`
	Access          string    `json:"access"`
	WriteEndpoint   string    `json:"writeEndpoint"`
	ReadEndpoint    string    `json:"readEndpoint"`
	Command         string    `json:"command"`
	Reproduce       []string  `json:"reproduce"`
	Before          *Snapshot `json:"clusterBefore,omitempty"`
	After           *Snapshot `json:"clusterAfter,omitempty"`
	Checks          []Check   `json:"checks"`
}

// Check finds a check by name.
func (r *Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Timelines returns the checks' timelines in check order.
func (r *Report) Timelines() []*Timeline {
	var out []*Timeline
	for _, c := range r.Checks {
		if c.Timeline != nil {
			out = append(out, c.Timeline)
		}
	}
	return out
}

// Finish sets Passed from the verdicts: a run passes when nothing failed.
func (r *Report) Finish(at time.Time) {
	r.Finished = at
	r.Passed = true
	for _, c := range r.Checks {
		if c.Verdict == Fail {
			r.Passed = false
		}
	}
}

// JSON renders report.json.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Console writes the final table.
func (r *Report) Console(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tVERDICT\tTIME\tSUMMARY")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\t%s\n", c.Name, c.Verdict, c.Seconds, c.Summary)
	}
	_ = tw.Flush()
	for _, c := range r.Checks {
		for _, p := range c.Problems {
			fmt.Fprintf(w, "  %s: %s\n", c.Name, p)
		}
	}
	if r.Passed {
		fmt.Fprintln(w, "RESULT: PASS")
	} else {
		fmt.Fprintln(w, "RESULT: FAIL")
	}
}

// Files lists what WriteDir always writes; each check with metric graphs
// adds its MetricsFile.
var Files = []string{"report.json", "report.md", "timeline.svg"}

// WriteDir writes report.json, report.md, timeline.svg and the checks'
// metrics pictures into dir.
func (r *Report) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating report directory: %w", err)
	}
	js, err := r.JSON()
	if err != nil {
		return err
	}
	svg, err := r.SVG()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"report.json":  js,
		"report.md":    []byte(r.Markdown()),
		"timeline.svg": svg,
	}
	for _, c := range r.Checks {
		if c.Metrics.HasData() {
			files[MetricsFile(c.Name)] = MetricsSVG(c, r.ClusterName)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	return nil
}
