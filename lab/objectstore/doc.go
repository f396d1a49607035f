// Package objectstore is an S3 endpoint for the labs, so that pgBackRest
// keeps its repository on the same machine with the configuration it has
// on AWS but for the endpoint and the CA.
//
// It is gofakes3 with its s3afero backend: objects are plain files under
// buckets/BUCKET/KEY, so a new Server (or process) on the same directory
// finds the repository as it was left. Of the backends that keep data on
// disk, s3afero adds one small module (afero); s3bolt would add bbolt and
// the unmaintained mgo bson package and hold each object in memory. The
// store adds what pgBackRest needs and s3afero lacks (store.go): PUTs that
// are all or nothing, S3 listing semantics, and refusal of keys that are
// not one file each. On a listener of its own (Serve) the server checks
// that each request is SigV4-signed for the configured access key and
// region; signatures are not verified (see Server.authenticate). Behind
// the booted lab's AWS stand-in (BehindFront, awsapi.ObjectStore) it
// checks nothing: the stand-in verifies signatures and evaluates IAM and
// KMS, then hands it the request in path style.
//
// # pgBackRest 2.45 against this store
//
// Proven by pgbackrest_integration_test.go (stanza-create, check, backup,
// archive-push with archive-async, restore to a time, an outage of the
// store). The configuration, as a template:
//
//	[global]
//	repo1-type=s3
//	repo1-path=/pgbackrest
//	repo1-s3-bucket=BUCKET
//	repo1-s3-endpoint=ENDPOINT             # a DNS name that resolves to the store
//	repo1-s3-region=REGION                 # must match WithRegion
//	repo1-s3-key=KEY_ID                    # must match WithAccessKey
//	repo1-s3-key-secret=SECRET             # not checked by the store
//	repo1-s3-uri-style=path                # or host: see below
//	repo1-storage-port=PORT                # only if the store is not on 443
//	repo1-storage-ca-file=LAB_CA_PEM       # alias repo1-s3-ca-file; TLS stays verified
//	repo1-retention-full=2
//	archive-async=y
//	spool-path=SPOOL
//	log-path=LOG
//	lock-path=LOCK
//	start-fast=y
//
//	[STANZA]
//	pg1-path=PGDATA
//	pg1-port=PGPORT
//	pg1-socket-path=PGSOCKETDIR
//
// with archive_mode=on and archive_command='pgbackrest --config=CONF
// --stanza=STANZA archive-push %p'. What pgBackRest 2.45 needed, and its
// quirks:
//
//   - TLS is checked against the host pgBackRest connects to, which is
//     repo1-storage-host when set, and against DNS names only: an IP
//     address in the certificate does not count, and with any SAN present
//     the common name is ignored. repo1-storage-host=127.0.0.1 therefore
//     fails ("unable to find hostname '127.0.0.1' in certificate") even
//     with 127.0.0.1 among the certificate's IP SANs. So name the endpoint
//     by a DNS name in the certificate and make that name resolve to the
//     store (/etc/hosts: the booted lab's machines resolve through it
//     alone; the test bind-mounts one in a private mount namespace), and
//     leave repo1-storage-host unset. repo1-storage-port sets the port;
//     the Host header carries no port.
//   - repo1-s3-uri-style=host (AWS's default) connects to BUCKET.ENDPOINT:
//     that name must resolve too, the certificate needs "*.ENDPOINT", and
//     the server WithVirtualHosts(ENDPOINT). A node that resolves
//     s3.REGION.amazonaws.com to the store keeps even AWS's endpoint.
//   - Requests used: ListObjectsV2 (list-type=2, delimiter=/, and a prefix
//     that may end mid-name or name nothing yet, which must be an empty
//     list), HEAD, GET (of whole objects in these commands; a partial
//     read sends Range, which gofakes3 serves), PUT with Content-MD5,
//     multipart upload for files over
//     repo-storage-upload-chunk-size (5 MiB), DELETE. Expiry and
//     stanza-delete also send DeleteObjects (POST ?delete).
//   - A WAL segment found in the repository counts as archived, so a PUT
//     cut short must leave nothing behind.
//   - repo1-s3-key and repo1-s3-key-secret are refused on the command
//     line; they go in the file or PGBACKREST_REPO1_S3_KEY(_SECRET).
//   - A refused key shows as "HTTP request failed with 403 (Forbidden)" on
//     a HEAD, with no error code.
//   - restore --type=time picks a backup whose stop time, kept in whole
//     seconds, is before the target's second: a target in the second a
//     backup stopped finds none ("unable to find backup set with stop
//     time less than"). The target may be now()::text.
//   - restore writes restore_command = 'pgbackrest --config=CONF
//     --pg1-path=NEWPGDATA --stanza=STANZA archive-get %f "%p"'.
//   - With the store unreachable, archive-push fails after archive-timeout
//     (60 s by default): the async process retries the connection for up
//     to io-timeout (60 s). PostgreSQL keeps taking writes, retries three
//     times, then waits for the next WAL segment or 60 s; once the store is
//     back, archiving catches up with no gap. The test sets both timeouts
//     to 5 s.
//   - repo1-s3-key-type=auto fetches the instance role's credentials from
//     169.254.169.254:80 (fixed, IMDSv2: a token first) and signs with the
//     session token; served through awsapi, as the booted lab does,
//     standin_integration_test.go proves it (no CA file either: the
//     machine's system store holds the lab CA).
//
// # pgBackRest 2.45 under iampolicy.BackupRepo (through awsapi)
//
// With repo1-path=/pgha/test and the policy for prefix "pgha/test":
//
//   - pgBackRest signs every payload (X-Amz-Content-Sha256 is the body's
//     SHA-256, never UNSIGNED-PAYLOAD) and sends x-amz-security-token;
//     the stand-in recomputes its signatures and checks its bodies.
//   - stanza-create, check, backup, archive-push, info and restore list
//     only prefixes that start with the repository path plus "/"
//     (pgha/test/archive/STANZA/, …/15-1/0000000100000000/0000000100…,
//     pgha/test/backup/, pgha/test/backup/STANZA/backup.history/…), all
//     under BackupRepo's s3:prefix "pgha/test/*". It never lists the
//     bucket's root nor "pgha/test" itself.
//   - stanza-create reads archive.info(.copy) and backup.info(.copy)
//     before they exist: S3 answers 404 only to a caller who may list the
//     key (else 403, which pgBackRest treats as an error), and the keys are
//     under pgha/test/*, so BackupRepo's listing grant makes them 404s.
//   - Files over repo-storage-upload-chunk-size (5 MiB: WAL segments that
//     do not compress, large relation files) go multipart, which under
//     SSE-KMS needs kms:Decrypt besides kms:GenerateDataKey: BackupRepo
//     grants both.
//   - repo-ls (and repo-get) of the repository's root first HEADs the
//     path itself, the key "pgha/test": BackupRepo grants s3:GetObject
//     on pgha/test/* only, so `pgbackrest repo-ls` with no path is refused
//     (403) on AWS too; `repo-ls backup/STANZA` works. The backup and
//     archive commands never do that HEAD.
//   - Expiry (repo1-retention-full) deletes with DeleteObjects, which
//     needs s3:DeleteObject on each key, granted under pgha/test/* (not
//     exercised by the test).
package objectstore
