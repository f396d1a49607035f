package userdata

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The alert rules are checked and unit-tested by Prometheus's own promtool
// (Debian 12's prometheus package, 2.42), as Prometheus would load them.

const (
	alertRulesName = "pgha.rules.yml"
	alertTestsName = "pgha.rules_test.yml"
)

type alertRulesDoc struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type alertTestsDoc struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// alertTests reads the promtool unit tests beside the rules file.
func alertTests(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("alerts", alertTestsName))
	require.NoError(t, err)
	return b
}

// writeAlertFiles puts the embedded rules and the given tests into a fresh
// directory, as promtool expects them (the tests name the rules file
// relative to themselves), and returns the tests' path.
func writeAlertFiles(t *testing.T, tests []byte) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, alertRulesName), AlertRules, 0o644))
	f := filepath.Join(dir, alertTestsName)
	require.NoError(t, os.WriteFile(f, tests, 0o644))
	return f
}

// TestAlertRulesPromtool: promtool accepts the rules without a warning, and
// every unit test in alerts/pgha.rules_test.yml passes.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	tests := writeAlertFiles(t, alertTests(t))
	rules := filepath.Join(filepath.Dir(tests), alertRulesName)

	out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "SUCCESS: ")
	assert.NotContains(t, strings.ToLower(string(out)), "warn", string(out))

	out, err = exec.Command(promtool, "test", "rules", tests).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "SUCCESS", string(out))
}

// TestAlertRulesCoverage: every alert says how bad it is and what to do, and
// has a unit test in which it fires and one in which it stays silent.
func TestAlertRulesCoverage(t *testing.T) {
	var rules alertRulesDoc
	require.NoError(t, yaml.Unmarshal(AlertRules, &rules))
	var tests alertTestsDoc
	require.NoError(t, yaml.Unmarshal(alertTests(t), &tests))
	require.Equal(t, []string{alertRulesName}, tests.RuleFiles)

	severity := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			_, dup := severity[r.Alert]
			require.False(t, dup, "alert %s is defined twice", r.Alert)
			severity[r.Alert] = r.Labels["severity"]
			assert.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], "%s: labels.severity", r.Alert)
			for _, a := range []string{"summary", "runbook"} {
				v := strings.TrimSpace(r.Annotations[a])
				assert.NotEmpty(t, v, "%s: annotations.%s", r.Alert, a)
				assert.NotContains(t, v, "\n", "%s: annotations.%s is one line", r.Alert, a)
			}
			// Every alert waits at least two 15 s scrapes, so one stale or
			// missing sample cannot fire it.
			d, err := time.ParseDuration(r.For)
			if assert.NoError(t, err, "%s: for: %q", r.Alert, r.For) {
				assert.GreaterOrEqual(t, d, 30*time.Second, "%s: for:", r.Alert)
			}
		}
	}
	require.NotEmpty(t, severity, "no alerts in %s", alertRulesName)

	firing, silent := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, c := range tc.AlertRuleTest {
			sev, known := severity[c.Alertname]
			if !assert.True(t, known, "test %q checks %s, which the rules do not define", tc.Name, c.Alertname) {
				continue
			}
			if len(c.ExpAlerts) == 0 {
				silent[c.Alertname]++
				continue
			}
			firing[c.Alertname]++
			for _, e := range c.ExpAlerts {
				assert.Equal(t, sev, e.ExpLabels["severity"], "test %q: %s's severity", tc.Name, c.Alertname)
				assert.NotEmpty(t, e.ExpAnnotations["summary"], "test %q: %s: expected annotations are checked", tc.Name, c.Alertname)
			}
		}
	}
	for name := range severity {
		assert.Positive(t, firing[name], "%s has no test in which it fires", name)
		assert.Positive(t, silent[name], "%s has no test in which it stays silent", name)
	}
}

// TestAlertRulesFollowFastProfile: the replica-lag bound is the fast
// profile's, the bound of HAProxy's replica check (docs/monitoring.md).
func TestAlertRulesFollowFastProfile(t *testing.T) {
	fast, err := LookupProfile("fast")
	require.NoError(t, err)
	var rules alertRulesDoc
	require.NoError(t, yaml.Unmarshal(AlertRules, &rules))
	found := false
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "PostgreSQLReplicaLagging" {
				found = true
				assert.Contains(t, r.Expr, "> "+strconv.FormatInt(fast.ReplicaMaxLagBytes, 10),
					"the lag alert's bound must follow the fast profile's ReplicaMaxLagBytes")
			}
		}
	}
	assert.True(t, found, "PostgreSQLReplicaLagging is missing")
}

// TestAlertRulesHarnessCanFail: the unit tests are not a rubber stamp. An
// expected alert with a wrong label, and a firing case turned silent, must
// both make promtool fail.
func TestAlertRulesHarnessCanFail(t *testing.T) {
	promtool := lookTool(t, "promtool")
	cases := map[string]func(c map[string]any) bool{
		"wrong severity expected": func(c map[string]any) bool {
			exp, _ := c["exp_alerts"].([]any)
			if len(exp) == 0 {
				return false
			}
			exp[0].(map[string]any)["exp_labels"].(map[string]any)["severity"] = "info"
			return true
		},
		"firing case expected silent": func(c map[string]any) bool {
			exp, _ := c["exp_alerts"].([]any)
			if len(exp) == 0 {
				return false
			}
			c["exp_alerts"] = []any{}
			return true
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var doc map[string]any
			require.NoError(t, yaml.Unmarshal(alertTests(t), &doc))
			changed := ""
		find:
			for _, tc := range doc["tests"].([]any) {
				tc := tc.(map[string]any)
				for _, c := range tc["alert_rule_test"].([]any) {
					if mutate(c.(map[string]any)) {
						changed = tc["name"].(string)
						break find
					}
				}
			}
			require.NotEmpty(t, changed, "no firing case to change")
			b, err := yaml.Marshal(doc)
			require.NoError(t, err)
			out, err := exec.Command(promtool, "test", "rules", writeAlertFiles(t, b)).CombinedOutput()
			require.Error(t, err, "promtool passed a wrong expectation in %q:\n%s", changed, out)
			assert.Contains(t, string(out), "FAILED")
			assert.Contains(t, string(out), changed)
		})
	}
}
