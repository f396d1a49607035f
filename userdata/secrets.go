package userdata

import (
	"github.com/pgha/pgha/internal/topology"
)

// Secret is one password of the cluster. Everything pgha does with it is
// derived from its entry in Secrets: the stack config key that may set it
// and the output field that returns it (ConfigKey), its SSM parameter
// (ParamName), the lines of the node's secrets file (Env, UserEnv), and
// which roles read it at boot, and so which instance roles may read the
// parameter (Roles). A new password is one line of Secrets, plus its field
// in outputs.Credentials and its key in Pulumi.yaml (tests check both).
type Secret struct {
	// Name is short and stable: the lab keeps the value in secrets/<Name>.
	Name string
	// ConfigKey is the stack config key (pgha:<ConfigKey>) and the field
	// of the credentials output that carry the password.
	ConfigKey string
	// Env is the secrets-file variable with the password; UserEnv, when
	// set, the one with the user name (Patroni reads both).
	Env, UserEnv string
	// User is the name of the role the password belongs to.
	User func(Users) string
	// Roles are the nodes whose services read it.
	Roles []topology.Role
}

var (
	onPatroni = []topology.Role{topology.RolePatroni}
	onHAProxy = []topology.Role{topology.RoleHAProxy}
	// The pooler's auth user: the first leader's post-bootstrap creates the
	// role, and PgBouncer logs in with it.
	onBoth = []topology.Role{topology.RolePatroni, topology.RoleHAProxy}
)

// Secrets is every password of the cluster, in a fixed order.
var Secrets = []Secret{
	{Name: "superuser", ConfigKey: "superuserPassword", Env: EnvSuperuserPassword, UserEnv: EnvSuperuserUsername,
		User: func(u Users) string { return u.Superuser }, Roles: onPatroni},
	{Name: "replication", ConfigKey: "replicationPassword", Env: EnvReplicationPassword, UserEnv: EnvReplicationUsername,
		User: func(u Users) string { return u.Replication }, Roles: onPatroni},
	{Name: "rewind", ConfigKey: "rewindPassword", Env: EnvRewindPassword, UserEnv: EnvRewindUsername,
		User: func(u Users) string { return u.Rewind }, Roles: onPatroni},
	{Name: "restapi", ConfigKey: "restApiPassword", Env: EnvRestAPIPassword, UserEnv: EnvRestAPIUsername,
		User: func(u Users) string { return u.RestAPI }, Roles: onPatroni},
	{Name: "app", ConfigKey: "appPassword", Env: EnvAppPassword,
		User: func(u Users) string { return u.App }, Roles: onPatroni},
	{Name: "stats", ConfigKey: "statsPassword", Env: EnvStatsPassword,
		User: func(u Users) string { return u.Stats }, Roles: onHAProxy},
	// The first leader's post-bootstrap creates the monitor role, so only
	// the PostgreSQL nodes read it.
	{Name: "monitor", ConfigKey: "monitorPassword", Env: EnvMonitorPassword,
		User: func(u Users) string { return u.Monitor }, Roles: onPatroni},
	{Name: "pooler", ConfigKey: "poolerPassword", Env: EnvPoolerPassword,
		User: func(u Users) string { return u.Pooler }, Roles: onBoth},
	// The console's user exists only in PgBouncer: the HAProxy nodes alone
	// read it (and pgha's switchover, from the credentials output).
	{Name: "pooler-admin", ConfigKey: "poolerAdminPassword", Env: EnvPoolerAdminPassword,
		User: func(u Users) string { return u.PoolerAdmin }, Roles: onHAProxy},
}

// ParamName is the SSM parameter's leaf name: <Name>-password.
func (s Secret) ParamName() string { return s.Name + "-password" }

// NameKey is the credentials output field with the user name
// (superuserPassword → superuserName).
func (s Secret) NameKey() string { return s.ConfigKey[:len(s.ConfigKey)-len("Password")] + "Name" }

// ReadBy reports whether a role's services read the secret.
func (s Secret) ReadBy(r topology.Role) bool {
	for _, x := range s.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// SecretByName finds a secret.
func SecretByName(name string) (Secret, bool) {
	for _, s := range Secrets {
		if s.Name == name {
			return s, true
		}
	}
	return Secret{}, false
}

// SecretParams names the SSM SecureString parameter that holds each
// password on AWS, by Secret.Name. Renderers take names, never values.
type SecretParams map[string]string

// Passwords are the secret values by Secret.Name. They only ever reach
// RenderSecretsEnv, whose output is the node's 0600 secrets file; no other
// renderer takes them.
type Passwords map[string]string

// ParamsUnder names every parameter under an SSM path ("/pgha/dev/").
func ParamsUnder(prefix string) SecretParams {
	p := SecretParams{}
	for _, s := range Secrets {
		p[s.Name] = prefix + s.ParamName()
	}
	return p
}

// Credentials are the outputs' credentials (user name and password of
// every secret, by the output's field names) plus the application database.
func Credentials(u Users, pw Passwords) map[string]string {
	m := map[string]string{"appDatabase": u.AppDatabase}
	for _, s := range Secrets {
		m[s.NameKey()], m[s.ConfigKey] = s.User(u), pw[s.Name]
	}
	return m
}

// TLSParams names the SSM parameters a node reads its TLS material from at
// boot, under Prefix ("/pgha/dev/tls/"): the cluster CA and each node's
// certificate (String parameters: nothing secret) and private key
// (SecureString). Like the passwords, none of it is in the user data.
type TLSParams struct {
	Prefix string
}

// CA is the cluster CA certificate's parameter.
func (t TLSParams) CA() string { return t.Prefix + "ca-certificate" }

// Certificate is a node's certificate's parameter.
func (t TLSParams) Certificate(node string) string { return t.Prefix + node + "-certificate" }

// Key is a node's private key's parameter.
func (t TLSParams) Key(node string) string { return t.Prefix + node + "-key" }
