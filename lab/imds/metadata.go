package imds

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/lab/awsapi"
)

// tree builds an instance's metadata from the account's view of it (which
// changes: state, profile) and the registration.
func (s *Server) tree(inst *Instance) (*node, bool) {
	a := s.opts.Account
	ec2, ok := a.Instance(inst.ID)
	if !ok {
		return nil, false
	}
	host := awsapi.PrivateDNSName(a.Region, ec2.PrivateIP)
	ip := ec2.PrivateIP.String()
	groups := strings.Join(inst.SecurityGroups, "\n")

	iface := dir(
		e("device-number", leaf("0")),
		e("interface-id", leaf("eni-0"+strings.ReplaceAll(inst.MAC, ":", "")+"0000")),
		e("local-hostname", leaf(host)),
		e("local-ipv4s", leaf(ip)),
		e("mac", leaf(inst.MAC)),
		e("owner-id", leaf(a.ID)),
		e("security-group-ids", opt(strings.Join(inst.SecurityGroupIDs, "\n"))),
		e("security-groups", opt(groups)),
		e("subnet-id", opt(ec2.SubnetID)),
		e("subnet-ipv4-cidr-block", opt(inst.SubnetCIDR)),
		e("vpc-id", opt(ec2.VPCID)),
		e("vpc-ipv4-cidr-block", opt(inst.VPCCIDR)),
		e("vpc-ipv4-cidr-blocks", opt(inst.VPCCIDR)),
	)
	meta := dir(
		e("ami-id", opt(ec2.ImageID)),
		e("ami-launch-index", leaf("0")),
		e("ami-manifest-path", leaf("(unknown)")),
		e("block-device-mapping", dir(e("ami", leaf("/dev/xvda")), e("root", leaf("/dev/xvda")))),
		e("hostname", leaf(host)),
		e("iam", s.iam(inst, ec2)),
		e("instance-action", leaf("none")),
		e("instance-id", leaf(ec2.ID)),
		e("instance-life-cycle", leaf("on-demand")),
		e("instance-type", opt(ec2.InstanceType)),
		e("local-hostname", leaf(host)),
		e("local-ipv4", leaf(ip)),
		e("mac", leaf(inst.MAC)),
		e("network", dir(e("interfaces", dir(e("macs", dir(e(inst.MAC, iface))))))),
		e("placement", dir(e("availability-zone", leaf(ec2.AvailabilityZone)), e("region", leaf(a.Region)))),
		e("profile", leaf("default-hvm")),
		e("public-keys", publicKeys(ec2.KeyName, inst.PublicKey)),
		e("security-groups", opt(groups)),
		e("services", dir(e("domain", leaf("amazonaws.com")), e("partition", leaf(a.Partition)))),
	)
	var userData *node
	if len(inst.UserData) > 0 {
		userData = leaf(string(inst.UserData))
	}
	root := dir(
		e("dynamic", dir(e("instance-identity", dir(e("document", lazy(func() (string, error) {
			return identityDocument(a, ec2)
		})))))),
		e("meta-data", meta),
		e("user-data", userData),
	)
	return root, true
}

func opt(v string) *node {
	if v == "" {
		return nil
	}
	return leaf(v)
}

// publicKeys lists the key pair as "0=NAME", its key under 0/openssh-key.
func publicKeys(name, key string) *node {
	if name == "" || key == "" {
		return nil
	}
	n := dir(e("0", dir(e("openssh-key", leaf(strings.TrimSpace(key))))))
	n.listing = []string{"0=" + name}
	return n
}

// iam is the iam/ directory of an instance with an instance profile.
func (s *Server) iam(inst *Instance, ec2 awsapi.Instance) *node {
	if ec2.InstanceProfile == "" {
		return nil
	}
	ip, ok := s.opts.Account.InstanceProfile(ec2.InstanceProfile)
	if !ok {
		return nil
	}
	info := lazy(func() (string, error) {
		return jsonText(struct {
			Code               string
			LastUpdated        string
			InstanceProfileArn string
			InstanceProfileId  string
		}{"Success", imdsTime(s.opts.Account.Now()), ip.ARN, ip.ID})
	})
	creds := lazy(func() (string, error) { return s.credentials(inst, ip.Role) })
	return dir(e("info", info), e("security-credentials", dir(e(ip.Role, creds))))
}

// credentials are the role's temporary credentials for the instance, the
// same ones until less than half their lifetime is left.
func (s *Server) credentials(inst *Instance, role string) (string, error) {
	now := s.opts.Account.Now()
	key := inst.ID + "/" + role
	s.mu.Lock()
	c, ok := s.creds[key]
	s.mu.Unlock()
	if !ok || c.Expiration.Sub(now) < s.opts.CredentialTTL/2 {
		var err error
		c, err = s.opts.Account.RoleCredentials(role, inst.ID, s.opts.CredentialTTL)
		if err != nil {
			// EC2 reports a role it cannot assume in the body, with 200.
			return jsonText(struct{ Code, Message, LastUpdated string }{
				"AssumeRoleUnauthorizedAccess", err.Error(), imdsTime(now)})
		}
		s.mu.Lock()
		s.creds[key] = c
		s.mu.Unlock()
	}
	return jsonText(struct {
		Code            string
		LastUpdated     string
		Type            string
		AccessKeyId     string
		SecretAccessKey string
		Token           string
		Expiration      string
	}{"Success", imdsTime(c.Expiration.Add(-s.opts.CredentialTTL)), "AWS-HMAC",
		c.AccessKeyID, c.SecretAccessKey, c.SessionToken, imdsTime(c.Expiration)})
}

// identityDocument is dynamic/instance-identity/document. It is not
// signed: pkcs7 and signature are not served (see the package doc).
func identityDocument(a *awsapi.Account, in awsapi.Instance) (string, error) {
	return jsonText(struct {
		AccountID               string  `json:"accountId"`
		Architecture            string  `json:"architecture"`
		AvailabilityZone        string  `json:"availabilityZone"`
		BillingProducts         *string `json:"billingProducts"`
		DevpayProductCodes      *string `json:"devpayProductCodes"`
		MarketplaceProductCodes *string `json:"marketplaceProductCodes"`
		ImageID                 string  `json:"imageId"`
		InstanceID              string  `json:"instanceId"`
		InstanceType            string  `json:"instanceType"`
		KernelID                *string `json:"kernelId"`
		PendingTime             string  `json:"pendingTime"`
		PrivateIP               string  `json:"privateIp"`
		RamdiskID               *string `json:"ramdiskId"`
		Region                  string  `json:"region"`
		Version                 string  `json:"version"`
	}{
		AccountID: a.ID, Architecture: "x86_64", AvailabilityZone: in.AvailabilityZone,
		ImageID: in.ImageID, InstanceID: in.ID, InstanceType: in.InstanceType,
		PendingTime: imdsTime(in.LaunchTime), PrivateIP: in.PrivateIP.String(),
		Region: a.Region, Version: "2017-09-30",
	})
}

func jsonText(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("imds: %w", err)
	}
	return string(b), nil
}

func imdsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
