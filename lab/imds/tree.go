package imds

import (
	"strings"
)

// node is a metadata directory or leaf. Leaves are computed when read, so
// that credentials are issued only when asked for.
type node struct {
	entries []entry // a directory, in listing order
	leaf    func() (string, error)
	// listing overrides the names a directory lists (public-keys lists
	// "0=NAME" while its child is "0").
	listing []string
}

type entry struct {
	name string
	n    *node
}

// dir makes a directory of the entries e returns, in order.
func dir(entries ...[]entry) *node {
	n := &node{}
	for _, es := range entries {
		n.entries = append(n.entries, es...)
	}
	return n
}

func leaf(v string) *node { return &node{leaf: func() (string, error) { return v, nil }} }

func lazy(f func() (string, error)) *node { return &node{leaf: f} }

// e names a child; an empty leaf value drops the entry, as IMDS does not
// list what it does not have.
func e(name string, n *node) []entry {
	if n == nil {
		return nil
	}
	return []entry{{name, n}}
}

func (n *node) isDir() bool { return n.leaf == nil }

func (n *node) child(name string) *node {
	for _, c := range n.entries {
		if c.name == name {
			return c.n
		}
	}
	return nil
}

// list renders a directory: one name per line, subdirectories with a
// trailing slash, no final newline (cloud-init and botocore split lines).
func (n *node) list() string {
	if n.listing != nil {
		return strings.Join(n.listing, "\n")
	}
	names := make([]string, 0, len(n.entries))
	for _, c := range n.entries {
		if c.n.isDir() {
			names = append(names, c.name+"/")
		} else {
			names = append(names, c.name)
		}
	}
	return strings.Join(names, "\n")
}

// versions are the API versions served, each with the same tree:
// cloud-init 22.4's minimum (2009-04-04) and the ones it prefers.
var versions = []string{"2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23", "latest"}

func knownVersion(v string) bool {
	for _, k := range versions {
		if k == v {
			return true
		}
	}
	return false
}

// lookup resolves a request path for an instance. A directory answers
// with or without a trailing slash.
func (s *Server) lookup(inst *Instance, path string) (string, bool, error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 1 && parts[0] == "" {
		return strings.Join(versions, "\n"), true, nil
	}
	if !knownVersion(parts[0]) {
		return "", false, nil
	}
	n, ok := s.tree(inst)
	if !ok {
		return "", false, nil
	}
	for _, p := range parts[1:] {
		if n == nil || !n.isDir() {
			return "", false, nil
		}
		n = n.child(p)
	}
	if n == nil {
		return "", false, nil
	}
	if n.isDir() {
		return n.list(), true, nil
	}
	v, err := n.leaf()
	return v, err == nil, err
}
