package apitokens

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// settingsKey is the storage key of the mount's own settings (not seal-wrapped: no secret).
const settingsKey = "settings"

const pathSettingsHelpDesc = `
The mount's own settings, which apply to every config of the mount.

metrics_per_config (default false): the metrics path adds a series per config for provider
calls, tokens handed out, rotations and the next scheduled rotation. Off, those figures are
aggregated by provider and operation, so a scrape's size does not grow with the number of
configs; configs that need attention (holding a fallback credential, failing their
scheduled rotations) have a series each either way, at most 100 of each kind when off.
Turning it off drops the per-config series; turning it on starts them at zero.
`

// mountSettings are the mount's own settings, stored under settingsKey.
type mountSettings struct {
	MetricsPerConfig bool `json:"metrics_per_config"`
}

// pathSettings is the settings path: the mount's own settings.
func pathSettings(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "settings",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "settings"},
		Fields: map[string]*framework.FieldSchema{
			"metrics_per_config": {Type: framework.TypeBool, Default: false,
				Description: "Add a metrics series per config for calls, tokens, rotations and " +
					"the next rotation (default false: aggregated by provider)."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathSettingsRead,
				Summary: "Read the mount's settings."},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSettingsWrite,
				Summary: "Change the mount's settings; fields not given keep their value."},
		},
		HelpSynopsis:    "The mount's own settings.",
		HelpDescription: pathSettingsHelpDesc,
	}
}

// getSettings reads the stored settings; none stored are the defaults.
func getSettings(ctx context.Context, s logical.Storage) (mountSettings, error) {
	var ms mountSettings
	entry, err := s.Get(ctx, settingsKey)
	if err != nil {
		return ms, fmt.Errorf("read settings: %w", err)
	}
	if entry == nil {
		return ms, nil
	}
	if err := entry.DecodeJSON(&ms); err != nil {
		return ms, fmt.Errorf("decode settings: %w", err)
	}
	return ms, nil
}

// loadSettings applies the stored settings to this node. Loads and writes are serialised
// from the read to the apply, so an older value read is never applied after a newer one.
func (b *backend) loadSettings(ctx context.Context, s logical.Storage) error {
	b.settingsMu.Lock()
	defer b.settingsMu.Unlock()
	ms, err := getSettings(ctx, s)
	if err != nil {
		return err
	}
	b.metrics.setPerConfig(ms.MetricsPerConfig)
	return nil
}

// initialize applies the stored settings when the mount starts on this node.
func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	if err := b.loadSettings(ctx, req.Storage); err != nil {
		b.Logger().Warn("could not read the mount's settings; using the defaults until they change", "error", err)
	}
	return nil
}

// reloadSettings applies settings another node changed (Invalidate gives no storage: the
// backend's own view is used).
func (b *backend) reloadSettings() {
	if b.view == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.loadSettings(ctx, b.view); err != nil {
		b.Logger().Warn("could not read the mount's changed settings", "error", err)
	}
}

func (b *backend) pathSettingsRead(ctx context.Context, req *logical.Request,
	_ *framework.FieldData) (*logical.Response, error) {
	ms, err := getSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"metrics_per_config": ms.MetricsPerConfig}}, nil
}

func (b *backend) pathSettingsWrite(ctx context.Context, req *logical.Request,
	d *framework.FieldData) (*logical.Response, error) {
	b.settingsMu.Lock()
	defer b.settingsMu.Unlock()
	ms, err := getSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if v, ok := d.GetOk("metrics_per_config"); ok {
		ms.MetricsPerConfig = v.(bool)
	}
	entry, err := logical.StorageEntryJSON(settingsKey, ms)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("store settings: %w", err)
	}
	b.metrics.setPerConfig(ms.MetricsPerConfig)
	return &logical.Response{Data: map[string]any{"metrics_per_config": ms.MetricsPerConfig}}, nil
}
