package reply

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of the callback client.
const (
	DefaultTimeout = 30 * time.Second
	dialTimeout    = 10 * time.Second
	// maxCAFileBytes bounds one PEM file of trusted CAs.
	maxCAFileBytes = 1 << 20
	// maxResponseHeaderBytes bounds the headers a callback receiver answers
	// with (Go's default is 10 MiB).
	maxResponseHeaderBytes = 1 << 20
)

// AddressError is a connection the Guard refused: IP is the address that
// would have been connected, Host the name it was dialled by.
type AddressError struct {
	Host string
	IP   netip.Addr
}

func (e *AddressError) Error() string {
	if ip, err := netip.ParseAddr(e.Host); e.Host == "" || err == nil && ip == e.IP {
		return fmt.Sprintf("callback address %s is not public and not allowed", e.IP)
	}
	return fmt.Sprintf("callback address %s (of %s) is not public and not allowed", e.IP, e.Host)
}

// Guard dials only to allowed addresses. The check runs in
// net.Dialer.Control on the address actually being connected, after DNS
// resolution, on every connection attempt, so a name that resolves to a
// public address when checked and to a private one when dialled (DNS
// rebinding) does not pass. An address passes when allow.IP says so, or when
// the dialled host name matches allow.Name. A name with several addresses is
// refused when any of them is refused, whichever the dialler would try first.
type Guard struct {
	allow    *Allow
	resolver *net.Resolver
}

// NewGuard makes a Guard; a nil allow permits public addresses only.
func NewGuard(allow *Allow) *Guard {
	return &Guard{allow: allow, resolver: net.DefaultResolver}
}

// DialContext connects to addr ("host:port") over TCP. A refused address is
// an *AddressError.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	lookupNetwork := ""
	switch network {
	case "tcp":
		lookupNetwork = "ip"
	case "tcp4":
		lookupNetwork = "ip4"
	case "tcp6":
		lookupNetwork = "ip6"
	default:
		return nil, fmt.Errorf("callback dial: network %q is not supported", network)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("callback dial: %w", err)
	}
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Resolver: g.resolver}
	if g.allow.Name(host) {
		return d.DialContext(ctx, network, addr)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		// A name: all of its addresses are judged up front, so the answer
		// does not depend on which one the dialler tries first. The
		// Control check below still judges what is actually connected.
		ips, err := g.resolver.LookupNetIP(ctx, lookupNetwork, host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			if !g.allow.IP(ip) {
				return nil, &AddressError{Host: host, IP: ip.Unmap()}
			}
		}
	}
	var refused atomic.Pointer[AddressError]
	d.Control = func(_, address string, _ syscall.RawConn) error {
		// Once one address of this dial was refused, so are the others.
		if r := refused.Load(); r != nil {
			return r
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("callback dial: address %q cannot be checked", address)
		}
		if !g.allow.IP(ap.Addr()) {
			e := &AddressError{Host: host, IP: ap.Addr().Unmap()}
			refused.CompareAndSwap(nil, e)
			return e
		}
		return nil
	}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		if r := refused.Load(); r != nil {
			return nil, r
		}
		return nil, err
	}
	return conn, nil
}

// ClientOptions configure NewTransport and NewClient.
type ClientOptions struct {
	// Allow: destinations beyond public addresses; nil permits public
	// addresses only.
	Allow *Allow
	// RootCAs verify the receivers' certificates; nil uses the system roots.
	RootCAs *x509.CertPool
	// Timeout of a whole request (NewClient) and of the wait for response
	// headers (NewTransport). Default 30s.
	Timeout time.Duration
}

// NewTransport makes an *http.Transport that dials through a Guard, never
// through a proxy from the environment, verifies TLS with o.RootCAs, and
// allows HTTP/2.
func NewTransport(o ClientOptions) *http.Transport {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Transport{
		Proxy:                  nil, // a proxy would connect on our behalf, past the Guard
		DialContext:            NewGuard(o.Allow).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    dialTimeout,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// NewClient wraps NewTransport in a client that never follows redirects: a
// redirect answer is returned as is, since its target was never checked.
func NewClient(o ClientOptions) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{
		Transport: NewTransport(o),
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// LoadCAs reads PEM files of trusted CA certificates into a pool; the pool
// replaces the system roots. No files: nil (the system roots). The error
// names the file.
func LoadCAs(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := readBounded(f)
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err // the message names the file already
		}
		if err != nil {
			return nil, fmt.Errorf("trusted CA file %s: %w", f, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trusted CA file %s: no PEM certificate found", f)
		}
	}
	return pool, nil
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(filepath.Clean(name))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCAFileBytes {
		return nil, errors.New("larger than 1 MiB")
	}
	return b, nil
}
