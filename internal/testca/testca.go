// Package testca makes throwaway certificate authorities and server key pairs
// for tests that serve TLS on 127.0.0.1.
//
// Keys are ECDSA P-256 (fast to make); certificates are valid from an hour
// ago for a day, so a test never depends on the clock's second.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority that exists only for one test.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CertPEM is the CA certificate, for clients to trust (a CA file,
	// NODE_EXTRA_CA_CERTS, curl --cacert).
	CertPEM []byte
}

// New makes a CA called name.
func New(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testca: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parse CA certificate: %v", err)
	}
	return &CA{cert: cert, key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool is a pool holding only this CA, for tls.Config.RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Pair is a server certificate and its private key, PEM encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
	// Leaf is the parsed certificate (its SerialNumber tells pairs apart).
	Leaf *x509.Certificate
}

// Issue makes a server certificate for hosts (IP addresses or DNS names)
// with a fresh key, signed by ca.
func (ca *CA) Issue(t testing.TB, commonName string, hosts ...string) Pair {
	t.Helper()
	return ca.IssueValid(t, commonName, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), hosts...)
}

// IssueValid is Issue with a validity period of its own.
func (ca *CA) IssueValid(t testing.TB, commonName string, notBefore, notAfter time.Time, hosts ...string) Pair {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testca: issue %s: %v", commonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parse %s: %v", commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testca: marshal key: %v", err)
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Leaf:    leaf,
	}
}

// WriteFiles writes the pair to certFile and keyFile (mode 0600), replacing
// their contents in place.
func (p Pair) WriteFiles(t testing.TB, certFile, keyFile string) {
	t.Helper()
	if err := os.WriteFile(certFile, p.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testca: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testca: serial: %v", err)
	}
	return n
}

// SecretVolume is a directory updated the way the kubelet updates a mounted
// Secret (which is how cert-manager's renewals reach a pod): each version is
// written into a new hidden directory, the symlink ..data is switched to it
// by one rename, and tls.crt and tls.key are symlinks through ..data; the
// previous version's directory is removed after the switch. See
// AtomicWriter in kubernetes/pkg/volume/util/atomic_writer.go.
type SecretVolume struct {
	Dir     string
	version int
	written time.Time // the modification time of the latest version
}

// NewSecretVolume uses dir, which should be empty.
func NewSecretVolume(dir string) *SecretVolume { return &SecretVolume{Dir: dir} }

// CertFile and KeyFile are the paths an application is given.
func (v *SecretVolume) CertFile() string { return filepath.Join(v.Dir, "tls.crt") }
func (v *SecretVolume) KeyFile() string  { return filepath.Join(v.Dir, "tls.key") }

// Write publishes p as the volume's next version.
func (v *SecretVolume) Write(t testing.TB, p Pair) {
	t.Helper()
	v.version++
	name := fmt.Sprintf("..version_%d", v.version)
	dir := filepath.Join(v.Dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p.WriteFiles(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	// Each version is written later than the one before, as renewals are.
	// Versions a test writes milliseconds apart can fall in one tick of
	// the file system's clock, and a version's files may get the inodes of
	// a removed earlier one: with the same size, nothing would tell them
	// apart, however the reader is written.
	next := v.written.Add(time.Second)
	if now := time.Now(); now.After(next) {
		next = now
	}
	v.written = next
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Chtimes(filepath.Join(dir, f), v.written, v.written); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.Dir, "..data_tmp")
	if err := os.Symlink(name, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.Dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.version == 1 {
		for _, f := range []string{"tls.crt", "tls.key"} {
			if err := os.Symlink(filepath.Join("..data", f), filepath.Join(v.Dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	if err := os.RemoveAll(filepath.Join(v.Dir, fmt.Sprintf("..version_%d", v.version-1))); err != nil {
		t.Fatal(err)
	}
}
