// Package awsapi is one in-memory AWS account that answers the signed SSM
// and EC2 APIs the way AWS does, for the lab's booted machines.
//
// On AWS a node's user data reads its secrets with
// `aws ssm get-parameter --with-decryption` under its instance role, and
// validate stops and starts instances through EC2. In the boot lab those
// same commands and SDK calls reach this package instead. To be a faithful
// stand-in it does what AWS does on the way, not just what it answers:
//
//   - every request's SigV4 signature is recomputed with aws-sdk-go-v2's
//     signer from what was received, and compared (key, session token,
//     credential scope and region, X-Amz-Date within 15 minutes);
//   - every action is authorized against the caller's identity-based
//     policies (explicit Deny wins, default deny; Action/NotAction,
//     Resource/NotResource with wildcards; String, Bool and Null
//     conditions), so a role granted some parameters is refused the
//     others, and reading a SecureString also needs kms:Decrypt on the
//     aws/ssm key through SSM (kms:ViaService);
//   - errors carry the codes, HTTP statuses and messages each service
//     uses (JSON for SSM, XML for EC2), so clients print what they would
//     print on AWS.
//
// The Account holds the state: IAM roles, users, instance profiles and
// their keys, SSM parameters, EC2 instances (whose stops and starts a
// Machines implementation acts out). NewHandler serves it; serve it over
// TLS with a certificate from CA, for the names EndpointNames returns.
// Package awsapitest starts it on loopback for tests and runs awscli.
//
// # The trail
//
// Every request is written in one line to HandlerOptions.Log: the lab's
// CloudTrail, the first place to look when a boot is denied. For example
//
//	2026-12-01T16:17:52.310Z action=ssm:GetParameter
//	  caller=arn:aws:sts::123456789012:assumed-role/pgha-dev-patroni/i-0123456789abcdef0
//	  resource=arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/haproxy-stats-password
//	  decision=deny status=400 error=AccessDeniedException source=10.42.2.10:39526
//	  request=3631810f-… detail="implicit-deny ssm:GetParameter on … (policies: secrets)"
//
// (one line in the log). An authentication failure names the access key
// as the caller and says why in detail (unknown key, missing session
// token, expired credentials, clock skew, or the canonical request the
// lab computed when the signature does not match).
//
// # Not modelled
//
// Presigned (query-string) requests, SigV4a, resource-based and session
// policies, permission boundaries, SCPs, trust policies (credentials go to
// whoever the lab hands them to), policy variables, the numeric, date, IP
// and ARN condition operators and the ForAnyValue/ForAllValues prefixes
// (all refused when a policy is added, never silently ignored),
// customer-managed KMS keys, SSM operations other than GetParameter(s),
// EC2 operations other than DescribeInstances/StopInstances/StartInstances,
// and DescribeInstances pagination (everything comes in one page, without
// a NextToken, which the SDK paginators accept).
package awsapi
