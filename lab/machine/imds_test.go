package machine

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// imds is a minimal EC2 instance metadata service for one instance, enough
// for cloud-init 22.4's Ec2 datasource: in a container it cannot identify
// the platform as AWS, so it asks without an IMDSv2 token, first
// /2009-04-04/meta-data/instance-id, then the newest version it knows
// (/2021-03-23/...), and crawls meta-data/ as a tree of listings.
type imds struct {
	userData string
	leaves   map[string]string // "meta-data/placement/availability-zone" -> value

	mu   sync.Mutex
	hits map[string]int
}

var imdsVersion = regexp.MustCompile(`^(latest|\d{4}-\d{2}-\d{2})$`)

func newIMDS(instanceID, az, ip, mac, hostname, userData string) *imds {
	region := az[:len(az)-1]
	m := "meta-data/network/interfaces/macs/" + mac + "/"
	doc, _ := json.Marshal(map[string]string{
		"instanceId": instanceID, "availabilityZone": az, "region": region,
		"privateIp": ip, "instanceType": "t3.micro", "imageId": "ami-0pghalab",
		"accountId": "000000000000", "architecture": "x86_64",
	})
	return &imds{
		userData: userData,
		hits:     map[string]int{},
		leaves: map[string]string{
			"meta-data/ami-id":                      "ami-0pghalab",
			"meta-data/ami-launch-index":            "0",
			"meta-data/hostname":                    hostname,
			"meta-data/instance-id":                 instanceID,
			"meta-data/instance-type":               "t3.micro",
			"meta-data/local-hostname":              hostname,
			"meta-data/local-ipv4":                  ip,
			"meta-data/mac":                         mac,
			"meta-data/placement/availability-zone": az,
			"meta-data/placement/region":            region,
			"meta-data/services/domain":             "amazonaws.com",
			"meta-data/services/partition":          "aws",
			m + "device-number":                     "0",
			m + "interface-id":                      "eni-0pghalab",
			m + "local-ipv4s":                       ip,
			m + "mac":                               mac,
			m + "owner-id":                          "000000000000",
			m + "subnet-id":                         "subnet-0pghalab",
			m + "subnet-ipv4-cidr-block":            "10.99.0.0/24",
			m + "vpc-id":                            "vpc-0pghalab",
			m + "vpc-ipv4-cidr-block":               "10.99.0.0/16",
			"dynamic/instance-identity/document":    string(doc),
		},
	}
}

func (s *imds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	s.mu.Lock()
	s.hits[p]++
	s.mu.Unlock()
	if r.Method == http.MethodPut && p == "latest/api/token" {
		// IMDSv2, as awscli uses it; any token is accepted afterwards.
		_, _ = w.Write([]byte("pgha-lab-token"))
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	ver, rest, _ := strings.Cut(p, "/")
	if !imdsVersion.MatchString(ver) {
		http.NotFound(w, r)
		return
	}
	if rest == "user-data" {
		_, _ = w.Write([]byte(s.userData))
		return
	}
	if v, ok := s.leaves[rest]; ok {
		_, _ = w.Write([]byte(v))
		return
	}
	// A directory: list its children, sub-directories with a trailing /.
	dir := rest
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	seen := map[string]bool{}
	for k := range s.leaves {
		if sub, ok := strings.CutPrefix(k, dir); ok {
			name, more, _ := strings.Cut(sub, "/")
			if more != "" || strings.Contains(sub, "/") {
				name += "/"
			}
			seen[name] = true
		}
	}
	if len(seen) == 0 {
		http.NotFound(w, r)
		return
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	_, _ = w.Write([]byte(strings.Join(names, "\n")))
}

func (s *imds) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasSuffix(p, path) {
			n += c
		}
	}
	return n
}
