package apitokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
)

// configPrefix is the storage prefix of provider accounts; it is seal-wrapped.
const configPrefix = "config/"

// Bloq grant types, as written in config.
const (
	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
	grantRefreshToken      = "refresh_token"
)

var defaultBaseURLs = map[string]string{
	offblocks.Name: offblocks.DefaultBaseURL,
	bloq.Name:      bloq.DefaultBaseURL,
	opsnow.Name:    opsnow.DefaultBaseURL,
}

// knownProvider reports whether this version of the plugin serves provider p.
func knownProvider(p string) bool {
	_, ok := defaultBaseURLs[p]
	return ok
}

// credential is an account's root credential: the fields a rotation replaces and the ones
// used to mint. Which fields are set depends on the provider; credentialFields describes each.
type credential struct {
	APIKey       string `json:"api_key,omitempty"`    // offblocks, opsnow
	APISecret    string `json:"api_secret,omitempty"` // offblocks
	ClientID     string `json:"client_id,omitempty"`  // bloq
	ClientSecret string `json:"client_secret,omitempty"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	GrantType    string `json:"grant_type,omitempty"`
}

// fieldRole is what a credential field is for one provider.
type fieldRole int

const (
	// identifier: not a secret; returned on read; surrounding white space is refused.
	identifier fieldRole = iota + 1
	// secret: never returned, logged or altered; stored byte for byte as given.
	secret
)

// credentialFieldSpec is one credential field of config/<name>: the single table that the
// schema, input handling, validation and config reads all derive from.
type credentialFieldSpec struct {
	name    string
	display string
	desc    string
	// roles says which providers take the field, and what it is for each.
	roles map[string]fieldRole
	// allowed, when set, are the only values accepted.
	allowed []any
	ptr     func(*credential) *string
}

// credentialFields lists every credential field, in the order a read shows them.
var credentialFields = []credentialFieldSpec{
	{name: "api_key", display: "API key",
		desc: "OffBlocks: the integration's apiKey (a UUID; returned on read as an identifier). " +
			"OpsNow: the API key from the console (a secret, never returned).",
		roles: map[string]fieldRole{offblocks.Name: identifier, opsnow.Name: secret},
		ptr:   func(c *credential) *string { return &c.APIKey }},
	{name: "api_secret", display: "API secret", desc: "OffBlocks: the integration's apiSecret.",
		roles: map[string]fieldRole{offblocks.Name: secret},
		ptr:   func(c *credential) *string { return &c.APISecret }},
	{name: "grant_type", display: "Grant type",
		desc: "Bloq: client_credentials, password or refresh_token. Inferred from the fields given " +
			"when omitted (client keys win over a login, which is then used for rotation).",
		roles:   map[string]fieldRole{bloq.Name: identifier},
		allowed: []any{grantClientCredentials, grantPassword, grantRefreshToken},
		ptr:     func(c *credential) *string { return &c.GrantType }},
	{name: "client_id", display: "Client ID", desc: "Bloq: client key id, for Client Access Tokens (1 h).",
		roles: map[string]fieldRole{bloq.Name: identifier},
		ptr:   func(c *credential) *string { return &c.ClientID }},
	{name: "client_secret", display: "Client secret", desc: "Bloq: client key secret.",
		roles: map[string]fieldRole{bloq.Name: secret},
		ptr:   func(c *credential) *string { return &c.ClientSecret }},
	{name: "username", display: "Username",
		desc:  "Bloq: account login (email or user id), for Account Access Tokens (12 h) and client key rotation.",
		roles: map[string]fieldRole{bloq.Name: identifier},
		ptr:   func(c *credential) *string { return &c.Username }},
	{name: "password", display: "Password", desc: "Bloq: account password, sent with HTTP Basic.",
		roles: map[string]fieldRole{bloq.Name: secret},
		ptr:   func(c *credential) *string { return &c.Password }},
	{name: "refresh_token", display: "Refresh token",
		desc:  "Bloq: a Client Refresh Token (1 y), used instead of client keys.",
		roles: map[string]fieldRole{bloq.Name: secret},
		ptr:   func(c *credential) *string { return &c.RefreshToken }},
}

// fieldsOf names the credential fields provider takes, for error messages.
func fieldsOf(provider string) []string {
	var names []string
	for _, f := range credentialFields {
		if f.roles[provider] != 0 {
			names = append(names, f.name)
		}
	}
	return names
}

// sameRoot reports whether two credentials hold the same rotatable pair.
func (c credential) sameRoot(o credential) bool {
	return c.APIKey == o.APIKey && c.APISecret == o.APISecret &&
		c.ClientID == o.ClientID && c.ClientSecret == o.ClientSecret
}

// identifier names the credential without revealing it: OffBlocks' api_key or Bloq's
// client_id (both returned on config reads), and "" for anything else.
func (c credential) identifier(provider string) string {
	switch provider {
	case offblocks.Name:
		return c.APIKey
	case bloq.Name:
		return c.ClientID
	}
	return ""
}

// adoptRoot takes o's rotatable pair and keeps everything else.
func (c *credential) adoptRoot(o credential) {
	c.APIKey, c.APISecret = o.APIKey, o.APISecret
	c.ClientID, c.ClientSecret = o.ClientID, o.ClientSecret
}

// accountConfig is one provider account, as stored at config/<name>.
type accountConfig struct {
	Provider string `json:"provider"`
	BaseURL  string `json:"base_url"`
	credential
	MaxTTL         time.Duration `json:"max_ttl"`
	RequestTimeout time.Duration `json:"request_timeout"`
	LastRotated    time.Time     `json:"last_rotated,omitempty"`
	// TokenReuse shares one token among readers while it has MinTokenTTL left (0: half the
	// token's own lifetime).
	TokenReuse  bool          `json:"token_reuse,omitempty"`
	MinTokenTTL time.Duration `json:"min_token_ttl,omitempty"`
	// Rotation is the automated rotation schedule and its record (schedule.go).
	Rotation rotationState `json:"rotation"`
	// Fallbacks are credentials sent to the provider to replace the current one whose
	// refusal was not conclusive: the provider may adopt any of them at any moment, so they
	// are kept until the rule of settle.go drops them.
	Fallbacks []fallback `json:"fallbacks,omitempty"`
	// Retiring are credentials a rotation replaced that still live upstream (a Bloq key
	// whose delete has not succeeded yet): settling deletes them.
	Retiring []credential `json:"retiring,omitempty"`
}

// fallback is a credential the provider may adopt in place of a config's current one.
type fallback struct {
	credential
	// Since is when it was first sent, by the backend's clock.
	Since time.Time `json:"since"`
	// Why says, without a secret, why it is held.
	Why string `json:"why"`
	// Trigger is what began the rotation that sent it: manual, scheduled, or "" for an
	// earlier plugin version's rotation (or one stored before this field existed).
	Trigger string `json:"trigger,omitempty"`
}

// trigger says what began the rotation that sent f, for a config read.
func (f fallback) trigger() string {
	if f.Trigger == "" {
		return "unknown (a rotation of an earlier plugin version)"
	}
	return f.Trigger
}

// unsettled reports whether the provider may adopt another credential than the current one
// at any moment: then every token of the current one may die at any moment, and none is
// handed out.
func (c *accountConfig) unsettled() bool { return len(c.Fallbacks) > 0 }

// publicData is what a config read at now returns: every non-secret field, never a secret.
func (c *accountConfig) publicData(now time.Time) map[string]any {
	d := map[string]any{
		"provider":        c.Provider,
		"base_url":        c.BaseURL,
		"max_ttl":         int64(c.MaxTTL / time.Second),
		"request_timeout": int64(c.RequestTimeout / time.Second),
		"token_reuse":     c.TokenReuse,
		"min_token_ttl":   int64(c.MinTokenTTL / time.Second),
	}
	if !c.LastRotated.IsZero() {
		d["last_rotated"] = c.LastRotated.UTC().Format(time.RFC3339)
	}
	for _, f := range credentialFields {
		if v := *f.ptr(&c.credential); v != "" && f.roles[c.Provider] == identifier {
			d[f.name] = v
		}
	}
	// One rule: a config that can rotate shows its schedule and its fallbacks; one that cannot
	// (cannotRotate) has neither, unless it still holds a fallback (its login was removed
	// during a rotation), which a read never hides.
	if canRotate(c) == nil || c.unsettled() {
		c.rotationData(d, now)
		d["fallback_credentials"] = len(c.Fallbacks)
	}
	if c.unsettled() {
		first, last := c.Fallbacks[0], c.Fallbacks[len(c.Fallbacks)-1]
		d["fallback_since"] = first.Since.UTC().Format(time.RFC3339)
		d["unsettled_since"] = first.Since.UTC().Format(time.RFC3339)
		d["unsettled_trigger"] = last.trigger()
		d["unsettled_credential"] = last.identifier(c.Provider)
		d["unsettled_waiting_for"] = fmt.Sprintf("the provider to accept %s credential %s (%s), or to refuse it "+
			"for good; creds reads and Vault's periodic function (every minute) ask it", c.Provider,
			last.identifier(c.Provider), last.Why)
		d["unsettled_what_to_do"] = unsettledAdvice
	}
	return d
}

// unsettledAdvice is what an operator does about an unsettled rotation (config reads).
const unsettledAdvice = "wait: it settles by itself once the provider answers (alert if it lasts over 15 minutes). " +
	"If the provider will never accept it (the credential was changed in its console), write the credential it " +
	"accepts with force=true, which gives the fallback up"

// reuseWarnings say, for a config write or read, when the token sharing settings cannot do
// what they seem to: min_token_ttl without token_reuse does nothing, and one at least as long
// as the token's documented life means no token is ever shared (every read mints).
func (c *accountConfig) reuseWarnings() []string {
	switch {
	case c.MinTokenTTL > 0 && !c.TokenReuse:
		return []string{fmt.Sprintf("min_token_ttl (%s) applies only with token_reuse=true: every read mints a fresh "+
			"token", formatDuration(c.MinTokenTTL))}
	case c.TokenReuse && c.MinTokenTTL >= c.tokenLifeBound():
		return []string{fmt.Sprintf("min_token_ttl (%s) is not less than the documented life of a token of provider "+
			"%s (%s): unless the provider issues longer ones, no token has that much left, so none is shared and every "+
			"read mints; lower it (0: half the token's life)",
			formatDuration(c.MinTokenTTL), c.Provider, formatDuration(c.tokenLifeBound()))}
	}
	return nil
}

// fallbackWarnings say, for a config read, which fallback credentials are held and why,
// by identifier, never by secret.
func (c *accountConfig) fallbackWarnings() []string {
	var w []string
	for _, f := range c.Fallbacks {
		w = append(w, fmt.Sprintf("fallback credential %s held since %s: %s; no token is handed out until the "+
			"provider settles on one credential (creds reads and Vault's periodic function settle it)",
			f.identifier(c.Provider), f.Since.UTC().Format(time.RFC3339), f.Why))
	}
	for _, r := range c.Retiring {
		w = append(w, fmt.Sprintf("replaced credential %s is still to be removed upstream (retried by creds reads "+
			"and Vault's periodic function)", r.identifier(c.Provider)))
	}
	return w
}

func configKey(name string) string { return configPrefix + name }

// getConfigAnyProvider is getConfig for a caller that may handle a config of a provider this
// version does not know (a forced delete): such a config is returned without an error. It
// must never be settled, used or written.
func getConfigAnyProvider(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	c, err := getConfig(ctx, s, name)
	var unknown *unknownProviderError
	if errors.As(err, &unknown) {
		return c, nil
	}
	return c, err
}

// getConfig loads config/<name>; a missing config is (nil, nil). A config of a provider this
// version does not know (written by a newer version) is returned with an
// *unknownProviderError: it fails closed, since every caller stops at the error, and so
// nothing is sent for it, nor is it ever written back without the fields this version
// cannot read.
func getConfig(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	entry, err := s.Get(ctx, configKey(name))
	if err != nil {
		return nil, fmt.Errorf("read config %q: %w", name, err)
	}
	if entry == nil {
		return nil, nil
	}
	var c accountConfig
	if err := entry.DecodeJSON(&c); err != nil {
		return nil, fmt.Errorf("decode config %q: %w", name, err)
	}
	if !knownProvider(c.Provider) {
		return &c, &unknownProviderError{name: name, provider: c.Provider}
	}
	return &c, nil
}

// putConfig stores config/<name> and remembers it (the caller holds the config's exclusive
// lock).
func (b *backend) putConfig(ctx context.Context, s logical.Storage, name string, c *accountConfig) error {
	entry, err := logical.StorageEntryJSON(configKey(name), c)
	if err != nil {
		return fmt.Errorf("encode config %q: %w", name, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		b.memo.forget(name) // storage may or may not hold it now: read it again
		return fmt.Errorf("store config %q: %w", name, err)
	}
	b.memo.setConfig(name, c)
	return nil
}
