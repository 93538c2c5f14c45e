package apitokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/automatedrotationutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

const pathConfigHelpSyn = `Store a provider account's root credentials.`

var pathConfigHelpDesc = `
config/<name> holds one provider account: its provider (` + providerChoices() + `, fixed at
creation), its API root and its root credentials. Writes create or update; an update changes
only the fields it names. Reads return every non-secret field and never a secret
(` + secretFieldsProse() + `).
`

func configFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Required: true,
			Description: "Name of the provider account."},
		"provider": {Type: framework.TypeString,
			AllowedValues: providerValues(),
			Description:   "Provider: " + providerChoices() + ". Required on create; immutable after."},
		"base_url": {Type: framework.TypeString,
			Description: "Provider API root. Defaults to the live URL. https:// required, except http:// to a loopback host " +
				"(dialled only at a loopback address); no query or fragment. Changing it requires the config's secret " +
				"fields in the same write: a stored secret is never sent to a new host."},
		"max_ttl": {Type: framework.TypeDurationSecond,
			Description: "Upper bound on a creds lease. 0 means no cap beyond the provider's expiry and the mount's maximum."},
		"request_timeout": {Type: framework.TypeDurationSecond, Default: "30s",
			Description: "Deadline for one provider call, retries included. Default 30s; at most 10m."},
		"token_reuse": {Type: framework.TypeBool,
			Description: "Share one token among readers while it has at least min_token_ttl left; reads that " +
				"need a new one while it is being minted wait for that one provider call. Default false: every read mints."},
		"min_token_ttl": {Type: framework.TypeDurationSecond,
			Description: "With token_reuse: the least life a shared token must have left to be handed out. " +
				"0 (default) means half of the token's own lifetime. A read can ask for more with min_ttl."},
		"force": {Type: framework.TypeBool, Query: true,
			Description: "While a rotation of this config is unsettled: on delete, delete anyway; on a write of " +
				orList(rootFieldNames()) + ", store that credential anyway. Either gives up the " +
				"fallback credential the provider may still adopt (logged at error level)."},
	}
	automatedrotationutil.AddAutomatedRotationFieldsWithGroup(fields, "Rotation")
	fields["rotation_period"].Description = rotationPeriodDesc
	fields["rotation_schedule"].Description = rotationScheduleDesc
	fields["rotation_window"].Description = rotationWindowDesc
	fields["disable_automated_rotation"].Description = disableRotationDesc
	fields["rotation_policy"].Description = rotationPolicyDesc
	for _, f := range credentialFields {
		fields[f.name] = f.schema()
	}
	return fields
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:        "config/" + framework.GenericNameRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "config"},
			Fields:         configFields(),
			ExistenceCheck: b.configExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite,
					Summary: "Create a provider account."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite,
					Summary: "Update a provider account; only the fields given change."},
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathConfigRead,
					Summary: "Read a provider account's non-secret fields."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete,
					Summary: "Delete a provider account. Issued tokens stay valid until they expire."},
			},
			HelpSynopsis:    pathConfigHelpSyn,
			HelpDescription: pathConfigHelpDesc,
		},
		{
			Pattern:      "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "configs"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathConfigList,
					Summary: "List provider accounts."},
			},
			HelpSynopsis:    "List provider accounts.",
			HelpDescription: "Lists the names of the accounts stored under config/.",
		},
	}
}

// configExists is the path's existence check. A config of a provider this version does not
// know exists: the write then refuses it with what to do.
func (b *backend) configExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	c, err := getConfig(ctx, req.Storage, d.Get("name").(string))
	var unknown *unknownProviderError
	if errors.As(err, &unknown) {
		return true, nil
	}
	return c != nil, err
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()

	existing, err := getConfig(ctx, req.Storage, name)
	if err != nil {
		return errorResponse(err)
	}
	now := b.now()
	if existing != nil {
		existing.leasesBound = b.leasesEndBy(name, existing, now) // a new schedule's first rotation waits for it
	}
	c, warnings, err := applyFields(existing, d, now)
	if err != nil {
		return errorResponse(err)
	}
	if existing == nil && c.scheduled() {
		if end := b.marks.latest(markKey(name, c)); end.After(now) {
			c.Rotation.LeasesEndBy = end // leases of a deleted config with this credential run on
		}
	}
	if p := c.Plan; existing != nil && !existing.plan().At.IsZero() && rootCredentialGiven(d) {
		// The operator's credential replaces the one the plan was to rotate.
		c.Plan = plannedRotation{}
		warnings = append(warnings, fmt.Sprintf("the rotation planned for %s is dropped: this write replaces the "+
			"credential it was to rotate", p.At.UTC().Format(time.RFC3339)))
	}
	legacy, fw, err := b.credentialOverUnsettled(ctx, req, d, existing, c)
	if err != nil {
		return errorResponse(err)
	}
	warnings = append(warnings, fw...)
	// A credential written is never deleted upstream as retiring: matched by its identifier (the
	// key a delete names), not the whole pair, so a secret re-typed differently (a trailing line
	// break) still saves the key.
	c.Retiring = slices.DeleteFunc(c.Retiring, func(r credential) bool { return sameKey(c.cred, r) })
	// A refresh token the provider issued that is not stored yet is newer than the stored one:
	// the write stores it, unless it sets that field itself.
	if held, ok := b.refreshTokens.get(name); ok {
		if f, rolls := rollingField(c.Provider); rolls && c.rolls() {
			if _, given := d.GetOk(f.Name); !given {
				c.cred = c.cred.With(f.Name, held)
			}
		}
	}
	if err := b.putConfig(ctx, req.Storage, name, c); err != nil {
		return errorResponse(err)
	}
	if existing != nil && existing.BaseURL != c.BaseURL {
		b.Logger().Info("config base_url changed: its credentials go to the new host from now on", "config", name,
			"provider", c.Provider, "old_host", urlHost(existing.BaseURL), "new_host", urlHost(c.BaseURL))
	}
	for _, pr := range legacy { // given up with the fallbacks, once the written credential is stored
		if err := framework.DeleteWAL(ctx, req.Storage, pr.id); err != nil {
			b.Logger().Error("a forced credential write could not delete an earlier version's rotation entry; "+
				"Vault's rollback may turn it into a fallback again", "config", name, "error", err)
		}
	}
	b.refreshTokens.drop(name)
	b.memo.forget(name)       // drop any shared token
	b.metrics.reads.end(name) // its reads failed with what it held before
	b.event(ctx, eventConfigWrite, name, c.Provider)
	return warningsResponse(warnings, d), nil
}

// warningsResponse is a write's answer: nil (204, "Success!") when there is nothing to say,
// and otherwise a response with the warnings. A request that names a field the path does
// not have gets a response too, so that the framework can add its "ignored these
// unrecognized parameters" warning, which it adds to a response only: a typo (max_tll=5m)
// is never a silent success.
func warningsResponse(warnings []string, d *framework.FieldData) *logical.Response {
	if len(warnings) == 0 && !hasUnknownField(d) {
		return nil
	}
	return &logical.Response{Warnings: warnings}
}

// hasUnknownField reports whether the request gave a field the path's schema lacks.
func hasUnknownField(d *framework.FieldData) bool {
	for k := range d.Raw {
		if _, ok := d.Schema[k]; !ok {
			return true
		}
	}
	return false
}

// rootCredentialGiven reports whether a config write names a field of a rotatable root
// credential (rootFieldNames: api_key, api_secret, client_id, client_secret).
func rootCredentialGiven(d *framework.FieldData) bool {
	for _, f := range rootFieldNames() {
		if _, ok := d.GetOk(f); ok {
			return true
		}
	}
	return false
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.lock(name)
	lock.RLock()
	defer lock.RUnlock()

	c, err := getConfig(ctx, req.Storage, name)
	if err != nil {
		return errorResponse(err)
	}
	if c == nil {
		return nil, nil
	}
	resp := &logical.Response{Data: c.publicData(b.now()), Warnings: append(c.fallbackWarnings(), c.reuseWarnings()...)}
	if f, rolls := rollingField(c.Provider); rolls && b.refreshTokens.held(name) {
		resp.AddWarning(c.Provider + " issued a newer " + strings.ToLower(f.Display) + " that could not be stored yet: " +
			"this node holds it in memory and stores it on the next creds read; check Vault's storage")
	}
	return resp, nil
}

// pathConfigDelete deletes config/<name>. The config is settled first: if it still holds a
// fallback credential the provider may adopt, the delete is refused unless force=true, which
// gives it up. Retiring credentials that cannot be removed upstream are named in the log.
func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	force := d.Get("force").(bool)
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()

	var warnings []string
	cfg, _, err := b.settleLocked(ctx, req.Storage, name)
	var unknown *unknownProviderError
	switch {
	case err == logical.ErrReadOnly:
		return errorResponse(err)
	case errors.As(err, &unknown) && force:
		// What a newer version stored beside the config (a fallback credential it may hold
		// among fields this version cannot read) is given up with it.
		warnings = append(warnings, fmt.Sprintf("config %q of provider %q, which this version does not know, was "+
			"deleted by force: whatever a newer version kept in it is given up", name, unknown.provider))
		b.Logger().Error("forced delete of a config whose provider this version does not know: whatever a newer "+
			"version kept in it (a credential the provider may use among them) is given up", "config", name,
			"provider", unknown.provider)
		if cfg, err = getConfigAnyProvider(ctx, req.Storage, name); err != nil {
			return errorResponse(err)
		}
	case err != nil && (cfg == nil || !cfg.unsettled()):
		return errorResponse(err)
	case err != nil && !force:
		return errorResponse(&pendingRotationError{name: name, provider: cfg.Provider, mount: req.MountPoint,
			fallbacks: cfg.Fallbacks, forDelete: true, cause: err})
	case err != nil:
		warnings = append(warnings, fmt.Sprintf("%d fallback credential(s) the provider may still adopt were given up "+
			"by this forced delete (named in Vault's log)", len(cfg.Fallbacks)))
		for _, f := range cfg.Fallbacks {
			b.Logger().Error("forced delete: giving up a fallback credential the provider may adopt at any moment; "+
				"if it does, the account's credential exists nowhere else",
				"config", name, "provider", cfg.Provider, "identifier", registry.Identifier(f.cred), "since", f.Since,
				"unsettled_because", err)
		}
	}
	if cfg == nil {
		return warningsResponse(warnings, d), nil // deleting what does not exist succeeds, as everywhere in Vault
	}
	for _, r := range cfg.Retiring {
		b.Logger().Error("delete: a replaced credential could not be removed upstream; remove it in the provider's console",
			"config", name, "provider", cfg.Provider, "identifier", registry.Identifier(r))
	}
	pending, err := pendingRotations(ctx, req.Storage, name)
	if err != nil {
		return errorResponse(err)
	}
	for _, pr := range pending {
		if pr.unreadable() && !force {
			return errorResponse(&unknownProviderError{name: name, provider: pr.entry.Provider, inWAL: true})
		}
	}
	for _, pr := range pending {
		if pr.unreadable() {
			b.Logger().Error("forced delete: giving up an interrupted rotation's entry that a newer version of the "+
				"plugin wrote; it may hold a credential", "config", name, "provider", pr.entry.Provider)
		} else { // a create marker whose orphan could not be looked for yet
			b.Logger().Error("delete: an interrupted rotation may have created a credential upstream that "+
				"nobody holds; look in the provider's console for one created at about this time that is not listed here",
				"config", name, "provider", pr.entry.Provider, "started", pr.entry.Started, "listed_before", pr.entry.Known)
		}
		if err := framework.DeleteWAL(ctx, req.Storage, pr.id); err != nil {
			return errorResponse(err)
		}
	}
	if err := req.Storage.Delete(ctx, configKey(name)); err != nil {
		b.memo.forget(name) // the delete may have landed (a commit whose answer was lost): read storage again
		return errorResponse(err)
	}
	// After the config: a crash between the two leaves an entry that attaches to no other
	// account (state.go), and that a new config of this name overwrites.
	if err := req.Storage.Delete(ctx, stateKey(name)); err != nil {
		b.Logger().Warn("deleted a config, but not its fallbacks and retiring credentials entry; a new config of "+
			"the same name replaces it", "config", name, "error", err)
	}
	b.refreshTokens.drop(name)
	b.memo.forget(name)
	b.marks.forgetEnded(markKey(name, cfg), b.now()) // leases still running count for a new config of the same credential
	b.metrics.forget(name)
	b.event(ctx, eventConfigDelete, name, cfg.Provider)
	return warningsResponse(warnings, d), nil
}

func (b *backend) pathConfigList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}
