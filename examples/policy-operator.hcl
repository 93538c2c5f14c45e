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

# vault write -f apitokens/rotate-root/<name>
path "apitokens/rotate-root/*" {
  capabilities = ["update"]
}

# vault read apitokens/metrics
path "apitokens/metrics" {
  capabilities = ["read"]
}

# To check that a config works after writing or rotating it.
path "apitokens/creds/*" {
  capabilities = ["read"]
}

# After an OffBlocks rotation every token issued before is dead at the provider, and the
# README says to revoke their leases: `vault lease revoke -prefix apitokens/creds/<name>`.
# Vault requires sudo on this path. It is scoped to this mount's creds: an operator cannot
# revoke other engines' leases.
path "sys/leases/revoke-prefix/apitokens/creds/*" {
  capabilities = ["update", "sudo"]
}
