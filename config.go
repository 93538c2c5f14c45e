package apitokens

import (
	"context"
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

// credential is an account's root credential: the fields a rotation replaces and the ones
// used to mint. Which fields are set depends on the provider.
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

// sameRoot reports whether two credentials hold the same rotatable pair.
func (c credential) sameRoot(o credential) bool {
	return c.APIKey == o.APIKey && c.APISecret == o.APISecret &&
		c.ClientID == o.ClientID && c.ClientSecret == o.ClientSecret
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
}

// publicData is what a config read returns: every non-secret field, never a secret.
func (c *accountConfig) publicData() map[string]any {
	d := map[string]any{
		"provider":        c.Provider,
		"base_url":        c.BaseURL,
		"max_ttl":         int64(c.MaxTTL / time.Second),
		"request_timeout": int64(c.RequestTimeout / time.Second),
	}
	if !c.LastRotated.IsZero() {
		d["last_rotated"] = c.LastRotated.UTC().Format(time.RFC3339)
	}
	switch c.Provider {
	case offblocks.Name:
		d["api_key"] = c.APIKey // an identifier for OffBlocks; api_secret is the secret
	case bloq.Name:
		d["grant_type"] = c.GrantType
		if c.ClientID != "" {
			d["client_id"] = c.ClientID
		}
		if c.Username != "" {
			d["username"] = c.Username
		}
	}
	return d
}

func configKey(name string) string { return configPrefix + name }

// getConfig loads config/<name>; a missing config is (nil, nil).
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
	return &c, nil
}

// putConfig stores config/<name> and drops the cached client built from the old one.
func (b *backend) putConfig(ctx context.Context, s logical.Storage, name string, c *accountConfig) error {
	entry, err := logical.StorageEntryJSON(configKey(name), c)
	if err != nil {
		return fmt.Errorf("encode config %q: %w", name, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("store config %q: %w", name, err)
	}
	b.dropClient(name)
	return nil
}
