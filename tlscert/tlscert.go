// Package tlscert owns the listener's TLS certificate: the key pair read from
// two PEM files and read again when the files change.
//
// How a change is noticed. Every new TLS handshake (and a check once a
// minute, so that the log and metrics follow a renewal even while no client
// connects) stats both files: when either file's identity (device and inode),
// size or modification time differs from the pair being served, the pair is
// read again. Certificate renewals arrive in two ways, and both change the
// identity or the modification time:
//
//   - a Kubernetes Secret volume (cert-manager's usual route) switches a
//     ..data symlink to a new directory of new files, so the paths resolve
//     to other inodes (kubernetes/pkg/volume/util/atomic_writer.go);
//   - a tool that rewrites the files in place changes their mtime.
//
// The two stat calls cost 3-6 µs (BenchmarkGetCertificate on the shared
// 2-core development machine), against 0.6-0.8 ms for the handshake they
// ride on (BenchmarkHandshake, both sides in one process): under 1%, so no
// cache is needed. A file watcher
// (fsnotify) was not chosen: it must watch the parent directory and re-add
// watches after symlink swaps, does not report changes on network file
// systems, and would add a goroutine and a dependency for what a stat per
// handshake already gives exactly when the pair matters.
//
// A pair that fails to load (a half-written file, a key that does not match
// the certificate) is logged once per state of the files and the previous
// pair keeps being served; established connections, WebSocket sessions
// included, are never touched, whatever happens to the files.
package tlscert

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Results passed to Options.OnReload (the values of the metrics package).
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// CheckInterval is how often Run checks the files when no handshake does.
const CheckInterval = time.Minute

// Options configure Load.
type Options struct {
	// CertFile holds the certificate in PEM, the leaf first, then any
	// intermediates; KeyFile holds its private key in PEM (PKCS #1, PKCS #8
	// or SEC 1).
	CertFile, KeyFile string
	// Logger gets one line per reload and per failed reload; nil discards.
	Logger *slog.Logger
	// OnReload, if set, is called after each attempt to read changed files
	// (not for the first load), with ResultSuccess and the new certificate's
	// expiry, or ResultFailure and the expiry of the certificate still
	// served.
	OnReload func(result string, notAfter time.Time)
}

// Reloader serves the pair through GetCertificate. Its methods are safe for
// concurrent use.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	onReload          func(string, time.Time)

	current atomic.Pointer[served]

	mu     sync.Mutex // serializes reloads
	failed *filesState
}

// served is a loaded pair and the state of the files it was read from.
type served struct {
	cert  *tls.Certificate
	files filesState
}

// Load reads the pair once; the error is a *FileError naming the file at
// fault.
func Load(opts Options) (*Reloader, error) {
	r := &Reloader{certFile: opts.CertFile, keyFile: opts.KeyFile, log: opts.Logger, onReload: opts.OnReload}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	files := r.stat()
	cert, err := ReadPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, err
	}
	r.current.Store(&served{cert: cert, files: files})
	r.log.Info("tls certificate loaded", certAttrs(cert, r.certFile)...)
	warnValidity(r.log, cert.Leaf)
	return r, nil
}

// TLSConfig is the listener's configuration: TLS 1.2 or later, the
// certificate from GetCertificate.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// GetCertificate is tls.Config.GetCertificate: the pair in the files now, or
// the last one that loaded. It never fails.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.check(), nil
}

// Leaf is the certificate being served.
func (r *Reloader) Leaf() *x509.Certificate { return r.current.Load().cert.Leaf }

// Run checks the files every CheckInterval until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check()
		}
	}
}

// check reloads the pair when the files changed since it was read, and
// returns the pair to serve.
func (r *Reloader) check() *tls.Certificate {
	cur := r.current.Load()
	files := r.stat()
	if files.same(cur.files) {
		return cur.cert
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur = r.current.Load()
	if files.same(cur.files) { // another handshake got here first
		return cur.cert
	}
	if r.failed != nil && files.same(*r.failed) { // logged already
		return cur.cert
	}
	cert, err := ReadPair(r.certFile, r.keyFile)
	if err != nil {
		r.failed = &files
		r.log.Warn("tls certificate reload failed; serving the previous certificate until the files change again",
			"error", err, "serving_not_after", cur.cert.Leaf.NotAfter)
		if r.onReload != nil {
			r.onReload(ResultFailure, cur.cert.Leaf.NotAfter)
		}
		return cur.cert
	}
	r.failed = nil
	r.current.Store(&served{cert: cert, files: files})
	r.log.Info("tls certificate reloaded", certAttrs(cert, r.certFile)...)
	warnValidity(r.log, cert.Leaf)
	if r.onReload != nil {
		r.onReload(ResultSuccess, cert.Leaf.NotAfter)
	}
	return cert
}

// filesState is what stat says about both files; a file that cannot be
// stat'ed is recorded by its error text.
type filesState struct{ cert, key fileState }

type fileState struct {
	info fs.FileInfo
	err  string
}

func (r *Reloader) stat() filesState {
	return filesState{cert: statFile(r.certFile), key: statFile(r.keyFile)}
}

// statFile follows symlinks: a swapped ..data link is a different file.
func statFile(path string) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{err: err.Error()}
	}
	return fileState{info: fi}
}

func (s filesState) same(o filesState) bool { return s.cert.same(o.cert) && s.key.same(o.key) }

func (s fileState) same(o fileState) bool {
	if s.info == nil || o.info == nil {
		return s.info == nil && o.info == nil && s.err == o.err
	}
	return os.SameFile(s.info, o.info) && s.info.Size() == o.info.Size() && s.info.ModTime().Equal(o.info.ModTime())
}

// FileError is a pair that cannot be served, naming the file at fault.
type FileError struct {
	// Key is true when the key file is at fault, false for the certificate file.
	Key  bool
	Path string
	// Problem says what is wrong and, where it can, what to do.
	Problem string
}

func (e *FileError) Error() string {
	kind := "certificate"
	if e.Key {
		kind = "key"
	}
	return fmt.Sprintf("tls %s file %s: %s", kind, e.Path, e.Problem)
}

// ReadPair reads and checks a certificate file and its key file.
func ReadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := readFile(certFile, "tls.crt")
	if err != nil {
		return nil, &FileError{Path: certFile, Problem: err.Error()}
	}
	keyPEM, err := readFile(keyFile, "tls.key")
	if err != nil {
		return nil, &FileError{Key: true, Path: keyFile, Problem: err.Error()}
	}
	certBlocks, keyBlocks := pemTypes(certPEM), pemTypes(keyPEM)
	switch {
	case !certBlocks.cert && certBlocks.key:
		return nil, &FileError{Path: certFile, Problem: "holds a private key, not a certificate; are the certificate and key files swapped?"}
	case !certBlocks.cert:
		return nil, &FileError{Path: certFile, Problem: "no PEM certificate found; want a file with -----BEGIN CERTIFICATE-----"}
	case !keyBlocks.key && keyBlocks.cert:
		return nil, &FileError{Key: true, Path: keyFile, Problem: "holds a certificate, not a private key; are the certificate and key files swapped?"}
	case !keyBlocks.key:
		return nil, &FileError{Key: true, Path: keyFile, Problem: "no PEM private key found; want a file with -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY)"}
	}
	if block, _ := firstBlock(certPEM, "CERTIFICATE"); block != nil {
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, &FileError{Path: certFile, Problem: fmt.Sprintf("cannot parse the certificate: %v", err)}
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		problem := strings.TrimPrefix(err.Error(), "tls: ")
		if strings.Contains(problem, "does not match") {
			problem = "does not match the certificate in " + certFile + "; give the key that was issued with it"
		}
		return nil, &FileError{Key: true, Path: keyFile, Problem: problem}
	}
	return &cert, nil
}

// maxFileSize bounds what is read of each file: a certificate chain or a key
// is a few KiB, so a larger file is a wrong path (a log, a bundle).
const maxFileSize = 1 << 20

// readFile reads path; its error says what is wrong in words for the
// settings message. example is a typical file name inside a directory.
func readFile(path, example string) ([]byte, error) {
	// Stat first: opening a FIFO would block until a writer comes.
	fi, err := os.Stat(path)
	if err == nil {
		switch {
		case fi.IsDir():
			return nil, fmt.Errorf("is a directory; give the file in it, e.g. %s", filepath.Join(path, example))
		case !fi.Mode().IsRegular():
			return nil, errors.New("is not a regular file")
		case fi.Size() > maxFileSize:
			return nil, fmt.Errorf("is %d bytes; a certificate or key file is a few KiB, so this is probably not one", fi.Size())
		}
		var f *os.File
		if f, err = os.Open(path); err == nil {
			defer f.Close()
			var data []byte
			if data, err = io.ReadAll(io.LimitReader(f, maxFileSize)); err == nil {
				return data, nil
			}
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errors.New("does not exist")
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("cannot be read (permission denied); check the file's owner and mode against the user the proxy runs as (uid %d)", os.Getuid())
	}
	return nil, fmt.Errorf("cannot be read: %w", err)
}

type blockKinds struct{ cert, key bool }

func pemTypes(data []byte) blockKinds {
	var k blockKinds
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return k
		}
		switch {
		case block.Type == "CERTIFICATE":
			k.cert = true
		case block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY"):
			k.key = true
		}
	}
}

func firstBlock(data []byte, typ string) (*pem.Block, []byte) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil || block.Type == typ {
			return block, data
		}
	}
}

// certAttrs describe a loaded certificate for the log: enough to tell a
// renewal happened (serial, fingerprint, validity), nothing secret.
func certAttrs(cert *tls.Certificate, certFile string) []any {
	leaf := cert.Leaf
	sum := sha256.Sum256(leaf.Raw)
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return []any{
		"cert_file", certFile,
		"subject", leaf.Subject.String(),
		"names", names,
		"serial", leaf.SerialNumber.Text(16),
		"sha256", hex.EncodeToString(sum[:]),
		"not_before", leaf.NotBefore,
		"not_after", leaf.NotAfter,
	}
}

// warnValidity says when the certificate is outside its validity period:
// clients will refuse it, yet serving it is not refused (a renewal may be on
// its way).
func warnValidity(log *slog.Logger, leaf *x509.Certificate) {
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		log.Warn("tls certificate has expired; clients will refuse it", "not_after", leaf.NotAfter)
	case now.Before(leaf.NotBefore):
		log.Warn("tls certificate is not valid yet; clients will refuse it", "not_before", leaf.NotBefore)
	}
}
