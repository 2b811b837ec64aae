package localenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// PKI holds the certificate authority of an environment and issues serving and client
// certificates from it, and the key pair that signs service-account tokens.
type PKI struct {
	Dir string

	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	// mu guards serial: physical clusters start in parallel.
	mu     sync.Mutex
	serial int64

	// CAFile is the PEM file of the CA certificate.
	CAFile string
	// CAData is the PEM of the CA certificate.
	CAData []byte
	// ServiceAccountKeyFile is the RSA private key signing service-account tokens.
	ServiceAccountKeyFile string
	// ServiceAccountPubFile is its public key.
	ServiceAccountPubFile string
}

// NewPKI creates a CA and a service-account key pair in dir.
func NewPKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tmc-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("failed to create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CA certificate: %w", err)
	}
	p := &PKI{Dir: dir, caCert: cert, caKey: key, serial: 1}
	p.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	p.CAFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(p.CAFile, p.CAData, 0o600); err != nil {
		return nil, fmt.Errorf("failed to write CA: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("failed to generate service-account key: %w", err)
	}
	p.ServiceAccountKeyFile = filepath.Join(dir, "sa.key")
	p.ServiceAccountPubFile = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(p.ServiceAccountKeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal service-account public key: %w", err)
	}
	if err := os.WriteFile(p.ServiceAccountPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write service-account public key: %w", err)
	}
	return p, nil
}

// CertPair is a certificate and key on disk and in memory.
type CertPair struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte
}

// ServingCert issues a serving certificate for 127.0.0.1 and localhost named name.
func (p *PKI) ServingCert(name string) (CertPair, error) {
	return p.issue(name, pkix.Name{CommonName: name}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
}

// ClientCert issues a client certificate for user in groups.
func (p *PKI) ClientCert(name, user string, groups ...string) (CertPair, error) {
	return p.issue(name, pkix.Name{CommonName: user, Organization: groups}, x509.ExtKeyUsageClientAuth, nil, nil)
}

func (p *PKI) issue(name string, subject pkix.Name, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (CertPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CertPair{}, fmt.Errorf("failed to generate key for %s: %w", name, err)
	}
	p.mu.Lock()
	p.serial++
	serial := p.serial
	p.mu.Unlock()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return CertPair{}, fmt.Errorf("failed to issue certificate %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return CertPair{}, fmt.Errorf("failed to marshal key %s: %w", name, err)
	}
	cp := CertPair{
		CertFile: filepath.Join(p.Dir, name+".crt"),
		KeyFile:  filepath.Join(p.Dir, name+".key"),
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	if err := os.WriteFile(cp.CertFile, cp.CertPEM, 0o600); err != nil {
		return CertPair{}, fmt.Errorf("failed to write %s: %w", cp.CertFile, err)
	}
	if err := os.WriteFile(cp.KeyFile, cp.KeyPEM, 0o600); err != nil {
		return CertPair{}, fmt.Errorf("failed to write %s: %w", cp.KeyFile, err)
	}
	return cp, nil
}
