package awsapi

import (
	"encoding/xml"
	"net/netip"
	"strings"
)

// ec2Namespace is the XML namespace of EC2 API version 2016-11-15, the
// version every current SDK and awscli sends.
const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlProfile struct {
	ARN string `xml:"arn"`
	ID  string `xml:"id"`
}

type xmlInstance struct {
	InstanceID     string   `xml:"instanceId"`
	ImageID        string   `xml:"imageId"`
	State          xmlState `xml:"instanceState"`
	PrivateDNSName string   `xml:"privateDnsName"`
	DNSName        string   `xml:"dnsName"`
	Reason         string   `xml:"reason"`
	KeyName        string   `xml:"keyName,omitempty"`
	AmiLaunchIndex int      `xml:"amiLaunchIndex"`
	InstanceType   string   `xml:"instanceType"`
	LaunchTime     string   `xml:"launchTime"`
	Placement      struct {
		AvailabilityZone string `xml:"availabilityZone"`
		Tenancy          string `xml:"tenancy"`
	} `xml:"placement"`
	Monitoring struct {
		State string `xml:"state"`
	} `xml:"monitoring"`
	SubnetID           string      `xml:"subnetId,omitempty"`
	VPCID              string      `xml:"vpcId,omitempty"`
	PrivateIPAddress   string      `xml:"privateIpAddress"`
	Architecture       string      `xml:"architecture"`
	RootDeviceType     string      `xml:"rootDeviceType"`
	RootDeviceName     string      `xml:"rootDeviceName"`
	VirtualizationType string      `xml:"virtualizationType"`
	IAMInstanceProfile *xmlProfile `xml:"iamInstanceProfile,omitempty"`
	StateReason        *xmlReason  `xml:"stateReason,omitempty"`
	TagSet             *struct {
		Items []xmlTag `xml:"item"`
	} `xml:"tagSet,omitempty"`
}

type xmlReservation struct {
	ReservationID string   `xml:"reservationId"`
	OwnerID       string   `xml:"ownerId"`
	GroupSet      struct{} `xml:"groupSet"`
	InstancesSet  struct {
		Items []xmlInstance `xml:"item"`
	} `xml:"instancesSet"`
}

type xmlDescribeInstances struct {
	XMLName        xml.Name `xml:"DescribeInstancesResponse"`
	Xmlns          string   `xml:"xmlns,attr"`
	RequestID      string   `xml:"requestId"`
	ReservationSet struct {
		Items []xmlReservation `xml:"item"`
	} `xml:"reservationSet"`
}

type xmlStateChange struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  xmlState `xml:"currentState"`
	PreviousState xmlState `xml:"previousState"`
}

// xmlStateChanges is the body of StopInstancesResponse and
// StartInstancesResponse: both list the instances under instancesSet.
type xmlStateChanges struct {
	XMLName      xml.Name
	Xmlns        string `xml:"xmlns,attr"`
	RequestID    string `xml:"requestId"`
	InstancesSet struct {
		Items []xmlStateChange `xml:"item"`
	} `xml:"instancesSet"`
}

type xmlErrorResponse struct {
	XMLName xml.Name `xml:"Response"`
	Errors  struct {
		Error struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Error"`
	} `xml:"Errors"`
	RequestID string `xml:"RequestID"`
}

func xmlInstanceOf(a *Account, in instance) xmlInstance {
	x := xmlInstance{
		InstanceID: in.ID, ImageID: in.ImageID, KeyName: in.KeyName, InstanceType: in.InstanceType,
		State:            xmlState{Code: in.State.Code(), Name: string(in.State)},
		PrivateDNSName:   PrivateDNSName(a.Region, in.PrivateIP),
		LaunchTime:       in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		SubnetID:         in.SubnetID,
		VPCID:            in.VPCID,
		PrivateIPAddress: in.PrivateIP.String(),
		Architecture:     "x86_64", RootDeviceType: "ebs", RootDeviceName: "/dev/xvda", VirtualizationType: "hvm",
	}
	x.Placement.AvailabilityZone, x.Placement.Tenancy = in.AvailabilityZone, "default"
	x.Monitoring.State = "disabled"
	if in.StateReason != "" {
		code, _, _ := strings.Cut(in.StateReason, ":")
		x.StateReason = &xmlReason{Code: code, Message: in.StateReason}
	}
	if ip, ok := a.InstanceProfile(in.InstanceProfile); ok {
		x.IAMInstanceProfile = &xmlProfile{ARN: ip.ARN, ID: ip.ID}
	}
	if len(in.Tags) > 0 {
		x.TagSet = &struct {
			Items []xmlTag `xml:"item"`
		}{}
		for _, k := range sortedKeys(in.Tags) {
			x.TagSet.Items = append(x.TagSet.Items, xmlTag{Key: k, Value: in.Tags[k]})
		}
	}
	return x
}

// PrivateDNSName is EC2's default private host name for an address:
// ip-10-0-1-5.eu-west-1.compute.internal (ec2.internal in us-east-1).
func PrivateDNSName(region string, ip netip.Addr) string {
	host := "ip-" + strings.ReplaceAll(ip.String(), ".", "-")
	if region == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + region + ".compute.internal"
}
