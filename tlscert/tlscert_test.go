package tlscert

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/testca"
)

// logBuffer is a concurrency-safe log destination.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), `"msg":"`+msg+`"`)
}

// reloads records OnReload calls.
type reloads struct {
	mu      sync.Mutex
	results []string
}

func (r *reloads) add(result string, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, result)
}

func (r *reloads) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.results...)
}

type fixture struct {
	ca      *testca.CA
	logs    *logBuffer
	reloads *reloads
}

func newFixture(t *testing.T) *fixture {
	return &fixture{ca: testca.New(t, "tlscert test CA"), logs: &logBuffer{}, reloads: &reloads{}}
}

func (f *fixture) load(t *testing.T, certFile, keyFile string) *Reloader {
	t.Helper()
	r, err := Load(Options{
		CertFile: certFile, KeyFile: keyFile,
		Logger:   slog.New(slog.NewJSONHandler(f.logs, nil)),
		OnReload: f.reloads.add,
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return r
}

// serve runs a TLS listener on 127.0.0.1 with r's configuration; each
// connection completes its handshake and is then held open, echoing
// what it reads, until the client closes it.
func serve(t *testing.T, r *Reloader) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// dial makes a new connection trusting only ca and returns it with the
// serial number of the certificate the server presented.
func dial(t *testing.T, addr string, ca *testca.CA) (*tls.Conn, string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

func serial(p testca.Pair) string { return p.Leaf.SerialNumber.Text(16) }

func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write on the old connection: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := c.Read(buf); err != nil || string(buf) != msg {
		t.Fatalf("old connection echoed %q, %v; want %q", buf, err, msg)
	}
}

// A Kubernetes Secret volume renewed by cert-manager: the ..data symlink
// swap is seen at the next handshake; the connection made before it keeps
// working.
func TestReloadSecretVolumeSwap(t *testing.T) {
	f := newFixture(t)
	vol := testca.NewSecretVolume(t.TempDir())
	a, b := f.ca.Issue(t, "pair a", "127.0.0.1"), f.ca.Issue(t, "pair b", "127.0.0.1")
	vol.Write(t, a)
	r := f.load(t, vol.CertFile(), vol.KeyFile())
	addr := serve(t, r)

	old, got := dial(t, addr, f.ca)
	if got != serial(a) {
		t.Fatalf("first handshake served serial %s, want pair a's %s", got, serial(a))
	}
	vol.Write(t, b)
	if _, got := dial(t, addr, f.ca); got != serial(b) {
		t.Errorf("handshake after the swap served serial %s, want pair b's %s", got, serial(b))
	}
	echo(t, old, "still here")
	if got := f.reloads.get(); len(got) != 1 || got[0] != ResultSuccess {
		t.Errorf("OnReload calls = %v, want [success]", got)
	}
	if n := f.logs.count("tls certificate reloaded"); n != 1 {
		t.Errorf("%d reload log lines, want 1:\n%s", n, f.logs.buf.String())
	}
	if r.Leaf().SerialNumber.Text(16) != serial(b) {
		t.Errorf("Leaf serial = %s, want %s", r.Leaf().SerialNumber.Text(16), serial(b))
	}
}

// Files rewritten in place (same inodes). A real renewal comes long after
// the first write, with a later mtime; this test rewrites within
// milliseconds, inside one tick of the file system's clock, so it sets the
// later time a renewal would have.
func TestReloadInPlaceRewrite(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a, b := f.ca.Issue(t, "pair a", "127.0.0.1"), f.ca.Issue(t, "pair b", "127.0.0.1")
	a.WriteFiles(t, certFile, keyFile)
	r := f.load(t, certFile, keyFile)
	addr := serve(t, r)
	if _, got := dial(t, addr, f.ca); got != serial(a) {
		t.Fatalf("served %s, want pair a's %s", got, serial(a))
	}

	b.WriteFiles(t, certFile, keyFile)
	later := time.Now().Add(time.Minute)
	for _, p := range []string{certFile, keyFile} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, got := dial(t, addr, f.ca); got != serial(b) {
		t.Errorf("served %s after the rewrite, want pair b's %s", got, serial(b))
	}
}

// A renewal caught half-way (a new certificate beside the old key) keeps
// the old pair serving, is logged once however many handshakes see it, and
// the next change of the files is tried again.
func TestFailedReloadKeepsServing(t *testing.T) {
	f := newFixture(t)
	vol := testca.NewSecretVolume(t.TempDir())
	a, b, c := f.ca.Issue(t, "pair a", "127.0.0.1"), f.ca.Issue(t, "pair b", "127.0.0.1"), f.ca.Issue(t, "pair c", "127.0.0.1")
	vol.Write(t, a)
	r := f.load(t, vol.CertFile(), vol.KeyFile())
	addr := serve(t, r)
	old, _ := dial(t, addr, f.ca)

	vol.Write(t, testca.Pair{CertPEM: b.CertPEM, KeyPEM: c.KeyPEM})
	for range 3 {
		if _, got := dial(t, addr, f.ca); got != serial(a) {
			t.Fatalf("served %s with a mismatched pair in the files, want the old pair a's %s", got, serial(a))
		}
	}
	if n := f.logs.count("tls certificate reload failed; serving the previous certificate until the files change again"); n != 1 {
		t.Errorf("%d failure log lines for one bad state of the files, want 1:\n%s", n, f.logs.buf.String())
	}
	if !strings.Contains(f.logs.buf.String(), "does not match the certificate") {
		t.Errorf("failure line does not say the key does not match:\n%s", f.logs.buf.String())
	}

	vol.Write(t, c)
	if _, got := dial(t, addr, f.ca); got != serial(c) {
		t.Errorf("served %s after a good pair arrived, want pair c's %s", got, serial(c))
	}
	echo(t, old, "survived both")
	if got, want := f.reloads.get(), []string{ResultFailure, ResultSuccess}; !equal(got, want) {
		t.Errorf("OnReload calls = %v, want %v", got, want)
	}
}

// Files that disappear (an unmounted volume) keep the old pair serving too.
func TestReloadFilesRemoved(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a := f.ca.Issue(t, "pair a", "127.0.0.1")
	a.WriteFiles(t, certFile, keyFile)
	r := f.load(t, certFile, keyFile)
	addr := serve(t, r)
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, got := dial(t, addr, f.ca); got != serial(a) {
			t.Fatalf("served %s, want the old pair a's %s", got, serial(a))
		}
	}
	if got := f.reloads.get(); !equal(got, []string{ResultFailure}) {
		t.Errorf("OnReload calls = %v, want [failure]", got)
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// Each way a pair can be wrong names the file at fault and what to do.
func TestReadPairProblems(t *testing.T) {
	ca := testca.New(t, "tlscert test CA")
	a, b := ca.Issue(t, "pair a", "127.0.0.1"), ca.Issue(t, "pair b", "127.0.0.1")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certA, keyA, keyB := write("a.crt", a.CertPEM), write("a.key", a.KeyPEM), write("b.key", b.KeyPEM)
	garbage := write("garbage", []byte("not pem at all\n"))
	badDER := write("bad.crt", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))

	for _, tc := range []struct {
		name      string
		cert, key string
		wantKey   bool
		want      string
	}{
		{"cert missing", filepath.Join(dir, "nope.crt"), keyA, false, "does not exist"},
		{"key missing", certA, filepath.Join(dir, "nope.key"), true, "does not exist"},
		{"cert is the secret's directory", dir, keyA, false, "is a directory; give the file in it, e.g. " + filepath.Join(dir, "tls.crt")},
		{"cert is a device", "/dev/null", keyA, false, "is not a regular file"},
		{"cert not PEM", garbage, keyA, false, "no PEM certificate found"},
		{"key not PEM", certA, garbage, true, "no PEM private key found"},
		{"files swapped", keyA, certA, false, "holds a private key, not a certificate; are the certificate and key files swapped?"},
		{"key file holds a certificate", certA, certA, true, "holds a certificate, not a private key"},
		{"certificate does not parse", badDER, keyA, false, "cannot parse the certificate"},
		{"key of another certificate", certA, keyB, true, "does not match the certificate in " + certA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadPair(tc.cert, tc.key)
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("ReadPair error = %v, want a *FileError", err)
			}
			wantPath := tc.cert
			if tc.wantKey {
				wantPath = tc.key
			}
			if fe.Key != tc.wantKey || fe.Path != wantPath {
				t.Errorf("blames key=%v %s, want key=%v %s", fe.Key, fe.Path, tc.wantKey, wantPath)
			}
			if !strings.Contains(fe.Problem, tc.want) {
				t.Errorf("problem = %q, want it to contain %q", fe.Problem, tc.want)
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		if os.Getuid() == 0 {
			t.Skip("root reads any file")
		}
		p := write("unreadable.key", a.KeyPEM)
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		_, err := ReadPair(certA, p)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("ReadPair error = %v, want permission denied", err)
		}
	})
}

// A pair whose certificate has expired still loads (a renewal may be on its
// way) but says so in the log.
func TestExpiredCertificateWarns(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	f.ca.IssueValid(t, "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "127.0.0.1").WriteFiles(t, certFile, keyFile)
	f.load(t, certFile, keyFile)
	if n := f.logs.count("tls certificate has expired; clients will refuse it"); n != 1 {
		t.Errorf("%d expiry warnings, want 1:\n%s", n, f.logs.buf.String())
	}
}

// GetCertificate's cost when nothing changed: two stat calls. Compare
// with BenchmarkHandshake, the work each call rides on.
func BenchmarkGetCertificate(b *testing.B) {
	ca := testca.New(b, "bench CA")
	dir := b.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(b, "bench", "127.0.0.1").WriteFiles(b, certFile, keyFile)
	r, err := Load(Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r.GetCertificate(nil)
	}
}

// A full TLS 1.3 handshake over net.Pipe against the reloader's
// configuration, both sides in this process.
func BenchmarkHandshake(b *testing.B) {
	ca := testca.New(b, "bench CA")
	dir := b.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(b, "bench", "127.0.0.1").WriteFiles(b, certFile, keyFile)
	r, err := Load(Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		b.Fatal(err)
	}
	serverCfg := r.TLSConfig()
	clientCfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	for b.Loop() {
		cc, sc := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- tls.Server(sc, serverCfg).Handshake() }()
		if err := tls.Client(cc, clientCfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cc.Close()
		sc.Close()
	}
}
