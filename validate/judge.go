package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pgha/pgha/validate/internal/judge"
	"github.com/pgha/pgha/validate/internal/report"
)

// runJudge is `validate judge report.json`: every destructive check of a
// saved report is judged again from its timeline alone (the traffic, the
// polls, the events, the surviving rows), with no cluster. The verdicts and
// the judged figures must come out as recorded. Exit status: 0 the same, 1
// different, 2 bad input.
func runJudge(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate judge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: validate judge REPORT   (report.json, or the report directory that holds it)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "report.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "validate judge: %v\n", err)
		return 2
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(stderr, "validate judge: %s is not a validate report.json: %v\n", path, err)
		return 2
	}
	judged, differ := 0, 0
	for _, c := range r.Checks {
		if c.Timeline == nil {
			continue
		}
		judged++
		v := judge.Judge(*c.Timeline)
		diffs := compareVerdict(c, v)
		fmt.Fprintf(stdout, "%s (recorded %s):\n", c.Name, c.Verdict)
		for _, p := range v.Properties {
			fmt.Fprintf(stdout, "  %-36s %s\n", p.Name, propertyText(p))
		}
		if len(diffs) == 0 {
			fmt.Fprintln(stdout, "  same verdicts and figures as recorded")
			continue
		}
		differ++
		for _, d := range diffs {
			fmt.Fprintf(stdout, "  DIFFERS: %s\n", d)
		}
	}
	switch {
	case judged == 0:
		fmt.Fprintf(stderr, "validate judge: %s holds no check with a timeline (only switchover, failover and the scenarios record one)\n", path)
		return 2
	case differ > 0:
		fmt.Fprintf(stdout, "RESULT: %d of %d checks judged differently from the record\n", differ, judged)
		return 1
	}
	fmt.Fprintf(stdout, "RESULT: %d checks judged again from their evidence: the same verdicts\n", judged)
	return 0
}

func propertyText(p report.Property) string {
	switch {
	case p.Holds:
		return "holds"
	case p.Tolerated:
		return "tolerated: " + strings.Join(p.Detail, "; ")
	}
	return "VIOLATED: " + strings.Join(p.Detail, "; ")
}

// compareVerdict lists how a fresh verdict differs from what the check
// recorded: its properties, and the figures the judge computes.
func compareVerdict(c report.Check, v judge.Verdict) []string {
	var out []string
	if !reflect.DeepEqual(normalize(c.Properties), normalize(v.Properties)) {
		out = append(out, fmt.Sprintf("properties: recorded %v, judged %v", c.Properties, v.Properties))
	}
	for _, key := range judge.FigureKeys {
		rec, hadRec := c.Figure(key)
		i := slices.IndexFunc(v.Figures, func(f report.Figure) bool { return f.Key == key })
		switch {
		case !hadRec:
			// Not in the recording: absent on both sides, or a figure
			// added after the report was written.
		case i < 0:
			out = append(out, fmt.Sprintf("figure %s: recorded %v, judged %v", key, hadRec, i >= 0))
		case math.Abs(rec.Value-v.Figures[i].Value) > 1e-9:
			out = append(out, fmt.Sprintf("figure %s: recorded %s, judged %s", key, rec, v.Figures[i]))
		}
	}
	return out
}

// normalize makes nil and empty detail lists compare equal.
func normalize(ps []report.Property) []report.Property {
	out := make([]report.Property, 0, len(ps))
	for _, p := range ps {
		if len(p.Detail) == 0 {
			p.Detail = nil
		}
		out = append(out, p)
	}
	return out
}
