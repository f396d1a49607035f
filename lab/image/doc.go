// Package image builds the lab's stand-in for the official Debian 12 AMI:
// a root file system made with debootstrap (minbase) plus what the AMI
// carries and user data relies on (systemd, cloud-init 22.4 with the Ec2
// datasource, sshd, sudo, curl, CA certificates, the admin user), and next
// to it a small Debian repository holding the closure of the packages the
// nodes' user data installs, because the nodes cannot reach any mirror.
//
// The host's Debian mirror is read from its apt configuration at build time
// and is used only by the build: the image's apt reads the lab repository
// at MirrorURL (a fixed name each machine resolves through /etc/hosts),
// through apt's mirror+file method, the way Debian's cloud images do, so
// that cloud-init's first boot rewrites the mirror list with the same lab
// address. Handler serves that repository.
//
// Images are cached under DefaultCacheDir()/images/<hash>/{rootfs,repo,
// recipe.json}; the hash covers the whole Recipe. Build returns a cached
// image at once, builds a missing one in a temporary directory that is
// renamed into place when complete, and holds a file lock meanwhile so that
// two processes never build at the same time.
package image
