# apitokens-metrics: for Prometheus (prometheus.yml beside this file). It may read the mount's
# metrics and nothing else of it: not creds, not configs, not rotate-root.
#
#   vault policy write apitokens-metrics examples/prometheus/policy-metrics.hcl
#
# Assumes the mount is at apitokens/. The metrics carry no secret: provider, config names,
# counts and times.
path "apitokens/metrics" {
  capabilities = ["read"]
}
