package imds_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/imds"
)

// The wiring of one node, as the boot lab does it: the account (role,
// profile, instance, parameter), the signed APIs over TLS with the lab
// CA, and the metadata service recognizing the node by its address. Here
// the node is this process, calling from 127.0.0.1.
func Example() {
	acct, _ := awsapi.NewAccount("123456789012", "eu-west-1")
	defer acct.Close()
	_, _ = acct.PutParameter("/pgha/dev/postgres-password", "s3cret", awsapi.SecureString)
	_ = acct.AddRole("pgha-dev-patroni")
	_ = acct.PutRolePolicy("pgha-dev-patroni", "secrets", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"arn:aws:ssm:eu-west-1:123456789012:parameter/pgha/dev/postgres-password"},
		{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:ViaService":"ssm.eu-west-1.amazonaws.com"}}}]}`)
	_, _ = acct.AddInstanceProfile("pgha-dev-patroni", "pgha-dev-patroni")
	_ = acct.AddInstance(awsapi.Instance{ID: "i-0123456789abcdef0", PrivateIP: netip.MustParseAddr("10.42.2.10"),
		AvailabilityZone: "eu-west-1a", InstanceProfile: "pgha-dev-patroni"})

	// The APIs: in the boot lab, one listener that the nodes reach as
	// ssm.eu-west-1.amazonaws.com and ec2.eu-west-1.amazonaws.com.
	ca, _ := awsapi.NewCA("pgha lab CA")
	sc, _ := ca.Issue(append(awsapi.EndpointNames("eu-west-1"), "127.0.0.1")...)
	cert, _ := sc.TLSCertificate()
	api := httptest.NewUnstartedServer(awsapi.NewHandler(acct, awsapi.HandlerOptions{}))
	api.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	api.StartTLS()
	defer api.Close()

	// The metadata service: in the boot lab, 169.254.169.254:80.
	md, _ := imds.New(imds.Options{Account: acct, AllowTokenlessBoot: true})
	_ = md.Add(imds.Instance{ID: "i-0123456789abcdef0", Source: netip.MustParseAddr("127.0.0.1"),
		UserData: []byte("#cloud-config\n")})
	meta := httptest.NewServer(md)
	defer meta.Close()

	// The node: role credentials from IMDS, then the secret.
	creds := aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) {
		o.Client = sdkimds.New(sdkimds.Options{Endpoint: meta.URL})
	}))
	client := ssm.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: creds, BaseEndpoint: aws.String(api.URL),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}})
	out, err := client.GetParameter(context.Background(), &ssm.GetParameterInput{
		Name: aws.String("/pgha/dev/postgres-password"), WithDecryption: aws.Bool(true)})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(aws.ToString(out.Parameter.Value))

	resp, _ := http.Get(meta.URL + "/latest/meta-data/iam/security-credentials/")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println("tokenless credentials request:", resp.StatusCode)
	// Output:
	// s3cret
	// tokenless credentials request: 401
}
