package apiclient

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// One transport per endpoint: base URLs of one scheme and host:port share it, whatever
// their paths; another host, port or scheme gets its own.
func TestSharedTransportPerEndpoint(t *testing.T) {
	a := SharedTransport("https://api.example.test/v1")
	if b := SharedTransport("https://api.example.test/other"); b != a {
		t.Fatal("two base URLs of one endpoint got two transports")
	}
	for _, other := range []string{"https://api2.example.test/v1", "https://api.example.test:8443/v1", "http://api.example.test/v1"} {
		if SharedTransport(other) == a {
			t.Fatalf("%s shares the transport of https://api.example.test", other)
		}
	}
	tr := a.(*http.Transport)
	if tr.MaxConnsPerHost != EndpointMaxConns || tr.MaxIdleConnsPerHost != EndpointMaxConns {
		t.Fatalf("bounds %d/%d, want %d", tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost, EndpointMaxConns)
	}
}

// Many accounts' clients calling one endpoint at once never hold more than EndpointMaxConns
// connections to it, and every call still completes (the others wait for a connection).
func TestEndpointConnectionBound(t *testing.T) {
	var mu sync.Mutex
	open, peak := 0, 0
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
			peak = max(peak, open)
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	const calls = 3 * EndpointMaxConns
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		c := newTestClient(srv.URL, 30*time.Second) // one client per account
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(context.Background(), Request{Call: "mint", Method: http.MethodGet, Path: "/"})
			errs <- err
		}()
	}
	// Let every call reach the transport, then answer them all.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := open
		mu.Unlock()
		if n >= EndpointMaxConns {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > EndpointMaxConns || peak < EndpointMaxConns/2 {
		t.Fatalf("peak of %d connections for %d concurrent calls, want at most %d (and the bound reached)", peak, calls, EndpointMaxConns)
	}
}

// A transport error names the endpoint's host and port (the scheme's default port when the
// URL gives none), never the URL's user info, path or query: a DNS failure says which host
// it could not find.
func TestTransportErrorNamesTheHost(t *testing.T) {
	for base, host := range map[string]string{
		"https://nonexistent.invalid/v1":                                          "nonexistent.invalid:443",
		"http://apikey:hunter2sekrit@nonexistent.invalid:8443/v1?token=t0psekrit": "nonexistent.invalid:8443",
	} {
		c := New(Options{Provider: "testprov", BaseURL: base, Timeout: 10 * time.Second})
		_, err := c.Do(context.Background(), Request{Call: "mint", Method: http.MethodPost, Path: "/t", NoRetry: true})
		msg := fmt.Sprint(err)
		if !strings.HasPrefix(msg, "testprov: mint (POST /t): transport error: "+host+": ") {
			t.Errorf("%s: %s, want the transport error to name %s", base, msg, host)
		}
		for _, bad := range []string{"apikey", "hunter2sekrit", "t0psekrit", "/v1", "://"} {
			if strings.Contains(msg, bad) {
				t.Errorf("%s: %s carries %q", base, msg, bad)
			}
		}
	}
}

// A failure to reach the endpoint through a proxy names the endpoint and says "through the
// proxy", so the operator looks at the proxy.
func TestTransportErrorThroughProxy(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	proxy, _ := url.Parse(closed.URL)
	closed.Close()
	c := New(Options{Provider: "testprov", BaseURL: "http://api.example.test:8080", Timeout: 10 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}})
	_, err := c.Do(context.Background(), Request{Call: "mint", Method: http.MethodPost, Path: "/t", NoRetry: true})
	if want := "transport error: api.example.test:8080 through the proxy: "; !strings.Contains(fmt.Sprint(err), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// A plaintext http:// endpoint dials only loopback addresses, checked on the address dialled
// (after name resolution): a non-loopback one fails before any connection, naming it, while
// https:// endpoints and loopback ones are unaffected.
func TestPlaintextDialsOnlyLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for _, base := range []string{srv.URL, "http://localhost:" + port} {
		if _, err := New(Options{Provider: "p", BaseURL: base}).Do(context.Background(),
			Request{Call: "c", Method: http.MethodGet, Path: "/"}); err != nil {
			t.Errorf("%s: %v", base, err)
		}
	}
	// 192.0.2.1 (TEST-NET-1) would hang on connect: the refusal comes before it.
	c := New(Options{Provider: "p", BaseURL: "http://192.0.2.1:9", Timeout: 5 * time.Second, RetryMax: -1})
	start := time.Now()
	_, err := c.Do(context.Background(), Request{Call: "c", Method: http.MethodGet, Path: "/"})
	want := "transport error: 192.0.2.1:9: http:// goes only to a loopback address, not to 192.0.2.1"
	if err == nil || !strings.Contains(err.Error(), want) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s, want it to contain %q at once", err, time.Since(start), want)
	}
	for _, a := range []string{"127.0.0.1:80", "127.3.4.5:80", "[::1]:80", "[::ffff:127.0.0.1]:80"} {
		if err := loopbackOnly("tcp", a, nil); err != nil {
			t.Errorf("loopbackOnly(%s) = %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "[::2]:80", "0.0.0.0:80", "[fe80::1]:80", "localhost:80"} {
		if err := loopbackOnly("tcp", a, nil); err == nil {
			t.Errorf("loopbackOnly(%s) = nil", a)
		}
	}
	// https:// is not limited: the same address is dialled (and times out here).
	c = New(Options{Provider: "p", BaseURL: "https://192.0.2.1:9", Timeout: 300 * time.Millisecond, RetryMax: -1})
	if _, err := c.Do(context.Background(), Request{Call: "c", Method: http.MethodGet, Path: "/"}); err == nil ||
		strings.Contains(err.Error(), "loopback") {
		t.Fatalf("https:// to a non-loopback address: %v", err)
	}
}
