package fault

import (
	"context"

	"github.com/pgha/pgha/internal/outputs"
)

// KillPostgres crashes PostgreSQL alone on a Patroni node while Patroni
// keeps running: the case where Patroni's primary_start_timeout decides
// between restarting the primary in place and failing over.
const KillPostgres = "kill-postgres"

// postgresKiller is the part of a lab control that can crash the postmaster
// alone (lab/cluster.Lab has it; a control without it simply does not offer
// the fault).
type postgresKiller interface {
	KillPostgres(ctx context.Context, node string) error
}

// labKillPostgres SIGKILLs the node's postmaster; Patroni lives on and
// notices. Restore only makes sure the node's Patroni runs: bringing
// PostgreSQL back is Patroni's job, and what is measured.
type labKillPostgres struct {
	lc LabControl
	pk postgresKiller
}

func (labKillPostgres) Name() string { return KillPostgres }

func (f labKillPostgres) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.pk.KillPostgres(ctx, n.Name)
}

func (f labKillPostgres) Restore(ctx context.Context, n outputs.Node) error {
	return f.lc.Start(ctx, n.Name)
}

// addLabKillPostgres offers kill-postgres when the control can do it.
func addLabKillPostgres(set Set, lc LabControl) {
	if pk, ok := lc.(postgresKiller); ok {
		set[KillPostgres] = labKillPostgres{lc: lc, pk: pk}
	}
}
