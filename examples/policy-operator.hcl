# apitokens-operator: for the people who add provider accounts, rotate their root
# credentials and watch the mount. Mounting, tuning and policies stay with Vault's admins.
#
#   vault policy write apitokens-operator examples/policy-operator.hcl
#
# Assumes the mount is at apitokens/.

# Provider accounts: create, read (never returns a secret), update, delete (including
# `force=true` on an unsettled rotation), and `vault list apitokens/config`.
path "apitokens/config/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# vault write apitokens/rotate-root/<name> planned=true   (routine: no consumer holds a dead token)
# vault delete apitokens/rotate-root/<name>                (cancel the plan)
# vault write -f apitokens/rotate-root/<name>              (now: consumers may hold a dead token
#                                                           until the answer's leases_end_by)
path "apitokens/rotate-root/*" {
  capabilities = ["update", "delete"]
}

# vault read apitokens/metrics
path "apitokens/metrics" {
  capabilities = ["read"]
}

# To check that a config works after writing or rotating it.
path "apitokens/creds/*" {
  capabilities = ["read"]
}

# `vault lease revoke -prefix apitokens/creds/<name>` ends the mount's creds leases in Vault's
# books (after a config is retired, say). It does not make Vault Agent or Vault Secrets
# Operator fetch a new token, nor kill a token at the provider: after a rotation now, they
# hold a dead token until their lease ends; use planned=true for routine rotations. Vault
# requires sudo on this path. It is scoped to this mount's creds: an operator cannot revoke
# other engines' leases.
path "sys/leases/revoke-prefix/apitokens/creds/*" {
  capabilities = ["update", "sudo"]
}
