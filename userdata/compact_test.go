package userdata

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestCompactScript(t *testing.T) {
	in := `#!/bin/bash
# a comment with an apostrophe: the node's key
set -eu
  # indented comment
x=1 # trailing comments stay: they are on a line of code
cat <<'DOC'
# kept: inside a here-document
DOC
cat <<-END
	# kept too
	END
echo 'a multi-line string
# kept: inside single quotes
'
echo "and double
# kept
"
read -r y <<< "$x" # a here-string opens no here-document
z=$((1 << 30))
# dropped
echo "${x#1}" # not a comment start
# dropped too
`
	want := "#!/bin/bash\n" + compactedNote + `set -eu
x=1 # trailing comments stay: they are on a line of code
cat <<'DOC'
# kept: inside a here-document
DOC
cat <<-END
	# kept too
	END
echo 'a multi-line string
# kept: inside single quotes
'
echo "and double
# kept
"
read -r y <<< "$x" # a here-string opens no here-document
z=$((1 << 30))
echo "${x#1}" # not a comment start
`
	assert.Equal(t, want, string(compactScript([]byte(in))))
	assert.True(t, isShellScript([]byte("#!/bin/sh\nexit 0\n")))
	assert.False(t, isShellScript([]byte("[Unit]\n# a unit, not a script\n")))
}

// TestCompactScriptKeepsMeaning has bash parse every script of every node's
// user data before and after compaction: bash prints back the same program
// (declare -f drops comments), or the compaction changed what runs.
func TestCompactScriptKeepsMeaning(t *testing.T) {
	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	c := defaultCluster(t)
	c.Backup = testBackup()
	c.Watchdog = WatchdogAutomatic
	c.Monitoring = &Monitoring{}
	nodes := append(slices.Clone(c.Plan.Nodes), c.Plan.Monitor())
	dir := t.TempDir()
	parse := func(name string, script []byte) string {
		f := filepath.Join(dir, "script")
		require.NoError(t, os.WriteFile(f, script, 0o600))
		out, err := exec.Command(bash, "-c", `source <(printf 'pgha_script() {\n'; cat "$1"; printf '\n}\n') && declare -f pgha_script`, "bash", f).CombinedOutput()
		require.NoError(t, err, "%s: %s", name, out)
		return string(out)
	}
	checked := 0
	for _, n := range nodes {
		doc, err := RenderCloudInit(c, n.Name)
		require.NoError(t, err)
		var cfg struct {
			WriteFiles []struct{ Path, Content string } `yaml:"write_files"`
		}
		require.NoError(t, yaml.Unmarshal(doc, &cfg))
		_, originals, err := cloudFiles(c, n.Name)
		require.NoError(t, err)
		orig := map[string][]byte{}
		for _, f := range originals {
			orig[f.Path] = f.Content
		}
		for _, wf := range cfg.WriteFiles {
			if !isShellScript([]byte(wf.Content)) {
				continue
			}
			name := n.Name + ":" + wf.Path
			require.Contains(t, wf.Content, compactedNote, name)
			require.Contains(t, orig, wf.Path)
			assert.Equal(t, parse(name, orig[wf.Path]), parse(name, []byte(wf.Content)), name)
			assert.Less(t, len(wf.Content), len(orig[wf.Path]), name)
			checked++
		}
	}
	// Each node's boot and secrets scripts at least.
	assert.GreaterOrEqual(t, checked, 2*len(nodes))
}
