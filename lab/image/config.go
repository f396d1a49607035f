package image

import (
	"fmt"
	"sort"
	"strings"
)

// Version is part of every recipe: bump it when the build steps change in
// a way the recipe does not show, and every cached image is rebuilt.
const Version = 1

const (
	// DefaultSuite is the Debian release of the AMI the lab stands in for.
	DefaultSuite = "bookworm"
	// MirrorHost is the name the image's apt sources use for the lab's
	// package repository. It is no real host: the lab resolves it per
	// machine through /etc/hosts to wherever it serves Handler.
	MirrorHost = "pgha-mirror"
	// MirrorPath is where the repository lives on MirrorHost.
	MirrorPath = "/debian"
	// MirrorURL is the repository as the image's apt sees it.
	MirrorURL = "http://" + MirrorHost + MirrorPath
	// Component is the repository's only component.
	Component = "main"
)

// BaseInclude is what the image has besides debootstrap's minbase: what the
// Debian 12 AMI carries and user data relies on before its own packages
// are installed (systemd as init, cloud-init, sshd for the admin user,
// sudo, curl and CA certificates, ip). python3-cffi-backend is named
// because debootstrap's resolver misses the virtual package
// python3-cffi-backend-api-* that python3-cryptography (via cloud-init)
// needs, leaves it unconfigured and exits 1.
var BaseInclude = []string{
	"systemd", "systemd-sysv", "dbus", "libpam-systemd",
	"cloud-init", "python3-cffi-backend",
	"openssh-server", "sudo", "ca-certificates", "curl",
	"iproute2", "iputils-ping", "netbase", "procps", "less", "locales",
}

// File is a file the recipe writes into the image.
type File struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
	Data string `json:"data"`
}

// Recipe is everything that decides the image's content. Its hash names
// the cache entry, so any change here builds a new image.
type Recipe struct {
	Version      int      `json:"version"`
	Suite        string   `json:"suite"`
	Arch         string   `json:"arch"`
	Variant      string   `json:"variant"`
	Include      []string `json:"include"`
	Files        []File   `json:"files"`
	Remove       []string `json:"remove"`
	RepoPackages []string `json:"repo_packages"`
	MirrorURL    string   `json:"mirror_url"`
}

// NewRecipe is the recipe for suite on arch whose repository holds the
// closure of packages (sorted and deduplicated here, so the order the
// caller lists them in does not change the hash).
func NewRecipe(suite, arch string, packages []string) Recipe {
	pk := append([]string(nil), packages...)
	sort.Strings(pk)
	pk = dedup(pk)
	inc := append([]string(nil), BaseInclude...)
	sort.Strings(inc)
	return Recipe{
		Version:      Version,
		Suite:        suite,
		Arch:         arch,
		Variant:      "minbase",
		Include:      inc,
		Files:        imageFiles(suite),
		Remove:       removePaths,
		RepoPackages: pk,
		MirrorURL:    MirrorURL,
	}
}

func dedup(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if x != "" && (i == 0 || x != s[i-1]) {
			out = append(out, x)
		}
	}
	return out
}

// removePaths are deleted from the image at the end of the build (globs
// relative to the root). Per-instance state must not be baked in: the SSH
// host keys and machine id are made on each machine's first boot, as on
// an AMI, and cloud-init's state would make it skip the first boot. The
// host's apt sources, lists and resolver were only lent for the build.
var removePaths = []string{
	"etc/apt/sources.list",
	"etc/apt/sources.list.d/pgha-build.sources",
	"etc/apt/pgha-build-keyrings",
	"etc/apt/apt.conf.d/99pgha-build",
	"etc/ssh/ssh_host_*",
	"var/lib/apt/lists/*",
	"var/cache/apt/*.bin",
	"var/cache/apt/archives/*.deb",
	"var/lib/cloud/*",
	"var/log/cloud-init*.log",
	"var/log/bootstrap.log", // debootstrap's log names the mirror
	"debootstrap",
}

// imageFiles is the configuration the build writes into the image.
func imageFiles(suite string) []File {
	return []File{
		// Debian's cloud images (debian-cloud-images, classes CLOUD and EC2)
		// set these. generate_mirrorlists makes cloud-init write
		// /etc/apt/mirrors/debian{,-security}.list on first boot, from
		// primary/security, which the deb822 sources below read through
		// apt's mirror+file method. Naming the lab's repository as both,
		// the first boot rewrites the lists with the same address instead
		// of the Debian mirror cloud-init would fall back to. (Debian's
		// cloud-init also ships apt: preserve_sources_list: true, so
		// sources.list itself is never rewritten.)
		{Path: "etc/cloud/cloud.cfg.d/01_debian_cloud.cfg", Mode: 0o644, Data: `# As Debian's own EC2 images configure cloud-init; the mirror is the lab's.
apt:
  generate_mirrorlists: true
  primary:
    - arches: [default]
      uri: ` + MirrorURL + `
  security:
    - arches: [default]
      uri: ` + MirrorURL + `
manage_etc_hosts: true
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
`},
		// cloud-init's postinst writes the datasource list chosen through
		// debconf here; the AMI's choice is Ec2.
		{Path: "etc/cloud/cloud.cfg.d/90_dpkg.cfg", Mode: 0o644, Data: `# to update this file, run dpkg-reconfigure cloud-init
datasource_list: [ Ec2, None ]
`},
		// What differs from EC2, and why.
		{Path: "etc/cloud/cloud.cfg.d/95_pgha_lab.cfg", Mode: 0o644, Data: `# pgha lab: a container cannot look like EC2 to cloud-init (it skips DMI
# reads there and /sys/hypervisor/uuid cannot be faked), so do not require
# the platform to be identified, and ask only the IMDS address the lab serves.
datasource:
  Ec2:
    strict_id: false
    metadata_urls: ['http://169.254.169.254']
# The lab sets each node's address on its link from outside, as the VPC's
# DHCP would hand out the same fixed address; nothing inside renders
# network configuration, so a cut link stays cut until the lab heals it.
network: {config: disabled}
`},
		{Path: "etc/apt/sources.list.d/debian.sources", Mode: 0o644, Data: fmt.Sprintf(`# pgha lab: the lab's own repository (see /etc/apt/mirrors/debian.list).
# It is served only on the lab's private links and was filled from the
# build host's verified Debian mirror, so it is trusted without a signature.
Types: deb
URIs: mirror+file:///etc/apt/mirrors/debian.list
Suites: %s
Components: %s
Trusted: yes
`, suite, Component)},
		{Path: "etc/apt/mirrors/debian.list", Mode: 0o644, Data: MirrorURL + "\n"},
		{Path: "etc/apt/mirrors/debian-security.list", Mode: 0o644, Data: MirrorURL + "\n"},
		// With LANG set, cloud-init's locale module has nothing to
		// generate (its Debian default, en_US.UTF-8, is not built).
		{Path: "etc/default/locale", Mode: 0o644, Data: "LANG=C.UTF-8\n"},
		{Path: "etc/hostname", Mode: 0o644, Data: "localhost\n"},
		{Path: "etc/hosts", Mode: 0o644, Data: "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"},
		// No name servers: a node resolves through /etc/hosts only, and
		// any other name fails at once instead of timing out.
		{Path: "etc/resolv.conf", Mode: 0o644, Data: "# pgha lab: no name servers; names resolve through /etc/hosts.\n"},
		// Empty: each machine gets its own id on first boot.
		{Path: "etc/machine-id", Mode: 0o444, Data: ""},
	}
}

// RepoSources is the apt source line for the repository at dir, as the
// build's closure check reads it through a file: URI.
func repoFileSource(dir, suite string) string {
	return fmt.Sprintf("deb [trusted=yes] file:%s %s %s\n", strings.TrimRight(dir, "/"), suite, Component)
}
