package apitokens

import (
	"context"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// What the deterministic simulation knows of each provider it drives: the config it works on,
// where the simulator serves the provider, how an operator copies the account's live
// credential from the provider's console, and the provider's ground truth for the
// invariants. The world's configs come from the registry, in its order, for every provider
// that has an adapter here; TestSimulationAdaptsEveryRotatingProvider requires one for every
// provider whose root credential rotates (the protocol the simulation proves).
type simProvider struct {
	// config is the name of the world's config of the provider; optional ones are in a seed
	// only when its swarm says so (swarm.bloq).
	config   string
	prefix   string
	optional bool
	// console returns the fields of a credential the provider accepts now, as an operator
	// copies it from the console, with the secrets of every other credential the account
	// has (which a write of it gives up); false when there is none.
	console func(w *world) (fields map[string]any, givenUp []string, ok bool)
	// accountSecrets are the secrets of every credential the provider accepts, or may adopt.
	accountSecrets func(w *world) []string
	// live reports whether the provider accepts cfg's stored credential now; secret is its
	// secret.
	live   func(w *world, cfg *accountConfig) bool
	secret func(cfg *accountConfig) string
	// id is the identifier of cfg's stored credential (the one a provider call names).
	id func(cfg *accountConfig) string
}

var simProviders = map[string]simProvider{
	"offblocks": {
		config: "ob", prefix: simulator.OffBlocksPrefix,
		console: func(w *world) (map[string]any, []string, bool) {
			var givenUp []string
			for _, p := range w.sim.OffBlocksPendingPairs(w.obID) {
				givenUp = append(givenUp, p[1])
			}
			key, secret := w.sim.OffBlocksPair(w.obID)
			return map[string]any{"api_key": key, "api_secret": secret}, givenUp, true
		},
		accountSecrets: func(w *world) []string {
			_, live := w.sim.OffBlocksPair(w.obID)
			secrets := []string{live}
			for _, p := range w.sim.OffBlocksPendingPairs(w.obID) {
				secrets = append(secrets, p[1])
			}
			return secrets
		},
		live: func(w *world, cfg *accountConfig) bool {
			_, secret := w.sim.OffBlocksPair(w.obID)
			return secret == cfg.ob().APISecret
		},
		secret: func(cfg *accountConfig) string { return cfg.ob().APISecret },
		id:     func(cfg *accountConfig) string { return cfg.ob().APIKey },
	},
	"bloq": {
		config: "bq", prefix: simulator.BloqPrefix, optional: true,
		console: func(w *world) (map[string]any, []string, bool) {
			ids := w.sim.BloqClientIDs(w.bqUser)
			if len(ids) == 0 {
				return nil, nil, false
			}
			id := w.preferRetiring("bq", ids[w.r.Intn(len(ids))], ids)
			fields := map[string]any{"client_id": id, "client_secret": w.sim.BloqKeySecret(id), "username": bqUser, "password": bqPass}
			var givenUp []string
			for _, s := range w.sim.BloqLiveSecrets(w.bqUser) {
				if s != fields["client_secret"] {
					givenUp = append(givenUp, s)
				}
			}
			return fields, givenUp, true
		},
		accountSecrets: func(w *world) []string { return w.sim.BloqLiveSecrets(w.bqUser) },
		live: func(w *world, cfg *accountConfig) bool { // the pair: a secret of another key does not mint with this id
			return w.sim.BloqKeySecret(cfg.bq().ClientID) == cfg.bq().ClientSecret && w.sim.BloqKeyMints(cfg.bq().ClientSecret)
		},
		secret: func(cfg *accountConfig) string { return cfg.bq().ClientSecret },
		id:     func(cfg *accountConfig) string { return cfg.bq().ClientID },
	},
}

// simProviderOf returns the provider and adapter of the world's config name.
func simProviderOf(name string) (string, simProvider) {
	for p, a := range simProviders {
		if a.config == name {
			return p, a
		}
	}
	panic("no simulated provider has config " + name)
}

// configNames are the configs a seed works on: one per provider with an adapter, in the
// registry's order, the optional ones only when the seed's swarm includes them.
func (w *world) configNames() []string {
	var names []string
	for _, d := range registry.Drivers() {
		if a, ok := simProviders[d.Name()]; ok && (!a.optional || w.sw.bloq) {
			names = append(names, a.config)
		}
	}
	return names
}

// accountSecrets are the secrets of every credential the provider accepts, or may adopt,
// for config name's account.
func (w *world) accountSecrets(name string) []string {
	_, a := simProviderOf(name)
	return a.accountSecrets(w)
}

// storedSecret is the secret of the credential stored in config/<name> ("" if none).
func (w *world) storedSecret(name string) string {
	cfg, _ := getConfig(context.Background(), w.store, name)
	if cfg == nil {
		return ""
	}
	_, a := simProviderOf(name)
	return a.secret(cfg)
}

// storedCredentialLive reports whether the provider accepts config name's stored credential
// now.
func (w *world) storedCredentialLive(name string) bool {
	cfg, _ := getConfig(context.Background(), w.store, name)
	if cfg == nil {
		return false
	}
	_, a := simProviderOf(name)
	return a.live(w, cfg)
}

// Every provider whose root credential rotates is driven by the simulation, and every
// adapter is a registered provider's.
func TestSimulationAdaptsEveryRotatingProvider(t *testing.T) {
	for _, d := range registry.Drivers() {
		if _, rotates := d.(registry.RotatingDriver); rotates {
			if _, ok := simProviders[d.Name()]; !ok {
				t.Errorf("provider %s rotates, and the simulation has no adapter for it (sim_providers_test.go)", d.Name())
			}
		}
	}
	for p := range simProviders {
		if _, ok := registry.Lookup(p); !ok {
			t.Errorf("the simulation adapts provider %s, which is not registered", p)
		}
	}
}
