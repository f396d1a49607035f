package judge

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/validate/internal/history"
)

// SplitBrain is the verdict on the rounds of one scenario.
type SplitBrain struct {
	Rounds int `json:"rounds"`
	// Instants are the rounds in which two or more nodes answered 200.
	Instants []history.Round `json:"instants,omitempty"`
	// WritableInstants are the rounds in which two or more PostgreSQL
	// servers were out of recovery at once.
	WritableInstants []history.Round `json:"writableInstants,omitempty"`
	// Blind counts rounds in which some node could not be asked: there the
	// detector cannot see, and the single-history check has to speak.
	Blind int `json:"blind"`
	// NoPrimary counts rounds without any primary (the failover window).
	NoPrimary int `json:"noPrimary"`
}

// DetectSplitBrain counts the rounds with more than one primary.
func DetectSplitBrain(rounds []history.Round) SplitBrain {
	sb := SplitBrain{Rounds: len(rounds)}
	for _, r := range rounds {
		if len(r.Primaries) > 1 {
			sb.Instants = append(sb.Instants, r)
		}
		if len(r.Writable) > 1 {
			sb.WritableInstants = append(sb.WritableInstants, r)
		}
		if len(r.Unreachable) > 0 {
			sb.Blind++
		}
		if len(r.Primaries) == 0 {
			sb.NoPrimary++
		}
	}
	return sb
}

// Problem describes two /primary answers at once, or "" when there were none.
func (sb SplitBrain) Problem(start time.Time) string {
	if len(sb.Instants) == 0 {
		return ""
	}
	first := sb.Instants[0]
	return fmt.Sprintf("two primaries at once in %d of %d polls of /primary, first at +%.3fs: %s",
		len(sb.Instants), sb.Rounds, first.At.Sub(start).Seconds(), strings.Join(first.Primaries, " and "))
}

// WritableProblem describes two PostgreSQL servers out of recovery at once,
// or "" when there were none.
func (sb SplitBrain) WritableProblem(start time.Time) string {
	if len(sb.WritableInstants) == 0 {
		return ""
	}
	first := sb.WritableInstants[0]
	last := sb.WritableInstants[len(sb.WritableInstants)-1]
	return fmt.Sprintf("two writable PostgreSQL servers at once in %d of %d polls, +%.3fs to +%.3fs: %s",
		len(sb.WritableInstants), sb.Rounds, first.At.Sub(start).Seconds(), last.At.Sub(start).Seconds(), strings.Join(first.Writable, " and "))
}
