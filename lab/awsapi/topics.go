package awsapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Message is one message published to a topic, as the lab keeps it: what
// a subscriber would receive, and who sent it.
type Message struct {
	Time      time.Time `json:"time"`
	TopicARN  string    `json:"topic"`
	MessageID string    `json:"messageId"`
	// RequestID is the Publish call's, as the trail line shows it.
	RequestID  string                      `json:"requestId"`
	Subject    string                      `json:"subject,omitempty"`
	Message    string                      `json:"message"`
	Attributes map[string]MessageAttribute `json:"attributes,omitempty"`
	// Caller is the ARN the request was signed as: the user, or the
	// assumed-role session (an instance role's session is its instance id).
	Caller string `json:"caller"`
}

// MessageAttribute is one of a message's MessageAttributes.
type MessageAttribute struct {
	DataType    string `json:"dataType"` // String, String.Array, Number, Binary (optionally with a .suffix)
	StringValue string `json:"stringValue,omitempty"`
	BinaryValue []byte `json:"binaryValue,omitempty"`
}

// topics are the account's SNS topics and what was published to them.
// They have a lock of their own: delivery writes to disk, and the rest of
// the account need not wait for it.
type topics struct {
	mu     sync.Mutex
	byName map[string]*topic
	dir    string // where each topic's messages are appended; "" keeps them in memory only
}

type topic struct {
	arn      string
	messages []Message
}

// topicNamePattern is SNS's rule for standard topics. FIFO topics
// (NAME.fifo: message groups, deduplication) are not modelled.
var topicNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// TopicARN is the ARN of the account's topic of that name, which policies
// name it by: arn:aws:sns:REGION:ACCOUNT:NAME.
func (a *Account) TopicARN(name string) string {
	return fmt.Sprintf("arn:%s:sns:%s:%s:%s", a.Partition, a.Region, a.ID, name)
}

// AddTopic creates a standard SNS topic and returns its ARN, as
// sns:CreateTopic does for `pulumi up`; like CreateTopic, adding a topic
// that exists already returns its ARN.
func (a *Account) AddTopic(name string) (string, error) {
	if !topicNamePattern.MatchString(name) {
		return "", fmt.Errorf("topic name %q: use 1-256 letters, digits, hyphens and underscores (the lab does not model FIFO topics)", name)
	}
	arn := a.TopicARN(name)
	s := &a.sns
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[string]*topic{}
	}
	if _, ok := s.byName[name]; !ok {
		s.byName[name] = &topic{arn: arn}
	}
	return arn, nil
}

// topicName is the name in a topic ARN of this account and region, or ""
// when the ARN names a topic elsewhere (or no topic at all).
func (a *Account) topicName(arn string) string {
	name, ok := strings.CutPrefix(arn, a.TopicARN(""))
	if !ok || !topicNamePattern.MatchString(name) {
		return ""
	}
	return name
}

// Messages returns what was published to a topic (by name or ARN) since
// the account was made, oldest first.
func (a *Account) Messages(topic string) []Message {
	if n := a.topicName(topic); n != "" {
		topic = n
	}
	s := &a.sns
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byName[topic]
	if !ok {
		return nil
	}
	return append([]Message(nil), t.messages...)
}

// SetMessageDir makes every message published from now on also appended,
// as one JSON line (a Message), to DIR/TOPIC.jsonl (MessageFile), which
// the lab, validate or a person can read while the stand-in runs
// (ReadMessages): the lab's subscriber, the page that would have gone out.
// The directory is created if need be.
func (a *Account) SetMessageDir(dir string) error {
	// Alerts may carry host names and error text: not for every user.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	s := &a.sns
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dir = dir
	return nil
}

// MessageFile is where a topic's (by name or ARN) messages are appended,
// "" without SetMessageDir.
func (a *Account) MessageFile(topic string) string {
	if n := a.topicName(topic); n != "" {
		topic = n
	}
	s := &a.sns
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return ""
	}
	return filepath.Join(s.dir, topic+".jsonl")
}

// ReadMessages reads a MessageFile. A missing file is no messages.
func ReadMessages(path string) ([]Message, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Message
	sc := bufio.NewScanner(f)
	// A line holds a message at SNS's limit, escaped: JSON spells a
	// control byte in six.
	sc.Buffer(nil, 8*maxMessageBytes)
	for n := 1; sc.Scan(); n++ {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return out, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// errNoTopic: publishing to a topic the account does not have.
var errNoTopic = errors.New("no such topic")

// deliver records a published message: first on disk, so that a message
// the lab could not keep is an error to the publisher (who retries)
// rather than a page silently lost.
func (a *Account) deliver(m Message) error {
	name := a.topicName(m.TopicARN)
	s := &a.sns
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byName[name]
	if !ok {
		return errNoTopic
	}
	if s.dir != "" {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(s.dir, name+".jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return err
		}
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	t.messages = append(t.messages, m)
	return nil
}
