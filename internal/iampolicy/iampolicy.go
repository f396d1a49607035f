// Package iampolicy writes the IAM policy documents of the stack: the
// instance roles' trust policy and what each tier's role may read. The
// program attaches them to the roles; the booted lab's AWS stand-in
// enforces the very same documents.
package iampolicy

import (
	"encoding/json"
	"fmt"
)

// AssumeRole lets EC2 assume the instance role.
func AssumeRole() string {
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Principal": map[string]any{"Service": "ec2.amazonaws.com"},
			"Action":    "sts:AssumeRole",
		}},
	})
}

// SecretsRead lets a node read the listed SecureString parameters of
// its own cluster and nothing else. kms:Decrypt is limited to calls made
// through SSM in this region and account, which is how the aws/ssm key is
// used.
func SecretsRead(parameterARNs []string, partition, region, account string) string {
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid":      "ReadOwnClusterParameters",
				"Effect":   "Allow",
				"Action":   []string{"ssm:GetParameter", "ssm:GetParameters"},
				"Resource": parameterARNs,
			},
			map[string]any{
				"Sid":      "DecryptThroughSSMOnly",
				"Effect":   "Allow",
				"Action":   "kms:Decrypt",
				"Resource": fmt.Sprintf("arn:%s:kms:%s:%s:key/*", partition, region, account),
				"Condition": map[string]any{"StringEquals": map[string]any{
					"kms:ViaService": fmt.Sprintf("ssm.%s.amazonaws.com", region),
				}},
			},
		},
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only static maps are marshalled here
	}
	return string(b)
}

// Validate is the policy validate needs for one stack, as
// docs/validate-aws.md gives it to operators: read-only listing for the
// teardown check, and stopping and starting only the stack's own
// instances (the stop fault). The booted lab's operator holds exactly it.
func Validate(stack string) string {
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid":    "PghaTeardownCheckRead",
				"Effect": "Allow",
				"Action": []string{
					"ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeNatGateways", "ec2:DescribeAddresses",
					"ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
					"ec2:DescribeRouteTables", "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeKeyPairs",
					"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups",
					"elasticloadbalancing:DescribeTags", "ssm:DescribeParameters", "iam:ListRoles", "iam:ListRoleTags",
					"iam:ListInstanceProfiles", "iam:ListInstanceProfileTags",
					// The backup bucket and its key, found by tag.
					"tag:GetResources",
				},
				"Resource": "*",
			},
			map[string]any{
				"Sid":      "PghaStopFaultOnOwnInstances",
				"Effect":   "Allow",
				"Action":   []string{"ec2:StopInstances", "ec2:StartInstances"},
				"Resource": "arn:aws:ec2:*:*:instance/*",
				"Condition": map[string]any{"StringEquals": map[string]any{
					"aws:ResourceTag/pgha:project": "pgha",
					"aws:ResourceTag/pgha:stack":   stack,
				}},
			},
		},
	})
}

// BackupRepo lets the PostgreSQL nodes use their pgBackRest repository and
// nothing else of the bucket: list only under the repository's prefix,
// read, write and delete objects only there (pgBackRest expires old
// backups itself), and use the bucket's KMS key only through S3 in this
// region. keyARN is the bucket's own key.
func BackupRepo(partition, region, bucket, prefix, keyARN string) string {
	bucketARN := fmt.Sprintf("arn:%s:s3:::%s", partition, bucket)
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid":      "ListOwnRepository",
				"Effect":   "Allow",
				"Action":   "s3:ListBucket",
				"Resource": bucketARN,
				"Condition": map[string]any{"StringLike": map[string]any{
					"s3:prefix": []string{prefix, prefix + "/*"},
				}},
			},
			map[string]any{
				"Sid":      "UseOwnRepository",
				"Effect":   "Allow",
				"Action":   []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
				"Resource": bucketARN + "/" + prefix + "/*",
			},
			map[string]any{
				"Sid":      "BucketKeyThroughS3Only",
				"Effect":   "Allow",
				"Action":   []string{"kms:GenerateDataKey", "kms:Decrypt"},
				"Resource": keyARN,
				"Condition": map[string]any{"StringEquals": map[string]any{
					"kms:ViaService": fmt.Sprintf("s3.%s.amazonaws.com", region),
				}},
			},
		},
	})
}

// PublishAlerts lets the monitoring node's Alertmanager publish to the
// stack's alert topic and to nothing else. The topic is encrypted with
// SNS's AWS-managed key, whose key policy already lets the account's
// principals use it through SNS: no KMS statement is needed.
func PublishAlerts(topicARN string) string {
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":      "PublishToOwnAlertTopic",
			"Effect":   "Allow",
			"Action":   "sns:Publish",
			"Resource": topicARN,
		}},
	})
}

// DenyInsecureTransport is a bucket policy refusing every request to the
// bucket that does not come over TLS.
func DenyInsecureTransport(bucketARN string) string {
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "TLSOnly",
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    "s3:*",
			"Resource":  []string{bucketARN, bucketARN + "/*"},
			"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
		}},
	})
}
