// Package apiclient is what the three provider clients share: an HTTP client per provider
// endpoint, built on go-retryablehttp and go-cleanhttp over one connection pool per endpoint
// for the whole process (SharedTransport), with bounded response bodies, redirects that never
// carry credentials to another host, and errors that name the provider, the call and the
// status but never a secret. It has no Vault imports.
package apiclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"
)

// MaxBodyBytes bounds every response body read; a token response is a few KiB.
const MaxBodyBytes = 64 << 10

// DefaultTimeout is the deadline for one provider call, retries included, when none is set.
const DefaultTimeout = 30 * time.Second

// Options configure a Client. Zero values take the defaults noted on each field.
type Options struct {
	// Provider names the provider in every error ("offblocks", "bloq", "opsnow").
	Provider string
	// BaseURL is the provider's API root, without a trailing slash.
	BaseURL string
	// Timeout is the deadline of one call, retries and Retry-After waits included
	// (default DefaultTimeout). A caller's earlier context deadline wins.
	Timeout time.Duration
	// UserAgent is sent on every request.
	UserAgent string
	// RetryMax is how many times a retryable failure is retried (default 4).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff (defaults 200 ms and 5 s).
	RetryWaitMin, RetryWaitMax time.Duration
	// Observe, when set, is told of every call once it ends: the caller's context (which
	// may carry the caller's own labels), its Request.Call, the HTTP status of the last
	// answer (0 when none came) and how long the call took, retries included. It must be
	// quick and safe for concurrent use.
	Observe func(ctx context.Context, call string, status int, took time.Duration)
	// Logger receives retry decisions at debug level; never a body, header or credential.
	Logger hclog.Logger
	// Transport, when set, carries every request instead of the process's shared transport
	// for BaseURL's endpoint (SharedTransport): the deterministic simulation serves the
	// provider in process through it.
	Transport http.RoundTripper
	// Backoff, when set, replaces retryablehttp.DefaultBackoff for the wait before a retry
	// (same contract); the simulation retries without waiting in real time.
	Backoff func(min, max time.Duration, attempt int, resp *http.Response) time.Duration
}

// Client performs JSON calls against one provider endpoint's API, for any number of
// accounts: credentials travel in each Request. It is safe for concurrent use.
type Client struct {
	opts  Options
	retry *retryablehttp.Client
}

// New builds a Client. Retries (connection errors, 429, 5xx except 501) use exponential
// backoff and honour Retry-After, but never wait past the call's deadline: a wait (backoff or
// Retry-After) that would outlast it ends the call at once with the provider's last status,
// or with the last transport error when no answer came.
func New(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 4
	}
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin = 200 * time.Millisecond
	}
	if opts.RetryWaitMax == 0 {
		opts.RetryWaitMax = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	transport := opts.Transport
	if transport == nil {
		transport = SharedTransport(opts.BaseURL)
	}
	// No Jar: nothing a provider sets on one account's call is sent on another's.
	hc := &http.Client{Transport: transport, CheckRedirect: sameHostRedirects}
	backoff := retryablehttp.Backoff(retryablehttp.DefaultBackoff)
	if opts.Backoff != nil {
		backoff = opts.Backoff
	}
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       nil, // retryablehttp's own logger prints URLs; we log decisions ourselves
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		RetryMax:     opts.RetryMax,
		Backoff:      backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	c := &Client{opts: opts, retry: rc}
	rc.CheckRetry = c.checkRetry
	return c
}

// sameHostRedirects follows at most three redirects, and only to the same scheme and host: a
// 307/308 would resend a body that carries credentials. A redirect elsewhere is not followed;
// the caller sees its 3xx status as an error.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("stopped after 3 redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// attemptKey carries a call's *attempts in its request context.
type attemptKey struct{}

// attempts counts one call's completed attempts and keeps the last one's outcome: the
// provider's status, or the transport error when no answer came. retryablehttp calls
// CheckRetry once per attempt (no ResponseHandler is set), sequentially, so plain fields are
// enough.
type attempts struct {
	n      int
	status int
	err    error
}

// checkRetry applies retryablehttp's default policy, then refuses a retry whose wait would
// pass the call's deadline, so the caller gets the provider's last status (or the last
// transport error) rather than a bare deadline error. The wait is computed exactly as
// retryablehttp will compute it: DefaultBackoff is deterministic, and the attempt number is
// the one retryablehttp passes to Backoff.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	attempt := 0
	if a, ok := ctx.Value(attemptKey{}).(*attempts); ok {
		attempt = a.n
		a.n++
		a.status, a.err = 0, err
		if resp != nil {
			a.status = resp.StatusCode
		}
	}
	retry, perr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if !retry || perr != nil {
		return retry, perr
	}
	wait := c.retry.Backoff(c.opts.RetryWaitMin, c.opts.RetryWaitMax, attempt, resp)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		c.opts.Logger.Debug("not retrying: wait would pass the deadline",
			"provider", c.opts.Provider, "status", status, "attempt", attempt, "wait", wait)
		return false, nil
	}
	c.opts.Logger.Debug("retrying provider call", "provider", c.opts.Provider, "status", status,
		"attempt", attempt, "wait", wait)
	return true, nil
}

// Request describes one call. Body is marshalled to JSON when non-nil.
type Request struct {
	// Call names the operation in errors, e.g. "mint token".
	Call   string
	Method string
	// Path is appended to the base URL; it starts with "/".
	Path   string
	Body   any
	Bearer string
	// BasicUser and BasicPass, when BasicUser is set, send HTTP Basic authentication.
	BasicUser, BasicPass string
	// NoRetry sends the request once: for calls that change state upstream and are not
	// idempotent, where a retry after a lost response would be misread.
	NoRetry bool
	// Secrets are redacted from any excerpt of the response body used in an error (Bearer and
	// BasicPass always are, with the Basic credential as sent).
	Secrets []string
	// Identifiers the call carries (an apiKey of OffBlocks, a clientId or username of Bloq)
	// are not secrets: an excerpt keeps them where the provider echoed them, though they look
	// like opaque strings. A secret never goes here (OpsNow's apiKey is one).
	Identifiers []string
}

// secrets are what an excerpt of r's answer must never show: r.Secrets and the credentials
// of its Authorization header.
func (r Request) secrets() []string {
	out := append([]string{r.Bearer, r.BasicPass}, r.Secrets...)
	if r.BasicUser != "" {
		out = append(out, base64.StdEncoding.EncodeToString([]byte(r.BasicUser+":"+r.BasicPass)))
	}
	return out
}

// Response is a completed call with a 2xx status and its bounded body.
type Response struct {
	Status int
	Body   []byte
}

// Do performs the call within the client's timeout. Any non-2xx status becomes an *Error.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	start := time.Now()
	resp, err := c.do(ctx, r)
	if c.opts.Observe != nil {
		status := StatusOf(err)
		if err == nil {
			status = resp.Status
		}
		c.opts.Observe(ctx, r.Call, status, time.Since(start))
	}
	return resp, err
}

func (c *Client) do(ctx context.Context, r Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	tries := &attempts{}
	ctx = context.WithValue(ctx, attemptKey{}, tries)

	var body []byte
	if r.Body != nil {
		var err error
		if body, err = json.Marshal(r.Body); err != nil {
			return nil, c.errorf(r, 0, "encode request: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.opts.BaseURL+r.Path, bodyReader(body))
	if err != nil {
		return nil, c.errorf(r, 0, "build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	if r.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.Bearer)
	}
	if r.BasicUser != "" {
		req.SetBasicAuth(r.BasicUser, r.BasicPass)
	}

	var resp *http.Response
	if r.NoRetry {
		resp, err = c.retry.HTTPClient.Do(req)
	} else {
		var rreq *retryablehttp.Request
		if rreq, err = retryablehttp.FromRequest(req); err == nil {
			resp, err = c.retry.Do(rreq)
		}
	}
	if err != nil {
		return nil, c.lastOutcome(r, tries, ctx, req.URL, err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, c.errorf(r, resp.StatusCode, "read response: %w", scrubTransportError(err, ctx, req.URL))
	}
	if len(data) > MaxBodyBytes {
		return nil, c.errorf(r, resp.StatusCode, "response body exceeds %d KiB", MaxBodyBytes>>10)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Provider: c.opts.Provider, Call: r.Call, Method: r.Method, Path: r.Path,
			Status: resp.StatusCode, Detail: ExcerptKeeping(data, r.Identifiers, r.secrets()...),
			Identifiers: r.Identifiers}
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if s, err := strconv.Atoi(ra); err == nil {
				e.RetryAfter = time.Duration(s) * time.Second
			}
		}
		return nil, e
	}
	return &Response{Status: resp.StatusCode, Body: data}, nil
}

// lastOutcome is the error of a call that ended with err. When the deadline ended it during a
// wait that checkRetry approved because it fit (a starved process oversleeps), the call ends
// as checkRetry meant it to: with the provider's last status, or the last transport error,
// since an answer was seen. A caller that gave up (canceled) is told so.
func (c *Client) lastOutcome(r Request, tries *attempts, ctx context.Context, u *url.URL, err error) error {
	if tries.n > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		switch {
		case tries.status != 0:
			return &Error{Provider: c.opts.Provider, Call: r.Call, Method: r.Method, Path: r.Path,
				Status: tries.status, Identifiers: r.Identifiers}
		case tries.err != nil && !errors.Is(tries.err, context.DeadlineExceeded): // not an attempt the deadline cut
			return c.errorf(r, 0, "%w", scrubTransportError(tries.err, context.WithoutCancel(ctx), u))
		}
	}
	return c.errorf(r, 0, "%w", scrubTransportError(err, ctx, u))
}

func bodyReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// scrubTransportError keeps the kind of a transport failure and names the endpoint it
// failed on, host and port, but drops the URL, which url.Error would otherwise print: its
// user info or query could carry a credential, and the rule is simplest stated as "no URL in
// errors". A failure to reach the endpoint through a proxy says so.
func scrubTransportError(err error, ctx context.Context, u *url.URL) error {
	where := hostPort(u)
	if ctx.Err() != nil {
		return fmt.Errorf("no answer from %s within the request timeout: %w", where, ctx.Err())
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "proxyconnect" {
		where += " through the proxy"
	}
	return fmt.Errorf("transport error: %s: %s", where, msg)
}

// hostPort is u's host and port, the scheme's default port when u names none; never its
// user info, path or query.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
	}
	if port == "" {
		return u.Hostname()
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func (c *Client) errorf(r Request, status int, format string, args ...any) error {
	return &Error{Provider: c.opts.Provider, Call: r.Call, Method: r.Method, Path: r.Path,
		Status: status, Err: fmt.Errorf(format, args...), Identifiers: r.Identifiers}
}

// Call performs r and decodes its 2xx body with parse; a parse failure becomes a
// "malformed response" error naming the call (parse's error must not quote the body),
// returned with what parse returned.
func Call[T any](ctx context.Context, c *Client, r Request, parse func(body []byte) (T, error)) (T, error) {
	var zero T
	resp, err := c.Do(ctx, r)
	if err != nil {
		return zero, err
	}
	v, err := parse(resp.Body)
	if err != nil {
		// v is whatever parse could read (a parser may return a part that must not be lost,
		// such as a new refresh token beside an unreadable access token).
		return v, c.Malformed(r, err)
	}
	return v, nil
}

// Malformed reports a 2xx response that lacks what the contract promises. why must not
// quote the body.
func (c *Client) Malformed(r Request, why error) error {
	return c.errorf(r, 200, "malformed response: %w", why)
}
