package apitokens

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// What a creds reader learns. A Vault token that may only read creds/* may not read config:
// it learns which provider, call and status failed, and that a rotation is unsettled and
// since when, but no identifier of a root credential (an OffBlocks api_key is half the root
// pair; a Bloq client_id or username names the account), neither in the plugin's own text
// nor in the provider's excerpt. Config reads, rotate-root answers and the server log keep
// them: whoever may read those may read config.

// credsErrorResponse is errorResponse for a creds read of config name: the same status, with
// the text readerText makes.
func (b *backend) credsErrorResponse(ctx context.Context, s logical.Storage, name string, err error) (*logical.Response, error) {
	cfg, _ := b.memo.config(name)
	if cfg == nil {
		cfg, _ = getConfigAnyProvider(ctx, s, name) // errors are rare; a failed read names nothing more
	}
	return errorResponseText(err, readerText(err, cfg))
}

// readerText is err's text for a creds reader: an unsettled rotation in its reader's form,
// and every identifier redacted that err carries (each provider call's, each unsettled
// rotation's) or that cfg, the config as this node knows it, holds in any credential (the
// current one, fallbacks, retiring ones): the last net for a text that quotes one some other
// way.
func readerText(err error, cfg *accountConfig) string {
	text := err.Error()
	var u *unsettledError
	if errors.As(err, &u) {
		text = strings.Replace(text, u.Error(), u.readerError(), 1)
	}
	names := identifiersIn(err)
	if cfg != nil {
		names = append(names, cfg.accountNames()...)
	}
	// The longest first: a name inside a longer one must not leave part of the longer behind.
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, id := range names {
		text = redactName(text, id)
	}
	return text
}

// identifiersIn returns the identifiers that err and the errors it wraps carry: every
// provider call's (apiclient.Error) and every unsettled rotation's, with the errors of its
// change and confirmation.
func identifiersIn(err error) []string {
	var ids []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *apiclient.Error:
			ids = append(ids, e.Identifiers...)
		case *unsettledError:
			ids = append(ids, e.identifier)
			walk(e.activate)
		}
		switch w := err.(type) {
		case interface{ Unwrap() error }:
			walk(w.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range w.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return ids
}

// accountNames are the identifiers of every credential c holds (current, fallbacks,
// retiring): the fields that name the account (registry.Field.Identifier; not grant_type,
// whose few allowed values name nothing).
func (c *accountConfig) accountNames() []string {
	names := registry.AccountNames(c.cred)
	for _, f := range c.Fallbacks {
		names = append(names, registry.AccountNames(f.cred)...)
	}
	for _, r := range c.Retiring {
		names = append(names, registry.AccountNames(r)...)
	}
	return names
}

// redactName replaces id in text with "[redacted]", in any case and as a URL or Go quoting
// escapes it (a provider may echo "OPS@EXAMPLE.COM" or "ops%40example.com"; %q escapes a
// quote): every occurrence when it is 4 bytes or longer, and only whole ones (beside no
// letter or digit) when shorter, so that a short user id does not eat the words around it.
func redactName(text, id string) string {
	if id == "" {
		return text
	}
	forms := []string{id}
	for _, f := range []string{url.QueryEscape(id), url.PathEscape(id), strings.Trim(strconv.Quote(id), `"`)} {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	for _, f := range forms {
		if len(id) >= 4 {
			text = regexp.MustCompile("(?i)"+regexp.QuoteMeta(f)).ReplaceAllLiteralString(text, "[redacted]")
			continue
		}
		whole := regexp.MustCompile("(?i)(^|[^a-z0-9])" + regexp.QuoteMeta(f) + "([^a-z0-9]|$)")
		for i := 0; i < 4; i++ { // neighbouring occurrences share a separator: again until none is left
			next := whole.ReplaceAllString(text, "${1}[redacted]${2}")
			if next == text {
				break
			}
			text = next
		}
	}
	return text
}
