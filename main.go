// Command pgha is the Pulumi program that builds a PostgreSQL 15 HA cluster
// (3 etcd, 3 Patroni/PostgreSQL, 2 HAProxy) over three AWS Availability
// Zones. See docs/architecture.md and docs/runbook.md.
package main

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

func main() {
	pulumi.Run(program)
}
