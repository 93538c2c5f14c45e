package apitokens

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// legacyRotationWhy is why a config with an earlier plugin version's interrupted rotation is
// unsettled before Vault's rollback has turned the entry into a fallback.
const legacyRotationWhy = "a rotation by an earlier plugin version was interrupted; the next creds read, Vault's " +
	"periodic function or its rollback turns its new credential into a fallback and settles it"

// credentialOverUnsettled applies the rule for a config write that names a root credential
// field while a rotation of the config is unsettled: it holds a fallback, or a WAL entry of
// an earlier version's rotation (whose new credential the provider may adopt) is still
// pending. An operator's credential is what may drop those (settle.go, rule 4), but only when
// asked to: a write that merely repeats the config (a script, Terraform) must not give up a
// credential the provider may still adopt. Without force=true it is refused, and nothing
// changes. With it, c's fallbacks are dropped (each logged at error level), and the earlier
// version's entries are returned for the caller to delete once c is stored. A force that
// forces nothing gets a warning.
func (b *backend) credentialOverUnsettled(ctx context.Context, req *logical.Request, d *framework.FieldData,
	existing, c *accountConfig) (legacy []pendingRotation, warnings []string, err error) {
	name, force := d.Get("name").(string), d.Get("force").(bool)
	if existing != nil && rootCredentialGiven(d) {
		pending, err := pendingRotations(ctx, req.Storage, name)
		if err != nil {
			return nil, nil, err
		}
		var unknown []pendingRotation
		for _, pr := range pending {
			switch {
			case pr.unreadable():
				unknown = append(unknown, pr)
			case !pr.entry.Creating: // a create marker holds no credential: nothing to give up
				legacy = append(legacy, pr)
			}
		}
		if len(unknown) > 0 && !force {
			return nil, nil, &unknownProviderError{name: name, provider: unknown[0].entry.Provider, inWAL: true}
		}
		for _, pr := range unknown { // given up by force, with the earlier versions' entries
			b.Logger().Error("a forced credential write gives up an interrupted rotation's entry that a newer version "+
				"of the plugin wrote; it may hold a credential", "config", name, "provider", pr.entry.Provider)
			legacy = append(legacy, pr)
		}
	}
	if existing == nil || !rootCredentialGiven(d) || (!existing.unsettled() && len(legacy) == 0) {
		if force {
			warnings = append(warnings, "force=true forced nothing: it applies to a write of "+orList(rootFieldNames())+
				" while a rotation is unsettled, and to a delete")
		}
		return nil, warnings, nil
	}
	if !force {
		var cause *unsettledError
		if existing.unsettled() {
			cause = existing.unsettledErr(name)
		} else { // len(legacy) > 0
			cause = &unsettledError{name: name, provider: existing.Provider, since: legacy[0].entry.Started,
				identifier: registry.Identifier(legacy[0].entry.New), why: legacyRotationWhy}
		}
		return nil, nil, &pendingRotationError{name: name, provider: existing.Provider, mount: req.MountPoint,
			fallbacks: existing.Fallbacks, forWrite: true, cause: cause}
	}
	for _, f := range c.Fallbacks {
		b.Logger().Error("a forced credential write gives up a fallback credential the provider may still adopt",
			"config", name, "provider", c.Provider, "identifier", registry.Identifier(f.cred), "since", f.Since, "why", f.Why)
	}
	for _, pr := range legacy {
		if pr.unreadable() {
			continue // logged above
		}
		b.Logger().Error("a forced credential write gives up the new credential of an earlier version's interrupted "+
			"rotation, which the provider may still adopt", "config", name, "provider", c.Provider,
			"identifier", registry.Identifier(pr.entry.New), "started", pr.entry.Started)
	}
	warnings = append(warnings, fmt.Sprintf("%d fallback credential(s) the provider may still adopt were given up "+
		"by this forced write: if the provider adopts one, write the credential it accepts", len(c.Fallbacks)+len(legacy)))
	c.Fallbacks = nil
	return legacy, warnings, nil
}
