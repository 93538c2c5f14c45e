package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestClient(url string, timeout time.Duration) *Client {
	return New(Options{Provider: "testprov", BaseURL: url, Timeout: timeout, UserAgent: "ua/1",
		RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
}

// sequence answers each request with the next status (the last repeats).
func sequence(t *testing.T, statuses []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(statuses) {
			i = len(statuses) - 1
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(statuses[i])
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetriesTransientStatuses(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 429} {
		srv, n := sequence(t, []int{status, status, 200}, nil)
		resp, err := newTestClient(srv.URL, 5*time.Second).Do(context.Background(),
			Request{Call: "mint", Method: "POST", Path: "/t", Body: map[string]string{"a": "b"}})
		if err != nil || resp.Status != 200 || n.Load() != 3 {
			t.Errorf("status %d: err=%v calls=%d", status, err, n.Load())
		}
	}
}

func TestNoRetryOnDefiniteAnswers(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 501} {
		srv, n := sequence(t, []int{status}, nil)
		_, err := newTestClient(srv.URL, 5*time.Second).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
		if StatusOf(err) != status || n.Load() != 1 {
			t.Errorf("status %d: err=%v calls=%d", status, err, n.Load())
		}
		if IsRejected(err) != (status == 400 || status == 401 || status == 403) {
			t.Errorf("status %d: IsRejected=%v", status, IsRejected(err))
		}
	}
}

func TestNoRetryRequestSentOnce(t *testing.T) {
	srv, n := sequence(t, []int{503, 200}, nil)
	_, err := newTestClient(srv.URL, 5*time.Second).Do(context.Background(),
		Request{Call: "update", Method: "PUT", Path: "/t", Body: map[string]string{"k": "v"}, NoRetry: true})
	if StatusOf(err) != 503 || n.Load() != 1 {
		t.Fatalf("NoRetry: err=%v calls=%d", err, n.Load())
	}
}

func TestRetryAfterHonouredWithinDeadline(t *testing.T) {
	srv, n := sequence(t, []int{429, 200}, http.Header{"Retry-After": {"1"}})
	start := time.Now()
	_, err := newTestClient(srv.URL, 30*time.Second).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if err != nil || n.Load() != 2 {
		t.Fatalf("err=%v calls=%d", err, n.Load())
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("Retry-After 1 not honoured: waited %s", waited)
	}
}

func TestRetryAfterPastDeadlineGivesUpAtOnce(t *testing.T) {
	srv, n := sequence(t, []int{503}, http.Header{"Retry-After": {"120"}})
	start := time.Now()
	_, err := newTestClient(srv.URL, 30*time.Second).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.RetryAfter != 120*time.Second || n.Load() != 1 {
		t.Fatalf("err=%v calls=%d", err, n.Load())
	}
	// Generous for a loaded machine; waiting for the 30 s deadline would take far longer.
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("waited %s for a retry that could not happen", el)
	}
}

// backoffClient has the default backoff shape (200 ms doubling to 5 s) and a 1 s timeout: the
// third wait (800 ms) no longer fits.
func backoffClient(url string) *Client {
	return New(Options{Provider: "testprov", BaseURL: url, Timeout: time.Second,
		RetryWaitMin: 200 * time.Millisecond, RetryWaitMax: 5 * time.Second})
}

func TestLaterBackoffPastDeadlineKeepsStatus(t *testing.T) {
	srv, n := sequence(t, []int{503}, nil)
	_, err := backoffClient(srv.URL).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if StatusOf(err) != 503 || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err=%v calls=%d, want the provider's 503", err, n.Load())
	}
}

func TestLaterBackoffPastDeadlineKeepsTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := backoffClient(url).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if err == nil || !strings.Contains(err.Error(), "transport error") || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want the transport error", err)
	}
}

func TestHangEndsAtTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, err := newTestClient(srv.URL, 300*time.Millisecond).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if err == nil || !strings.Contains(err.Error(), "no answer from "+srv.Listener.Addr().String()+" within the request timeout") ||
		!strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %s with a 300ms timeout", el)
	}
}

func TestConnectionRefusedRetriedThenReported(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newTestClient(url, 2*time.Second).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if err == nil || !strings.Contains(err.Error(), "testprov: mint (POST /t): transport error") || strings.Contains(err.Error(), url) {
		t.Fatalf("err = %v", err)
	}
}

func TestBodyLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, io.LimitReader(zeroReader{}, 64<<20))
	}))
	defer srv.Close()
	_, err := newTestClient(srv.URL, 5*time.Second).Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if err == nil || !strings.Contains(err.Error(), "exceeds 64 KiB") {
		t.Fatalf("err = %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestRedirects(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.WriteHeader(200)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/final":
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(200)
			_, _ = w.Write(b)
		}
	}))
	defer srv.Close()
	c := newTestClient(srv.URL, 5*time.Second)
	_, err := c.Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/away", Body: map[string]string{"secret": "s3cr3t"}})
	if StatusOf(err) != http.StatusTemporaryRedirect || otherHits.Load() != 0 {
		t.Fatalf("cross-host redirect: err=%v, other host hit %d times", err, otherHits.Load())
	}
	resp, err := c.Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/here", Body: map[string]string{"k": "v"}})
	if err != nil || !strings.Contains(string(resp.Body), `"k":"v"`) {
		t.Fatalf("same-host redirect: err=%v", err)
	}
}

func TestHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(200)
	}))
	defer srv.Close()
	c := newTestClient(srv.URL, 5*time.Second)
	if _, err := c.Do(context.Background(), Request{Call: "x", Method: "POST", Path: "/", Bearer: "tok", Body: 1}); err != nil {
		t.Fatal(err)
	}
	if got.Get("User-Agent") != "ua/1" || got.Get("Authorization") != "Bearer tok" || got.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", got)
	}
	if _, err := c.Do(context.Background(), Request{Call: "x", Method: "POST", Path: "/", BasicUser: "u", BasicPass: "p"}); err != nil {
		t.Fatal(err)
	}
	if u, p, ok := (&http.Request{Header: got}).BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth = %v %v %v", u, p, ok)
	}
}

func TestErrorExcerptRedacts(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	bodies := map[string]string{
		"echoed secret": `{"message":"bad secret hunter2hunter2 given"}`,
		"jwt":           `invalid token ` + jwt,
		"long opaque":   `{"error":{"code":401,"message":"key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA not found"}}`,
		"long body":     strings.Repeat("a b ", 500),
		"control chars": "line1\nline2\x00\x1b[31m",
		"error+desc":    `{"error":"invalid_grant","error_description":"expired"}`,
	}
	for name, body := range bodies {
		ex := Excerpt([]byte(body), "hunter2hunter2")
		for _, bad := range []string{"hunter2hunter2", jwt, "AAAAAAAAAAAAAAAAAAAAAAAA", "\n", "\x00"} {
			if strings.Contains(ex, bad) {
				t.Errorf("%s: excerpt %q contains %q", name, ex, bad)
			}
		}
		if len(ex) > excerptMax+len("…") {
			t.Errorf("%s: excerpt is %d bytes", name, len(ex))
		}
	}
	if got := Excerpt([]byte(`{"status":"fail","error":{"code":401,"message":"Unauthorized"}}`)); got != "Unauthorized" {
		t.Errorf("OpsNow message = %q", got)
	}
	if got := Excerpt([]byte(`{"error":"invalid_grant","error_description":"expired"}`)); got != "invalid_grant: expired" {
		t.Errorf("oauth message = %q", got)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Provider: "offblocks", Call: "mint token", Method: "POST", Path: "/auth/token", Status: 401, Detail: "invalid credentials"}
	want := `offblocks: mint token (POST /auth/token): status 401 Unauthorized: "invalid credentials"`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
	// A provider text that only says the status is not repeated after it.
	for _, detail := range []string{"Unauthorized", "unauthorized.", "401 Unauthorized", "401"} {
		e := &Error{Provider: "opsnow", Call: "mint token", Method: "POST", Path: "/t", Status: 401, Detail: detail}
		if got, want := e.Error(), "opsnow: mint token (POST /t): status 401 Unauthorized"; got != want {
			t.Errorf("detail %q: got %s, want %s", detail, got, want)
		}
	}
	wrapped := fmt.Errorf("ctx: %w", e)
	if !IsRejected(wrapped) || StatusOf(wrapped) != 401 {
		t.Error("IsRejected/StatusOf do not see through wrapping")
	}
}

// Observe hears of every call with its name, its last status (0 when no answer came) and its
// duration.
func TestObserve(t *testing.T) {
	srv, _ := sequence(t, []int{503, 200}, nil)
	type seen struct {
		call   string
		status int
	}
	var got []seen
	c := New(Options{Provider: "testprov", BaseURL: srv.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond,
		Observe: func(_ context.Context, call string, status int, took time.Duration) {
			if took <= 0 {
				t.Errorf("took %s", took)
			}
			got = append(got, seen{call, status})
		}})
	if _, err := c.Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"}); err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	c2 := New(Options{Provider: "testprov", BaseURL: closed.URL, RetryMax: -1, Timeout: time.Second,
		Observe: func(_ context.Context, call string, status int, _ time.Duration) {
			got = append(got, seen{call, status})
		}})
	_, _ = c2.Do(context.Background(), Request{Call: "down", Method: "POST", Path: "/t"})
	if want := []seen{{"mint", 200}, {"down", 0}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}

// overrunBackoff approves a short wait when checkRetry asks and sleeps a long one when
// retryablehttp does: what a starved process does to a wait that fit the deadline.
func overrunBackoff() func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	var calls atomic.Int32
	return func(time.Duration, time.Duration, int, *http.Response) time.Duration {
		if calls.Add(1)%2 == 1 {
			return 10 * time.Millisecond
		}
		return 3 * time.Second
	}
}

// A wait that fit the deadline when it was decided, but that the deadline ended (the process
// was starved), still ends the call with the provider's last answer or the last transport
// error, never a bare "no answer within the request timeout": an answer was seen.
func TestDeadlineDuringAnApprovedWaitKeepsTheLastAnswer(t *testing.T) {
	srv, _ := sequence(t, []int{503}, nil)
	c := New(Options{Provider: "testprov", BaseURL: srv.URL, Timeout: 500 * time.Millisecond, Backoff: overrunBackoff()})
	_, err := c.Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if StatusOf(err) != 503 || strings.Contains(err.Error(), "deadline") || strings.Contains(err.Error(), "no answer") {
		t.Fatalf("err = %v, want the provider's 503", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	c = New(Options{Provider: "testprov", BaseURL: closed.URL, Timeout: 500 * time.Millisecond, Backoff: overrunBackoff()})
	_, err = c.Do(context.Background(), Request{Call: "mint", Method: "POST", Path: "/t"})
	if err == nil || !strings.Contains(err.Error(), "transport error") || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want the transport error", err)
	}
	// A caller that gives up is still told so.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err = c.Do(ctx, Request{Call: "mint", Method: "POST", Path: "/t"}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("canceled call: %v", err)
	}
}

// Every error of a call carries the identifiers the call sent, whatever failed: a status, a
// malformed answer, a transport error.
func TestErrorsCarryTheCallsIdentifiers(t *testing.T) {
	ids := []string{"3fa85f64-5717-4562-b3fc-2c963f66afa6"}
	srv, _ := sequence(t, []int{401}, nil)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) }))
	t.Cleanup(ok.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, url := range []string{srv.URL, ok.URL, closed.URL} {
		c := New(Options{Provider: "testprov", BaseURL: url, Timeout: time.Second, RetryMax: -1})
		_, err := Call(context.Background(), c, Request{Call: "mint", Method: "POST", Path: "/t", Identifiers: ids},
			func([]byte) (Token, error) { return Token{}, errors.New("no token") })
		var e *Error
		if !errors.As(err, &e) || len(e.Identifiers) != 1 || e.Identifiers[0] != ids[0] {
			t.Errorf("%s: %v carries %v", url, err, e)
		}
	}
}
