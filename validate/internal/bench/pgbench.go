package bench

import (
	"context"
	"os"

	"github.com/pgha/pgha/internal/pgbench"
)

// PgbenchPath is where pgbench is installed.
const PgbenchPath = pgbench.Path

// Pgbench runs pgbench inside a network namespace (the lab's client), so it
// reaches the cluster the way an application host would.
type Pgbench struct {
	Namespace string
	User      string
	Password  string
	Database  string
}

// client is p with validate's way to connect: this process's environment,
// TLS required, as the cluster's pg_hba demands, and five seconds to
// connect.
func (p Pgbench) client() pgbench.Client {
	return pgbench.Client{Namespace: p.Namespace, User: p.User, Password: p.Password, Database: p.Database,
		Env: append(os.Environ(), "PGSSLMODE=require", "PGCONNECT_TIMEOUT=5")}
}

// Run executes pgbench against host:port with args and returns its output.
func (p Pgbench) Run(ctx context.Context, host string, port int, args ...string) (string, error) {
	return p.client().Run(ctx, host, port, args...)
}

// TPS runs a timed pgbench and returns its throughput.
func (p Pgbench) TPS(ctx context.Context, host string, port int, args ...string) (float64, error) {
	return p.client().TPS(ctx, host, port, args...)
}
