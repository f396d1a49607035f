// Package awsapi is one in-memory AWS account that answers the signed SSM,
// EC2, S3 and SNS APIs the way AWS does, for the lab's booted machines.
//
// On AWS a node's user data reads its secrets with
// `aws ssm get-parameter --with-decryption` under its instance role,
// pgBackRest keeps its repository in an S3 bucket under that role, the
// monitoring node's Alertmanager pages by publishing to an SNS topic under
// its role, and validate stops and starts instances through EC2. In the
// boot lab those same commands and SDK calls reach this package instead. To be a faithful
// stand-in it does what AWS does on the way, not just what it answers:
//
//   - every request's SigV4 signature is recomputed with aws-sdk-go-v2's
//     signer from what was received, and compared (key, session token,
//     credential scope and region, X-Amz-Date within 15 minutes); for S3
//     the signature covers X-Amz-Content-Sha256, and a body that does not
//     hash to it is refused (XAmzContentSHA256Mismatch) and not stored;
//   - every action is authorized against the caller's identity-based
//     policies (explicit Deny wins, default deny; Action/NotAction,
//     Resource/NotResource with wildcards; String, Bool and Null
//     conditions), so a role granted some parameters is refused the
//     others, and reading a SecureString also needs kms:Decrypt on the
//     aws/ssm key through SSM (kms:ViaService);
//   - S3 operations are authorized as the IAM actions AWS maps them to
//     (ListObjectsV2 is s3:ListBucket on the bucket with s3:prefix,
//     s3:delimiter and s3:max-keys; Get/HeadObject s3:GetObject on
//     BUCKET/KEY; Put, Copy, multipart s3:PutObject; DeleteObjects
//     s3:DeleteObject key by key, refused keys reported in the result),
//     and a bucket under SSE-KMS also needs, through S3, kms:GenerateDataKey
//     to write (PutObject, CopyObject, CreateMultipartUpload) and
//     kms:Decrypt to read (GetObject) and to add or assemble parts
//     (UploadPart, CompleteMultipartUpload), as AWS documents; HeadObject
//     decrypts nothing and needs no KMS permission. A missing key is
//     NoSuchKey only to a caller allowed s3:ListBucket with the key as
//     s3:prefix, else AccessDenied (S3 hides what the caller may not list);
//   - SNS Publish (the Query protocol: a form-encoded POST, as aws-sdk-go
//     v1 in Alertmanager and awscli send it) checks the message as SNS
//     does (not empty, 256 KiB with its attributes; a Subject of at most
//     100 printable ASCII characters, which Alertmanager's default subject
//     easily exceeds; at most 10 attributes of type String, Number or
//     Binary), then authorizes sns:Publish on the topic's ARN
//     (AuthorizationError), then looks the topic up (NotFound);
//   - errors carry the codes, HTTP statuses and messages each service
//     uses (JSON for SSM, XML for EC2, S3 and SNS), so clients print what
//     they would print on AWS.
//
// The Account holds the state: IAM roles, users, instance profiles and
// their keys, SSM parameters, EC2 instances (whose stops and starts a
// Machines implementation acts out), KMS keys, S3 buckets, whose
// objects an ObjectStore keeps (lab/objectstore's Server, BehindFront:
// files on disk, atomic PUTs, S3 listing semantics), and SNS topics
// (Account.AddTopic, as `pulumi up` creates them). What is published to a
// topic is its delivery: Account.Messages has it, and with
// Account.SetMessageDir each message is also appended as a JSON line to
// DIR/TOPIC.jsonl (MessageFile, ReadMessages), the lab's subscriber: the
// page that would have gone out, with its caller. NewHandler serves it;
// serve it over TLS with a certificate from CA, for the names
// CertificateNames returns; S3 answers both path style
// (s3.REGION.amazonaws.com/BUCKET/KEY) and virtual-host style
// (BucketHost: BUCKET.s3.REGION.amazonaws.com/KEY). Package awsapitest
// starts it on loopback for tests and runs awscli.
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
// (one line in the log). A Publish names the message it delivered:
//
//	… action=sns:Publish caller=…/pgha-dev-monitoring/i-… resource=arn:aws:sns:eu-west-1:123456789012:pgha-dev-alerts
//	  decision=allow status=200 … detail="MessageId 3f114951-…"
//
// An S3 call names its IAM action and, where it differs, the operation:
//
//	… action=s3:PutObject operation=UploadPart caller=… resource=arn:aws:s3:::pgha-backup/pgha/dev/archive/…
//	  decision=allow status=200 …
//
// An authentication failure names the access key
// as the caller and says why in detail (unknown key, missing session
// token, expired credentials, clock skew, or the canonical request the
// lab computed when the signature does not match).
//
// # Not modelled
//
// Presigned (query-string) requests, SigV4a, aws-chunked (STREAMING-…)
// S3 bodies, resource-based and session policies (bucket and key policies
// included: the account's own principals are governed by their identity
// policies alone, as with a key policy that delegates to IAM),
// permission boundaries, SCPs, trust policies (credentials go to whoever
// the lab hands them to), policy variables, the numeric, date, IP and ARN
// condition operators and the ForAnyValue/ForAllValues prefixes (all
// refused when a policy is added, never silently ignored), KMS's own API
// (keys exist only for S3 to use), SSM operations other than
// GetParameter(s), EC2 operations other than
// DescribeInstances/StopInstances/StartInstances, DescribeInstances
// pagination (everything comes in one page, without a NextToken, which
// the SDK paginators accept), S3 bucket management (buckets are made with
// Account.AddBucket; their encryption can be read, GetBucketEncryption),
// per-request SSE other than the bucket's default, versioning, object
// ACLs, tagging and the other subresources (refused by name), S3's
// ETag of an SSE-KMS object (the store's MD5, where S3's is opaque), SNS
// operations other than Publish (topics are made with Account.AddTopic),
// subscriptions and their delivery (the message file stands for every
// subscriber), FIFO topics, topic policies and encryption,
// MessageStructure=json, and publishing to a phone number or a mobile
// endpoint (all refused by name).
package awsapi
