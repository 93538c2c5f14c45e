package simulator

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Hostile answers: a provider (or whoever answers on its URL) that hands out what no client
// should pass on. Both modes are functions, so that a test or the deterministic simulation
// decides per token, from its own seed.

// SetHostileTokens makes every token the simulator issues from now on (access, account and
// refresh tokens, JWT or opaque) appear in its answer as f(provider, kind) instead, when
// that is not empty: a token with a line break, a control character, white space or bytes
// that are no UTF-8, as a compromised or broken provider might send. The answer is otherwise
// the normal one (the credential was accepted); the value is no token the simulator ever
// accepts. kind is "access" (OffBlocks, OpsNow), "client", "account" or "refresh" (Bloq).
// nil turns it off.
func (s *Server) SetHostileTokens(f func(provider, kind string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostileToken = f
}

// SetClaimedExpiry makes every token the simulator issues from now on claim, in its JWT exp
// and in the answer's expiry field, the instant f(provider, kind, real) returns instead of
// the real one, when that is later: the token still dies at real (Validate, and every use of
// it here, refuse it from then on). A provider whose tokens claim year 9999, or a year, is
// one a client must not believe past the documented lifetime. nil turns it off.
func (s *Server) SetClaimedExpiry(f func(provider, kind string, real time.Time) time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claimExpiry = f
}

// RealExpiry returns when a token the simulator issued really expires, whatever it claims,
// and false for a value it never issued.
func (s *Server) RealExpiry(token string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.opaque[token]; ok {
		return exp, true
	}
	var c claims
	if _, err := jwt.ParseWithClaims(s.resolve(token), &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation()); err != nil || c.ExpiresAt == nil {
		return time.Time{}, false
	}
	if real, ok := s.realExpiry[c.ID]; ok {
		return real, true
	}
	return c.ExpiresAt.Time.UTC(), true
}

// claimed is the expiry a token of provider and kind that really expires at real claims;
// the caller holds s.mu.
func (s *Server) claimed(provider, kind string, real time.Time) time.Time {
	if s.claimExpiry == nil {
		return real
	}
	if c := s.claimExpiry(provider, kind, real).Truncate(time.Second); c.After(real) {
		return c
	}
	return real
}

// EmptyToken, from a SetHostileTokens function, makes the answer carry an empty token: the
// credential was accepted (and a refresh token rotated, where it rotates), but the answer
// omits the token itself.
const EmptyToken = "\x00empty"

// present is the value an answer carries for token tok; the caller holds s.mu.
func (s *Server) present(provider, kind, tok string) string {
	if s.hostileToken != nil {
		if v := s.hostileToken(provider, kind); v == EmptyToken {
			return ""
		} else if v != "" {
			return v
		}
	}
	return tok
}
