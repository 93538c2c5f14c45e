package simulator

// Answers without an expiry: a provider whose token is opaque (no JWT, so no exp claim) and
// whose answer carries no expiry field, so that a client can only fall back on the
// documented lifetime of the token's kind, counted from before its call. The token still
// lives exactly as long as it would have (its real expiry stays known to the simulator: the
// opaque value stands for a signed token kept here).

// SetNoExpiry makes every token the simulator issues from now on for which f(provider, kind)
// is true an opaque value, in an answer without any expiry field (OffBlocks' expiresAt,
// OpsNow's expires_in or expiresAt; Bloq's tokens are then no JWT). kind is as for
// SetHostileTokens. nil turns it off.
func (s *Server) SetNoExpiry(f func(provider, kind string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noExpiry = f
}

// opaqueFor returns an opaque value standing for the signed token tok, when the token of
// provider and kind is to be issued without an expiry, and "" otherwise; the caller holds
// s.mu.
func (s *Server) opaqueFor(provider, kind, tok string) string {
	if s.noExpiry == nil || !s.noExpiry(provider, kind) {
		return ""
	}
	v := randomHex(32)
	if s.aliases == nil {
		s.aliases = map[string]string{}
	}
	s.aliases[v] = tok
	return v
}

// resolve returns the signed token an opaque value stands for, or token itself; the caller
// holds s.mu.
func (s *Server) resolve(token string) string {
	if t, ok := s.aliases[token]; ok {
		return t
	}
	return token
}

// BloqDeletedClientIDs returns the client ids of the Bloq keys deleted so far, in the order
// of their DELETE calls.
func (s *Server) BloqDeletedClientIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bloqDeleted...)
}
