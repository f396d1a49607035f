package components

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/iampolicy"
)

// AlertTopicArgs describe the topic the monitoring node pages through.
type AlertTopicArgs struct {
	// Name is the topic's name. It is fixed by the stack, so the
	// monitoring node's user data can name the topic before it exists.
	Name string
	// Emails are subscribed to the topic; each address must confirm the
	// subscription from the mail SNS sends it before it receives pages.
	Emails []string
	Tags   Tagger
}

// AlertTopic is the SNS topic Alertmanager publishes every firing and
// resolved alert to.
type AlertTopic struct {
	pulumi.ResourceState

	Topic *sns.Topic
	// Policy is the monitoring node's access (iampolicy.PublishAlerts).
	Policy pulumi.StringOutput
}

// NewAlertTopic creates the topic, encrypted at rest, and its e-mail
// subscriptions.
func NewAlertTopic(ctx *pulumi.Context, name string, args *AlertTopicArgs, opts ...pulumi.ResourceOption) (*AlertTopic, error) {
	a := &AlertTopic{}
	if err := ctx.RegisterComponentResource(TypeAlerts, name, a, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(a)
	var err error
	if a.Topic, err = sns.NewTopic(ctx, name+"-topic", &sns.TopicArgs{
		Name: pulumi.String(args.Name),
		// SNS's AWS-managed key: pages carry alert text, not data, and a
		// key of our own would need a key policy for SNS and every
		// subscriber's service.
		KmsMasterKeyId: pulumi.String("alias/aws/sns"),
		Tags:           args.Tags.Tags(RoleAlerts, "alerts"),
	}, parent); err != nil {
		return nil, err
	}
	for i, email := range args.Emails {
		if _, err := sns.NewTopicSubscription(ctx, fmt.Sprintf("%s-email-%d", name, i), &sns.TopicSubscriptionArgs{
			Topic:    a.Topic.Arn,
			Protocol: pulumi.String("email"),
			Endpoint: pulumi.String(email),
		}, parent); err != nil {
			return nil, err
		}
	}
	a.Policy = a.Topic.Arn.ApplyT(iampolicy.PublishAlerts).(pulumi.StringOutput)
	return a, ctx.RegisterResourceOutputs(a, pulumi.Map{"topicArn": a.Topic.Arn})
}
