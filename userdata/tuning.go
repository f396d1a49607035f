package userdata

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Size is what a PostgreSQL node has to work with: its instance type's
// memory and vCPUs (on AWS from ec2.GetInstanceType).
type Size struct {
	MemoryMiB int `json:"memoryMiB"`
	VCPUs     int `json:"vcpus"`
}

func (s Size) String() string { return fmt.Sprintf("%d MiB, %d vCPU", s.MemoryMiB, s.VCPUs) }

// The workload profiles (pgha:workload). Each but none sizes PostgreSQL for
// the node it runs on; docs/configuration.md says what each sets and why.
const (
	// WorkloadOLTP: many short transactions, many connections (the default).
	WorkloadOLTP = "oltp"
	// WorkloadOLAP: few connections running large queries: more memory per
	// query, parallel plans, larger WAL between checkpoints.
	WorkloadOLAP = "olap"
	// WorkloadTiny: the smallest footprint (a test or the labs, whose
	// nodes share one machine): small buffers, few connections.
	WorkloadTiny = "tiny"
	// WorkloadNone: PostgreSQL's own defaults, for comparison or for an
	// operator who tunes by hand.
	WorkloadNone = "none"
)

// Workloads are the workload profiles, the default first.
var Workloads = []string{WorkloadOLTP, WorkloadOLAP, WorkloadTiny, WorkloadNone}

// WorkloadChoices lists the profiles for an error message: "a, b, c or d".
func WorkloadChoices() string {
	n := len(Workloads)
	return strings.Join(Workloads[:n-1], ", ") + " or " + Workloads[n-1]
}

// DefaultWorkload is pgha:workload's default.
const DefaultWorkload = WorkloadOLTP

// ValidWorkload reports whether w names a workload profile.
func ValidWorkload(w string) bool {
	return slices.Contains(Workloads, w)
}

// Tuning is what a workload sets on a node of a size.
type Tuning struct {
	Workload string
	Size     Size
	// MaxConnections and MaxWorkerProcesses are cluster-wide (Patroni keeps
	// them in the DCS: a replica needs at least the leader's), the rest
	// per node.
	MaxConnections     int
	MaxWorkerProcesses int
	// Params are the per-node parameters, in a fixed order, each with why.
	Params []Param
	// HugePages is the number of 2 MiB pages the node reserves for
	// shared_buffers (vm.nr_hugepages), 0 below HugePagesFrom.
	HugePages int
}

// Param is one postgresql.conf setting and the reason for its value.
type Param struct {
	Name, Value, Why string
}

// Reserved connections: superuser_reserved_connections (3, PostgreSQL's
// default) plus Patroni's own and pgBackRest's; HAProxy may send the rest.
const reservedConnections = 10

// HugePagesFromMiB is the smallest shared_buffers for which a node reserves
// huge pages: below it the page tables they save are small, and the memory
// they pin matters more.
const HugePagesFromMiB = 2048

// MinSize is the smallest node PostgreSQL is tuned for.
var MinSize = Size{MemoryMiB: 512, VCPUs: 1}

// Tune computes the parameters of a workload on a node of size s.
func Tune(s Size, workload string) (Tuning, error) {
	if workload == "" {
		workload = DefaultWorkload
	}
	if !ValidWorkload(workload) {
		return Tuning{}, fmt.Errorf("workload %q: use %s", workload, WorkloadChoices())
	}
	if s.MemoryMiB < MinSize.MemoryMiB || s.VCPUs < MinSize.VCPUs {
		return Tuning{}, fmt.Errorf("node size %s: PostgreSQL needs at least %s", s, MinSize)
	}
	mem, cpu := s.MemoryMiB, s.VCPUs
	gib := max(1, mem/1024)
	t := Tuning{Workload: workload, Size: s}
	if workload == WorkloadNone {
		// PostgreSQL 15's defaults; the rest is left to postgresql.conf's.
		t.MaxConnections, t.MaxWorkerProcesses = 100, 8
		return t, nil
	}

	var sharedPct, cachePct, maintDiv, maintCap, walMin, walMax, perQueryDiv int
	var checkpoint string
	switch workload {
	case WorkloadOLTP:
		// A hundred per vCPU, fifty per GiB: whichever is less.
		t.MaxConnections = clamp(min(100*cpu, 50*gib), 100, 1000)
		sharedPct, cachePct, maintDiv, maintCap = 25, 75, 16, 2048
		walMin, walMax, checkpoint = 1024, 4096, "15min"
		perQueryDiv = 3 // a connection may sort or hash a few times at once
	case WorkloadOLAP:
		t.MaxConnections = clamp(10*gib, 50, 200)
		sharedPct, cachePct, maintDiv, maintCap = 25, 75, 8, 4096
		walMin, walMax, checkpoint = 2048, 16384, "30min"
		perQueryDiv = 1
	case WorkloadTiny:
		t.MaxConnections = 100
		sharedPct, cachePct, maintDiv, maintCap = 15, 50, 16, 256
		walMin, walMax, checkpoint = 256, 1024, "5min"
		perQueryDiv = 4
	}
	shared := max(128, mem*sharedPct/100)
	cache := max(256, mem*cachePct/100)
	maint := clamp(mem/maintDiv, 64, maintCap)
	// What shared_buffers leaves, shared between every connection's
	// queries; at least PostgreSQL's own default.
	work := max(4, (mem-shared)/(t.MaxConnections*perQueryDiv))
	t.MaxWorkerProcesses = max(8, cpu)
	parallelGather := min(2, cpu/2)
	if workload == WorkloadOLAP {
		parallelGather = max(1, cpu/2)
	}
	if workload == WorkloadTiny {
		parallelGather = 0
	}
	avWorkers := clamp(cpu/2, 3, 8)
	if shared >= HugePagesFromMiB && workload != WorkloadTiny {
		// shared_buffers plus PostgreSQL's other shared memory (about
		// 3 %), in 2 MiB pages.
		t.HugePages = (shared*103/100 + 1) / 2
	}

	mb := func(v int) string { return strconv.Itoa(v) + "MB" }
	t.Params = []Param{
		{"shared_buffers", mb(shared), fmt.Sprintf("%d %% of the node's memory; the kernel's page cache holds the rest", sharedPct)},
		{"effective_cache_size", mb(cache), "what the planner may assume the page cache and shared_buffers hold together"},
		{"work_mem", mb(work), fmt.Sprintf("memory after shared_buffers over max_connections x %d sorts and hashes at once", perQueryDiv)},
		{"maintenance_work_mem", mb(maint), "VACUUM, CREATE INDEX and autovacuum: a sixteenth (olap: an eighth) of memory, capped"},
		{"min_wal_size", mb(walMin), "WAL kept for reuse between checkpoints"},
		{"max_wal_size", mb(walMax), "checkpoints by time rather than by WAL volume under bursts"},
		{"checkpoint_timeout", checkpoint, "fewer full-page writes; crash recovery stays within the failover profile's bounds"},
		{"checkpoint_completion_target", "0.9", "spread each checkpoint's writes over the interval"},
		{"random_page_cost", "1.1", "EBS gp3 is an SSD: random reads cost about what sequential ones do"},
		{"effective_io_concurrency", "200", "gp3 serves many concurrent reads; bitmap heap scans prefetch"},
		{"autovacuum_max_workers", strconv.Itoa(avWorkers), "half the vCPUs, at least PostgreSQL's 3, at most 8"},
		{"autovacuum_vacuum_cost_limit", "2000", "an SSD absorbs ten times the default vacuum I/O budget"},
		{"max_parallel_workers", strconv.Itoa(cpu), "one parallel worker per vCPU"},
		{"max_parallel_workers_per_gather", strconv.Itoa(parallelGather), "per query: two for oltp, half the vCPUs for olap, none for tiny"},
		{"max_parallel_maintenance_workers", strconv.Itoa(clamp(cpu/2, 1, 4)), "parallel CREATE INDEX"},
		{"huge_pages", "try", "use the huge pages the node reserved for shared_buffers, where it did"},
	}
	return t, nil
}

// HAProxyMaxConn is each HAProxy node's connection limit per PostgreSQL
// server: the connections PostgreSQL accepts beyond the reserved ones,
// shared between the HAProxy nodes, so that a burst waits in HAProxy's
// queue instead of being refused with "too many clients".
func (t Tuning) HAProxyMaxConn(haproxyNodes int) int {
	return max(1, (t.MaxConnections-reservedConnections)/max(1, haproxyNodes))
}

// monitorConnections are the leader's other connections that are neither
// reserved nor clients': postgres_exporter, pgha's monitor (validate's
// checks, the labs' probe) and a former leader's pg_rewind. Streaming
// replication is not among them: since PostgreSQL 12 walsenders have
// slots of their own (max_wal_senders), outside max_connections.
const monitorConnections = 5

// poolerSharePct is the part of the leader's client connections that the
// poolers take together. Clients come through them; the rest stays for
// direct clients of HAProxy's leader port, tools that need session state.
const poolerSharePct = 75

// PoolerMaxClients is each PgBouncer's max_client_conn: clients cost it a
// socket each, not a server connection, so it admits many more than it
// opens (its unit's LimitNOFILE leaves room for them).
const PoolerMaxClients = 1000

// PoolSize is what one PgBouncer may open to the leader.
type PoolSize struct {
	// Servers bounds the pooler's server connections to the application
	// database, every user's pool together (max_db_connections), and is
	// each pool's size (default_pool_size), so one user may use them all.
	Servers int
	// Clients is max_client_conn.
	Clients int
}

// PoolSize divides the leader's connections between the poolers (one per
// HAProxy node): max_connections less the reserved ones (superuser_reserved
// with Patroni's and pgBackRest's) and monitorConnections, of which the
// poolers take poolerSharePct together. Each pooler's server connections
// go through its own node's HAProxy, so they also fit its maxconn for the
// leader (HAProxyMaxConn), which direct clients of that node share.
func (t Tuning) PoolSize(poolers int) PoolSize {
	free := t.MaxConnections - reservedConnections - monitorConnections
	return PoolSize{Servers: max(1, free*poolerSharePct/100/max(1, poolers)), Clients: PoolerMaxClients}
}

func clamp(v, lo, hi int) int { return min(hi, max(lo, v)) }
