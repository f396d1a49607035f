package components

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/iampolicy"
)

// BackupsArgs describe the pgBackRest repository's bucket.
type BackupsArgs struct {
	// Bucket is the bucket's name. It is fixed by the stack (not random),
	// so the nodes' user data and a restore on another stack can name it.
	Bucket string
	// Prefix is the repository's path in the bucket (no leading slash):
	// the only place the PostgreSQL nodes may read and write.
	Prefix string
	// NoncurrentDays is how long an object pgBackRest deleted or replaced
	// stays recoverable as a noncurrent version.
	NoncurrentDays int
	// Protect keeps `pulumi destroy` from deleting the bucket (and the
	// backups in it); when off, destroy empties and deletes it.
	Protect   bool
	Partition string
	Region    string
	Tags      Tagger
}

// Backups is the backup repository: a private, versioned bucket encrypted
// with a key of its own.
type Backups struct {
	pulumi.ResourceState

	Bucket *s3.BucketV2
	Key    *kms.Key
	// Policy is the PostgreSQL nodes' access (iampolicy.BackupRepo).
	Policy pulumi.StringOutput
	// Resources are the custom resources a node's first backup needs.
	Resources Dependencies
}

// NewBackups creates the bucket and its key.
func NewBackups(ctx *pulumi.Context, name string, args *BackupsArgs, opts ...pulumi.ResourceOption) (*Backups, error) {
	b := &Backups{}
	if err := ctx.RegisterComponentResource(TypeBackups, name, b, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(b)
	keep := pulumi.Protect(args.Protect)
	var err error
	if b.Key, err = kms.NewKey(ctx, name+"-key", &kms.KeyArgs{
		Description:       pulumi.String("pgha backups of stack " + args.Tags.Stack),
		EnableKeyRotation: pulumi.Bool(true),
		// The longest wait before a deleted key is gone: the backups are
		// unreadable without it.
		DeletionWindowInDays: pulumi.Int(30),
		Tags:                 keepTags(args.Tags.Tags(RoleBackups, "backups-key"), args.Protect),
	}, parent, keep); err != nil {
		return nil, err
	}
	if b.Bucket, err = s3.NewBucketV2(ctx, name+"-bucket", &s3.BucketV2Args{
		Bucket: pulumi.String(args.Bucket),
		// Unprotected, destroy means the backups go too; protected, the
		// bucket is never deleted by Pulumi at all.
		ForceDestroy: pulumi.Bool(!args.Protect),
		Tags:         keepTags(args.Tags.Tags(RoleBackups, "backups"), args.Protect),
	}, parent, keep); err != nil {
		return nil, err
	}
	bucket := b.Bucket.ID()
	pab, err := s3.NewBucketPublicAccessBlock(ctx, name+"-private", &s3.BucketPublicAccessBlockArgs{
		Bucket:                bucket,
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, err
	}
	own, err := s3.NewBucketOwnershipControls(ctx, name+"-owner", &s3.BucketOwnershipControlsArgs{
		Bucket: bucket,
		Rule:   s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")}, // no ACLs
	}, parent)
	if err != nil {
		return nil, err
	}
	sse, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name+"-encryption", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket,
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm:   pulumi.String("aws:kms"),
				KmsMasterKeyId: b.Key.Arn,
			},
			// One data key per bucket, not per object: far fewer KMS calls.
			BucketKeyEnabled: pulumi.Bool(true),
		}},
	}, parent)
	if err != nil {
		return nil, err
	}
	ver, err := s3.NewBucketVersioningV2(ctx, name+"-versioning", &s3.BucketVersioningV2Args{
		Bucket:                  bucket,
		VersioningConfiguration: s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, parent)
	if err != nil {
		return nil, err
	}
	// pgBackRest expires backups itself (repo1-retention-full); what it
	// deletes stays a noncurrent version for a while, then goes.
	if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name+"-lifecycle", &s3.BucketLifecycleConfigurationV2Args{
		Bucket: bucket,
		Rules: s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{
			Id:     pulumi.String("expire-deleted-and-abandoned"),
			Status: pulumi.String("Enabled"),
			Filter: s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String("")},
			NoncurrentVersionExpiration: s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{
				NoncurrentDays: pulumi.Int(args.NoncurrentDays),
			},
			AbortIncompleteMultipartUpload: s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{
				DaysAfterInitiation: pulumi.Int(7),
			},
		}},
	}, parent, pulumi.DependsOn([]pulumi.Resource{ver})); err != nil {
		return nil, err
	}
	// TLS only, whatever a client asks for.
	pol, err := s3.NewBucketPolicy(ctx, name+"-tls-only", &s3.BucketPolicyArgs{
		Bucket: bucket,
		Policy: b.Bucket.Arn.ApplyT(func(arn string) (string, error) {
			return iampolicy.DenyInsecureTransport(arn), nil
		}).(pulumi.StringOutput),
	}, parent, pulumi.DependsOn([]pulumi.Resource{pab}))
	if err != nil {
		return nil, err
	}
	b.Policy = b.Key.Arn.ApplyT(func(key string) (string, error) {
		return iampolicy.BackupRepo(args.Partition, args.Region, args.Bucket, args.Prefix, key), nil
	}).(pulumi.StringOutput)
	b.Resources = Dependencies{b.Bucket, b.Key, pab, own, sse, ver, pol}
	return b, ctx.RegisterResourceOutputs(b, pulumi.Map{
		"bucket": b.Bucket.ID(),
		"keyArn": b.Key.Arn,
	})
}

// keepTags marks what the stack keeps on purpose, for the teardown check.
func keepTags(tags pulumi.StringMap, keep bool) pulumi.StringMap {
	tags[TagKeep] = pulumi.String(fmt.Sprint(keep))
	return tags
}
