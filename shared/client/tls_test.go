package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/server"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "heartline test relay"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestWSSToARelayWithTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	relay := startRelay(t, server.Config{TLSCert: certFile, TLSKey: keyFile})
	ann := newMember(t, Config{URL: "wss://" + relay.addr + "/ws", Name: "ann", TLSConfig: &tls.Config{RootCAs: pool}})
	bob := newMember(t, Config{URL: "https://" + relay.addr, Name: "bob", TLSConfig: &tls.Config{RootCAs: pool}})
	ann.run()
	bob.run()
	ann.waitConnected()
	bob.waitConnected()
	ann.c.Send("over TLS")
	bob.waitUntil("ann's message", 5*time.Second, func() bool { return len(bob.got["ann"]) == 1 })

	// Without the certificate in its roots the client says so, and retries.
	eve := newMember(t, Config{URL: "wss://" + relay.addr, Name: "eve"})
	eve.run()
	eve.waitUntil("a failed attempt", 5*time.Second, func() bool { return eve.phase() == Reconnecting })
	if s := eve.c.State(); !strings.Contains(s.LastError, "certificate this computer does not trust") {
		t.Fatalf("last error %q", s.LastError)
	}
}

func TestDialErrorsSayWhatToCheck(t *testing.T) {
	notARelay := httptest.NewServer(http.NotFoundHandler())
	defer notARelay.Close()
	cases := map[string]struct{ url, want string }{
		"refused":   {closedPort(t), "refused the connection: is the relay running on that port?"},
		"not found": {notARelay.Listener.Addr().String(), "there is no Heartline relay at"},
	}
	for name, tc := range cases {
		m := newMember(t, Config{URL: tc.url, Name: "ann"})
		m.run()
		m.waitUntil(name+": a failed attempt", 5*time.Second, func() bool { return m.phase() == Reconnecting })
		if s := m.c.State(); !strings.Contains(s.LastError, tc.want) {
			t.Errorf("%s: last error %q, want it to contain %q", name, s.LastError, tc.want)
		}
		m.stop()
	}
}
