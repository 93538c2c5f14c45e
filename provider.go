package apitokens

import (
	"context"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// minted is a token fresh from a provider.
type minted struct {
	registry.Minted
	// warnings are for the creds response.
	warnings []string
	// revocable says the provider that minted it can revoke it (a registry.Revoker).
	revocable bool
}

// provider is a provider's client: a token for a credential, with the provider's expiry.
type provider = registry.Client

// rotator is a client that can replace the root credential (registry.Rotator); creator one
// whose new credential is created upstream (registry.Creator).
type (
	rotator = registry.Rotator
	creator = registry.Creator
)

// errUnchanged marks an Activate failure that happened before anything was sent that could
// change the provider's side: the rotation can be abandoned without settling it.
var errUnchanged = registry.ErrUnchanged

// errNotListed is a Retire of a credential the provider does not list: already gone.
var errNotListed = registry.ErrNotListed

// mintWith mints with cred through p, as the surface's own minted.
func mintWith(ctx context.Context, p provider, cred credential) (minted, error) {
	m, err := p.Mint(ctx, cred)
	_, revocable := p.(registry.Revoker)
	return minted{Minted: m, revocable: revocable}, err
}

// providerFor returns the client for config name: one per provider, base URL and timeout,
// shared by every config that has them (the credentials travel in each call, never in the
// client), over the process's connection pool for the endpoint (apiclient.SharedTransport).
// So a config costs no client of its own, and a config changed to another base URL or
// timeout simply finds another client. The per-account bound on calls in flight is the
// config's mint slots (memo.slots) and its lock. The returned context, for the calls made
// with the client, names the config, which labels the calls' metrics when per-config detail
// is on. A provider this build does not know is an *unknownProviderError, and no client.
func (b *backend) providerFor(ctx context.Context, name string, c *accountConfig) (context.Context, provider, error) {
	p, err := b.clientFor(name, c)
	return withConfigName(ctx, name), p, err
}

// clientFor is providerFor's client alone.
func (b *backend) clientFor(name string, c *accountConfig) (provider, error) {
	d, ok := registry.Lookup(c.Provider)
	if !ok {
		return nil, &unknownProviderError{name: name, provider: c.Provider}
	}
	key := c.Provider + "|" + c.BaseURL + "|" + c.RequestTimeout.String()
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	if p, ok := b.clients[key]; ok {
		return p, nil
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
	p := d.Client(api, b.now)
	b.clients[key] = p
	return p, nil
}
