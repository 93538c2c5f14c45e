package simulator

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims of every token the simulator issues.
type claims struct {
	Provider string `json:"prov"`
	Type     string `json:"typ"` // offblocks: "access"; bloq: "client", "account", "refresh"; opsnow: "access"
	Gen      int    `json:"gen,omitempty"`
	jwt.RegisteredClaims
}

// issue signs a token for subject sub and returns it as the answer carries it (present),
// with the expiry it claims (claimed: its exp claim, and the answer's expiry field), or the
// zero time when it is issued without one (SetNoExpiry: an opaque value, and the answer has
// no expiry field); the caller holds s.mu.
func (s *Server) issue(provider, typ, sub string, gen int, life time.Duration) (string, time.Time) {
	now := s.now()
	exp := now.Add(life).Truncate(time.Second)
	claim := s.claimed(provider, typ, exp)
	c := claims{Provider: provider, Type: typ, Gen: gen, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		ID:        s.nextID("t"),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(claim),
	}}
	if claim != exp {
		if s.realExpiry == nil {
			s.realExpiry = map[string]time.Time{}
		}
		s.realExpiry[c.ID] = exp
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
	if err != nil {
		panic(err)
	}
	if v := s.opaqueFor(provider, typ, tok); v != "" {
		return s.present(provider, typ, v), time.Time{}
	}
	return s.present(provider, typ, tok), claim
}

// parse checks a token's signature and expiry against the simulator's clock; the caller
// holds s.mu.
func (s *Server) parse(token string) (*claims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(s.resolve(token), &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(s.now), jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errors.New("token expired")
		}
		return nil, errors.New("token invalid")
	}
	if real, ok := s.realExpiry[c.ID]; ok && !s.now().Before(real) { // it claimed a later expiry
		return nil, errors.New("token expired")
	}
	return &c, nil
}

// Validate reports whether token is usable right now as an access token, and at which
// provider: signed here, unexpired, and not invalidated (OffBlocks credential update, Bloq
// key deletion, OpsNow key removal).
func (s *Server) Validate(token string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.opaque[token]; ok {
		if !s.now().Before(exp) {
			return "", errors.New("token expired")
		}
		return "opsnow", nil
	}
	c, err := s.parse(token)
	if err != nil {
		return "", err
	}
	if err := s.stillValid(c); err != nil {
		return "", err
	}
	return c.Provider, nil
}

func (s *Server) stillValid(c *claims) error {
	switch c.Provider {
	case "offblocks":
		s.applyDueOffBlocks()
		a, ok := s.offblocks[c.Subject]
		if !ok || a.deleted {
			return errors.New("account has no API access")
		}
		if c.Gen != a.gen {
			return errors.New("token predates a credential update")
		}
	case "bloq":
		switch c.Type {
		case "client", "refresh":
			k, ok := s.bloqKeys[c.Subject]
			if !ok || k.deleted {
				return errors.New("client key deleted")
			}
			if c.Type == "refresh" && s.revoked[c.ID] {
				return errors.New("refresh token replaced")
			}
		case "account":
			if _, ok := s.bloqUsers[c.Subject]; !ok {
				return errors.New("no such user")
			}
		}
	case "opsnow":
		if !s.opsnow[c.Subject] {
			return errors.New("API key removed")
		}
	default:
		return fmt.Errorf("unknown provider %q", c.Provider)
	}
	return nil
}

// access checks that token is a valid access token of the given provider and type; the
// caller holds s.mu.
func (s *Server) access(token, provider string, types ...string) (*claims, error) {
	c, err := s.parse(token)
	if err != nil {
		return nil, err
	}
	if c.Provider != provider {
		return nil, errors.New("token of another provider")
	}
	if err := s.stillValid(c); err != nil {
		return nil, err
	}
	for _, t := range types {
		if c.Type == t {
			return c, nil
		}
	}
	return nil, fmt.Errorf("a %s token cannot be used here", c.Type)
}

// subject is whom token was issued for (its sub claim), or "" when it is not one of the
// simulator's tokens; expired or invalidated tokens still name theirs. The caller holds s.mu.
func (s *Server) subject(token string) string {
	var c claims
	_, err := jwt.ParseWithClaims(s.resolve(token), &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return ""
	}
	return c.Subject
}
