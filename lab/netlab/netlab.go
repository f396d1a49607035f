// Package netlab builds the lab's network: one network namespace per node,
// each holding the node's address from the IP plan, all joined by veth pairs
// to a bridge that lives in a namespace of its own. Nothing is created in the
// host's namespace, so the host's interfaces and routes are never touched,
// and two labs with the same addresses stay isolated from each other.
package netlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// NetnsDir is where `ip netns` keeps named namespaces.
const NetnsDir = "/run/netns"

// bridge is the bridge's interface name inside the bridge namespace.
const bridge = "br0"

// Host is one namespace on the lab segment.
type Host struct {
	Name string     // node name, e.g. "pg-1"; also its veth name on the bridge side
	IP   netip.Addr // the node's private address
}

// Network is one lab's set of namespaces.
type Network struct {
	Lab    string       // lab name; prefixes every namespace
	Prefix netip.Prefix // the whole segment (the VPC CIDR): one L2 domain
	Hosts  []Host
}

// Namespace is the namespace of a host of lab.
func Namespace(lab, host string) string { return lab + "-" + host }

// BridgeNamespace holds the bridge and the bridge-side end of every veth.
func BridgeNamespace(lab string) string { return lab + "-net" }

// Namespaces lists every namespace the network consists of, bridge last.
func (n Network) Namespaces() []string {
	var out []string
	for _, h := range n.Hosts {
		out = append(out, Namespace(n.Lab, h.Name))
	}
	return append(out, BridgeNamespace(n.Lab))
}

// Create builds the bridge namespace and every host namespace. It refuses
// to build over namespaces of the same lab, and on error removes what it made.
func (n Network) Create() (err error) {
	if ex := Existing(n.Lab); len(ex) > 0 {
		return fmt.Errorf("network namespaces of lab %q already exist (%s)", n.Lab, strings.Join(ex, ", "))
	}
	defer func() {
		if err != nil {
			_ = n.Delete()
		}
	}()
	br := BridgeNamespace(n.Lab)
	if err := ip("netns", "add", br); err != nil {
		return err
	}
	if err := ip("-n", br, "link", "set", "dev", "lo", "up"); err != nil {
		return err
	}
	if err := ip("-n", br, "link", "add", "name", bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := ip("-n", br, "link", "set", "dev", bridge, "up"); err != nil {
		return err
	}
	for _, h := range n.Hosts {
		ns := Namespace(n.Lab, h.Name)
		steps := [][]string{
			{"netns", "add", ns},
			{"-n", ns, "link", "set", "dev", "lo", "up"},
			// Created inside the bridge namespace and its peer moved straight
			// into the node's: the host namespace never sees either end.
			{"-n", br, "link", "add", "name", h.Name, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", br, "link", "set", "dev", h.Name, "master", bridge, "up"},
			{"-n", ns, "addr", "add", netip.PrefixFrom(h.IP, n.Prefix.Bits()).String(), "dev", "eth0"},
			{"-n", ns, "link", "set", "dev", "eth0", "up"},
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes every namespace of the network that exists. Deleting the
// bridge namespace destroys the veth pairs with it.
func (n Network) Delete() error {
	var errs []string
	for _, ns := range Existing(n.Lab) {
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Existing lists the namespaces whose name starts with "<lab>-".
func Existing(lab string) []string {
	ents, err := os.ReadDir(NetnsDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), lab+"-") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Cut sets the host's veth down on the bridge side: the node keeps its
// address but no frame reaches or leaves it, like a pulled cable.
func (n Network) Cut(host string) error {
	return ip("-n", BridgeNamespace(n.Lab), "link", "set", "dev", host, "down")
}

// Heal undoes Cut.
func (n Network) Heal(host string) error {
	return ip("-n", BridgeNamespace(n.Lab), "link", "set", "dev", host, "up")
}

// IsCut reports whether the host's bridge-side link is administratively down.
func (n Network) IsCut(host string) (bool, error) {
	out, err := exec.Command("ip", "-n", BridgeNamespace(n.Lab), "-o", "link", "show", "dev", host).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ip link show %s: %s", host, bytes.TrimSpace(out))
	}
	// The flags list carries UP only when the link is administratively up.
	s := string(out)
	i, j := strings.Index(s, "<"), strings.Index(s, ">")
	if i < 0 || j < i {
		return false, fmt.Errorf("cannot parse link flags of %s: %s", host, s)
	}
	for _, f := range strings.Split(s[i+1:j], ",") {
		if f == "UP" {
			return false, nil
		}
	}
	return true, nil
}

// Inode identifies a namespace: a process whose /proc/PID/ns/net has the
// same inode lives in it. It stays meaningful only while the namespace exists.
func Inode(ns string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(NetnsDir, ns), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %s", strings.Join(args, " "), bytes.TrimSpace(out))
	}
	return nil
}
