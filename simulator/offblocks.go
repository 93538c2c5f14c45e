package simulator

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
)

type offblocksAccount struct {
	apiKey, apiSecret string
	gen               int // bumped by every credential update: older tokens die
	deleted           bool
	// pending are accepted credential updates not applied yet (lag mode).
	pending []offblocksUpdate
	// lag, when lagSet, is this account's own lag (SetOffBlocksAccountLag).
	lag    time.Duration
	lagSet bool
}

// offblocksUpdate is a credential update the provider has accepted but not yet applied. It
// applies at its own time, whatever the order the updates were sent in, and only if the pair
// whose Bearer token authorised it is still the account's then (base is that pair's
// generation): an update applied kills every token of the pair it replaces, the Bearer of
// every other update authorised by that pair included, so those never apply.
type offblocksUpdate struct {
	apiKey, apiSecret string
	at                time.Time
	base              int
}

// SetOffBlocksLag makes every later credential update (PUT /auth/credentials) answer 204 at
// once but take effect only lag later, by the simulator's clock: until then the old pair
// still mints and its tokens still work, and the new pair is refused. Credential stores
// behind an API are often eventually consistent; the plugin must not take such a refusal
// of the new pair as proof that the update was never made. Zero turns lag off.
func (s *Server) SetOffBlocksLag(lag time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offblocksLag = lag
	s.offblocksLagFunc = nil
}

// SetOffBlocksLagFunc makes each later credential update take effect lag() after it is
// accepted, a lag of its own per update (zero: at once), so that updates may apply in another
// order than they were sent in. The deterministic simulation draws the lags from its seed.
func (s *Server) SetOffBlocksLagFunc(lag func() time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offblocksLagFunc = lag
}

// SetOffBlocksAccountLag gives one account a lag of its own, overriding SetOffBlocksLag and
// SetOffBlocksLagFunc for its later credential updates (zero: they take effect at once), so
// that one integration can lag while the others apply their updates at once. Updates
// accepted earlier keep the time they were given.
func (s *Server) SetOffBlocksAccountLag(id string, lag time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.offblocks[id]; a != nil {
		a.lag, a.lagSet = lag, true
	}
}

// OffBlocksPending reports whether the account has an accepted credential update that has
// not taken effect yet and still can.
func (s *Server) OffBlocksPending(id string) bool {
	return len(s.OffBlocksPendingPairs(id)) > 0
}

// OffBlocksPendingPairs returns the pairs (API key, secret) of the account's accepted
// updates that have not taken effect yet and still can (their authorising pair is still the
// account's), in the order they were accepted.
func (s *Server) OffBlocksPendingPairs(id string) [][2]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	a := s.offblocks[id]
	if a == nil {
		return nil
	}
	var pairs [][2]string
	for _, u := range a.pending {
		if u.base == a.gen {
			pairs = append(pairs, [2]string{u.apiKey, u.apiSecret})
		}
	}
	return pairs
}

// QueueOffBlocksUpdate is a change of the account's pair to apiKey/apiSecret that the
// account accepted, authorised by its current pair, as a client that sent the PUT and died
// before its answer would leave it: it applies after lag (at once when 0), if that pair is
// still current then. It reports whether the account exists.
func (s *Server) QueueOffBlocksUpdate(id, apiKey, apiSecret string, lag time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	a := s.offblocks[id]
	if a == nil {
		return false
	}
	a.accept(apiKey, apiSecret, s.now(), lag)
	return true
}

// accept takes a change to apiKey/apiSecret, authorised by the current pair at now: applied
// at once without lag, else pending until now+lag.
func (a *offblocksAccount) accept(apiKey, apiSecret string, now time.Time, lag time.Duration) {
	u := offblocksUpdate{apiKey: apiKey, apiSecret: apiSecret, at: now.Add(lag), base: a.gen}
	if lag > 0 {
		a.pending = append(a.pending, u)
	} else {
		a.apply(u)
	}
}

// ApplyOffBlocksPending makes the account's i-th pending update (as OffBlocksPendingPairs
// orders them) take effect now, as a provider catching up at an unforeseen moment would.
// It reports whether there was one.
func (s *Server) ApplyOffBlocksPending(id string, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	a := s.offblocks[id]
	if a == nil {
		return false
	}
	n := 0
	for j, u := range a.pending {
		if u.base != a.gen {
			continue
		}
		if n == i {
			a.pending = append(a.pending[:j:j], a.pending[j+1:]...)
			a.apply(u)
			return true
		}
		n++
	}
	return false
}

// apply makes u the account's pair if its authorising pair is still current.
func (a *offblocksAccount) apply(u offblocksUpdate) {
	if u.base != a.gen {
		return
	}
	a.apiKey, a.apiSecret = u.apiKey, u.apiSecret
	a.gen++
}

// applyDueOffBlocks applies every lagged update whose time has come, earliest first (by
// acceptance order among equal times), and drops those that can no longer apply; the
// caller holds s.mu.
func (s *Server) applyDueOffBlocks() {
	now := s.now()
	for _, a := range s.offblocks {
		for {
			best := -1
			for j, u := range a.pending {
				if !now.Before(u.at) && (best < 0 || u.at.Before(a.pending[best].at)) {
					best = j
				}
			}
			if best < 0 {
				break
			}
			u := a.pending[best]
			a.pending = append(a.pending[:best:best], a.pending[best+1:]...)
			a.apply(u)
		}
		live := a.pending[:0:0]
		for _, u := range a.pending {
			if u.base == a.gen {
				live = append(live, u)
			}
		}
		a.pending = live
	}
}

// AddOffBlocks creates an integration with the given pair and returns its account id, which
// stays the same across credential updates.
func (s *Server) AddOffBlocks(apiKey, apiSecret string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID("ob")
	s.offblocks[id] = &offblocksAccount{apiKey: apiKey, apiSecret: apiSecret}
	return id
}

// OffBlocksPair returns the pair the account accepts now (a lagged update counts once it has
// taken effect).
func (s *Server) OffBlocksPair(id string) (apiKey, apiSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	a := s.offblocks[id]
	if a == nil {
		return "", ""
	}
	return a.apiKey, a.apiSecret
}

// OffBlocksDeleted reports whether DELETE /auth/credentials was ever accepted for the account.
func (s *Server) OffBlocksDeleted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offblocks[id] != nil && s.offblocks[id].deleted
}

func (s *Server) offblocksRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+OffBlocksPrefix+"/auth/token", s.route(RouteOffBlocksToken, s.offblocksToken))
	mux.HandleFunc("PUT "+OffBlocksPrefix+"/auth/credentials", s.route(RouteOffBlocksCredentials, s.offblocksUpdate))
	mux.HandleFunc("DELETE "+OffBlocksPrefix+"/auth/credentials", s.offblocksDelete)
}

type offblocksPair struct {
	APIKey    string `json:"apiKey"`
	APISecret string `json:"apiSecret"`
}

// offblocksError writes an error body; none is documented, so it is short plain text.
func offblocksError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

func (s *Server) offblocksToken(w http.ResponseWriter, r *http.Request) {
	var p offblocksPair
	if json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&p) != nil || p.APIKey == "" || p.APISecret == "" {
		offblocksError(w, http.StatusBadRequest, "invalid request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	for id, a := range s.offblocks {
		if a.apiKey == p.APIKey && a.apiSecret == p.APISecret && !a.deleted {
			tok, exp := s.issue("offblocks", "access", id, a.gen, s.lifetime(s.lifetimes.OffBlocks, time.Hour))
			body := map[string]any{"token": tok, "tokenType": "Bearer"}
			if !exp.IsZero() {
				body["expiresAt"] = exp.Unix()
			}
			writeJSON(w, http.StatusOK, body)
			return
		}
	}
	offblocksError(w, http.StatusUnauthorized, "invalid credentials")
}

func (s *Server) offblocksUpdate(w http.ResponseWriter, r *http.Request) {
	var p offblocksPair
	body := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	id, ok := s.offblocksCaller(w, r)
	if !ok {
		return
	}
	if _, uerr := uuid.Parse(p.APIKey); body != nil || uerr != nil || p.APISecret == "" {
		offblocksError(w, http.StatusBadRequest, "invalid request")
		return
	}
	for other, a := range s.offblocks {
		if other != id && a.apiKey == p.APIKey {
			offblocksError(w, http.StatusBadRequest, "apiKey in use")
			return
		}
	}
	a := s.offblocks[id]
	lag := s.offblocksLag
	if s.offblocksLagFunc != nil {
		lag = s.offblocksLagFunc()
	}
	if a.lagSet {
		lag = a.lag
	}
	a.accept(p.APIKey, p.APISecret, s.now(), lag)
	w.WriteHeader(http.StatusNoContent)
}

// offblocksDelete revokes API access for good. The plugin must never call it; the
// simulator implements it so a test can prove that.
func (s *Server) offblocksDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.offblocksCaller(w, r)
	if !ok {
		return
	}
	s.offblocks[id].deleted = true
	w.WriteHeader(http.StatusNoContent)
}

// offblocksCaller returns the account behind a valid Bearer token, or answers 401. The
// caller holds s.mu.
func (s *Server) offblocksCaller(w http.ResponseWriter, r *http.Request) (string, bool) {
	c, err := s.access(bearer(r), "offblocks", "access")
	if err != nil {
		offblocksError(w, http.StatusUnauthorized, "unauthorized")
		return "", false
	}
	return c.Subject, true
}
