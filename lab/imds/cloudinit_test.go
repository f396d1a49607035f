package imds_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi/awsapitest"
	"github.com/pgha/pgha/lab/imds"
)

// crawlScript runs cloud-init's own Ec2 datasource crawl (what it does
// at boot before it runs the user data) against a metadata URL, with the
// platform cloud-init would have identified: "aws" on EC2, "unknown" in a
// container. It prints what cloud-init collected, as JSON.
const crawlScript = `
import json, sys
from cloudinit import helpers
from cloudinit.sources import DataSourceEc2
url, cloud, tmp, wait = sys.argv[1:5]
cfg = {"datasource": {"Ec2": {"metadata_urls": [url], "strict_id": False,
                              "max_wait": int(wait), "timeout": 2}}}
ds = DataSourceEc2.DataSourceEc2(cfg, None, helpers.Paths({"cloud_dir": tmp, "run_dir": tmp}))
ds._cloud_name = cloud
crawled = ds.crawl_metadata()
json.dump(crawled, sys.stdout, default=lambda b: b.decode() if isinstance(b, bytes) else str(b))
`

// cloudInitPython returns a python3 that can import Debian's cloud-init
// (apt-get install cloud-init), or skips.
func cloudInitPython(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("PGHA_CLOUDINIT_PYTHON")}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	// Debian's interpreter, which sees the package even when another
	// python3 (pyenv, venv) comes first on PATH.
	candidates = append(candidates, "/usr/bin/python3")
	for _, c := range candidates {
		if c != "" && exec.Command(c, "-c", "import cloudinit.sources.DataSourceEc2").Run() == nil {
			return c
		}
	}
	t.Skip("cloud-init's Python modules not found: apt-get install -y cloud-init, or set PGHA_CLOUDINIT_PYTHON")
	return ""
}

type crawled struct {
	UserData   string         `json:"user-data"`
	MetaData   map[string]any `json:"meta-data"`
	Dynamic    map[string]any `json:"dynamic"`
	APIVersion string         `json:"_metadata_api_version"`
}

func crawl(t *testing.T, l *lab, cloud string, wait int) (crawled, string) {
	t.Helper()
	py := cloudInitPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := filepath.Join(t.TempDir(), "crawl.py")
	require.NoError(t, os.WriteFile(script, []byte(crawlScript), 0o644))
	r := awsapitest.Run(ctx, []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "HOME=" + t.TempDir()},
		py, script, l.url, cloud, t.TempDir(), map[bool]string{true: "3", false: "10"}[wait < 10])
	require.Equal(t, 0, r.ExitCode, r.Stderr)
	var out crawled
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &out), r.Stdout)
	return out, r.Stderr
}

func checkCrawl(t *testing.T, c crawled) {
	t.Helper()
	assert.Equal(t, "2021-03-23", c.APIVersion, "cloud-init settles on its newest version")
	assert.Equal(t, userData, c.UserData)
	md := c.MetaData
	assert.Equal(t, instanceID, md["instance-id"])
	assert.Equal(t, "10.42.2.10", md["local-ipv4"])
	assert.Equal(t, "ip-10-42-2-10.eu-west-1.compute.internal", md["local-hostname"])
	assert.Equal(t, map[string]any{"availability-zone": "eu-west-1b", "region": "eu-west-1"}, md["placement"])
	assert.Equal(t, map[string]any{"pgha-dev": publicKey}, md["public-keys"], "public-keys/0=NAME, read as 0/openssh-key")
	macs := md["network"].(map[string]any)["interfaces"].(map[string]any)["macs"].(map[string]any)
	assert.Equal(t, "10.42.2.10", macs["0e:00:0a:2a:02:0a"].(map[string]any)["local-ipv4s"])
	iam := md["iam"].(map[string]any)
	assert.NotContains(t, iam, "security-credentials", "cloud-init never crawls credentials")
	assert.Equal(t, "arn:aws:iam::123456789012:instance-profile/pgha-dev-patroni-profile", iam["info"].(map[string]any)["InstanceProfileArn"])
}

// On EC2 cloud-init knows the platform and uses IMDSv2 tokens: the
// HttpTokens=required service serves it without any allowance.
func TestCloudInitCrawlOnAWS(t *testing.T) {
	l := newLab(t, imds.Options{})
	c, _ := crawl(t, l, "aws", 10)
	checkCrawl(t, c)
	assert.Equal(t, instanceID, c.Dynamic["instance-identity"].(map[string]any)["document"].(map[string]any)["instanceId"])
	assert.NotContains(t, l.log.String(), `auth="tokenless"`)
	assert.NotContains(t, l.log.String(), "status=401")
}

// In a container cloud-init identifies the platform as unknown and
// crawls without a token: the allowance makes that work, and without it
// the service refuses, as EC2 with HttpTokens=required would.
func TestCloudInitCrawlInContainer(t *testing.T) {
	l := newLab(t, imds.Options{AllowTokenlessBoot: true})
	c, _ := crawl(t, l, "unknown", 10)
	checkCrawl(t, c)
	log := l.log.String()
	assert.Contains(t, log, `GET /2009-04-04/meta-data/instance-id status=200 auth="tokenless"`, "cloud-init's first probe")
	assert.Contains(t, log, `GET /2021-03-23/meta-data/instance-id status=200 auth="tokenless"`)
	assert.NotContains(t, log, "security-credentials")
	assert.NotContains(t, log, "/api/token")

	strict := newLab(t, imds.Options{})
	c, stderr := crawl(t, strict, "unknown", 3)
	assert.Empty(t, c.MetaData, "without the allowance cloud-init gets nothing: %s", lastLine(stderr))
	assert.Contains(t, strict.log.String(), `GET /2009-04-04/meta-data/instance-id status=401 auth="no token"`)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
