package userdata

import _ "embed" // for AlertRules

// AlertRules is the cluster's Prometheus alerting rules file
// (alerts/pgha.rules.yml): leader and replication health from Patroni and
// postgres_exporter, etcd quorum, WAL archiving, connections, HAProxy's
// backends, disks and scrape targets. Its thresholds suit the fast profile;
// docs/monitoring.md lists the alerts, and alerts/pgha.rules_test.yml holds
// the promtool unit tests that TestAlertRules runs.
//
//go:embed alerts/pgha.rules.yml
var AlertRules []byte
