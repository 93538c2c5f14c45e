package apitokens

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// maxRequestTimeout bounds request_timeout: a Vault request should not hang longer.
const maxRequestTimeout = 10 * time.Minute

// fieldError is bad input: its text names the field, and it becomes a 400. The drivers'
// validation returns the same type.
type fieldError = registry.FieldError

// fieldErrorf is a *fieldError with a formatted message.
var fieldErrorf = registry.FieldErrorf

// applyFields returns the config that results from writing the request's fields over
// existing (nil on create), or a *fieldError. Only fields present in the request change.
// Secrets are stored byte for byte as given; a non-secret text field (provider, an
// identifier, base_url, rotation_schedule) with surrounding white space is refused, naming
// the field: the one rule for white space. warnings are for the write's response.
func applyFields(existing *accountConfig, d *framework.FieldData, now time.Time) (c *accountConfig, warnings []string, err error) {
	c = &accountConfig{}
	if existing != nil {
		*c = *existing
	}
	if p, ok := d.GetOk("provider"); ok {
		p := p.(string)
		if p != strings.TrimSpace(p) {
			return nil, nil, fieldErrorf("provider", "has leading or trailing white space; it is used exactly as given, so remove it")
		}
		if existing != nil && p != existing.Provider {
			return nil, nil, fieldErrorf("provider", "is immutable (this config is %s); delete the config and create it again", existing.Provider)
		}
		c.Provider = p
	}
	if existing == nil && c.Provider == "" {
		return nil, nil, fieldErrorf("provider", "is required: %s", providerChoices())
	}
	drv, known := registry.Lookup(c.Provider)
	if !known {
		return nil, nil, fieldErrorf("provider", "unknown provider %q: use %s", c.Provider, providerChoices())
	}
	if c.cred == nil {
		c.cred = emptyCredential(drv)
	}

	for _, f := range credentialFields {
		v, ok := d.GetOk(f.name)
		if !ok {
			continue
		}
		v = f.value(v)
		role, has := f.roles[c.Provider]
		switch s, text := v.(string); {
		case !has:
			if registry.IsZero(v) {
				continue
			}
			return nil, nil, fieldErrorf(f.name, "is not a field of provider %s (it takes %s)", c.Provider,
				strings.Join(providerFields(c.Provider), ", "))
		case text && !role.Secret():
			if s != strings.TrimSpace(s) {
				return nil, nil, fieldErrorf(f.name, "has leading or trailing white space; it is used exactly as given, so remove it")
			}
		case text:
			if strings.HasSuffix(s, "\n") {
				warnings = append(warnings, f.name+" ends with a line break (a value read with @file keeps its file's last newline); "+
					"it is stored exactly as given: if the provider's value has no line break, write it again without one")
			}
		}
		c.cred = c.cred.With(f.name, v)
	}

	if err := applyBaseURL(c, d); err != nil {
		return nil, nil, err
	}
	if err := secretsForNewHost(existing, c, d); err != nil {
		return nil, nil, err
	}
	if err := applyDurations(c, d, existing == nil); err != nil {
		return nil, nil, err
	}
	given := func(field string) bool { _, ok := d.GetOk(field); return ok }
	cred, err := drv.Validate(c.cred, existing == nil, given)
	if err != nil {
		return nil, nil, err
	}
	c.cred = cred
	rw, err := applyRotationFields(c, existing, d, now)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, rw...)
	warnings = append(warnings, c.reuseWarnings()...)
	warnings = append(warnings, drv.WriteWarnings(c.BaseURL, c.cred)...)
	return c, warnings, nil
}

func applyBaseURL(c *accountConfig, d *framework.FieldData) error {
	raw, ok := d.GetOk("base_url")
	if !ok && c.BaseURL != "" {
		return nil
	}
	s := ""
	if ok {
		s = raw.(string)
		if s != strings.TrimSpace(s) {
			return fieldErrorf("base_url", "has leading or trailing white space; it is used exactly as given, so remove it")
		}
	}
	if s == "" {
		drv, _ := registry.Lookup(c.Provider) // applyFields has checked the provider
		c.BaseURL = drv.DefaultBaseURL()
		return nil
	}
	u, err := validateBaseURL(s)
	if err != nil {
		return fieldErrorf("base_url", "%s", err.Error())
	}
	c.BaseURL = u
	return nil
}

// secretsForNewHost refuses a write that changes an existing config's base_url without
// giving, in the same write, every secret the config holds: the stored secrets are never sent
// to a host that the writer (trusted with settings, not with the secrets) may have mistyped,
// or chosen to receive them. The error names the fields to give.
func secretsForNewHost(existing, c *accountConfig, d *framework.FieldData) error {
	if existing == nil || c.BaseURL == existing.BaseURL {
		return nil
	}
	var missing []string
	for _, f := range credentialFields {
		if _, given := d.GetOk(f.name); !given && f.roles[c.Provider].Secret() && !registry.IsZero(c.cred.Field(f.name)) {
			missing = append(missing, f.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fieldErrorf("base_url", "changing it requires %s in the same write: a stored secret is never sent to a new host",
		strings.Join(missing, " and "))
}

// urlHost is the host (and port) of a validated base URL, for the log.
func urlHost(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Host
	}
	return ""
}

// validateBaseURL accepts https, or http to a loopback host, with no credentials, query or
// fragment (not even an empty "?" or "#", which would turn every call's path into a query or
// drop it); it returns the URL without a trailing slash.
func validateBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("must be an absolute URL such as https://api.example.com/v1")
	}
	if u.User != nil || strings.ContainsAny(s, "?#") {
		return "", fmt.Errorf("must not contain user info, a query or a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("must use https:// (http:// is allowed only to a loopback host: 127.0.0.0/8, ::1, localhost)")
		}
	default:
		return "", fmt.Errorf("must use https://")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func applyDurations(c *accountConfig, d *framework.FieldData, create bool) error {
	if v, ok := d.GetOk("max_ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl < 0 {
			return fieldErrorf("max_ttl", "must not be negative")
		}
		c.MaxTTL = ttl
	}
	if v, ok := d.GetOk("token_reuse"); ok {
		c.TokenReuse = v.(bool)
	}
	if v, ok := d.GetOk("min_token_ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl < 0 {
			return fieldErrorf("min_token_ttl", "must not be negative")
		}
		c.MinTokenTTL = ttl
	}
	v, ok := d.GetOk("request_timeout")
	if !ok && !create {
		return nil
	}
	t := time.Duration(d.Get("request_timeout").(int)) * time.Second
	if ok {
		t = time.Duration(v.(int)) * time.Second
	}
	switch {
	case t < 0:
		return fieldErrorf("request_timeout", "must not be negative")
	case t == 0:
		t = apiclient.DefaultTimeout
	case t > maxRequestTimeout:
		return fieldErrorf("request_timeout", "must be at most %s", formatDuration(maxRequestTimeout))
	}
	c.RequestTimeout = t
	return nil
}
