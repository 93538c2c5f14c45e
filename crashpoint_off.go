//go:build !crashpoint

package apitokens

// crashpoint marks a rotation step the crash tests can kill Vault at. Without the
// crashpoint build tag (every binary but the crash tests' own) it does nothing.
func crashpoint(string) {}
