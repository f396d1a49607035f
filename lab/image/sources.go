package image

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Source is one apt source entry, from either format: a one-line
// sources.list entry or a deb822 stanza. The image build reads the host's
// entries to find its Debian mirror, and copies the Debian ones into the
// image while it downloads, so the mirror is never written anywhere else.
type Source struct {
	Types      []string // "deb", "deb-src"
	URIs       []string
	Suites     []string
	Components []string
	// Options holds every other field (one-line options are mapped to
	// their deb822 names), keyed by lower-case name: "signed-by",
	// "trusted", "architectures", ...
	Options map[string]string
	File    string // where it came from, for error messages
}

// oneLineOptionNames maps the one-line option names that differ from
// their deb822 field names (sources.list(5)).
var oneLineOptionNames = map[string]string{
	"arch":   "architectures",
	"lang":   "languages",
	"target": "targets",
}

// ParseSourcesList parses the one-line format of sources.list(5):
// "deb [opt=value ...] uri suite [component...]". Comments and blank
// lines are skipped; a malformed line is an error naming it.
func ParseSourcesList(r io.Reader, file string) ([]Source, error) {
	var out []Source
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		typ, rest, _ := strings.Cut(line, " ")
		typ = strings.TrimSpace(typ)
		if typ != "deb" && typ != "deb-src" {
			return nil, fmt.Errorf("%s:%d: unknown source type %q", file, n, typ)
		}
		s := Source{Types: []string{typ}, Options: map[string]string{}, File: file}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: unterminated [options]", file, n)
			}
			for _, opt := range strings.Fields(rest[1:end]) {
				k, v, ok := strings.Cut(opt, "=")
				if !ok {
					return nil, fmt.Errorf("%s:%d: option %q is not key=value", file, n, opt)
				}
				k = strings.ToLower(strings.TrimRight(k, "+-"))
				if d, ok := oneLineOptionNames[k]; ok {
					k = d
				}
				// One-line lists are comma separated, deb822 ones space separated.
				s.Options[k] = strings.ReplaceAll(v, ",", " ")
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want \"%s URI SUITE [COMPONENT...]\"", file, n, typ)
		}
		s.URIs, s.Suites, s.Components = f[:1], f[1:2], f[2:]
		out = append(out, s)
	}
	return out, sc.Err()
}

// ParseDeb822 parses deb822 stanzas (sources.list(5), "DEB822-STYLE
// FORMAT"). Field names are case-insensitive, continuation lines start
// with white space (a lone "." stands for an empty line, as in an inline
// Signed-By key), and stanzas with "Enabled: no" are dropped.
func ParseDeb822(r io.Reader, file string) ([]Source, error) {
	var (
		out    []Source
		fields = map[string]string{}
		last   string
		start  int
	)
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		defer func() { fields, last = map[string]string{}, "" }()
		if strings.EqualFold(fields["enabled"], "no") {
			return nil
		}
		s := Source{Options: map[string]string{}, File: file}
		for k, v := range fields {
			switch k {
			case "types":
				s.Types = strings.Fields(v)
			case "uris":
				s.URIs = strings.Fields(v)
			case "suites":
				s.Suites = strings.Fields(v)
			case "components":
				s.Components = strings.Fields(v)
			case "enabled":
			default:
				s.Options[k] = v
			}
		}
		if len(s.Types) == 0 || len(s.URIs) == 0 || len(s.Suites) == 0 {
			return fmt.Errorf("%s:%d: stanza needs Types, URIs and Suites", file, start)
		}
		out = append(out, s)
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case strings.TrimSpace(line) == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("%s:%d: continuation line without a field", file, n)
			}
			v := strings.TrimSpace(line)
			if v == "." {
				v = ""
			}
			fields[last] += "\n" + v
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("%s:%d: want \"Field: value\"", file, n)
			}
			if len(fields) == 0 {
				start = n
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// HostSources reads every apt source under root (normally "/") the way apt
// does: etc/apt/sources.list, then etc/apt/sources.list.d/*.list and
// *.sources in name order. Files with any other name are ignored by apt,
// and so here ("foo.list.disabled", "foo.save").
func HostSources(root string) ([]Source, error) {
	var out []Source
	read := func(path string, parse func(io.Reader, string) ([]Source, error)) error {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		s, err := parse(f, path)
		out = append(out, s...)
		return err
	}
	if err := read(filepath.Join(root, "etc/apt/sources.list"), ParseSourcesList); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, ".list"):
			err = read(p, ParseSourcesList)
		case strings.HasSuffix(name, ".sources"):
			err = read(p, ParseDeb822)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Mirror picks the Debian mirror for suite: the first URI of the first
// binary ("deb") source that carries suite with component main. It must be
// a URI debootstrap can fetch from (http, https or file).
func Mirror(sources []Source, suite string) (uri string, src Source, err error) {
	for _, s := range sources {
		if !has(s.Types, "deb") || !has(s.Suites, suite) || !has(s.Components, "main") {
			continue
		}
		for _, u := range s.URIs {
			if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:/") {
				return strings.TrimRight(u, "/"), s, nil
			}
		}
	}
	return "", Source{}, fmt.Errorf("no apt source for Debian %q (type deb, component main, an http, https or file URI) "+
		"in /etc/apt/sources.list or /etc/apt/sources.list.d; add the Debian mirror this machine uses there, "+
		"check it with apt-get update, and try again", suite)
}

// DebianSources keeps the binary entries of the host's sources that serve
// suite itself or its -updates and -security suites (dropping every other
// suite, deb-src, and third-party repositories with other suite names), so
// that the packages downloaded into the lab's repository are those the
// host's apt would install: the newest of the release and its updates.
func DebianSources(sources []Source, suite string) []Source {
	want := []string{suite, suite + "-updates", suite + "-security"}
	var out []Source
	for _, s := range sources {
		if !has(s.Types, "deb") {
			continue
		}
		var suites []string
		for _, x := range s.Suites {
			if has(want, x) {
				suites = append(suites, x)
			}
		}
		if len(suites) == 0 {
			continue
		}
		c := s
		c.Types, c.Suites = []string{"deb"}, suites
		out = append(out, c)
	}
	return out
}

// Deb822 renders sources as deb822 stanzas, options in name order.
func Deb822(sources []Source) string {
	var b strings.Builder
	for i, s := range sources {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "Types: %s\nURIs: %s\nSuites: %s\n",
			strings.Join(s.Types, " "), strings.Join(s.URIs, " "), strings.Join(s.Suites, " "))
		if len(s.Components) > 0 {
			fmt.Fprintf(&b, "Components: %s\n", strings.Join(s.Components, " "))
		}
		keys := make([]string, 0, len(s.Options))
		for k := range s.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := s.Options[k]
			// Multi-line values (an inline key) continue with one space;
			// empty lines inside them are written as ".".
			lines := strings.Split(v, "\n")
			for j := 1; j < len(lines); j++ {
				if lines[j] == "" {
					lines[j] = "."
				}
			}
			fmt.Fprintf(&b, "%s: %s\n", fieldName(k), strings.Join(lines, "\n "))
		}
	}
	return b.String()
}

// fieldName spells a lower-case option as deb822 fields are usually
// written ("signed-by" -> "Signed-By"); apt itself ignores the case.
func fieldName(k string) string {
	parts := strings.Split(k, "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}
