// Package benchdoc writes one "## " section of the benchmark page
// (docs/benchmarks.md) and leaves every other section as it was, so each
// benchmark command owns its section and none clobbers another's.
package benchdoc

import (
	"os"
	"path/filepath"
	"strings"
)

// WriteSection puts section (which starts with heading) in place of the
// section headed heading in the markdown file at path, or appends it; a
// missing file is created.
func WriteSection(path, heading, section string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		b = []byte("# Benchmarks\n")
	} else if err != nil {
		return err
	}
	doc := ReplaceSection(string(b), heading, section)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// ReplaceSection puts section in place of the "## " section headed heading
// (up to the next "## " heading), or appends it.
func ReplaceSection(doc, heading, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	start := -1
	if strings.HasPrefix(doc, heading+"\n") {
		start = 0
	} else if i := strings.Index(doc, "\n"+heading+"\n"); i >= 0 {
		start = i + 1
	}
	if start < 0 {
		return strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	end := len(doc)
	if i := strings.Index(doc[start+len(heading):], "\n## "); i >= 0 {
		end = start + len(heading) + i + 1
	}
	rest := strings.TrimLeft(doc[end:], "\n")
	if rest != "" {
		rest = "\n" + rest
	}
	return doc[:start] + section + rest
}
