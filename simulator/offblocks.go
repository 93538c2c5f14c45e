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

// OffBlocksPair returns the account's current pair.
func (s *Server) OffBlocksPair(id string) (apiKey, apiSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	a.apiKey, a.apiSecret = p.APIKey, p.APISecret
	a.gen++
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
