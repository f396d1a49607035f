// Package imds is the EC2 instance metadata service (169.254.169.254) for
// the lab's booted machines, one http.Handler for all of them.
//
// On EC2 every instance asks the same address and gets its own answers;
// here the caller is told apart by the request's source address (each node
// calls from its own private address), and an unknown source gets 404.
//
// What it serves is what the nodes' clients ask for:
//
//   - cloud-init 22.4's Ec2 datasource: it probes /2009-04-04/ (the
//     minimum version) and then, for the newest version it knows,
//     /2021-03-23/, /2018-09-24/ and /2016-09-02/ …/meta-data/instance-id
//     in that order; it then crawls the meta-data tree (directory
//     listings, public-keys/0=NAME, …), user-data, and on AWS
//     dynamic/instance-identity/document;
//   - awscli/botocore and aws-sdk-go-v2: PUT /latest/api/token (IMDSv2),
//     then /latest/meta-data/iam/security-credentials/ and …/<role>,
//     whose temporary credentials the awsapi.Account issues for the
//     instance's role, with the instance id as the session name, as EC2
//     does.
//
// Tokens are IMDSv2's: bound to the instance that asked, expiring after
// the TTL it asked for. The Pulumi program sets HttpTokens=required, so a
// request without a token is refused (401) — except that in a container
// cloud-init cannot tell it is on AWS and probes without a token (see
// Options.AllowTokenlessBoot). The same tree is served under every
// version; real IMDS hides the categories newer than the version asked.
package imds
