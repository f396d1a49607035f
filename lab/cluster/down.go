package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/lab/proc"
)

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// Check is one line of the teardown verification.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// DownReport is what Down removed and what it found left afterwards.
type DownReport struct {
	Stopped  int
	Duration time.Duration
	Checks   []Check
}

// Clean reports whether every teardown check passed.
func (r DownReport) Clean() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Down stops every process the lab started (SIGTERM, then SIGKILL), removes
// its namespaces and its state directory, and then verifies that nothing is
// left. It is idempotent and works on a half-built lab. The error is non-nil
// when something remains.
func (l *Lab) Down(ctx context.Context) (DownReport, error) {
	start := time.Now()
	var rep DownReport

	// Namespace identities first: after deletion a leftover process can
	// only be recognised by the inode of the namespace it lives in.
	inodes := map[uint64]bool{}
	for _, ns := range netlab.Existing(l.Name) {
		if ino, err := netlab.Inode(ns); err == nil {
			inodes[ino] = true
		}
	}

	// A booted lab's machines go first, at once (the hosts are thrown
	// away), then its AWS stand-ins; their mounts must be gone before
	// anything under the state directory is removed.
	var bootErrs []error
	if l.Boot() {
		t := time.Now()
		bootErrs = l.downBoot()
		if recs, err := l.records(); err == nil {
			if r, ok := recs[standinHost]; ok && r.Alive() {
				_ = r.Stop(10 * time.Second)
				rep.Stopped++
			}
		}
		l.logf("  stopped the machines and the AWS stand-ins %6.2fs", time.Since(t).Seconds())
	}

	// HAProxy first, then Patroni (which stops PostgreSQL cleanly on
	// SIGTERM), then etcd, so no tier loses its DCS while stopping.
	for _, r := range []topology.Role{topology.RoleHAProxy, topology.RolePatroni, topology.RoleEtcd} {
		t, before := time.Now(), rep.Stopped
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, n := range l.Plan.ByRole(r) {
			rs := l.nodeRecords(n.Name)
			if len(rs) == 0 {
				continue
			}
			stop := func() {
				_ = l.stopNode(n.Name, 20*time.Second)
				mu.Lock()
				rep.Stopped += len(rs)
				mu.Unlock()
			}
			// etcd members stopped together each wait seconds for a peer to
			// take over leadership; one after the other they stop at once.
			if r == topology.RoleEtcd {
				stop()
				continue
			}
			wg.Go(func() {
				stop()
			})
		}
		wg.Wait()
		if n := rep.Stopped - before; n > 0 {
			l.logf("  stopped %-8s %6.2fs (%d processes)", r, time.Since(t).Seconds(), n)
		}
	}
	// The exporters and Prometheus watched the nodes stop.
	rep.Stopped += l.stopMonitoring()
	// The S3 endpoint last: the PostgreSQL nodes archive into it until
	// they stop.
	if recs, err := l.records(); err == nil {
		if r, ok := recs[objectStoreHost]; ok && r.Alive() {
			_ = r.Stop(10 * time.Second)
			rep.Stopped++
		}
	}
	// Anything still inside our namespaces was started by us (PostgreSQL
	// backends outliving a killed postmaster, say): it lives in a namespace
	// only the lab uses.
	// A loopback lab has no namespace: its stragglers are PostgreSQL
	// processes working in one of its data directories.
	for _, pid := range l.stragglers(inodes) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		rep.Stopped++
	}
	// A process stopped above may still be exiting (Prometheus flushes its
	// head block); one that names the lab's directory and runs outside its
	// namespaces is given the same time to go before the check below
	// reports it.
	waitUntil(10*time.Second, func() bool {
		return len(l.stragglers(inodes)) == 0 && len(proc.CmdlineContains(l.Dir+"/")) == 0
	})

	var nsErr, rmErr error
	if !l.Loopback() {
		nsErr = l.Net.Delete()
	}
	if len(bootErrs) > 0 {
		rmErr = fmt.Errorf("not removed while machines remain: %w", errors.Join(bootErrs...))
	} else if l.Root != "" && strings.HasPrefix(l.Dir, l.Root+"/") {
		rmErr = os.RemoveAll(l.Dir)
	}
	rep.Duration = time.Since(start)
	rep.Checks = l.verifyGone(inodes)
	if nsErr != nil {
		rep.Checks = append(rep.Checks, Check{"namespaces deleted", false, nsErr.Error()})
	}
	if rmErr != nil {
		rep.Checks = append(rep.Checks, Check{"state directory removed", false, rmErr.Error()})
	}
	if !rep.Clean() {
		var bad []string
		for _, c := range rep.Checks {
			if !c.OK {
				bad = append(bad, c.Name+": "+c.Detail)
			}
		}
		return rep, fmt.Errorf("lab %q is not completely gone: %s", l.Name, strings.Join(bad, "; "))
	}
	return rep, nil
}

// stragglers are processes the lab started indirectly and has no record
// of: anything inside its namespaces, and PostgreSQL processes whose
// working directory is one of its data directories (which also catches a
// loopback lab's backends).
func (l *Lab) stragglers(inodes map[uint64]bool) []int {
	pids := proc.InNetns(inodes)
	for _, n := range l.Plan.ByRole(topology.RolePatroni) {
		pids = append(pids, proc.CwdUnder(pgBinDir+"/postgres", l.Paths(n.Name).PGDataDir)...)
	}
	seen := map[int]bool{}
	out := pids[:0]
	for _, p := range pids {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// verifyGone is the teardown verification: no process, namespace, mount,
// listening port or directory of the lab remains.
func (l *Lab) verifyGone(inodes map[uint64]bool) []Check {
	var cs []Check
	add := func(name string, leftovers []string) {
		c := Check{Name: name, OK: len(leftovers) == 0}
		if !c.OK {
			c.Detail = strings.Join(leftovers, ", ")
		}
		cs = append(cs, c)
	}
	var procs []string
	seen := map[int]bool{}
	for _, pid := range append(l.stragglers(inodes), proc.CmdlineContains(l.Dir+"/")...) {
		if !seen[pid] {
			seen[pid] = true
			procs = append(procs, fmt.Sprintf("pid %d (%s)", pid, commandOf(pid)))
		}
	}
	add("no lab process runs", procs)
	add("no machine process, mount or cgroup", l.bootLeftovers())
	add("no lab network namespace", netlab.Existing(l.Name))
	add("no mount under the lab", l.mounts())
	add("no listening port on a lab address", l.hostListeners())
	var dirs []string
	if _, err := os.Stat(l.Dir); err == nil {
		dirs = append(dirs, l.Dir)
	}
	add("state directory removed", dirs)
	return cs
}

// mounts lists mount points of the lab: named-namespace bind mounts and
// anything under the state directory.
func (l *Lab) mounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []string{"cannot read /proc/self/mountinfo: " + err.Error()}
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if strings.HasPrefix(mp, filepath.Join(netlab.NetnsDir, l.Name+"-")) || mp == l.Dir || strings.HasPrefix(mp, l.Dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// hostListeners lists sockets in the host's namespace listening on any
// address of the lab's plan. In namespace mode the daemons' sockets vanish
// with their namespaces, so anything here is a leak.
func (l *Lab) hostListeners() []string {
	ips := map[string]bool{l.Client.String(): true}
	for _, n := range l.Plan.Nodes {
		ips[n.IP.String()] = true
	}
	var out []string
	for _, e := range listeningTCP4() {
		if ips[e] {
			out = append(out, e)
		}
	}
	return out
}

// listeningTCP4 returns "ip:port" of the host's listening IPv4 TCP sockets.
func listeningTCP4() []string {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // 0A = LISTEN
			continue
		}
		var a, port uint32
		if _, err := fmt.Sscanf(f[1], "%8X:%4X", &a, &port); err != nil {
			continue
		}
		// /proc/net/tcp prints the address in host (little-endian) order.
		ip := fmt.Sprintf("%d.%d.%d.%d", a&0xff, a>>8&0xff, a>>16&0xff, a>>24)
		out = append(out, ip)
	}
	return out
}

func waitUntil(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// commandOf is a process's command line, shortened, for a report that
// says what was left behind.
func commandOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "gone"
	}
	c := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(c) > 120 {
		c = c[:120] + "..."
	}
	return c
}
