package pooler

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// SCRAMIterations is PostgreSQL's default scram_iterations.
const SCRAMIterations = 4096

// SCRAMSecret is password's SCRAM-SHA-256 secret in the form PostgreSQL
// stores (pg_authid.rolpassword) and PgBouncer's auth_file accepts, with a
// fresh salt. PgBouncer can authenticate a client against it but cannot
// log into a server with it: fit for admin_users, not for auth_user.
// PostgreSQL SASLpreps a non-ASCII password first; this does not, so use
// ASCII passwords (pgha generates them).
func SCRAMSecret(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramSecret(password, salt, SCRAMIterations)
}

func scramSecret(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac("Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac("Server Key"))), nil
}

// AuthFileLine is one line of PgBouncer's auth_file: "user" "secret",
// with the file format's doubled quotes.
func AuthFileLine(user, secret string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(user) + " " + q(secret) + "\n"
}
