package benchdoc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const heading = "## Failover benchmarks"

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\n## Lab start-up\n\nkeep me\n\n## Failover benchmarks\n\nold\n\n## validate against the lab\n\nkeep too\n"
	got := ReplaceSection(doc, heading, heading+"\n\nnew\n")
	assert.Equal(t, "# Benchmarks\n\n## Lab start-up\n\nkeep me\n\n## Failover benchmarks\n\nnew\n\n## validate against the lab\n\nkeep too\n", got)
	// Idempotent.
	assert.Equal(t, got, ReplaceSection(got, heading, heading+"\n\nnew\n"))
	// Appended when missing; a heading that merely starts the same is not it.
	got = ReplaceSection("# B\n\n## Failover benchmarks notes\n\nx\n", heading, heading+"\n\nnew\n")
	assert.Equal(t, "# B\n\n## Failover benchmarks notes\n\nx\n\n## Failover benchmarks\n\nnew\n", got)
	// Last section of the page.
	got = ReplaceSection("# B\n\n## Failover benchmarks\n\nold\n", heading, heading+"\n\nnew")
	assert.Equal(t, "# B\n\n## Failover benchmarks\n\nnew\n", got)
}

func TestWriteSectionCreatesThePage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs", "benchmarks.md")
	require.NoError(t, WriteSection(path, heading, heading+"\n\nfirst\n"))
	require.NoError(t, WriteSection(path, "## Lab start-up", "## Lab start-up\n\nsecond\n"))
	require.NoError(t, WriteSection(path, heading, heading+"\n\nagain\n"))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "# Benchmarks\n\n## Failover benchmarks\n\nagain\n\n## Lab start-up\n\nsecond\n", string(b))
}
