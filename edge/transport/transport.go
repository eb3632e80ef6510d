// Package transport carries livecell's frame stream over the transports an
// edge relay offers players besides TCP: QUIC (one bidirectional stream,
// TLS 1.3, ALPN "livecell/1") and WebSocket (each binary message exactly
// one frame). Both ends are here: listeners for the edge and dialers for
// Go clients (bots, load tests, tests), and both present a connection as a
// net.Conn whose bytes are the frame stream, so the edge's relay and
// gameclient work unchanged over any of them.
package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ALPN is the application protocol QUIC connections negotiate.
const ALPN = "livecell/1"

// WSPath is where an edge serves WebSocket sessions.
const WSPath = "/v1/ws"

// WSSubprotocol is the WebSocket subprotocol an edge offers; clients may
// request it, nothing depends on it.
const WSSubprotocol = "livecell.v1"

// ServerTLS is the TLS configuration an edge serves QUIC (and, when asked,
// WebSocket) with: TLS 1.3 and the livecell ALPN.
func ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}}
}

// GenerateCert returns a self-signed ECDSA P-256 certificate and key, PEM
// encoded, for hosts (IP addresses or DNS names), valid for validFor. An
// edge without a configured certificate makes one at start; clients must
// then trust it explicitly (its file, or its fingerprint in the edge's log).
func GenerateCert(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("transport: a certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"livecell edge (self-signed)"}},
		NotBefore:             now.Add(-time.Hour), // clock skew
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Fingerprint is the SHA-256 of a certificate's DER bytes, in hex: what an
// operator compares to pin a self-signed edge certificate.
func Fingerprint(cert tls.Certificate) string {
	if len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// ClientTLS trusts exactly the certificates in caPEM (for example an
// edge's self-signed certificate file), with the livecell ALPN. serverName
// is the host the certificate must name.
func ClientTLS(caPEM []byte, serverName string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("transport: no certificate in the PEM data")
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}}, nil
}
