package userdata

import (
	"bytes"
	"regexp"
	"strings"
)

// compactedNote replaces a script's comments in the user data.
const compactedNote = "# pgha: comments stripped to fit EC2's 16 KiB user data; the commented source is pgha's userdata/templates.\n"

// heredocStart finds a here-document's delimiter (<<WORD, <<-'WORD',
// <<"WORD"), not a here-string (<<<) or an arithmetic shift (1 << 30).
var heredocStart = regexp.MustCompile(`(?:^|[^<])<<(-?)\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)

// compactScript drops a shell script's whole-line comments, the bulk of the
// boot scripts' bytes: the user data of a PostgreSQL node with backups
// outgrew what EC2 carries. It keeps the shebang, and keeps every line it
// cannot prove to be a comment: lines inside here-documents and inside
// quotes that span lines. TestCompactScriptKeepsMeaning checks, with bash
// itself, that every compacted script parses to the same program.
func compactScript(script []byte) []byte {
	lines := strings.SplitAfter(string(script), "\n")
	var out bytes.Buffer
	var heredoc string // the delimiter that ends the open here-document
	var stripTabs bool // <<- : the delimiter may be indented with tabs
	var quote byte     // the quote left open at the end of the last line
	for i, line := range lines {
		if i == 0 && strings.HasPrefix(line, "#!") {
			out.WriteString(line)
			out.WriteString(compactedNote)
			continue
		}
		body := strings.TrimRight(line, "\n")
		if heredoc != "" {
			out.WriteString(line)
			end := body
			if stripTabs {
				end = strings.TrimLeft(end, "\t")
			}
			if end == heredoc {
				heredoc = ""
			}
			continue
		}
		if quote == 0 && strings.HasPrefix(strings.TrimLeft(body, " \t"), "#") {
			continue
		}
		out.WriteString(line)
		var code int
		quote, code = scanLine(body, quote)
		// A "<<" inside a string also opens one here: that keeps more
		// lines than needed, never fewer.
		if m := heredocStart.FindStringSubmatch(body[:code]); m != nil {
			heredoc, stripTabs = m[2], m[1] == "-"
		}
	}
	return out.Bytes()
}

// scanLine follows a line's quotes from the one open at its start. It
// returns the quote still open at its end, and where its code ends: at an
// unquoted # that starts a word, or at the line's end.
func scanLine(line string, quote byte) (open byte, codeEnd int) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			i++ // an escaped character, in double quotes or none
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return 0, i
		}
	}
	return quote, len(line)
}

// AsCarried is a file's content as a node's user data carries it: a shell
// script without its comments, anything else unchanged.
func AsCarried(content []byte) []byte {
	if isShellScript(content) {
		return compactScript(content)
	}
	return content
}

// isShellScript reports whether a file is a script compactScript may
// rewrite.
func isShellScript(content []byte) bool {
	return bytes.HasPrefix(content, []byte("#!/bin/bash\n")) || bytes.HasPrefix(content, []byte("#!/bin/sh\n"))
}
