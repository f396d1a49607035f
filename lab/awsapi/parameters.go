package awsapi

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParameterType is an SSM parameter type.
type ParameterType string

// The SSM parameter types.
const (
	String       ParameterType = "String"
	StringList   ParameterType = "StringList"
	SecureString ParameterType = "SecureString"
)

// Parameter is one version of an SSM parameter.
type Parameter struct {
	Name             string
	Type             ParameterType
	Value            string
	Version          int64
	ARN              string
	LastModifiedDate time.Time
}

type parameter struct {
	name     string
	versions []paramVersion // versions[i] is version i+1
}

type paramVersion struct {
	typ      ParameterType
	value    string
	modified time.Time
	// ciphertext is what GetParameter returns for a SecureString read
	// without decryption: opaque, as the KMS blob it stands for.
	ciphertext string
}

var parameterNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_./-]+$`)

// PutParameter stores a new version of a parameter (version 1 when new),
// like ssm:PutParameter with Overwrite. SecureString values are
// "encrypted" with the account's aws/ssm key (see KMSKeyARN).
func (a *Account) PutParameter(name, value string, typ ParameterType) (Parameter, error) {
	if err := validParameterName(name); err != nil {
		return Parameter{}, err
	}
	switch typ {
	case String, StringList, SecureString:
	default:
		return Parameter{}, fmt.Errorf("parameter %s: type %q must be String, StringList or SecureString", name, typ)
	}
	if value == "" {
		return Parameter{}, fmt.Errorf("parameter %s: the value must not be empty (SSM refuses it)", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.params[name]
	if !ok {
		p = &parameter{name: name}
		a.params[name] = p
	}
	v := paramVersion{typ: typ, value: value, modified: a.clock().UTC()}
	if typ == SecureString {
		b := make([]byte, 96)
		_, _ = rand.Read(b)
		v.ciphertext = "AQICAH" + base64.StdEncoding.EncodeToString(b)
	}
	p.versions = append(p.versions, v)
	return a.publicParam(p, int64(len(p.versions))), nil
}

// Parameter returns the latest version of a parameter.
func (a *Account) Parameter(name string) (Parameter, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.params[name]
	if !ok {
		return Parameter{}, false
	}
	return a.publicParam(p, int64(len(p.versions))), true
}

// ParameterARN is the ARN policies name a parameter by:
// arn:aws:ssm:REGION:ACCOUNT:parameter/pgha/dev/x for /pgha/dev/x.
func (a *Account) ParameterARN(name string) string {
	return fmt.Sprintf("arn:%s:ssm:%s:%s:parameter/%s", a.Partition, a.Region, a.ID, strings.TrimPrefix(name, "/"))
}

func (a *Account) publicParam(p *parameter, version int64) Parameter {
	v := p.versions[version-1]
	return Parameter{Name: p.name, Type: v.typ, Value: v.value, Version: version,
		ARN: a.ParameterARN(p.name), LastModifiedDate: v.modified}
}

func validParameterName(name string) error {
	switch {
	case name == "" || len(name) > 1011:
		return fmt.Errorf("parameter name %q must be 1-1011 characters", name)
	case !parameterNamePattern.MatchString(name):
		return fmt.Errorf("parameter name %q may hold only letters, digits and _.-/", name)
	case strings.Contains(name, "/") && !strings.HasPrefix(name, "/"):
		return fmt.Errorf("parameter name %q: a hierarchical name must begin with /", name)
	case strings.Count(name, "/") > 15:
		return fmt.Errorf("parameter name %q is deeper than 15 levels", name)
	}
	l := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(l, "aws") || strings.HasPrefix(l, "ssm") {
		return fmt.Errorf("parameter name %q: names may not begin with aws or ssm", name)
	}
	return nil
}

// paramRef is a GetParameter name resolved.
type paramRef struct {
	arn         string // what policies are evaluated against
	p           Parameter
	found       bool
	selector    string // ":3" when the name asked for a version
	badSelector bool   // a selector naming no version
}

// lookupParameter resolves a GetParameter name: a name or ARN, optionally
// with a ":version" selector. The ARN is returned even when the parameter
// does not exist, because AWS authorizes before it looks.
func (a *Account) lookupParameter(ref string) paramRef {
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		if parts := strings.SplitN(ref, ":", 6); len(parts) == 6 {
			name = strings.TrimPrefix(parts[5], "parameter")
		}
	}
	var out paramRef
	if i := strings.LastIndex(name, ":"); i >= 0 {
		name, out.selector = name[:i], name[i:]
	}
	out.arn = a.ParameterARN(name)
	a.mu.Lock()
	defer a.mu.Unlock()
	stored, ok := a.params[name]
	if !ok && strings.HasPrefix(ref, "arn:") {
		// parameter/x is the ARN of both "x" and "/x".
		stored, ok = a.params[strings.TrimPrefix(name, "/")]
	}
	if !ok {
		return out
	}
	version := int64(len(stored.versions))
	if out.selector != "" {
		n, err := strconv.ParseInt(out.selector[1:], 10, 64)
		if err != nil || n < 1 || n > version {
			out.badSelector = true
			return out
		}
		version = n
	}
	out.p, out.found = a.publicParam(stored, version), true
	return out
}

// ciphertext is the stored stand-in for a SecureString's KMS blob.
func (a *Account) ciphertext(name string, version int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.params[name]; ok && version >= 1 && int(version) <= len(p.versions) {
		return p.versions[version-1].ciphertext
	}
	return ""
}

// parameterNamesUnder lists the parameters sharing a path prefix; the
// trail shows them when a name is not found (a typo is the usual cause).
func (a *Account) parameterNamesUnder(prefix string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for n := range a.params {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
