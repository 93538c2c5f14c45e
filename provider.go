package apitokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
)

// minted is a token fresh from a provider.
type minted struct {
	apiclient.Token
	// NewRefreshToken is set when a Bloq refresh grant returned a new refresh token, which
	// must replace the stored one; it may be set beside an error (a malformed access token).
	NewRefreshToken string
	// warnings are for the creds response.
	warnings []string
}

// provider is everything the Vault surface needs from one account's client: a token for a
// credential, with the provider's expiry. Implementations are safe for concurrent use.
type provider interface {
	Mint(ctx context.Context, cred credential) (minted, error)
}

// rotator is a provider whose root credential can be replaced. A rotation runs
// Prepare → (store next as a fallback) → Activate → Mint(next) → (store next as current) →
// Retire(cur).
type rotator interface {
	provider
	// CanRotate says why this credential cannot be rotated, or nil.
	CanRotate(cur credential) error
	// Prepare returns the next credential. It may create it upstream (Bloq) but must leave
	// cur working.
	Prepare(ctx context.Context, cur credential) (credential, error)
	// Activate makes next the account's credential upstream; cur may stop working. An error
	// that wraps errUnchanged says nothing was changed upstream. Sending it again with the
	// same next is safe: it sets the same credential.
	Activate(ctx context.Context, cur, next credential) error
	// Exclusive reports whether activating next makes cur stop working (OffBlocks). Then a
	// new credential the provider refuses may still be on its way in, and only a refusal of
	// the activation itself lets Vault keep cur. Otherwise (Bloq, whose old key lives until
	// Vault deletes it) keeping cur loses nothing.
	Exclusive() bool
	// Retire removes gone upstream once it is no longer stored (best effort).
	Retire(ctx context.Context, gone credential) error
}

// creator is a rotator whose Prepare creates the new credential upstream and learns its
// secret only from the provider's answer (Bloq), so it can be stored as a fallback only after
// the create call. Inventory lists the identifiers of the account's credentials upstream,
// so that a credential a crashed create call left behind can be named.
type creator interface {
	Inventory(ctx context.Context, cur credential) ([]string, error)
}

// documentedLifetime is the lifetime the provider documents for the tokens config c mints:
// the one its client caps every token's expiry at (apiclient.NewToken), so no lease is
// longer (tokenLifeBound).
func documentedLifetime(c *accountConfig) time.Duration {
	switch {
	case c.Provider == offblocks.Name:
		return offblocks.DefaultLifetime
	case c.Provider == bloq.Name && c.GrantType == grantPassword:
		return bloq.AccountTokenLifetime
	case c.Provider == bloq.Name:
		return bloq.ClientTokenLifetime // client keys and the refresh grant both mint client tokens
	case c.Provider == opsnow.Name:
		return opsnow.DefaultLifetime
	}
	return time.Hour // a provider this version does not know serves no token
}

// errUnchanged marks an Activate failure that happened before anything was sent that could
// change the provider's side: the rotation can be abandoned without settling it.
var errUnchanged = errors.New("nothing changed upstream")

// providerFor returns the client for config name: one per provider, base URL and timeout,
// shared by every config that has them (the credentials travel in each call, never in the
// client), over the process's connection pool for the endpoint (apiclient.SharedTransport).
// So a config costs no client of its own, and a config changed to another base URL or
// timeout simply finds another client. The per-account bound on calls in flight is the
// config's mint slots (memo.slots) and its lock. The returned context, for the calls made
// with the client, names the config, which labels the calls' metrics when per-config detail
// is on. A provider this version does not know is an *unknownProviderError, and no client.
func (b *backend) providerFor(ctx context.Context, name string, c *accountConfig) (context.Context, provider, error) {
	ctx = withConfigName(ctx, name)
	if !knownProvider(c.Provider) {
		return ctx, nil, &unknownProviderError{name: name, provider: c.Provider}
	}
	key := c.Provider + "|" + c.BaseURL + "|" + c.RequestTimeout.String()
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	if p, ok := b.clients[key]; ok {
		return ctx, p, nil
	}
	api := apiclient.New(apiclient.Options{
		Provider:     c.Provider,
		BaseURL:      c.BaseURL,
		Timeout:      c.RequestTimeout,
		UserAgent:    "vault-plugin-secrets-apitokens/" + Version,
		RetryWaitMin: b.retryWaitMin,
		RetryWaitMax: b.retryWaitMax,
		Logger:       b.Logger().Named(c.Provider),
		Observe:      b.metrics.observeCall(c.Provider),
		Transport:    b.transport,
		Backoff:      b.backoff,
	})
	var p provider
	switch c.Provider {
	case offblocks.Name:
		p = offblocksProvider{offblocks.New(api, b.now)}
	case bloq.Name:
		p = bloqProvider{bloq.New(api, b.now)}
	case opsnow.Name:
		p = opsnowProvider{opsnow.New(api, b.now)}
	default: // knownProvider and this switch disagree: fail closed all the same
		return ctx, nil, &unknownProviderError{name: name, provider: c.Provider}
	}
	b.clients[key] = p
	return ctx, p, nil
}

// offblocksProvider mints with the API key pair and rotates by choosing a new pair and
// PUTting it with a token of the current one.
type offblocksProvider struct{ c *offblocks.Client }

func (p offblocksProvider) Mint(ctx context.Context, cr credential) (minted, error) {
	t, err := p.c.Mint(ctx, offblocks.Credentials{APIKey: cr.APIKey, APISecret: cr.APISecret})
	return minted{Token: t}, err
}

func (offblocksProvider) CanRotate(credential) error { return nil }

// Exclusive: the PUT kills the old pair (and every token it minted).
func (offblocksProvider) Exclusive() bool { return true }

func (offblocksProvider) Prepare(_ context.Context, cur credential) (credential, error) {
	pair, err := offblocks.GenerateCredentials()
	if err != nil {
		return credential{}, err
	}
	next := cur
	next.APIKey, next.APISecret = pair.APIKey, pair.APISecret
	return next, nil
}

func (p offblocksProvider) Activate(ctx context.Context, cur, next credential) error {
	bearer, err := p.Mint(ctx, cur)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnchanged, err)
	}
	return p.c.UpdateCredentials(ctx, bearer.Value,
		offblocks.Credentials{APIKey: next.APIKey, APISecret: next.APISecret})
}

// Retire has nothing to do: OffBlocks kills the old pair when the new one is PUT.
func (offblocksProvider) Retire(context.Context, credential) error { return nil }

// bloqProvider mints with the config's grant and rotates client keys with the account login.
type bloqProvider struct{ c *bloq.Client }

func (p bloqProvider) Mint(ctx context.Context, cr credential) (minted, error) {
	switch cr.GrantType {
	case grantPassword:
		tr, err := p.c.AccountToken(ctx, cr.Username, cr.Password)
		return minted{Token: tr.Token}, err
	case grantRefreshToken:
		tr, err := p.c.Refresh(ctx, cr.RefreshToken)
		m := minted{Token: tr.Token}
		if tr.RefreshToken != "" && tr.RefreshToken != cr.RefreshToken {
			m.NewRefreshToken = tr.RefreshToken // even with an error: it must not be lost
		}
		return m, err
	default:
		tr, err := p.c.ClientToken(ctx, cr.ClientID, cr.ClientSecret)
		return minted{Token: tr.Token}, err
	}
}

func (bloqProvider) CanRotate(cur credential) error {
	if cur.GrantType != grantClientCredentials || cur.ClientID == "" {
		return errors.New("bloq rotates client keys only: this config has none (grant_type " + cur.GrantType + ")")
	}
	if cur.Username == "" || cur.Password == "" {
		return errors.New("bloq client keys can be rotated only with an account login: set username and password on the config")
	}
	return nil
}

func (p bloqProvider) account(ctx context.Context, cr credential) (string, error) {
	tr, err := p.c.AccountToken(ctx, cr.Username, cr.Password)
	return tr.Token.Value, err
}

func (p bloqProvider) Prepare(ctx context.Context, cur credential) (credential, error) {
	acct, err := p.account(ctx, cur)
	if err != nil {
		return credential{}, err
	}
	k, err := p.c.CreateClientKey(ctx, acct)
	if err != nil {
		return credential{}, err
	}
	next := cur
	next.ClientID, next.ClientSecret = k.ClientID, k.Secret
	return next, nil
}

// Activate has nothing to do: a new Bloq key works as soon as it exists.
func (bloqProvider) Activate(context.Context, credential, credential) error { return nil }

// Exclusive is false: the old key works until Retire deletes it.
func (bloqProvider) Exclusive() bool { return false }

// Inventory lists the account's client keys: each by clientId, or by id when the list
// carries no clientId.
func (p bloqProvider) Inventory(ctx context.Context, cur credential) ([]string, error) {
	acct, err := p.account(ctx, cur)
	if err != nil {
		return nil, err
	}
	keys, err := p.c.ListClientKeys(ctx, acct)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if k.ClientID != "" {
			ids = append(ids, k.ClientID)
		} else {
			ids = append(ids, k.ID)
		}
	}
	return ids, nil
}

// errNotListed is a Retire of a credential the provider does not list: already gone (Bloq
// lists a key as soon as its create call answers).
var errNotListed = errors.New("not listed upstream")

// Retire deletes the key gone.ClientID, found by listing the keys, logging in with gone's
// username and password; a key that is not listed is errNotListed.
func (p bloqProvider) Retire(ctx context.Context, gone credential) error {
	acct, err := p.account(ctx, gone)
	if err != nil {
		return err
	}
	keys, err := p.c.ListClientKeys(ctx, acct)
	if err != nil {
		return err
	}
	id := bloq.KeyIDFor(keys, gone.ClientID)
	if id == "" {
		return errNotListed
	}
	return p.c.DeleteClientKey(ctx, acct, id)
}

// opsnowProvider mints with the API key; OpsNow has no rotation API.
type opsnowProvider struct{ c *opsnow.Client }

func (p opsnowProvider) Mint(ctx context.Context, cr credential) (minted, error) {
	t, err := p.c.Mint(ctx, cr.APIKey)
	return minted{Token: t}, err
}
