package awsapi

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// event is one request as the trail records it.
type event struct {
	at        time.Time
	source    string // the client's address
	requestID string
	caller    string // ARN, or the access key id when unauthenticated
	action    string // e.g. ssm:GetParameter
	operation string // the API operation when it is not the action's name (S3: ListObjectsV2 is s3:ListBucket)
	resources []string
	decision  string // allow, deny, error
	status    int
	code      string // error code, if any
	detail    string // why, in the lab's words
}

// trail writes events one per line, in a key=value form that both grep and
// people read. It is the lab's CloudTrail: when a boot is denied, the line
// names the caller, the action, the resource and the reason.
type trail struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *trail) write(e *event) {
	if t == nil || t.w == nil {
		return
	}
	var b strings.Builder
	b.WriteString(e.at.UTC().Format("2006-01-02T15:04:05.000Z"))
	field := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(" " + k + "=")
		if strings.ContainsAny(v, " \"=\n\t") {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	field("action", e.action)
	field("operation", e.operation)
	field("caller", e.caller)
	field("resource", strings.Join(e.resources, ","))
	field("decision", e.decision)
	field("status", fmt.Sprint(e.status))
	field("error", e.code)
	field("source", e.source)
	field("request", e.requestID)
	field("detail", e.detail)
	b.WriteString("\n")
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _ = io.WriteString(t.w, b.String())
}
