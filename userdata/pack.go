package userdata

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

// MaxUserData is EC2's limit on an instance's user data, before base64.
const MaxUserData = 16384

// Pack compresses a #cloud-config document the way EC2 carries it: gzip,
// which cloud-init recognises by its magic bytes and unpacks before parsing.
// The documents outgrew EC2's 16 KiB limit; compressed they take about a
// third. The header carries no name and no time, so the same document always
// packs to the same bytes: the instances replace on any change of them
// (TestPackIsStable guards against a compressor that changes under a new Go
// release, which would replace every node at the next `pulumi up`).
func Pack(doc []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(doc); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if b.Len() > MaxUserData {
		return nil, fmt.Errorf("the user data packs to %d bytes, over EC2's %d", b.Len(), MaxUserData)
	}
	return b.Bytes(), nil
}

// Unpack reverses Pack.
func Unpack(packed []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(packed))
	if err != nil {
		return nil, fmt.Errorf("user data is not gzip: %w", err)
	}
	defer r.Close()
	return io.ReadAll(r)
}
