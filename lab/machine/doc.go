// Package machine runs one booted Debian machine per lab node: a
// systemd-nspawn container with real systemd and cloud-init as PID 1,
// standing in for an EC2 instance.
//
// Each machine's root is an overlayfs whose read-only lower layer is the
// cached image (lab/image) and whose upper layer lives in the machine's
// state directory, so the image is shared and never changes, and a
// machine keeps its disk across Kill/Poweroff and Start as an EBS root
// volume does across an EC2 stop and start (cloud-init then sees the same
// instance id and does not run the user data again).
//
// The machine joins a network namespace the caller prepared (its link, its
// address, a route to the IMDS stand-in), so the lab can cut its link from
// outside; nothing inside depends on the link to keep running. It gets no
// resolv.conf from the host: names resolve through /etc/hosts only.
//
// This package starts processes and mounts and finds them again by what
// they are (recorded PID and start time, a state-directory path in their
// command line or root mount), never by name: Leftovers and Clean list and
// remove everything a state directory still holds, for a teardown that
// proves nothing is left.
//
// systemd-nspawn runs with --register=no --keep-unit because the host need
// not run systemd as PID 1 (without them it fails with "Failed to open
// system bus"). --keep-unit leaves the container in the cgroup nspawn
// started in, so each machine starts in a cgroup of its own (cgroup.go),
// removed when it stops.
package machine
