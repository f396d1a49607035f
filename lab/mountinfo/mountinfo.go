// Package mountinfo reads the kernel's mount tables (/proc/PID/mountinfo):
// which mounts lie under a directory, and the options of the root mount.
// The image cache and the machines both need them to unmount what they
// made, and to find what a killed run left mounted.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Self is this process's mount table.
const Self = "/proc/self/mountinfo"

// Under lists the mount points at or below dir in the mount table file,
// deepest first (the order to unmount them in), each once.
func Under(file, dir string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	seen := map[string]bool{}
	var out []string
	err = each(f, func(fields []string) {
		mp := Unescape(fields[4])
		if (mp == dir || strings.HasPrefix(mp, dir+"/")) && !seen[mp] {
			seen[mp] = true
			out = append(out, mp)
		}
	})
	// Longer paths are deeper.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, err
}

// Mount is one line of a mount table: "ID PARENT MAJ:MIN ROOT MOUNTPOINT
// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
type Mount struct {
	Root, Point  string // unescaped
	FSType       string
	SuperOptions string // as in the table: use Option and HasOption
}

// Mounts lists a mount table's well-formed lines, in its order.
func Mounts(r io.Reader) ([]Mount, error) {
	var out []Mount
	err := each(r, func(fields []string) {
		for i, x := range fields {
			if x == "-" && i+3 < len(fields) {
				out = append(out, Mount{Root: Unescape(fields[3]), Point: Unescape(fields[4]),
					FSType: fields[i+1], SuperOptions: fields[i+3]})
				return
			}
		}
	})
	return out, err
}

// RootOptions returns the super options of the topmost "/" mount in a
// mount table.
func RootOptions(r io.Reader) string {
	ms, _ := Mounts(r)
	opts := ""
	for _, m := range ms {
		if m.Point == "/" {
			opts = m.SuperOptions
		}
	}
	return opts
}

// Option is the value of key=value in a comma-separated option list,
// unescaped; "" when absent.
func Option(opts, key string) string {
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, key+"="); ok {
			return Unescape(v)
		}
	}
	return ""
}

// HasOption reports whether a comma-separated option list holds flag
// (a bare word such as "ro", or "name=systemd" as a whole).
func HasOption(opts, flag string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == flag {
			return true
		}
	}
	return false
}

// each calls fn with the fields of every well-formed line.
func each(r io.Reader, fn func(fields []string)) error {
	sc := bufio.NewScanner(r)
	// Overlay mounts with long lowerdir lists make long lines.
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 5 {
			fn(fields)
		}
	}
	return sc.Err()
}

// Unescape undoes the table's octal escapes ("\040" is a space).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
