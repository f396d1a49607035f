package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/history"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sample() *Report {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var writes, reads []history.Op
	for i := 0; i < 100; i++ {
		ok := i < 40 || i > 70
		o := history.Op{ID: int64(i + 1), Start: ms(i * 100), End: ms(i*100 + 20), OK: ok, Server: "10.42.4.20"}
		if !ok {
			o.Err = `FATAL: terminating connection <admin> & "shutdown"`
		}
		writes = append(writes, o)
		reads = append(reads, history.Op{Start: ms(i * 100), End: ms(i*100 + 30), OK: i != 50, Server: "10.42.5.20"})
	}
	tl := &Timeline{Check: "failover", Start: t0, End: ms(10000), Writes: writes, Reads: reads, Events: []Event{
		{At: ms(4000), Kind: "fault", Detail: "kill pg-1 <leader>"},
		{At: ms(6500), Kind: "promotion", Detail: "pg-2 leads"},
		{At: ms(8000), Kind: "restore", Detail: "start pg-1"},
		{At: ms(9500), Kind: "rejoin", Detail: "pg-1 streams & follows"},
	}}
	r := &Report{
		Started: t0, ClusterName: "lab<&>", Target: "lab", Profile: "fast", Access: "netns",
		WriteEndpoint: "10.42.0.30:5000", ReadEndpoint: "10.42.0.30:5001",
		Command:   "validate --outputs x.json",
		Reproduce: []string{"go run ./validate --outputs x.json"},
		Before: &Snapshot{At: t0, Members: []Member{
			{Name: "pg-1", Host: "10.42.4.20", Role: "leader", State: "running", Timeline: 1},
			{Name: "pg-2", Host: "10.42.5.20", Role: "replica", State: "running", Timeline: 1, LagBytes: -1, Streaming: "streaming/async"},
		}},
		Checks: []Check{
			{Name: "etcd", Verdict: Pass, Summary: "3 healthy members, leader etcd-1", Seconds: 0.2},
			{Name: "failover", Verdict: Fail, Summary: "lost 2 acknowledged writes", Problems: []string{"ids 41|42 missing on pg-2"},
				Figures: []Figure{{Key: "rto_s", Label: "RTO", Value: 3.25, Unit: "s"}, {Key: "new_leader", Label: "new leader", Text: "pg-2"}},
				Seconds: 12.5, Timeline: tl, Properties: []Property{
					{Name: "no-acknowledged-write-lost", Detail: []string{"2 acknowledged writes are not on the final leader (ids 41, 42)"}},
					{Name: "one-writable-server-at-a-time", Tolerated: true, Detail: []string{"two writable at +4.5 s"}},
					{Name: "one-primary-at-a-time", Holds: true},
				}},
		},
	}
	r.Finish(ms(20000))
	return r
}

func TestSVGIsWellFormedXML(t *testing.T) {
	svg, err := sample().SVG()
	require.NoError(t, err)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	rects, texts := 0, 0
	var root string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "timeline.svg must be well-formed XML")
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				require.Equal(t, "http://www.w3.org/2000/svg", se.Name.Space)
			}
			switch se.Name.Local {
			case "rect":
				rects++
			case "text":
				texts++
			}
		}
	}
	require.Equal(t, "svg", root)
	require.Greater(t, rects, 200, "one bar per write and read")
	require.Contains(t, string(svg), "promotion +6.5s")
	require.Contains(t, string(svg), "&lt;leader&gt;")
}

func TestSVGWithoutTimelines(t *testing.T) {
	r := &Report{ClusterName: "x"}
	svg, err := r.SVG()
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(svg, new(struct{})))
}

func TestMarkdownHasTheEvidence(t *testing.T) {
	md := sample().Markdown()
	for _, want := range []string{
		"# pgha validate: FAIL",
		"| failover | **FAIL** | 12.5 s | lost 2 acknowledged writes |",
		"ids 41\\|42 missing on pg-2",
		"| RTO | 3.25 s |",
		"| new leader | pg-2 |",
		"| +4.000 s | fault | kill pg-1 <leader> |",
		"## Cluster before",
		"| pg-2 | 10.42.5.20 | replica | running | 1 | unknown | streaming/async |",
		"Writes: 100 attempted, 31 failed. Reads: 100 attempted, 1 failed (availability 99.0%).",
		"![write and read success over time](timeline.svg)",
		"go run ./validate --outputs x.json",
		"| no-acknowledged-write-lost | **violated** | 2 acknowledged writes are not on the final leader (ids 41, 42) |",
		"| one-writable-server-at-a-time | broken, tolerated | two writable at +4.5 s |",
		"| one-primary-at-a-time | holds |  |",
		"go run ./validate judge <this directory>",
	} {
		require.Contains(t, md, want)
	}
}

func TestJSONRoundTripAndFiles(t *testing.T) {
	r := sample()
	require.False(t, r.Passed)
	dir := filepath.Join(t.TempDir(), "r")
	require.NoError(t, r.WriteDir(dir))
	for _, f := range Files {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Positive(t, st.Size())
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var back Report
	require.NoError(t, json.Unmarshal(b, &back))
	c, ok := back.Check("failover")
	require.True(t, ok)
	f, ok := c.Figure("rto_s")
	require.True(t, ok)
	require.Equal(t, 3.25, f.Value)
	require.Len(t, c.Timeline.Writes, 100)
}

func TestConsole(t *testing.T) {
	var b strings.Builder
	sample().Console(&b)
	out := b.String()
	require.Contains(t, out, "CHECK")
	require.Contains(t, out, "failover  FAIL")
	require.Contains(t, out, "failover: ids 41|42 missing on pg-2")
	require.Contains(t, out, "RESULT: FAIL")
}
