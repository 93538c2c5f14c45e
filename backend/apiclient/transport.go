package apiclient

import (
	"net/http"
	"net/url"
	"sync"

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
	transports.m[key] = t
	return t
}
