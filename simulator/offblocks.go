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
	// pending is an accepted credential update that takes effect later (lag mode).
	pending *offblocksUpdate
}

// offblocksUpdate is a credential update the provider has acknowledged but not yet applied.
type offblocksUpdate struct {
	apiKey, apiSecret string
	at                time.Time
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
}

// OffBlocksPending reports whether the account has an acknowledged credential update that
// has not taken effect yet.
func (s *Server) OffBlocksPending(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDueOffBlocks()
	a := s.offblocks[id]
	return a != nil && a.pending != nil
}

// applyDueOffBlocks applies every lagged update whose time has come; the caller holds s.mu.
func (s *Server) applyDueOffBlocks() {
	now := s.now()
	for _, a := range s.offblocks {
		if a.pending != nil && !now.Before(a.pending.at) {
			a.apiKey, a.apiSecret = a.pending.apiKey, a.pending.apiSecret
			a.gen++
			a.pending = nil
		}
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
			writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expiresAt": exp.Unix(), "tokenType": "Bearer"})
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
	if s.offblocksLag > 0 {
		a.pending = &offblocksUpdate{apiKey: p.APIKey, apiSecret: p.APISecret, at: s.now().Add(s.offblocksLag)}
	} else {
		a.apiKey, a.apiSecret, a.pending = p.APIKey, p.APISecret, nil
		a.gen++
	}
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
