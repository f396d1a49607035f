// Command lab runs the pgha cluster (3 etcd, 3 Patroni/PostgreSQL 15,
// 2 HAProxy) on this machine, each node in its own network namespace (as
// root) or on its own loopback address, from the same files the cloud-init
// documents carry.
//
//	go run ./lab up [--name pgha] [--profile fast] [--sync=false] [--net netns|loopback]
//	go run ./lab status | down
//	go run ./lab kill|stop|start|partition|heal NODE
//	go run ./lab bench [--runs 5]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/userdata"
)

const usage = `usage: go run ./lab COMMAND [flags] [NODE]

commands:
  up          build the lab: 3 etcd, 3 Patroni/PostgreSQL, 2 HAProxy
  status      show every node's process, link and Patroni state, and its log
  down        stop everything, remove namespaces and data, verify nothing is left
  kill NODE   crash a node (SIGKILL; on pg-N both Patroni and PostgreSQL)
  stop NODE   stop a node cleanly (SIGTERM)
  start NODE  start a stopped or killed node again
  partition NODE   cut the node's network link (a real partition; netns mode only)
  heal NODE   reconnect it
  bench       measure start-up, down time and memory (median of --runs)

flags (before or after the command):
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	name := fs.String("name", cluster.DefaultName, "lab name: prefixes its namespaces and picks "+cluster.StateRoot+"/NAME (without root: ~/.local/state/pgha-lab/NAME)")
	netMode := fs.String("net", "", "up: network mode, netns (root; every node in its own namespace, real partitions) or loopback (no root needed; every node on its own 127.0.x.y, no partitions); default netns when root and namespaces work, else loopback")
	profile := fs.String("profile", "fast", "failure-time profile: fast, balanced or safe")
	sync := fs.Bool("sync", true, "up: synchronous replication (Patroni synchronous_mode), as the AWS stack's default; --sync=false for asynchronous")
	keep := fs.Bool("keep-on-failure", false, "leave a lab whose start-up failed in place, for inspection")
	runs := fs.Int("runs", 5, "bench: number of up/down cycles")
	doc := fs.String("doc", "", "bench: also write the results into this markdown file's \"## Lab start-up\" section")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }

	// Flags may come before or after the command and node.
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0 // asked for: the usage is the answer
			}
			return 2
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	cmd := pos[0]
	l, err := cluster.New(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 2
	}
	l.Log = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	needNode := map[string]bool{"kill": true, "stop": true, "start": true, "partition": true, "heal": true}
	if needNode[cmd] && len(pos) != 2 {
		fmt.Fprintf(os.Stderr, "lab %s: name one node, e.g. go run ./lab %s pg-1\n", cmd, cmd)
		return 2
	}
	if !needNode[cmd] && len(pos) != 1 {
		fmt.Fprintf(os.Stderr, "lab %s: unexpected argument %q\n", cmd, pos[1])
		return 2
	}
	if *netMode != "" {
		if err := cluster.CheckNet(*netMode); err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			return 2
		}
		if cmd != "up" && cmd != "bench" {
			fmt.Fprintf(os.Stderr, "lab %s: --net only applies to up (a running lab keeps the mode it was started with)\n", cmd)
			return 2
		}
	}
	if cmd != "help" && cmd != "up" && cmd != "bench" && !l.Loopback() && os.Geteuid() != 0 && l.Exists() {
		fmt.Fprintf(os.Stderr, "lab %s: lab %q runs in network namespaces, which only root can enter; run it with sudo\n", cmd, l.Name)
		return 1
	}

	switch cmd {
	case "up":
		mode := *netMode
		if mode == "" && !l.Exists() {
			var why string
			mode, why = cluster.DefaultNet()
			fmt.Printf("network mode %s: %s\n", mode, why)
		}
		return up(ctx, l, cluster.UpOptions{Profile: *profile, SynchronousMode: *sync, KeepOnFailure: *keep, Net: mode})
	case "down":
		return down(ctx, l)
	case "status":
		return status(ctx, l)
	case "bench":
		if *netMode != "" && !l.Exists() {
			if err := l.SetNet(*netMode); err != nil {
				fmt.Fprintln(os.Stderr, "lab bench:", err)
				return 2
			}
		}
		return bench(ctx, l, *runs, *profile, *doc)
	case "kill", "stop", "start", "partition", "heal":
		return fault(ctx, l, cmd, pos[1])
	case "help":
		fs.Usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "lab: unknown command %q\n", cmd)
	fs.Usage()
	return 2
}

func up(ctx context.Context, l *cluster.Lab, o cluster.UpOptions) int {
	if _, err := userdata.LookupProfile(o.Profile); err != nil {
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 2
	}
	fmt.Printf("lab %q: starting (profile %s, synchronous_mode %v, network %s)\n", l.Name, o.Profile, o.SynchronousMode, o.Net)
	res, err := l.Up(ctx, o)
	if err != nil {
		if errors.Is(err, cluster.ErrPrerequisites) {
			fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 1
	}
	fmt.Printf("lab %q is up in %.1fs (leader %s)\n\n", l.Name, res.Total.Seconds(), res.Leader)
	rows, err := l.Status(ctx)
	if err == nil {
		cluster.PrintStatus(os.Stdout, rows)
	}
	if l.Loopback() {
		fmt.Printf("\nconnect (loopback mode: partition is not offered, since all nodes share this host's network stack):\n%s", l.ConnectHelp())
	} else {
		fmt.Printf("\nconnect from the lab's client namespace:\n%s", l.ConnectHelp())
	}
	fmt.Printf("\nstack outputs (for go run ./validate --outputs): %s\n", l.OutputsFile())
	fmt.Printf("take it down with: go run ./lab down --name %s\n", l.Name)
	return 0
}

func down(ctx context.Context, l *cluster.Lab) int {
	rep, err := l.Down(ctx)
	fmt.Printf("lab %q: stopped %d processes in %.1fs\n", l.Name, rep.Stopped, rep.Duration.Seconds())
	printChecks(rep.Checks)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab down: %v\n", err)
		return 1
	}
	fmt.Println("teardown verified: nothing of the lab is left")
	return 0
}

func printChecks(cs []cluster.Check) {
	for _, c := range cs {
		v := "ok  "
		if !c.OK {
			v = "FAIL"
		}
		fmt.Printf("  [%s] %s", v, c.Name)
		if c.Detail != "" {
			fmt.Printf(": %s", c.Detail)
		}
		fmt.Println()
	}
}

func status(ctx context.Context, l *cluster.Lab) int {
	rows, err := l.Status(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab status:", err)
		return 1
	}
	fmt.Printf("lab %q (profile %s, synchronous_mode %v, network %s), state in %s\n\n", l.Name, l.Settings.Profile, l.Settings.SynchronousMode, l.Settings.Net, l.Dir)
	cluster.PrintStatus(os.Stdout, rows)
	fmt.Printf("\nPostgreSQL's own logs: %s/nodes/pg-N/log/postgresql/\n", l.Dir)
	if kb, n, err := l.Memory(); err == nil {
		fmt.Printf("\nmemory: %.0f MiB PSS over %d processes\n", float64(kb)/1024, n)
	}
	fmt.Printf("outputs: %s\n", l.OutputsFile())
	return 0
}

func fault(ctx context.Context, l *cluster.Lab, cmd, node string) int {
	f := map[string]func(context.Context, string) error{
		"kill": l.Kill, "stop": l.Stop, "start": l.Start, "partition": l.Partition, "heal": l.Heal,
	}[cmd]
	t := time.Now()
	if err := f(ctx, node); err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: %v\n", cmd, err)
		return 1
	}
	fmt.Printf("%s %s: done in %.2fs; watch it with: go run ./lab status --name %s\n", cmd, node, time.Since(t).Seconds(), l.Name)
	return 0
}
