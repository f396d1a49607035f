package awsapi

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// principal is an IAM role or user and its inline identity policies.
type principal struct {
	kind     string // "role" or "user"
	name     string
	arn      string
	policies map[string]*Policy
}

// sortedPolicies returns the policies in a stable order; evaluation does
// not depend on it, but logs and tests read better.
func (p *principal) sortedPolicies() []*Policy {
	names := make([]string, 0, len(p.policies))
	for n := range p.policies {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*Policy, 0, len(names))
	for _, n := range names {
		out = append(out, p.policies[n])
	}
	return out
}

// accessKey is a key pair as the signature check sees it.
type accessKey struct {
	id, secret string
	token      string    // temporary credentials only
	expires    time.Time // zero for a user's long-term key
	principal  *principal
	session    string // role session name
}

// callerARN is the identity the key acts as: the user, or for role
// credentials the assumed-role session, as sts:GetCallerIdentity shows it.
func (k *accessKey) callerARN(a *Account) string {
	if k.principal.kind == "role" {
		return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", a.Partition, a.ID, k.principal.name, k.session)
	}
	return k.principal.arn
}

// Credentials are an access key as a client uses it.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string    // set for role credentials (AccessKeyID ASIA…)
	Expiration      time.Time // zero for a user's long-term key (AKIA…)
	ARN             string    // who requests signed with them act as
}

// Provider returns the credentials as an aws-sdk-go-v2 provider.
func (c Credentials) Provider() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
}

// InstanceProfile is the container EC2 uses to hand a role to an instance.
type InstanceProfile struct {
	Name string
	ARN  string
	ID   string // AIPA…
	Role string
}

// AddRole creates a role without policies; attach them with PutRolePolicy.
// The trust policy is not modelled: the lab hands role credentials only to
// the instances the caller registers (see lab/imds).
func (a *Account) AddRole(name string) error {
	return a.addPrincipal("role", name)
}

// AddUser creates an IAM user, e.g. the operator validate runs as.
func (a *Account) AddUser(name string) error {
	return a.addPrincipal("user", name)
}

func (a *Account) addPrincipal(kind, name string) error {
	if !iamNamePattern.MatchString(name) {
		return fmt.Errorf("%s name %q: use 1-64 letters, digits and +=,.@_-", kind, name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.roles
	if kind == "user" {
		m = a.users
	}
	if _, ok := m[name]; ok {
		return fmt.Errorf("%s %q already exists", kind, name)
	}
	m[name] = &principal{kind: kind, name: name, policies: map[string]*Policy{},
		arn: fmt.Sprintf("arn:%s:iam::%s:%s/%s", a.Partition, a.ID, kind, name)}
	return nil
}

// PutRolePolicy adds or replaces the role's inline policy of that name,
// like iam:PutRolePolicy. The document is validated first (see ParsePolicy).
func (a *Account) PutRolePolicy(role, policyName, document string) error {
	return a.putPolicy("role", role, policyName, document)
}

// PutUserPolicy adds or replaces the user's inline policy of that name.
func (a *Account) PutUserPolicy(user, policyName, document string) error {
	return a.putPolicy("user", user, policyName, document)
}

func (a *Account) putPolicy(kind, name, policyName, document string) error {
	p, err := ParsePolicy(policyName, document)
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pr, err := a.principalLocked(kind, name)
	if err != nil {
		return err
	}
	pr.policies[policyName] = p
	return nil
}

func (a *Account) principalLocked(kind, name string) (*principal, error) {
	m := a.roles
	if kind == "user" {
		m = a.users
	}
	pr, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("no %s %q in account %s: add it first", kind, name, a.ID)
	}
	return pr, nil
}

// AddInstanceProfile creates an instance profile holding the role.
func (a *Account) AddInstanceProfile(name, role string) (InstanceProfile, error) {
	if !iamNamePattern.MatchString(name) {
		return InstanceProfile{}, fmt.Errorf("instance profile name %q: use 1-64 letters, digits and +=,.@_-", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.principalLocked("role", role); err != nil {
		return InstanceProfile{}, err
	}
	if _, ok := a.profiles[name]; ok {
		return InstanceProfile{}, fmt.Errorf("instance profile %q already exists", name)
	}
	ip := InstanceProfile{Name: name, Role: role, ID: "AIPA" + randomID(17),
		ARN: fmt.Sprintf("arn:%s:iam::%s:instance-profile/%s", a.Partition, a.ID, name)}
	a.profiles[name] = ip
	return ip, nil
}

// InstanceProfile looks a profile up by name.
func (a *Account) InstanceProfile(name string) (InstanceProfile, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ip, ok := a.profiles[name]
	return ip, ok
}

// CreateAccessKey issues a long-term key (AKIA…) for a user.
func (a *Account) CreateAccessKey(user string) (Credentials, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pr, err := a.principalLocked("user", user)
	if err != nil {
		return Credentials{}, err
	}
	k := &accessKey{id: "AKIA" + randomID(16), secret: randomSecret(), principal: pr}
	a.keys[k.id] = k
	return Credentials{AccessKeyID: k.id, SecretAccessKey: k.secret, ARN: k.callerARN(a)}, nil
}

// ImportAccessKey gives a user a long-term key made elsewhere, so that a
// key handed out once (the booted lab writes its operator's key into the
// stack outputs) keeps working when the account is rebuilt from saved
// state.
func (a *Account) ImportAccessKey(user string, c Credentials) (Credentials, error) {
	if !strings.HasPrefix(c.AccessKeyID, "AKIA") || len(c.AccessKeyID) != 20 || len(c.SecretAccessKey) < 40 {
		return Credentials{}, fmt.Errorf("access key %q: want AKIA plus 16 characters and a 40-character secret", c.AccessKeyID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pr, err := a.principalLocked("user", user)
	if err != nil {
		return Credentials{}, err
	}
	if _, ok := a.keys[c.AccessKeyID]; ok {
		return Credentials{}, fmt.Errorf("access key %s exists already", c.AccessKeyID)
	}
	k := &accessKey{id: c.AccessKeyID, secret: c.SecretAccessKey, principal: pr}
	a.keys[k.id] = k
	return Credentials{AccessKeyID: k.id, SecretAccessKey: k.secret, ARN: k.callerARN(a)}, nil
}

// DefaultRoleCredentialTTL is how long role credentials last when the
// caller does not say: six hours, as EC2's instance credentials.
const DefaultRoleCredentialTTL = 6 * time.Hour

// RoleCredentials issues temporary credentials (ASIA…, with a session
// token) for a role session, as STS does for an instance: the session name
// of an instance's credentials is its instance id. ttl 0 means
// DefaultRoleCredentialTTL. Expired keys are forgotten here, so a long lab
// run does not accumulate them.
func (a *Account) RoleCredentials(role, session string, ttl time.Duration) (Credentials, error) {
	if !iamNamePattern.MatchString(session) {
		return Credentials{}, fmt.Errorf("role session name %q: use 2-64 letters, digits and +=,.@_-", session)
	}
	if ttl <= 0 {
		ttl = DefaultRoleCredentialTTL
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pr, err := a.principalLocked("role", role)
	if err != nil {
		return Credentials{}, err
	}
	now := a.clock()
	for id, k := range a.keys {
		if !k.expires.IsZero() && now.After(k.expires) {
			delete(a.keys, id)
		}
	}
	k := &accessKey{id: "ASIA" + randomID(16), secret: randomSecret(), token: randomToken(),
		expires: now.Add(ttl).UTC().Truncate(time.Second), principal: pr, session: session}
	a.keys[k.id] = k
	return Credentials{AccessKeyID: k.id, SecretAccessKey: k.secret, SessionToken: k.token,
		Expiration: k.expires, ARN: k.callerARN(a)}, nil
}

// randomID returns n characters of [A-Z2-7], the alphabet of AWS key ids.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base32.StdEncoding.EncodeToString(b)[:n]
}

func randomSecret() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b) // 40 characters, as AWS's
}

func randomToken() string {
	b := make([]byte, 192)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
