package apitokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

const secretTokenType = "apitokens_token"

// capNoticeAfter is how far past the documented lifetime a token's claimed expiry must be for
// its cap to be logged as a warning: less is clock skew, logged at debug level.
const capNoticeAfter = time.Minute

const pathCredsHelpDesc = `
Reading creds/<name> mints a fresh Bearer token from the provider with the account's stored
root credential. The lease ends a little before the provider's expiry (a tenth of the token's
life, at most 60 s), capped by the config's max_ttl (and by Vault, by the mount's maximum
lease TTL). With token_reuse, reads share one token while it has min_token_ttl left. Leases are
not renewable: no provider can extend a token; read again for a new one. Revoking a lease
succeeds but cannot kill the token upstream: none of the providers can revoke one token.

While a rotation of the config is unsettled (the provider may adopt its new credential at any
moment, killing every token of the old one), no token of the old credential is handed out: the
read settles the rotation first and answers 502, saying so, while it stays open.

Only a valid Bearer token (RFC 6750 §2.1: letters, digits, -._~+/ and trailing =) is handed
out: any other answer is a 502 that never quotes it. An expiry further away than the
documented lifetime of the token's kind is capped at it. Errors name the provider, the call and
the status, but no identifier of a root credential: a creds reader may not read config.
`

func pathCreds(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "creds/" + framework.GenericNameRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "credentials"},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Required: true,
				Description: "Name of the provider account (config/<name>)."},
			// Query: a read's fields are in the OpenAPI document only as query parameters.
			"min_ttl": {Type: framework.TypeDurationSecond, Query: true,
				Description: "With token_reuse: the least life the token must have left, if more than the config's min_token_ttl."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCredsRead,
				Summary:  "Mint a fresh provider token, leased until shortly before it expires.",
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      secretToken(b).Fields,
				}}},
			},
		},
		HelpSynopsis:    "Mint a fresh Bearer token for a provider account.",
		HelpDescription: pathCredsHelpDesc,
	}
}

func secretToken(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretTokenType,
		Fields: map[string]*framework.FieldSchema{
			"token": {Type: framework.TypeString, Description: "The provider's token, exactly as issued: only a valid " +
				"Bearer token (RFC 6750 §2.1) is handed out.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"token_type": {Type: framework.TypeString, Description: "Always Bearer."},
			"expires_at": {Type: framework.TypeString, Description: "The provider's expiry, RFC 3339 UTC."},
		},
		Revoke: b.secretTokenRevoke,
	}
}

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	minTTL := time.Duration(d.Get("min_ttl").(int)) * time.Second // never negative: the framework refuses it
	t, ttl, err := b.leasedToken(ctx, req.Storage, name, minTTL)
	if err != nil {
		if failedOnProvider(err) {
			// The reader's answer names no identifier (readerText): the log keeps the detail,
			// once per run of failing reads, so that a provider that is down floods nothing.
			level := hclog.Debug
			if b.metrics.reads.failed(name, b.now()) {
				level = hclog.Warn
			}
			b.Logger().Log(level, "creds read failed on the provider", "config", name, "error", err)
		}
		return b.credsErrorResponse(ctx, req.Storage, name, err)
	}
	now := b.now()
	b.metrics.tokenIssued(t.cfg.Provider, name, t.shared)
	expires := t.ExpiresAt.UTC().Format(time.RFC3339)
	internal := map[string]any{"config": name} // Vault stores it with the lease, for its revocation
	keepRevocable(internal, t)
	resp := b.Secret(secretTokenType).Response(
		map[string]any{"token": t.Value, "token_type": "Bearer", "expires_at": expires}, internal)
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	resp.Secret.Renewable = false
	resp.Warnings = t.warnings
	for _, w := range reuseReadWarnings(t, now, minTTL) {
		resp.AddWarning(w)
	}
	b.Logger().Debug("issued token", "config", name, "provider", t.cfg.Provider, "shared", t.shared,
		"expiry_source", t.ExpirySource, "expires_at", expires, "lease", ttl)
	if capped := t.CappedFrom; !capped.IsZero() && !t.shared {
		level := hclog.Debug // a few seconds past: the provider's clock is a little ahead
		if capped.Sub(t.ExpiresAt) > capNoticeAfter {
			level = hclog.Warn
		}
		b.Logger().Log(level, "the provider's token claims a later expiry than the documented lifetime of its kind: "+
			"its expiry, and lease, are capped at the documented lifetime", "config", name, "provider", t.cfg.Provider,
			"claimed_expiry", capped.UTC().Format(time.RFC3339), "expires_at", expires,
			"documented_lifetime", formatDuration(documentedLifetime(t.cfg)))
	}
	return resp, nil
}

// leaseTries bounds how many tokens a creds read mints while rotations keep replacing the
// credential under it; leaseRounds how many of them may come back with no room for a lease
// before the config's scheduled or planned rotation: after the first, each round performs
// the rotation before it mints.
const (
	leaseTries  = 5
	leaseRounds = 3
)

// leasedToken returns a token for a creds read of config name and its lease (issueLease). A
// scheduled or planned rotation kills the tokens of the credential it replaces (OffBlocks'
// PUT, Bloq's key delete): the lease ends a margin before the rotation may run
// (rotationStart), so that clients fetch a token of the new credential before the old ones
// die, and its end is recorded for the plans to come. A read that finds no lease fits
// rotates first (token). One whose mint outlasted the room left drops its token (never
// leased past the rotation, nor counted as issued) and starts again: token then finds no room
// either, waits for the rotation, performs it and mints with the new credential; after
// leaseRounds tokens without room the read is refused with a 503. A token whose credential
// was replaced, or began a rotation, while it was minted may be dead: it is dropped and
// another minted, leaseTries times in all (a rotation waiting for the config's lock takes it
// before the read can lease its token, so each rotation queued during the read costs a
// round).
func (b *backend) leasedToken(ctx context.Context, s logical.Storage, name string, minTTL time.Duration) (issuedToken, time.Duration, error) {
	for try, rounds := 1, 0; ; try++ {
		t, err := b.token(ctx, s, name, minTTL)
		if err != nil {
			return t, 0, err
		}
		ttl, err := b.issueLease(ctx, s, name, t)
		if err == nil {
			return t, ttl, nil
		}
		noRoom, isNoRoom := asNoRoom(err)
		switch {
		case isNoRoom && rounds+1 >= leaseRounds:
			when := "now"
			if !noRoom.rotatesAt.IsZero() {
				when = "at " + noRoom.rotatesAt.UTC().Format(time.RFC3339)
			}
			return t, 0, logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf("config %q rotates %s, "+
				"too soon for a lease of this token: read again", name, when))
		case isNoRoom:
			rounds++
			// The next round's token finds no room either: it waits for the rotation, performs
			// it and mints with the new credential (or returns logical.ErrReadOnly where
			// storage cannot be written, and Vault forwards the read to the active node).
			b.Logger().Debug("the token's mint outlasted the room before the rotation: waiting for the rotation, "+
				"then minting again", "config", name, "round", rounds, "rotation_start", noRoom.rotatesAt)
		case !errors.Is(err, errCredentialReplaced):
			return t, 0, err
		case try >= leaseTries:
			return t, 0, logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf("config %q changed while each of "+
				"%d tokens was minted (a rotation began, or a write on another node): read again", name, leaseTries))
		default:
			b.Logger().Debug("a rotation began while the token was minted; minting again", "config", name)
		}
		if err := ctx.Err(); err != nil {
			return t, 0, err
		}
	}
}

// asNoRoom is errors.As for *errNoRoom, apart so that a read that succeeds allocates nothing
// for it.
func asNoRoom(err error) (*errNoRoom, bool) {
	var e *errNoRoom
	ok := errors.As(err, &e)
	return e, ok
}

// reuseReadWarnings say when a creds read's min_ttl, or the config's min_token_ttl, cannot do
// what it seems to: min_ttl without token_reuse is ignored (every read mints anyway); a
// requirement of at least the fresh token's whole life means no token is ever shared (every
// read mints); and a min_ttl over the token's life cannot be met at all.
func reuseReadWarnings(t issuedToken, now time.Time, minTTL time.Duration) []string {
	var w []string
	left := t.ExpiresAt.Sub(now)
	switch {
	case minTTL > 0 && !t.cfg.TokenReuse:
		w = append(w, fmt.Sprintf("min_ttl (%s) is ignored: config token_reuse is off, so every read mints a fresh token",
			formatDuration(minTTL)))
	case minTTL > left:
		w = append(w, fmt.Sprintf("min_ttl (%s) is more than this fresh token's life (%s): it is the freshest the provider gives",
			formatDuration(minTTL), formatDuration(left.Round(time.Second))))
	}
	if t.cfg.TokenReuse && !t.shared && t.cfg.MinTokenTTL > 0 && t.cfg.MinTokenTTL >= left {
		w = append(w, fmt.Sprintf("min_token_ttl (%s) is not less than this token's life (%s): no token is shared, "+
			"every read mints; lower it (0: half the token's life)", formatDuration(t.cfg.MinTokenTTL),
			formatDuration(left.Round(time.Second))))
	}
	return w
}

// mint obtains a token with config name's stored credential. A config that holds a fallback
// credential (settle.go) is settled first: until it is, no token of its current credential
// is handed out, since the provider may adopt the fallback at any moment. If the provider
// refuses the stored credential, the config is settled (a fallback that works is adopted)
// and the mint tried once more. A Bloq refresh grant runs under the config's exclusive
// lock, since the provider may replace the refresh token on every use.
func (b *backend) mint(ctx context.Context, s logical.Storage, name string) (minted, *accountConfig, error) {
	m, cfg, err := b.mintOnce(ctx, s, name)
	var unsettled *unsettledError
	if err == nil || !(apiclient.IsRejected(err) || errors.As(err, &unsettled)) {
		return m, cfg, err
	}
	_, changed, serr := b.settleForRead(ctx, s, name)
	switch {
	case serr == logical.ErrReadOnly:
		return minted{}, nil, serr // Vault forwards the read to the node that can write
	case errors.As(serr, &unsettled):
		return minted{}, nil, serr
	case serr != nil:
		b.Logger().Warn("a config could not be settled", "config", name, "error", serr)
		return m, cfg, fmt.Errorf("%w; and config %q could not be settled: %v", err, name, serr)
	case !changed && unsettled == nil:
		return m, cfg, err
	}
	return b.mintOnce(ctx, s, name)
}

func (b *backend) mintOnce(ctx context.Context, s logical.Storage, name string) (minted, *accountConfig, error) {
	lock := b.lock(name)
	lock.RLock()
	gen := b.memo.generation(name)
	cfg, err := b.cachedConfig(ctx, s, name)
	if err == nil && cfg == nil {
		err = errConfigNotFound(name)
	}
	if err == nil && cfg.unsettled() {
		err = cfg.unsettledErr(name)
	}
	if err == nil {
		var earlier bool
		if earlier, err = b.earlier.pending(ctx, s, name); err == nil && earlier {
			err = cfg.earlierWALErr(name)
		}
	}
	if err != nil || !cfg.rolls() {
		defer lock.RUnlock()
		if err != nil {
			return minted{}, nil, err
		}
		ctx, p, err := b.providerFor(ctx, name, cfg)
		if err != nil {
			return minted{}, nil, err
		}
		m, err := mintWith(ctx, p, cfg.cred)
		if err == nil {
			err = b.replacedDuring(ctx, s, name, cfg, gen)
		}
		return m, cfg, err
	}
	lock.RUnlock()
	return b.mintRefresh(ctx, s, name)
}

// keepRevocable adds the token to internal, what Vault stores with the lease of a token for
// its revocation, when the provider that minted it can revoke one token and the token is the
// lease's own: never one minted for sharing (t.flight, whatever the config says by now), which
// other leases may still hold.
func keepRevocable(internal map[string]any, t issuedToken) {
	if t.revocable && !t.flight {
		internal["token"] = t.Value
	}
}

// secretTokenRevoke is a creds lease's revocation: the provider revokes the lease's token
// when it can (keepRevocable kept it), and an error makes Vault retry. Otherwise the token lives
// until its expiry: none of OffBlocks, Bloq and OpsNow can revoke a single token.
func (b *backend) secretTokenRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	name, _ := req.Secret.InternalData["config"].(string)
	token, _ := req.Secret.InternalData["token"].(string)
	if token == "" {
		b.Logger().Debug("lease revoked; the provider token stays valid until it expires", "config", name)
		return nil, nil
	}
	lock := b.lock(name)
	lock.RLock()
	defer lock.RUnlock()
	cfg, err := b.cachedConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		b.Logger().Warn("lease revoked of a config that is gone: its token lives until it expires", "config", name)
		return nil, nil
	}
	ctx, p, err := b.providerFor(ctx, name, cfg)
	if err != nil {
		return nil, err
	}
	rv, ok := p.(registry.Revoker)
	if !ok {
		return nil, nil
	}
	if err := rv.Revoke(ctx, cfg.cred, token); err != nil {
		return nil, fmt.Errorf("revoke the lease's token: %w", err)
	}
	b.Logger().Debug("lease revoked, and its token at the provider", "config", name)
	return nil, nil
}
