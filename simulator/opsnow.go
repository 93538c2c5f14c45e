package simulator

import (
	"encoding/json"
	"net/http"
	"time"
)

// OpsNowShape selects how the token endpoint lays out its 200: its field names are
// undocumented, so the simulator can speak every form providers.md says to accept.
type OpsNowShape int

const (
	// ShapeWrappedExpiresIn: {"status":"success","data":{"accessToken":..,"expiresIn":secs}} (default).
	ShapeWrappedExpiresIn OpsNowShape = iota
	// ShapeTopSnake: {"access_token":..,"expires_in":secs}.
	ShapeTopSnake
	// ShapeWrappedExpiresAt: {"status":"success","data":{"token":..,"expiresAt":unix}}.
	ShapeWrappedExpiresAt
	// ShapeTopExpiresAtString: {"accessToken":..,"expires_at":"RFC 3339"}.
	ShapeTopExpiresAtString
	// ShapeJWTOnly: {"data":{"accessToken": <JWT>}}: the expiry is only the exp claim.
	ShapeJWTOnly
	// ShapeOpaque: {"data":{"accessToken": <opaque>}}: no expiry anywhere (documented 3600 s).
	ShapeOpaque
)

// AddOpsNowKey registers an API key.
func (s *Server) AddOpsNowKey(apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opsnow[apiKey] = true
}

// SetOpsNowShape selects the 200 layout of the token endpoint.
func (s *Server) SetOpsNowShape(shape OpsNowShape) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opsnowShape = shape
}

func (s *Server) opsnowRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+OpsNowPrefix+"/platform/v2/identity/api-keys/token", s.route(RouteOpsNowToken, s.opsnowToken))
}

func opsnowError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"status": "fail", "error": map[string]any{"code": status, "message": msg}})
}

func (s *Server) opsnowToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		APIKey string `json:"apiKey"`
	}
	if json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req) != nil || req.APIKey == "" {
		opsnowError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opsnow[req.APIKey] {
		opsnowError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	life := s.lifetime(s.lifetimes.OpsNow, 3600*time.Second)
	if s.opsnowShape == ShapeOpaque {
		tok := randomHex(48)
		s.opaque[tok] = s.now().Add(life)
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": map[string]any{
			"accessToken": s.present("opsnow", "access", tok)}})
		return
	}
	tok, exp := s.issue("opsnow", "access", req.APIKey, 0, life)
	if exp.IsZero() { // SetNoExpiry: an opaque value, no expiry anywhere
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": map[string]any{"accessToken": tok}})
		return
	}
	secs := int64(life / time.Second)
	if claim := exp.Sub(s.now()); claim > life+time.Second { // SetClaimedExpiry: the relative form claims it too
		secs = int64(claim / time.Second)
	}
	var body any
	switch s.opsnowShape {
	case ShapeTopSnake:
		body = map[string]any{"access_token": tok, "expires_in": secs}
	case ShapeWrappedExpiresAt:
		body = map[string]any{"status": "success", "data": map[string]any{"token": tok, "expiresAt": exp.Unix()}}
	case ShapeTopExpiresAtString:
		body = map[string]any{"accessToken": tok, "expires_at": exp.UTC().Format(time.RFC3339)}
	case ShapeJWTOnly:
		body = map[string]any{"data": map[string]any{"accessToken": tok}}
	default:
		body = map[string]any{"status": "success", "data": map[string]any{"accessToken": tok, "expiresIn": secs}}
	}
	writeJSON(w, http.StatusOK, body)
}
