package fault

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

type pgRecorder struct{ recorder }

func (r *pgRecorder) KillPostgres(_ context.Context, n string) error {
	r.calls = append(r.calls, "kill-postgres "+n)
	return nil
}

func TestLabKillPostgresWiring(t *testing.T) {
	r := &pgRecorder{}
	set := LabSet(r, outputs.AccessNetns)
	require.Equal(t, []string{"kill", "kill-postgres", "partition", "stop"}, set.Names())
	f, err := set.Get(KillPostgres)
	require.NoError(t, err)
	n := outputs.Node{Name: "pg-2"}
	require.NoError(t, f.Inject(context.Background(), n))
	require.NoError(t, f.Restore(context.Background(), n))
	require.Equal(t, []string{"kill-postgres pg-2", "start pg-2"}, r.calls)

	// A control that cannot crash PostgreSQL alone does not offer it.
	_, err = LabSet(&recorder{}, outputs.AccessNetns).Get(KillPostgres)
	require.ErrorContains(t, err, "not available")
}
