package apitokens

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/vault/sdk/helper/automatedrotationutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// What the released v0.1.0 (commit 06a1864) does to a config it writes: it decodes
// config/<name> into its own struct and encodes that struct back, so every member that
// struct lacks is dropped. v010Config mirrors that struct field for field (its config.go and
// schedule.go); testdata/stored/v0.1.0 holds what v0.1.0 itself wrote.

// v010Credential is v0.1.0's credential union, inline in its config.
type v010Credential struct {
	APIKey       string `json:"api_key,omitempty"`
	APISecret    string `json:"api_secret,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	GrantType    string `json:"grant_type,omitempty"`
}

// v010Rotation is v0.1.0's rotationState.
type v010Rotation struct {
	automatedrotationutil.AutomatedRotationParams
	Since     time.Time `json:"since,omitempty"`
	Failures  int       `json:"failures,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// v010Config is v0.1.0's accountConfig.
type v010Config struct {
	Provider string `json:"provider"`
	BaseURL  string `json:"base_url"`
	v010Credential
	MaxTTL         time.Duration `json:"max_ttl"`
	RequestTimeout time.Duration `json:"request_timeout"`
	LastRotated    time.Time     `json:"last_rotated,omitempty"`
	TokenReuse     bool          `json:"token_reuse,omitempty"`
	MinTokenTTL    time.Duration `json:"min_token_ttl,omitempty"`
	Rotation       v010Rotation  `json:"rotation"`
}

// v010Rewrite is v0.1.0 writing config/<name> back after a change of its own that keeps
// the credential (a max_ttl write, a Bloq refresh-token store): everything it does not know
// is gone. It reports whether there was a config to rewrite.
func v010Rewrite(ctx context.Context, s logical.Storage, name string) (bool, error) {
	e, err := s.Get(ctx, configKey(name))
	if err != nil || e == nil {
		return false, err
	}
	var c v010Config
	if err := json.Unmarshal(e.Value, &c); err != nil {
		return false, err
	}
	out, err := logical.StorageEntryJSON(configKey(name), c)
	if err != nil {
		return false, err
	}
	return true, s.Put(ctx, out)
}
