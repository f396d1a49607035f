package awsapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// s3Namespace is the XML namespace of every S3 response body.
const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

// maxObjectSize is S3's limit for one PUT (and one part): 5 GiB. Bodies
// are not held here: they stream through a SHA-256 check to the object
// store, which receives a PUT into a file of its own and commits it only
// once the whole body arrived (lab/objectstore), so a body found not to
// match its X-Amz-Content-Sha256 at its end leaves nothing behind.
// What arrives is bounded by the clients anyway: pgBackRest 2.45 sends at
// most repo-storage-upload-chunk-size (5 MiB by default) per request and
// awscli at most its 8 MiB multipart chunk.
const maxObjectSize = 5 << 30

// maxDeleteBody bounds a DeleteObjects request, which is read here to
// authorize each key: 1000 keys of up to 1024 bytes, escaped.
const maxDeleteBody = 4 << 20

type s3Service struct{}

// authError words authentication failures as S3 does: S3 has codes of
// its own (InvalidAccessKeyId, SignatureDoesNotMatch, …), mostly 403.
func (s3Service) authError(e *authError) *apiError {
	codes := map[authFailure]apiError{
		authMissing:      {Code: "AccessDenied", Status: http.StatusForbidden, Message: "Access Denied"},
		authIncomplete:   {Code: "AuthorizationHeaderMalformed", Status: http.StatusBadRequest, Message: "The authorization header is malformed."},
		authUnknownKey:   {Code: "InvalidAccessKeyId", Status: http.StatusForbidden, Message: "The AWS Access Key Id you provided does not exist in our records."},
		authBadToken:     {Code: "InvalidToken", Status: http.StatusBadRequest, Message: "The provided token is malformed or otherwise invalid."},
		authExpiredToken: {Code: "ExpiredToken", Status: http.StatusBadRequest, Message: "The provided token has expired."},
		authBadSignature: {Code: "SignatureDoesNotMatch", Status: http.StatusForbidden, Message: "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
		authSkew:         {Code: "RequestTimeTooSkewed", Status: http.StatusForbidden, Message: "The difference between the request time and the current time is too large."},
		authWrongRegion:  {Code: "AuthorizationHeaderMalformed", Status: http.StatusBadRequest, Message: "The authorization header is malformed; the region is wrong."},
	}
	out := codes[e.kind]
	if e.msg != "" && e.kind == authIncomplete {
		out.Message = e.msg
	}
	return &out
}

// s3Error is S3's error document.
type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

func (s3Service) writeError(c *call, e *apiError) {
	h := c.w.Header()
	h.Set("x-amz-request-id", c.id)
	h.Set("Content-Type", "application/xml")
	c.w.WriteHeader(e.Status)
	if c.r.Method == http.MethodHead {
		return // S3 answers a HEAD with the status alone
	}
	body, _ := xml.Marshal(s3Error{Code: e.Code, Message: e.Message, RequestID: c.id, HostID: hostID(c.id)})
	_, _ = c.w.Write([]byte(xml.Header))
	_, _ = c.w.Write(body)
}

func hostID(requestID string) string {
	sum := sha256.Sum256([]byte(requestID))
	return hex.EncodeToString(sum[:])
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// payloadHash is what S3 signs for the body: the X-Amz-Content-Sha256
// header, which every signed S3 request carries. Its value is checked
// against the body as the body streams (s3Body).
func (s3Service) payloadHash(c *call) (string, *apiError) {
	if c.r.Header.Get("Authorization") == "" {
		return "", nil // unsigned: authentication answers
	}
	v := c.r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case v == "":
		return "", &apiError{Code: "InvalidRequest", Status: http.StatusBadRequest,
			Message: "Missing required header for this request: x-amz-content-sha256"}
	case v == "UNSIGNED-PAYLOAD" || sha256Hex.MatchString(v):
		return v, nil
	case strings.HasPrefix(v, "STREAMING-"):
		return "", &apiError{Code: "NotImplemented", Status: http.StatusNotImplemented,
			Message: fmt.Sprintf("A header you provided implies functionality that is not implemented: the lab's S3 takes no aws-chunked bodies (x-amz-content-sha256: %s); sign the payload or send UNSIGNED-PAYLOAD.", v)}
	}
	return "", &apiError{Code: "InvalidArgument", Status: http.StatusBadRequest,
		Message: "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value."}
}

// s3Op is one S3 operation as IAM sees it.
type s3Op struct {
	name     string // the API operation, e.g. ListObjectsV2
	action   string // the IAM action, e.g. s3:ListBucket
	resource string
	// bucketLevel: the resource is the bucket; otherwise bucket/key.
	bucketLevel bool
	// kms is the KMS action S3 performs for the caller on an SSE-KMS
	// bucket's key before it answers: GenerateDataKey to encrypt a new
	// object, Decrypt to read one (and for multipart parts, which S3
	// encrypts with the upload's data key: AWS documents kms:Decrypt for
	// UploadPart and to assemble the parts).
	kms string
	// kmsOnSuccess: the KMS call happens only when there is an object
	// (GetObject of a missing key is NoSuchKey, not a KMS denial).
	kmsOnSuccess bool
	// sse: a response that carries the object's encryption headers.
	sse bool
	// forward: the object store serves it, once authorized.
	forward bool
}

// s3Target is the bucket and key a request addresses, from a
// virtual-host name (BUCKET.s3.REGION.amazonaws.com) or the path.
func (a *Account) s3Target(r *http.Request) (bucket, key string) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if b, ok := strings.CutSuffix(host, "."+S3Endpoint(a.Region)); ok && b != "" {
		return b, strings.TrimPrefix(r.URL.Path, "/")
	}
	bucket, key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return bucket, key
}

// s3Subresources are query parameters that make a request a different
// operation; those the lab does not implement are refused by name.
var s3Subresources = []string{"accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
	"inventory", "legal-hold", "lifecycle", "location", "logging", "metrics", "notification", "object-lock",
	"ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
	"retention", "select", "tagging", "torrent", "versioning", "versions", "website", "uploads", "uploadId", "delete"}

// classify maps a request to its operation and IAM action, as the S3
// documentation's "Actions, resources, and condition keys" table does.
func classify(r *http.Request, bucket, key string) (s3Op, string) {
	q := r.URL.Query()
	sub := ""
	for _, s := range s3Subresources {
		if _, ok := q[s]; ok {
			sub = s
			break
		}
	}
	_, hasVersion := q["versionId"]
	copySource := r.Header.Get("X-Amz-Copy-Source") != ""
	obj := func(name, action, kms string) (s3Op, string) {
		return s3Op{name: name, action: action, resource: "arn:aws:s3:::" + bucket + "/" + key, kms: kms, sse: true, forward: true}, ""
	}
	bkt := func(name, action string) (s3Op, string) {
		return s3Op{name: name, action: action, resource: "arn:aws:s3:::" + bucket, bucketLevel: true, forward: true}, ""
	}
	m := r.Method
	switch {
	case bucket == "":
		if m == http.MethodGet && sub == "" {
			return s3Op{name: "ListBuckets", action: "s3:ListAllMyBuckets", resource: "*", forward: true}, ""
		}
	case key == "":
		switch {
		case m == http.MethodGet && sub == "":
			if q.Get("list-type") == "2" {
				return bkt("ListObjectsV2", "s3:ListBucket")
			}
			return bkt("ListObjects", "s3:ListBucket")
		case m == http.MethodHead && sub == "":
			return bkt("HeadBucket", "s3:ListBucket")
		case m == http.MethodGet && sub == "location":
			op, _ := bkt("GetBucketLocation", "s3:GetBucketLocation")
			op.forward = false
			return op, ""
		case m == http.MethodGet && sub == "encryption":
			op, _ := bkt("GetBucketEncryption", "s3:GetEncryptionConfiguration")
			op.forward = false
			return op, ""
		case m == http.MethodGet && sub == "versioning":
			return bkt("GetBucketVersioning", "s3:GetBucketVersioning")
		case m == http.MethodGet && sub == "versions":
			return bkt("ListObjectVersions", "s3:ListBucketVersions")
		case m == http.MethodGet && sub == "uploads":
			return bkt("ListMultipartUploads", "s3:ListBucketMultipartUploads")
		case m == http.MethodPost && sub == "delete":
			// Authorized key by key (deleteObjects).
			return s3Op{name: "DeleteObjects", action: "s3:DeleteObject", resource: "arn:aws:s3:::" + bucket}, ""
		case m == http.MethodPut && sub == "":
			op, _ := bkt("CreateBucket", "s3:CreateBucket")
			op.forward = false
			return op, ""
		case m == http.MethodDelete && sub == "":
			op, _ := bkt("DeleteBucket", "s3:DeleteBucket")
			op.forward = false
			return op, ""
		}
	default:
		switch {
		case m == http.MethodGet && sub == "" && !hasVersion:
			op, _ := obj("GetObject", "s3:GetObject", "kms:Decrypt")
			op.kmsOnSuccess = true
			return op, ""
		case m == http.MethodGet && sub == "" && hasVersion:
			op, _ := obj("GetObject", "s3:GetObjectVersion", "kms:Decrypt")
			op.kmsOnSuccess = true
			return op, ""
		case m == http.MethodHead && sub == "":
			// S3 decrypts nothing for a HEAD: no KMS call, no KMS permission.
			action := "s3:GetObject"
			if hasVersion {
				action = "s3:GetObjectVersion"
			}
			return obj("HeadObject", action, "")
		case m == http.MethodPut && sub == "" && q.Get("partNumber") == "" && copySource:
			return obj("CopyObject", "s3:PutObject", "kms:GenerateDataKey")
		case m == http.MethodPut && sub == "" && q.Get("partNumber") == "":
			return obj("PutObject", "s3:PutObject", "kms:GenerateDataKey")
		case m == http.MethodPut && sub == "uploadId" && !copySource:
			return obj("UploadPart", "s3:PutObject", "kms:Decrypt")
		case m == http.MethodPost && sub == "uploads":
			return obj("CreateMultipartUpload", "s3:PutObject", "kms:GenerateDataKey")
		case m == http.MethodPost && sub == "uploadId":
			return obj("CompleteMultipartUpload", "s3:PutObject", "kms:Decrypt")
		case m == http.MethodDelete && sub == "uploadId":
			op, _ := obj("AbortMultipartUpload", "s3:AbortMultipartUpload", "")
			op.sse = false
			return op, ""
		case m == http.MethodGet && sub == "uploadId":
			op, _ := obj("ListParts", "s3:ListMultipartUploadParts", "")
			op.sse = false
			return op, ""
		case m == http.MethodDelete && sub == "":
			action := "s3:DeleteObject"
			if hasVersion {
				action = "s3:DeleteObjectVersion"
			}
			op, _ := obj("DeleteObject", action, "")
			op.sse = false
			return op, ""
		}
	}
	what := m + " /" + bucket
	if key != "" {
		what += "/KEY"
	}
	if sub != "" {
		what += "?" + sub
	}
	return s3Op{}, what
}

const s3Implemented = "ListObjects(V2), HeadBucket, GetBucketLocation, GetBucketEncryption, GetBucketVersioning, ListObjectVersions, " +
	"ListBuckets, GetObject, HeadObject, PutObject, CopyObject, DeleteObject, DeleteObjects, CreateMultipartUpload, " +
	"UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads and ListParts"

func (s s3Service) serve(c *call) {
	acct := c.h.acct
	bucket, key := acct.s3Target(c.r)
	op, unknown := classify(c.r, bucket, key)
	if unknown != "" {
		c.ev.action = "s3:?"
		c.fail(&apiError{Code: "NotImplemented", Status: http.StatusNotImplemented,
			Message: fmt.Sprintf("A header you provided implies functionality that is not implemented. (The lab's S3 implements %s; this request is %s.)", s3Implemented, unknown)})
		return
	}
	c.ev.action, c.ev.operation = op.action, op.name
	c.ev.resources = []string{op.resource}
	b, exists := acct.Bucket(bucket)
	ctx := s.conditionKeys(c, op)
	if exists {
		ctx["s3:ResourceAccount"] = acct.ID
	}
	if op.name == "DeleteObjects" {
		s.deleteObjects(c, bucket, b, exists, ctx)
		return
	}
	if d := c.authorize(op.action, op.resource, ctx); d != Allowed {
		c.fail(c.s3Denied(op.action, op.resource, d))
		return
	}
	if bucket != "" && !exists {
		c.fail(&apiError{Code: "NoSuchBucket", Status: http.StatusNotFound, Message: "The specified bucket does not exist",
			detail: "no bucket " + bucket + " in the account (Account.AddBucket)"})
		return
	}
	if e := s.checkSSEHeaders(c, b); e != nil {
		c.fail(e)
		return
	}
	if op.name == "CopyObject" {
		if e := s.authorizeCopySource(c); e != nil {
			c.fail(e)
			return
		}
	}
	if op.kms != "" && b.KMSKeyARN != "" && !op.kmsOnSuccess {
		if e := c.s3KMS(op, b, key); e != nil {
			c.fail(e)
			return
		}
	}
	switch op.name {
	case "GetBucketLocation":
		body, _ := xml.Marshal(struct {
			XMLName xml.Name `xml:"LocationConstraint"`
			NS      string   `xml:"xmlns,attr"`
			Region  string   `xml:",chardata"`
		}{NS: s3Namespace, Region: acct.Region})
		c.okXML(body)
		return
	case "GetBucketEncryption":
		c.okXML(encryptionConfiguration(b))
		return
	case "CreateBucket":
		c.fail(&apiError{Code: "BucketAlreadyOwnedByYou", Status: http.StatusConflict,
			Message: "Your previous request to create the named bucket succeeded and you already own it."})
		return
	case "DeleteBucket":
		c.fail(&apiError{Code: "NotImplemented", Status: http.StatusNotImplemented,
			Message: "The lab's buckets live as long as the lab: DeleteBucket is not implemented."})
		return
	}
	if (op.name == "PutObject" || op.name == "UploadPart") && c.r.ContentLength > maxObjectSize {
		c.fail(&apiError{Code: "EntityTooLarge", Status: http.StatusBadRequest,
			Message: "Your proposed upload exceeds the maximum allowed object size."})
		return
	}
	s.forward(c, op, b, bucket, key)
}

// conditionKeys are the S3 condition keys of a request, beside the global
// ones authorize adds.
func (s3Service) conditionKeys(c *call, op s3Op) map[string]string {
	ctx := map[string]string{
		"s3:signatureversion":     "AWS4-HMAC-SHA256",
		"s3:authType":             "REST-HEADER",
		"s3:x-amz-content-sha256": c.r.Header.Get("X-Amz-Content-Sha256"),
	}
	if op.action == "s3:ListBucket" || op.action == "s3:ListBucketVersions" {
		q := c.r.URL.Query()
		for _, k := range []string{"prefix", "delimiter", "max-keys"} {
			if _, ok := q[k]; ok {
				ctx["s3:"+k] = q.Get(k)
			}
		}
	}
	for _, h := range []string{"x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"} {
		if v := c.r.Header.Get(h); v != "" {
			ctx["s3:"+h] = v
		}
	}
	return ctx
}

// checkSSEHeaders: a request may name the bucket's own encryption, which
// changes nothing; the lab does not encrypt objects otherwise.
func (s3Service) checkSSEHeaders(c *call, b Bucket) *apiError {
	alg := c.r.Header.Get("X-Amz-Server-Side-Encryption")
	keyID := c.r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
	if alg == "" && keyID == "" {
		return nil
	}
	want := "AES256"
	if b.KMSKeyARN != "" {
		want = "aws:kms"
	}
	if alg == want && (keyID == "" || keyID == b.KMSKeyARN) {
		return nil
	}
	return &apiError{Code: "NotImplemented", Status: http.StatusNotImplemented,
		Message: fmt.Sprintf("A header you provided implies functionality that is not implemented: the lab encrypts objects with the bucket's default (%s %s) only.", want, b.KMSKeyARN)}
}

// authorizeCopySource: CopyObject also reads its source (s3:GetObject,
// and kms:Decrypt when the source is under a KMS key).
func (s3Service) authorizeCopySource(c *call) *apiError {
	src := c.r.Header.Get("X-Amz-Copy-Source")
	if i := strings.Index(src, "?"); i >= 0 {
		src = src[:i]
	}
	if u, err := url.PathUnescape(src); err == nil {
		src = u
	}
	sb, sk, ok := strings.Cut(strings.TrimPrefix(src, "/"), "/")
	if !ok || sb == "" || sk == "" {
		return &apiError{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"}
	}
	arn := "arn:aws:s3:::" + sb + "/" + sk
	c.ev.resources = append(c.ev.resources, arn)
	if d := c.authorize("s3:GetObject", arn, nil); d != Allowed {
		return c.s3Denied("s3:GetObject", arn, d)
	}
	srcBucket, ok := c.h.acct.Bucket(sb)
	if !ok {
		return &apiError{Code: "NoSuchBucket", Status: http.StatusNotFound, Message: "The specified bucket does not exist"}
	}
	if srcBucket.KMSKeyARN != "" {
		return c.s3KMS(s3Op{name: "CopyObject", action: "s3:GetObject", kms: "kms:Decrypt"}, srcBucket, sk)
	}
	return nil
}

// s3KMS authorizes the KMS call S3 makes for the caller on the bucket's
// key: through S3 in this region (kms:ViaService), with the object's (or,
// with a bucket key, the bucket's) ARN as encryption context.
func (c *call) s3KMS(op s3Op, b Bucket, key string) *apiError {
	acct := c.h.acct
	context := b.ARN() + "/" + key
	if b.BucketKeyEnabled {
		context = b.ARN()
	}
	d := c.authorize(op.kms, b.KMSKeyARN, map[string]string{
		"kms:ViaService":                   S3Endpoint(acct.Region),
		"kms:CallerAccount":                acct.ID,
		"kms:EncryptionContext:aws:s3:arn": context,
	})
	if d == Allowed {
		return nil
	}
	c.ev.resources = append(c.ev.resources, b.KMSKeyARN)
	return &apiError{Code: "AccessDenied", Status: http.StatusForbidden, deny: true,
		Message: deniedMessage(c.caller.arn, op.kms, b.KMSKeyARN, d),
		detail: fmt.Sprintf("%s allowed, but %s %s on %s through S3 for %s (policies: %s)",
			op.action, d, op.kms, b.KMSKeyARN, context, policyNames(c.caller.policies))}
}

// s3Denied is S3's AccessDenied, with the detailed message S3 gives a
// caller of the bucket's own account (the resource in quotes).
func (c *call) s3Denied(action, resource string, d Decision) *apiError {
	e := c.denied("AccessDenied", http.StatusForbidden, "", action, resource, d)
	e.Message = strings.Replace(e.Message, "on resource: "+resource, `on resource: "`+resource+`"`, 1)
	return e
}

func (c *call) okXML(body []byte) {
	c.ev.status, c.ev.decision = http.StatusOK, "allow"
	c.w.Header().Set("x-amz-request-id", c.id)
	c.w.Header().Set("Content-Type", "application/xml")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write([]byte(xml.Header))
	_, _ = c.w.Write(body)
}

func encryptionConfiguration(b Bucket) []byte {
	type rule struct {
		Default struct {
			Algorithm string `xml:"SSEAlgorithm"`
			KeyID     string `xml:"KMSMasterKeyID,omitempty"`
		} `xml:"ApplyServerSideEncryptionByDefault"`
		BucketKey bool `xml:"BucketKeyEnabled"`
	}
	var r rule
	r.Default.Algorithm, r.Default.KeyID, r.BucketKey = "AES256", b.KMSKeyARN, b.BucketKeyEnabled
	if b.KMSKeyARN != "" {
		r.Default.Algorithm = "aws:kms"
	}
	body, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"ServerSideEncryptionConfiguration"`
		NS      string   `xml:"xmlns,attr"`
		Rule    rule     `xml:"Rule"`
	}{NS: s3Namespace, Rule: r})
	return body
}

// forwardedHeaders are the request headers the object store sees: what S3
// stores with an object or acts on. Credentials, signing headers and
// X-Amz-* headers the lab does not model stay here (the store would keep
// every X-Amz-* header as object metadata, the session token included).
var forwardedHeaders = map[string]bool{"Content-Length": true, "Content-Type": true, "Content-Md5": true,
	"Content-Encoding": true, "Content-Disposition": true, "Content-Language": true, "Cache-Control": true,
	"Expires": true, "Range": true, "If-Match": true, "If-None-Match": true, "If-Modified-Since": true,
	"If-Unmodified-Since": true, "X-Amz-Copy-Source": true, "X-Amz-Copy-Source-Range": true,
	"X-Amz-Metadata-Directive": true, "X-Amz-Storage-Class": true}

var errContentSHA256 = errors.New("the body does not match x-amz-content-sha256")

// s3Body checks a streaming body against its declared SHA-256 at its end.
type s3Body struct {
	r        io.ReadCloser
	want     string
	h        hash.Hash
	mismatch bool
	n        int64
}

func (b *s3Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	if err == io.EOF && hex.EncodeToString(b.h.Sum(nil)) != b.want {
		b.mismatch = true
		return n, errContentSHA256
	}
	return n, err
}

func (b *s3Body) Close() error { return b.r.Close() }

// forward hands the authorized request to the object store, path style,
// and amends its answer as S3 would: encryption headers, KMS on reads,
// 403 for a missing key the caller may not list, a body hash mismatch.
func (s3Service) forward(c *call, op s3Op, b Bucket, bucket, key string) {
	store := c.h.acct.objectStore()
	if store == nil {
		c.fail(&apiError{Code: "ServiceUnavailable", Status: http.StatusServiceUnavailable, Message: "Please reduce your request rate.",
			detail: "the account has no object store (Account.SetObjectStore)"})
		return
	}
	fwd := c.r.Clone(c.r.Context())
	p := "/"
	if bucket != "" {
		p += bucket
		if key != "" {
			p += "/" + key
		}
	}
	fwd.URL = &url.URL{Path: p, RawQuery: c.r.URL.RawQuery}
	fwd.RequestURI = ""
	fwd.Header = http.Header{}
	for k, v := range c.r.Header {
		if forwardedHeaders[k] || strings.HasPrefix(k, "X-Amz-Meta-") {
			fwd.Header[k] = v
		}
	}
	var body *s3Body
	if want := c.r.Header.Get("X-Amz-Content-Sha256"); sha256Hex.MatchString(want) {
		body = &s3Body{r: c.r.Body, want: want, h: sha256.New()}
		fwd.Body = body
	}
	w := &s3Writer{call: c, op: op, bucket: b, key: key, body: body}
	store.ServeHTTP(w, fwd)
	w.finish()
}

// s3Writer passes the store's answer on, unless it has to be replaced.
type s3Writer struct {
	call     *call
	op       s3Op
	bucket   Bucket
	key      string
	body     *s3Body
	wrote    bool
	replaced bool
	status   int
	errBody  bytes.Buffer
}

func (w *s3Writer) Header() http.Header { return w.call.w.Header() }

func (w *s3Writer) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	c := w.call
	if e := w.replacement(status); e != nil {
		w.replaced = true
		h := c.w.Header()
		for k := range h {
			delete(h, k)
		}
		c.fail(e)
		return
	}
	w.status = status
	h := c.w.Header()
	h.Set("x-amz-request-id", c.id)
	h.Set("Server", "AmazonS3")
	for _, k := range []string{"X-Amz-Server-Side-Encryption", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id",
		"X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"} {
		h.Del(k)
	}
	if status < 300 && w.op.sse {
		if w.bucket.KMSKeyARN != "" {
			h.Set("X-Amz-Server-Side-Encryption", "aws:kms")
			h.Set("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", w.bucket.KMSKeyARN)
			if w.bucket.BucketKeyEnabled {
				h.Set("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled", "true")
			}
		} else {
			h.Set("X-Amz-Server-Side-Encryption", "AES256")
		}
	}
	c.w.WriteHeader(status)
}

// replacement is the error S3 would give instead of the store's answer.
func (w *s3Writer) replacement(status int) *apiError {
	c := w.call
	if w.body != nil && w.body.mismatch {
		return &apiError{Code: "XAmzContentSHA256Mismatch", Status: http.StatusBadRequest,
			Message: "The provided 'x-amz-content-sha256' header does not match what was computed.",
			detail:  fmt.Sprintf("declared %s for %d bytes received", w.body.want, w.body.n)}
	}
	if status == http.StatusNotFound && (w.op.name == "GetObject" || w.op.name == "HeadObject") {
		// S3 tells a missing key apart from a forbidden one only to a
		// caller that may list it; the lab evaluates s3:ListBucket with
		// the key as s3:prefix, so that a listing grant on the key's
		// prefix counts (as observed on AWS).
		arn := w.bucket.ARN()
		d := c.authorize("s3:ListBucket", arn, map[string]string{"s3:prefix": w.key, "s3:ResourceAccount": c.h.acct.ID})
		if d != Allowed {
			e := c.s3Denied(w.op.action, w.op.resource, ImplicitDeny)
			e.Message = "Access Denied"
			e.detail = fmt.Sprintf("no such key, and %s s3:ListBucket on %s with s3:prefix %q, so S3 answers 403 (policies: %s)",
				d, arn, w.key, policyNames(c.caller.policies))
			return e
		}
	}
	if status < 300 && w.op.kmsOnSuccess && w.bucket.KMSKeyARN != "" {
		return c.s3KMS(w.op, w.bucket, w.key)
	}
	return nil
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(p), nil
	}
	if w.status >= 400 && w.errBody.Len() < 8192 {
		w.errBody.Write(p)
	}
	return w.call.w.Write(p)
}

// finish records the answer in the trail.
func (w *s3Writer) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return
	}
	ev := w.call.ev
	ev.status, ev.decision = w.status, "allow"
	if w.status >= 400 {
		ev.decision = "error"
		var e s3Error
		if xml.Unmarshal(w.errBody.Bytes(), &e) == nil {
			ev.code = e.Code
			ev.detail = e.Message
		}
	}
}

// deleteRequest is DeleteObjects' body.
type deleteRequest struct {
	XMLName xml.Name `xml:"Delete"`
	Quiet   bool     `xml:"Quiet"`
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId,omitempty"`
	} `xml:"Object"`
}

type deleteResult struct {
	XMLName xml.Name         `xml:"DeleteResult"`
	NS      string           `xml:"xmlns,attr"`
	Deleted []deletedObject  `xml:"Deleted"`
	Errors  []deleteKeyError `xml:"Error"`
}

type deletedObject struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
}

type deleteKeyError struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// deleteObjects is DeleteObjects (POST ?delete): S3 authorizes
// s3:DeleteObject for each key, deletes those allowed and reports each
// refused one as an Error of the result, with 200 for the request.
func (s s3Service) deleteObjects(c *call, bucket string, b Bucket, exists bool, ctx map[string]string) {
	raw, err := io.ReadAll(io.LimitReader(c.r.Body, maxDeleteBody+1))
	if err != nil || len(raw) > maxDeleteBody {
		c.fail(&apiError{Code: "MalformedXML", Status: http.StatusBadRequest, Message: "The XML you provided was not well-formed or did not validate against our published schema."})
		return
	}
	if want := c.r.Header.Get("X-Amz-Content-Sha256"); sha256Hex.MatchString(want) {
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != want {
			c.fail(&apiError{Code: "XAmzContentSHA256Mismatch", Status: http.StatusBadRequest,
				Message: "The provided 'x-amz-content-sha256' header does not match what was computed."})
			return
		}
	}
	var in deleteRequest
	if err := xml.Unmarshal(raw, &in); err != nil || len(in.Objects) == 0 || len(in.Objects) > 1000 {
		c.fail(&apiError{Code: "MalformedXML", Status: http.StatusBadRequest, Message: "The XML you provided was not well-formed or did not validate against our published schema."})
		return
	}
	out := deleteResult{NS: s3Namespace}
	var allowed deleteRequest
	var resources, denied []string
	for _, o := range in.Objects {
		arn := "arn:aws:s3:::" + bucket + "/" + o.Key
		resources = append(resources, arn)
		action := "s3:DeleteObject"
		if o.VersionID != "" {
			action = "s3:DeleteObjectVersion"
		}
		if d := c.authorize(action, arn, ctx); d != Allowed {
			out.Errors = append(out.Errors, deleteKeyError{Key: o.Key, Code: "AccessDenied", Message: "Access Denied"})
			denied = append(denied, o.Key)
			continue
		}
		allowed.Objects = append(allowed.Objects, o)
	}
	c.ev.resources = capList(resources, 5)
	if len(allowed.Objects) > 0 && !exists {
		c.fail(&apiError{Code: "NoSuchBucket", Status: http.StatusNotFound, Message: "The specified bucket does not exist"})
		return
	}
	if len(allowed.Objects) > 0 {
		store := c.h.acct.objectStore()
		if store == nil {
			c.fail(&apiError{Code: "ServiceUnavailable", Status: http.StatusServiceUnavailable, Message: "Please reduce your request rate.",
				detail: "the account has no object store (Account.SetObjectStore)"})
			return
		}
		fwdBody, _ := xml.Marshal(allowed)
		fwd, _ := http.NewRequestWithContext(c.r.Context(), http.MethodPost, "/"+b.Name+"?delete", bytes.NewReader(fwdBody))
		fwd.Header.Set("Content-Length", strconv.Itoa(len(fwdBody)))
		rec := httptest.NewRecorder()
		store.ServeHTTP(rec, fwd)
		if rec.Code != http.StatusOK {
			var e s3Error
			_ = xml.Unmarshal(rec.Body.Bytes(), &e)
			c.fail(&apiError{Code: e.Code, Status: rec.Code, Message: e.Message, detail: "the object store refused the delete"})
			return
		}
		var res struct {
			Deleted []deletedObject  `xml:"Deleted"`
			Errors  []deleteKeyError `xml:"Error"`
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			c.fail(&apiError{Code: "InternalError", Status: http.StatusInternalServerError, Message: "We encountered an internal error. Please try again.",
				detail: "the object store's DeleteResult: " + err.Error()})
			return
		}
		out.Deleted = res.Deleted
		out.Errors = append(res.Errors, out.Errors...)
	}
	if in.Quiet {
		out.Deleted = nil
	}
	body, _ := xml.Marshal(out)
	c.okXML(body)
	switch {
	case len(denied) == len(in.Objects):
		c.ev.decision = "deny"
	case len(denied) > 0:
		c.ev.decision = "partial"
	}
	if len(denied) > 0 {
		c.ev.detail = fmt.Sprintf("%d of %d keys denied s3:DeleteObject, e.g. %s (policies: %s)", len(denied), len(in.Objects), denied[0], policyNames(c.caller.policies))
	}
}

// capList keeps a trail line readable: the first n, then how many more.
func capList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string{}, s[:n]...), fmt.Sprintf("(+%d more)", len(s)-n))
}
