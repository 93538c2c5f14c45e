package apitokens

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The simulated nodes' provider calls: every call is a scheduling point, and the seed's
// provider faults.

// nodeTransport carries node n's provider calls to the in-process simulator, with the
// seed's faults: refused connections and 503/429 answers (nothing applied), lost answers
// (applied, then the answer is dropped), a pending update applied just before the call, and
// the node's crash (before the call is sent, or after the provider applied it).
type nodeTransport struct{ n *node }

var errConnRefused = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func (t *nodeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n, w := t.n, t.n.w
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	sreq := req.Clone(req.Context()) // the provider's copy of the request
	sreq.Body = io.NopCloser(bytes.NewReader(body))
	route := req.Method + " " + req.URL.Path
	w.yield("provider call", route)
	if n.dead {
		return nil, errConnRefused
	}
	if w.timedOut[req.Context()] {
		return nil, errCallTimeout // every try of a call whose deadline passed
	}
	if w.sw.applyEarly > 0 && w.r.Intn(100) < w.sw.applyEarly {
		if keys := w.sim.OffBlocksPendingPairs(w.obID); len(keys) > 0 {
			i := w.r.Intn(len(keys))
			w.sim.ApplyOffBlocksPending(w.obID, i)
			w.cover["fault.apply-early"]++
			w.logf("  provider applies pending update %s before %s", w.label(keys[i][1]), route)
		}
	}
	crashAfter := w.r.Intn(2) == 0
	if !crashAfter && n.call() {
		return nil, errConnRefused
	}
	change := (req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/auth/credentials")) ||
		(req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/client-keys"))
	if change && w.sw.rejected > 0 && w.r.Intn(100) < w.sw.rejected {
		return w.fault("400", route, answer(req, http.StatusBadRequest, nil), nil) // refused outright, not applied
	}
	if mint := mintShape(req); mint != "" && w.sw.impostor > 0 && w.hr.Intn(100) < w.sw.impostor {
		// Whoever answers on the provider's URL (a proxy, a broken deployment, an attacker)
		// answers 200 without looking at the credential: proof of nothing.
		body := strings.ReplaceAll(mint, "TOKEN", `abc\nexport X=1`)
		body = strings.ReplaceAll(body, "EXP", fmt.Sprint(w.clock.Now().Add(time.Hour).Unix()))
		resp := answer(req, http.StatusOK, http.Header{"Content-Type": {"application/json"}})
		resp.Body = io.NopCloser(strings.NewReader(body))
		return w.fault("impostor-200", route, resp, nil)
	}
	roll := w.r.Intn(100)
	switch {
	case roll < w.sw.refused:
		return w.fault("refused", route, nil, errConnRefused)
	case roll < w.sw.refused+w.sw.unavailable:
		return w.fault("503", route, answer(req, http.StatusServiceUnavailable, nil), nil)
	case roll < w.sw.refused+w.sw.unavailable+w.sw.throttled:
		return w.throttle(req, route)
	}
	if w.slowCall(req, route, "request") {
		w.timedOut[req.Context()] = true
		return nil, errCallTimeout
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, sreq)
	w.yield("the provider's answer to", route)
	if crashAfter && n.call() {
		return nil, errConnRefused
	}
	if w.crashesAfterCreate(n, route) {
		return nil, errConnRefused
	}
	if w.slowCall(req, route, "answer") {
		w.timedOut[req.Context()] = true
		return nil, errCallTimeout
	}
	if lost := w.r.Intn(100) < w.sw.lost; lost {
		return w.fault("lost", route, nil, errors.New("read tcp: connection reset by peer"))
	}
	return rec.Result(), nil
}

// mintShape is the body template of a 200 to req when it asks for a token (TOKEN and EXP to
// fill in), and "" for any other call.
func mintShape(req *http.Request) string {
	p := req.URL.Path
	switch {
	case req.Method != http.MethodPost:
		return ""
	case strings.HasPrefix(p, simulator.OffBlocksPrefix) && strings.HasSuffix(p, "/auth/token"):
		return `{"token":"TOKEN","expiresAt":EXP,"tokenType":"Bearer"}`
	case strings.HasPrefix(p, simulator.BloqPrefix) && (strings.HasSuffix(p, "/auth/token") || strings.HasSuffix(p, "/auth") ||
		strings.HasSuffix(p, "/auth/login")):
		return `{"accessToken":"TOKEN"}`
	}
	return ""
}

func (w *world) fault(kind, route string, resp *http.Response, err error) (*http.Response, error) {
	w.faulted = true
	w.cover["fault."+kind]++
	w.logf("  %s: %s", route, kind)
	return resp, err
}

func answer(req *http.Request, status int, h http.Header) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Request: req,
		Body: io.NopCloser(strings.NewReader("")), ProtoMajor: 1, ProtoMinor: 1}
}
