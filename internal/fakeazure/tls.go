package fakeazure

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"time"
)

// startTLS makes a CA and a server certificate for 127.0.0.1 and localhost,
// both valid for a day, and serves the custom domain over TLS with it. The
// native Speech SDK checks certificates with OpenSSL, which trusts the CA
// when its file is named by SSL_CERT_FILE. It also checks revocation: SDK
// 1.45 refuses a certificate without a CRL distribution point whatever its
// OPENSSL_DISABLE_CRL_CHECK property says (docs/SPEECH-SDK-WIRE.md), so the
// certificate names one, /_fake/ca.crl on the plain listener, which serves
// an empty CRL signed by the CA.
func (a *Azure) startTLS(errLog *log.Logger) error {
	now := time.Now()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("tls: ca key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fakeazure test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("tls: ca certificate: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("tls: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		// The plain listener: a CRL is fetched over http.
		CRLDistributionPoints: []string{a.URL() + "/_fake/ca.crl"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("tls: server certificate: %w", err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(24 * time.Hour),
	}, ca, caKey)
	if err != nil {
		return fmt.Errorf("tls: crl: %w", err)
	}
	a.crlDER = crl
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen tls: %w", err)
	}
	a.tlsHost = ln.Addr().String()
	a.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	a.tlsServer = &http.Server{
		Handler:           a.guard(http.HandlerFunc(a.serveCustom)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}},
			// WebSocket upgrades need HTTP/1.1.
			NextProtos: []string{"http/1.1"},
		},
	}
	a.serving.Add(1)
	go func() {
		defer a.serving.Done()
		if err := a.tlsServer.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			a.log.Error("fakeazure serve tls", "addr", a.tlsHost, "err", err)
		}
	}()
	return nil
}
