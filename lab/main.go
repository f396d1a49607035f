// Command lab runs the pgha cluster (3 etcd, 3 Patroni/PostgreSQL 15,
// 2 HAProxy) on this machine, each node in its own network namespace (as
// root) or on its own loopback address, from the same files the cloud-init
// documents carry.
//
//	go run ./lab up [--name pgha] [--profile fast] [--sync=false] [--net netns|loopback] [--boot]
//	go run ./lab status | outputs | down
//	go run ./lab kill|kill-postgres|stop|start|partition|heal NODE
//	go run ./lab replace [--force] NODE   (booted lab)
//	go run ./lab roll                     (booted lab)
//	go run ./lab bench [--runs 5] [--boot | --tuning]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pgha/pgha/lab/cluster"
)

// command is one subcommand: its own flags, and whether it acts on a node.
type command struct {
	name    string
	node    bool // takes one NODE argument
	hidden  bool // not listed: the lab runs it itself
	summary string
	// flags declares the command's own flags (every command has --name).
	flags func(fs *flag.FlagSet, o *options)
	run   func(ctx context.Context, l *cluster.Lab, o *options, node string) int
}

// options hold every flag value; each command declares only its own.
type options struct {
	cmd, name, net, profile, doc, keepLogs string
	sync, keepOnFailure, boot, force       bool
	backups, tuning                        bool
	workload, poolMode                     string
	backupType, target, query, database    string
	runs, scale, seconds                   int
}

func upFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.net, "net", "", "network mode: netns (root; every node in its own namespace, real partitions) or loopback (no root needed; every node on its own 127.0.x.y, no partitions); default netns when root and namespaces work, else loopback")
	fs.StringVar(&o.profile, "profile", "fast", "failure-time profile: fast, balanced or safe")
	fs.BoolVar(&o.boot, "boot", false, "every node a Debian 12 machine (systemd-nspawn) booting the user data EC2 would get, with the AWS APIs stood in for; validate then takes the AWS path (root)")
}

// commands in the order `lab help` lists them.
var commands = []command{
	{name: "up", summary: "build the lab: 3 etcd, 3 Patroni/PostgreSQL, 2 HAProxy (--boot: as booted Debian 12 machines)", run: up,
		flags: func(fs *flag.FlagSet, o *options) {
			upFlags(fs, o)
			fs.BoolVar(&o.sync, "sync", true, "synchronous replication (Patroni synchronous_mode), as the AWS stack's default; --sync=false for asynchronous")
			fs.BoolVar(&o.keepOnFailure, "keep-on-failure", false, "leave a lab whose start-up failed in place, for inspection")
			fs.StringVar(&o.workload, "workload", "oltp", "how PostgreSQL is tuned for the node size (pgha:workload): oltp, olap, tiny or none (PostgreSQL's defaults)")
			fs.StringVar(&o.poolMode, "pool-mode", "transaction", "PgBouncer's pool mode on the HAProxy nodes (pgha:poolMode): transaction, or session for clients that keep session state")
			fs.BoolVar(&o.backups, "backups", false, "pgBackRest on the PostgreSQL nodes, archiving to and backing up into an S3 endpoint of the lab's own (namespace labs) or, with --boot, the bucket of the lab's AWS stand-in, as on AWS")
		}},
	{name: "status", summary: "show every node's process, link and Patroni state, and its log", run: status},
	{name: "outputs", summary: "print the stack outputs as JSON (what validate --outputs reads; holds the passwords)", run: printOutputs},
	{name: "down", summary: "stop everything, remove namespaces and data, verify nothing is left", run: down,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.keepLogs, "keep-logs", "", "first copy every node's logs under this `dir`")
		}},
	{name: "kill", node: true, summary: "crash a node (SIGKILL; on pg-N both Patroni and PostgreSQL; booted: held down until start)", run: fault},
	{name: "kill-postgres", node: true, summary: "crash PostgreSQL alone on a pg-N node; Patroni lives", run: fault},
	{name: "stop", node: true, summary: "stop a node cleanly (SIGTERM; booted: the machine powers off)", run: fault},
	{name: "start", node: true, summary: "start a stopped or killed node again (nothing to do if it runs)", run: fault},
	{name: "partition", node: true, summary: "cut the node's network link (a real partition; not in loopback mode)", run: fault},
	{name: "heal", node: true, summary: "reconnect a partitioned node", run: fault},
	{name: "replace", node: true, summary: "booted: destroy the node's machine and boot a new one from the same user data, as `pulumi up` replaces an instance; waits until the cluster is whole", run: replace,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.force, "force", false, "replace the Patroni leader without a switchover first (a failover)")
		}},
	{name: "roll", summary: "booted: replace every node one at a time in the runbook's safe order (HAProxy, etcd, replicas, switchover, former leader), each gated on a whole cluster", run: rollLab},
	{name: "backup", node: true, summary: "with --backups: take a pgBackRest backup on a PostgreSQL node (a full one by default) and print `pgbackrest info`", run: backupCmd,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.backupType, "type", "full", "full, diff or incr")
		}},
	{name: "restore-drill", node: true, summary: "with --backups: restore the repository as it was at --target into a scratch server on the node, run --query there, print the result, remove it", run: restoreDrill,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.target, "target", "", "the time to restore to (RFC 3339)")
			fs.StringVar(&o.query, "query", "SELECT 1", "SQL to run on the restored server, as the superuser")
			fs.StringVar(&o.database, "database", "postgres", "the database --query runs in")
		}},
	{name: "objectstore", hidden: true, summary: "(internal) serve a lab's S3 endpoint for its backups; `up --backups` starts it", run: objectStore},
	{name: "aws-standin", hidden: true, summary: "(internal) serve a booted lab's AWS stand-ins; `up --boot` starts it", run: standins},
	{name: "bench", summary: "measure start-up, down time and memory (median of --runs; --boot for booted machines; --tuning: pgbench and a connection burst, PostgreSQL's defaults against the tuned profile)", run: bench,
		flags: func(fs *flag.FlagSet, o *options) {
			upFlags(fs, o)
			fs.IntVar(&o.runs, "runs", 5, "number of up/down cycles (--tuning: rounds, each a lab with workload none, then one with oltp)")
			fs.StringVar(&o.doc, "doc", "", "also write the results into this markdown file's \""+benchHeading+"\" section (with --boot: \""+bootBenchHeading+"\"; with --tuning: \""+tuningHeading+"\")")
			fs.BoolVar(&o.tuning, "tuning", false, "instead: pgbench (select-only and TPC-B-like) and a burst of more sessions than max_connections, on labs with PostgreSQL's defaults (workload none) and tuned (oltp) in turn")
			fs.IntVar(&o.scale, "scale", 0, "--tuning: pgbench -i scale; 0: the largest multiple of 10 whose database (about 16 MB a unit) fills at most 5/6 of the tuned shared_buffers")
			fs.IntVar(&o.seconds, "seconds", 30, "--tuning: length of each timed pgbench run")
		}},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: go run ./lab COMMAND [flags] [NODE]    (go run ./lab COMMAND -h for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		if c.hidden {
			continue
		}
		args := c.name
		if c.node {
			args += " NODE"
		}
		fmt.Fprintf(w, "  %-20s %s\n", args, c.summary)
	}
}

func find(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	c, ok := find(args[0])
	if !ok {
		if strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "lab: the command comes first, then its flags (e.g. go run ./lab up %s)\n", args[0])
		} else {
			fmt.Fprintf(stderr, "lab: unknown command %q\n", args[0])
		}
		usage(stderr)
		return 2
	}
	o := &options{cmd: c.name}
	fs := flag.NewFlagSet("lab "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.name, "name", cluster.DefaultName, "lab name: prefixes its namespaces and picks "+cluster.StateRoot+"/NAME (without root: ~/.local/state/pgha-lab/NAME)")
	if c.flags != nil {
		c.flags(fs, o)
	}
	// Flags may come before or after the node.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	switch {
	case c.node && len(pos) != 1:
		fmt.Fprintf(stderr, "lab %s: name one node, e.g. go run ./lab %s pg-1\n", c.name, c.name)
		return 2
	case !c.node && len(pos) > 0:
		fmt.Fprintf(stderr, "lab %s: unexpected argument %q\n", c.name, pos[0])
		return 2
	}
	if o.net != "" {
		if err := cluster.CheckNet(o.net); err != nil {
			fmt.Fprintln(stderr, "lab:", err)
			return 2
		}
	}
	l, err := cluster.New(o.name)
	if err != nil {
		fmt.Fprintln(stderr, "lab:", err)
		return 2
	}
	l.Log = stdout
	if o.boot {
		if o.net != "" && o.net != cluster.NetBoot {
			fmt.Fprintf(stderr, "lab up: --boot and --net %s do not go together: booted machines have network namespaces of their own\n", o.net)
			return 2
		}
		o.net = cluster.NetBoot
	}
	if c.name != "up" && c.name != "bench" && !l.Loopback() && os.Geteuid() != 0 && l.Exists() {
		fmt.Fprintf(stderr, "lab %s: lab %q runs in network namespaces, which only root can enter; run it as root\n", c.name, l.Name)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node := ""
	if c.node {
		node = pos[0]
	}
	return c.run(ctx, l, o, node)
}
