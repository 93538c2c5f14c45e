// Package simulator is a local implementation of the three providers' auth APIs as
// providers.md describes them: OffBlocks (under /offblocks/v1), Bloq (under /bloq) and
// OpsNow (under /opsnow), on one http.Handler. It checks credentials, issues JWTs with real
// expiries, enforces OffBlocks' invalidation of every earlier token on a credential update,
// Bloq's client keys, refresh grant and account tokens, and OpsNow's envelope and error
// shape. Faults (statuses, Retry-After, delays, hangs, garbage or huge bodies, lost
// responses after a change was applied) are injected per route. Unit tests, the acceptance
// suite and `make dev` all use it; nothing else fakes a provider.
package simulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Path prefixes of each provider's API on the simulator; a config's base_url is the
// simulator's URL plus one of these.
const (
	OffBlocksPrefix = "/offblocks/v1"
	BloqPrefix      = "/bloq"
	OpsNowPrefix    = "/opsnow"
)

// Routes that faults can be injected on.
const (
	RouteOffBlocksToken       = "offblocks.token"
	RouteOffBlocksCredentials = "offblocks.credentials"
	RouteBloqToken            = "bloq.token"
	RouteBloqAuth             = "bloq.auth"
	RouteBloqAuthLogin        = "bloq.auth.login"
	RouteBloqKeysCreate       = "bloq.keys.create"
	RouteBloqKeysList         = "bloq.keys.list"
	RouteBloqKeysDelete       = "bloq.keys.delete"
	RouteOpsNowToken          = "opsnow.token"
)

// Lifetimes of issued tokens. Zero values take the documented ones.
type Lifetimes struct {
	OffBlocks, BloqClient, BloqAccount, BloqRefresh, OpsNow time.Duration
}

// Fault is an injected misbehaviour for the next Times requests on a route.
type Fault struct {
	// Status, when set, answers with this status instead of the normal response.
	Status int
	// RetryAfter is sent as the Retry-After header, in seconds, when set.
	RetryAfter int
	// Body replaces the response body (garbage); BodySize sends that many bytes of junk.
	Body     string
	BodySize int
	// Delay waits before handling (ends early if the client gives up).
	Delay time.Duration
	// Hang blocks until the client gives up, or Release is closed.
	Hang    bool
	Release <-chan struct{}
	// AfterApply performs the request's effect first, then misbehaves: a lost response.
	AfterApply bool
	// OnHit is called (in the handler's goroutine) when the fault triggers, after any apply.
	OnHit func()
	// Match, when set, picks the requests the fault applies to by their body (say, one
	// credential of two); the others are answered normally and do not use the fault up.
	Match func(body []byte) bool
	// Caller, when set, picks the requests the fault applies to by whom their Bearer token
	// was issued for: an OffBlocks account id, a Bloq user id (account tokens) or key id
	// (client tokens). The others are answered normally and do not use the fault up.
	Caller string
	// Times is how many requests the fault applies to (default 1; negative: forever).
	Times int
}

// Server is the simulator. Its methods are safe for concurrent use.
type Server struct {
	mu        sync.Mutex
	now       func() time.Time
	key       []byte
	lifetimes Lifetimes
	faults    map[string][]Fault
	calls     map[string]int

	offblocks map[string]*offblocksAccount // by account id
	bloqUsers map[string]*bloqUser         // by user id
	bloqKeys  map[string]*bloqKey          // by key id
	revoked   map[string]bool              // jti of Bloq refresh tokens no longer valid
	opsnow    map[string]bool              // API keys
	opaque    map[string]time.Time         // OpsNow opaque tokens → expiry

	bloqRotateRefresh bool
	bloqEchoRefresh   bool // the refresh grant's answer repeats the refresh token it was given
	bloqLegacyLogin   bool // POST /bloq/auth answers 404: only /bloq/auth/login logs in
	bloqKeyListIDOnly bool // the key list gives only {id: clientId, createdAt}
	// bloqKeyListEnvelope answers the key list inside an object, beside a null page token.
	bloqKeyListEnvelope bool
	offblocksLag        time.Duration
	offblocksLagFunc    func() time.Duration
	bloqKeyLag          func() time.Duration
	opsnowShape         OpsNowShape
	seq                 int

	hostileToken func(provider, kind string) string                    // SetHostileTokens
	claimExpiry  func(provider, kind string, real time.Time) time.Time // SetClaimedExpiry
	realExpiry   map[string]time.Time                                  // by jti: tokens that claim a later one
	noExpiry     func(provider, kind string) bool                      // SetNoExpiry
	aliases      map[string]string                                     // opaque value → the signed token it stands for
	bloqDeleted  []string                                              // client ids of deleted Bloq keys, in order
}

// New returns an empty simulator with the documented lifetimes and the real clock.
func New() *Server {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return &Server{
		now:       time.Now,
		key:       key,
		faults:    map[string][]Fault{},
		calls:     map[string]int{},
		offblocks: map[string]*offblocksAccount{},
		bloqUsers: map[string]*bloqUser{},
		bloqKeys:  map[string]*bloqKey{},
		revoked:   map[string]bool{},
		opsnow:    map[string]bool{},
		opaque:    map[string]time.Time{},
	}
}

// SetClock replaces the simulator's clock (token issue and expiry checks).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetLifetimes sets the lifetimes of tokens issued from now on.
func (s *Server) SetLifetimes(l Lifetimes) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetimes = l
}

func (s *Server) lifetime(d, documented time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return documented
}

// Inject queues a fault on a route.
func (s *Server) Inject(route string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	s.faults[route] = append(s.faults[route], f)
}

// ClearFaults removes every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]Fault{}
}

// Calls returns how many requests a route has received.
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// takeFault counts a call and pops the route's next fault that matches body and the
// caller's Bearer token, if any.
func (s *Server) takeFault(route string, body []byte, token string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[route]++
	q := s.faults[route]
	if len(q) == 0 || (q[0].Match != nil && !q[0].Match(body)) || (q[0].Caller != "" && q[0].Caller != s.subject(token)) {
		return Fault{}, false
	}
	f := q[0]
	if f.Times > 0 {
		q[0].Times--
		if q[0].Times == 0 {
			s.faults[route] = q[1:]
		}
	}
	return f, true
}

// Handler serves the three providers under their prefixes, /_sim/validate and /_sim/calls.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.offblocksRoutes(mux)
	s.bloqRoutes(mux)
	s.opsnowRoutes(mux)
	mux.HandleFunc("POST /_sim/validate", s.handleValidate)
	mux.HandleFunc("GET /_sim/calls", s.handleCalls)
	return mux
}

// handleCalls answers how many requests each route has received: {"offblocks.token": 3, ...}.
// A simulator in another process (make dev, make bench) is counted through it.
func (s *Server) handleCalls(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	calls := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		calls[k] = v
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, calls)
}

// route wraps a handler with fault injection. apply performs the request and writes the
// normal response to w; with an AfterApply fault the response is discarded.
func (s *Server) route(name string, apply http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Read the body now: faults may match on it, and the server notices a client that
		// gave up (and cancels r.Context) only once the body is consumed, which Hang and
		// Delay rely on.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f, ok := s.takeFault(name, body, bearer(r))
		if !ok {
			apply(w, r)
			return
		}
		if f.Delay > 0 && !sleep(r.Context(), f.Delay) {
			return
		}
		if f.AfterApply {
			apply(discard{header: http.Header{}}, r)
		}
		if f.OnHit != nil {
			f.OnHit()
		}
		if f.Hang {
			select {
			case <-r.Context().Done():
			case <-f.Release:
			}
			return
		}
		if f.Status == 0 && f.Body == "" && f.BodySize == 0 {
			if !f.AfterApply {
				apply(w, r)
			}
			return
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		status := f.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		switch {
		case f.BodySize > 0:
			chunk := []byte(strings.Repeat("x", 32<<10))
			for n := 0; n < f.BodySize; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		default:
			_, _ = w.Write([]byte(f.Body))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discard is a ResponseWriter that drops what it is given.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return prefix + strconv.Itoa(s.seq)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// handleValidate answers whether the Bearer token is valid now at any provider:
// 200 {"provider": ...} or 401.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	p, err := s.Validate(bearer(r))
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"provider": p})
}
