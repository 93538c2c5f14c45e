package apiclient

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// EndpointMaxConns bounds the connections open to one provider endpoint (a scheme and a
// host:port) at once, over every account of every mount the plugin process serves; as many
// may stay idle, for at most the transport's idle timeout (90 s). A call that finds them all
// busy waits for one within its deadline. Sixty-four keeps a burst well inside any
// provider's rate limits and a file-descriptor limit of 1,024 safe, and is more than the
// plugin's own gRPC concurrency lets through at once on a small node.
const EndpointMaxConns = 64

// transports holds one transport per endpoint for the whole process: multiplexed mounts
// share them, as do all the accounts of a mount.
var transports struct {
	mu sync.Mutex
	m  map[string]*http.Transport
}

// endpointOf is the key of rawURL's connection pool: its scheme and host (with port).
// An unparsable URL gets a key of its own, and its requests fail when they are built.
func endpointOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Scheme + "://" + u.Host
}

// SharedTransport returns the process's transport for baseURL's endpoint, creating it on
// first use: a cleanhttp pooled transport (proxy from the environment, TLS verified against
// the system roots with the request's host as server name, HTTP/2 when offered) bounded to
// EndpointMaxConns open and idle connections.
//
// Sharing a connection between accounts is safe: every credential a call carries is in
// that request's own headers (Authorization) or body, never in the connection. The TLS
// session authenticates only the server (no client certificate), HTTP/1.1 keep-alive and
// HTTP/2 carry no state from one request to the next, and no cookie jar is attached. Two
// base URLs share a transport only when their scheme and host:port are equal, so each still
// gets the TLS checks of its own host.
//
// A plaintext http:// endpoint (allowed for loopback hosts only) gets a transport that dials
// nothing but a loopback address (loopbackOnly): checked on the address actually dialled, after
// name resolution, so a "localhost" that /etc/hosts or a DNS search domain resolves elsewhere
// never receives a credential in the clear.
func SharedTransport(baseURL string) http.RoundTripper {
	key := endpointOf(baseURL)
	transports.mu.Lock()
	defer transports.mu.Unlock()
	if t := transports.m[key]; t != nil {
		return t
	}
	if transports.m == nil {
		transports.m = map[string]*http.Transport{}
	}
	t := cleanhttp.DefaultPooledTransport()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost, t.MaxIdleConns = EndpointMaxConns, EndpointMaxConns, EndpointMaxConns
	if u, err := url.Parse(baseURL); err != nil || u.Scheme != "https" {
		t.DialContext = loopbackDialer()
	}
	transports.m[key] = t
	return t
}

// loopbackDialer dials as cleanhttp's transport does (30 s connect timeout, 30 s keep-alive),
// but only to a loopback address (loopbackOnly).
func loopbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: loopbackOnly}
	return d.DialContext
}

// loopbackOnly is a net.Dialer's Control: it refuses a connection to any address but a
// loopback one (127.0.0.0/8, ::1), before it is made. Its text names the address, without a
// ": " (transport errors keep the text after the last one).
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return &net.AddrError{Err: "http:// goes only to a loopback address, not to " + host, Addr: ""}
	}
	return nil
}
