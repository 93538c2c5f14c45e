package simulator

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

type bloqUser struct {
	id, email, password string
}

type bloqKey struct {
	id, userID, clientID, secret string
	created                      time.Time
	deleted                      bool
	// activeAt is when a key created in lag mode starts to mint (zero: at once).
	activeAt time.Time
}

// AddBloqUser creates an account with an email login and returns its user id.
func (s *Server) AddBloqUser(email, password string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID("u")
	s.bloqUsers[id] = &bloqUser{id: id, email: email, password: password}
	return id
}

// SetBloqPassword changes a user's password, as the account's owner does in the console:
// logins with the old one are refused from then on (account tokens already issued live on;
// providers.md does not say whether Bloq revokes them).
func (s *Server) SetBloqPassword(userID, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.bloqUsers[userID]; u != nil {
		u.password = password
	}
}

// AddBloqKey creates a client key for a user with the given pair (40 and 80 hex characters
// in real life; any strings here) and returns the key's id.
func (s *Server) AddBloqKey(userID, clientID, clientSecret string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addBloqKey(userID, clientID, clientSecret)
}

func (s *Server) addBloqKey(userID, clientID, clientSecret string) string {
	id := s.nextID("k")
	s.bloqKeys[id] = &bloqKey{id: id, userID: userID, clientID: clientID, secret: clientSecret, created: s.now()}
	return id
}

// BloqRefreshToken issues a Client Refresh Token for a key, as a console user would obtain.
func (s *Server) BloqRefreshToken(keyID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, _ := s.issue("bloq", "refresh", keyID, 0, s.lifetime(s.lifetimes.BloqRefresh, 365*24*time.Hour))
	return tok
}

// SetBloqRotateRefresh makes every refresh grant return a new refresh token and invalidate
// the one used (providers.md leaves open whether Bloq does this).
func (s *Server) SetBloqRotateRefresh(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bloqRotateRefresh = on
}

// SetBloqEchoRefresh makes every refresh grant that does not rotate (SetBloqRotateRefresh)
// answer with the refresh token it was given, still valid, beside the new access token: as
// many OAuth servers do, and providers.md leaves open ("whether a new refreshToken comes back
// is unknown"). A client must not take the repeated value for a new one.
func (s *Server) SetBloqEchoRefresh(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bloqEchoRefresh = on
}

// SetBloqKeyListEnvelope makes GET /bloq/users/me/client-keys answer an object, as paged
// APIs do: {"clientKeys": [...], "nextPageToken": null} (providers.md says only "list with
// id"; a null member beside the list is what a last page looks like).
func (s *Server) SetBloqKeyListEnvelope(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bloqKeyListEnvelope = on
}

// SetBloqLegacyLogin makes the simulator an older deployment: POST /bloq/auth answers 404,
// and only the older page's POST /bloq/auth/login logs in (it always does, in either mode).
func (s *Server) SetBloqLegacyLogin(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bloqLegacyLogin = on
}

// SetBloqKeyListIDOnly switches GET /bloq/users/me/client-keys to the shape Bloq's newest CLI
// shows: only {"id": <clientId>, "createdAt": ...} per key. DELETE accepts a key's internal
// id or its clientId in either mode.
func (s *Server) SetBloqKeyListIDOnly(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bloqKeyListIDOnly = on
}

// SetBloqKeyLagFunc makes each key created later through the API (POST client-keys) mint
// only lag() after it was created (zero: at once): it is listed, and can be deleted, at once,
// as a key store that replicates a moment late would behave. Nothing documents that Bloq
// does; the plugin must not lose a key, or keep a dead one, if it does.
func (s *Server) SetBloqKeyLagFunc(lag func() time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bloqKeyLag = lag
}

// BloqKeyMints reports whether the key with the given client secret mints now (it exists,
// is not deleted, and its creation lag, if any, has passed).
func (s *Server) BloqKeyMints(secret string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.bloqKeys {
		if k.secret == secret && !k.deleted && !s.now().Before(k.activeAt) {
			return true
		}
	}
	return false
}

// BloqLiveSecrets returns the client secrets of a user's keys that are not deleted (those that
// mint now, or will once their lag ends), oldest first.
func (s *Server) BloqLiveSecrets(userID string) []string {
	var secrets []string
	for _, id := range s.BloqClientIDs(userID) {
		secrets = append(secrets, s.BloqKeySecret(id))
	}
	return secrets
}

// BloqClientIDs returns the client ids of a user's live keys, oldest first.
func (s *Server) BloqClientIDs(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []*bloqKey
	for _, k := range s.bloqKeys {
		if k.userID == userID && !k.deleted {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.clientID
	}
	return ids
}

// BloqKeySecret returns the secret of the key with the given client id ("" if none): tests
// use it to look for leaks of a secret the plugin created by rotation.
func (s *Server) BloqKeySecret(clientID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.bloqKeys {
		if k.clientID == clientID {
			return k.secret
		}
	}
	return ""
}

func (s *Server) bloqRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+BloqPrefix+"/auth/token", s.route(RouteBloqToken, s.bloqToken))
	mux.HandleFunc("POST "+BloqPrefix+"/auth", s.route(RouteBloqAuth, s.bloqAuth))
	mux.HandleFunc("POST "+BloqPrefix+"/auth/login", s.route(RouteBloqAuthLogin, s.bloqLogin))
	mux.HandleFunc("POST "+BloqPrefix+"/users/me/client-keys", s.route(RouteBloqKeysCreate, s.bloqCreateKey))
	mux.HandleFunc("GET "+BloqPrefix+"/users/me/client-keys", s.route(RouteBloqKeysList, s.bloqListKeys))
	mux.HandleFunc("DELETE "+BloqPrefix+"/users/me/client-keys/{id}", s.route(RouteBloqKeysDelete, s.bloqDeleteKey))
}

func bloqError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}

func (s *Server) bloqToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType    string `json:"grantType"`
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
		RefreshToken string `json:"refreshToken"`
	}
	if json.NewDecoder(http.MaxBytesReader(w, r.Body, 8192)).Decode(&req) != nil {
		bloqError(w, http.StatusBadRequest, "invalid request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clientLife := s.lifetime(s.lifetimes.BloqClient, time.Hour)
	switch req.GrantType {
	case "clientCredentials":
		for id, k := range s.bloqKeys {
			if k.clientID == req.ClientID && k.secret == req.ClientSecret && !k.deleted && !s.now().Before(k.activeAt) {
				access, _ := s.issue("bloq", "client", id, 0, clientLife)
				refresh, _ := s.issue("bloq", "refresh", id, 0, s.lifetime(s.lifetimes.BloqRefresh, 365*24*time.Hour))
				writeJSON(w, http.StatusOK, map[string]string{"accessToken": access, "refreshToken": refresh})
				return
			}
		}
		bloqError(w, http.StatusUnauthorized, "invalid client credentials")
	case "refreshToken":
		c, err := s.access(req.RefreshToken, "bloq", "refresh")
		if err != nil {
			bloqError(w, http.StatusUnauthorized, "invalid refresh token")
			return
		}
		access, _ := s.issue("bloq", "client", c.Subject, 0, clientLife)
		resp := map[string]string{"accessToken": access}
		if s.bloqRotateRefresh {
			s.revoked[c.ID] = true
			resp["refreshToken"], _ = s.issue("bloq", "refresh", c.Subject, 0, s.lifetime(s.lifetimes.BloqRefresh, 365*24*time.Hour))
		} else if s.bloqEchoRefresh {
			resp["refreshToken"] = req.RefreshToken
		}
		writeJSON(w, http.StatusOK, resp)
	default:
		bloqError(w, http.StatusBadRequest, "unsupported grantType")
	}
}

// bloqAuth is the current page's account login, POST /bloq/auth; an older deployment
// (SetBloqLegacyLogin) has no such route.
func (s *Server) bloqAuth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	legacy := s.bloqLegacyLogin
	s.mu.Unlock()
	if legacy {
		bloqError(w, http.StatusNotFound, "not found")
		return
	}
	s.bloqLogin(w, r)
}

// bloqLogin checks an HTTP Basic login (email or user id) and issues an account token.
func (s *Server) bloqLogin(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		for id, u := range s.bloqUsers {
			if (strings.EqualFold(u.email, user) || id == user) && u.password == pass {
				tok, _ := s.issue("bloq", "account", id, 0, s.lifetime(s.lifetimes.BloqAccount, 12*time.Hour))
				writeJSON(w, http.StatusOK, map[string]string{"accessToken": tok})
				return
			}
		}
	}
	bloqError(w, http.StatusUnauthorized, "invalid credentials")
}

// accountUser returns the user behind an account token; client tokens are refused, as
// only an account token works for the Accounts service. The caller holds s.mu.
func (s *Server) accountUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	c, err := s.access(bearer(r), "bloq", "account")
	if err != nil {
		bloqError(w, http.StatusUnauthorized, "unauthorized")
		return "", false
	}
	return c.Subject, true
}

func (s *Server) bloqCreateKey(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid, ok := s.accountUser(w, r)
	if !ok {
		return
	}
	clientID, secret := randomHex(40), randomHex(80)
	id := s.addBloqKey(uid, clientID, secret)
	if s.bloqKeyLag != nil {
		s.bloqKeys[id].activeAt = s.now().Add(s.bloqKeyLag())
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "clientId": clientID, "clientSecret": secret})
}

func (s *Server) bloqListKeys(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid, ok := s.accountUser(w, r)
	if !ok {
		return
	}
	var keys []*bloqKey
	for _, k := range s.bloqKeys {
		if k.userID == uid && !k.deleted {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	list := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		created := k.created.UTC().Format(time.RFC3339)
		if s.bloqKeyListIDOnly {
			list = append(list, map[string]string{"id": k.clientID, "createdAt": created})
		} else {
			list = append(list, map[string]string{"id": k.id, "clientId": k.clientID, "createdAt": created})
		}
	}
	if s.bloqKeyListEnvelope {
		writeJSON(w, http.StatusOK, map[string]any{"clientKeys": list, "nextPageToken": nil})
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) bloqDeleteKey(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid, ok := s.accountUser(w, r)
	if !ok {
		return
	}
	k := s.bloqKeyOf(uid, r.PathValue("id"))
	if k == nil {
		bloqError(w, http.StatusNotFound, "not found")
		return
	}
	k.deleted = true
	s.bloqDeleted = append(s.bloqDeleted, k.clientID)
	w.WriteHeader(http.StatusNoContent)
}

// bloqKeyOf finds a user's live key by its internal id or, failing that, by its clientId;
// nil if none. The caller holds s.mu.
func (s *Server) bloqKeyOf(uid, id string) *bloqKey {
	if k, ok := s.bloqKeys[id]; ok && k.userID == uid && !k.deleted {
		return k
	}
	for _, k := range s.bloqKeys {
		if k.clientID == id && k.userID == uid && !k.deleted {
			return k
		}
	}
	return nil
}
