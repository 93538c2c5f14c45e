package apiclient

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
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
