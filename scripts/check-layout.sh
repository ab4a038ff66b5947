#!/usr/bin/env bash
# The dependency arrows ARCHITECTURE.md promises, checked on the resolved dependency graph (cargo tree, normal
# dependencies only: tests may use anything): only queue-kafka and the binary link rdkafka; models and
# pricing-rules depend on no async runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
refuse() { # crate, pattern, why
  local found
  found="$(cargo tree --locked -p "$1" -e normal --prefix none --format '{p}' 2>/dev/null | grep -E "^($2) v" | sort -u || true)"
  if [ -n "$found" ]; then
    echo "layout: $1 depends on $(echo "$found" | tr '\n' ' ')- $3" >&2
    fail=1
  fi
}
cargo tree --locked -p gateway -e normal >/dev/null
for crate in gateway worker jobs model-store models pricing-rules; do
  refuse "$crate" 'rdkafka|rdkafka-sys' "only queue-kafka (and the binary) may know Kafka"
done
for crate in models pricing-rules; do
  refuse "$crate" 'tokio|async-std|smol|futures|axum|hyper' "it takes bytes or values and returns values: no async runtime, no HTTP"
done
refuse jobs 'axum|hyper|object_store' "the job contract knows no HTTP and no storage"
refuse model-store 'rdkafka|axum' "the store knows no queue and no HTTP"
refuse tenants 'tokio|axum|hyper|reqwest|rdkafka' "the tenants file is values: no runtime, no HTTP"
refuse webhooks 'rdkafka|rdkafka-sys|axum' "the notifier knows no Kafka (the binary hands it an outbox) and serves no HTTP"
[ "$fail" -eq 0 ] && echo "layout: gateway, worker, jobs, model-store, models, pricing-rules, tenants and webhooks link no rdkafka; models, pricing-rules and tenants no async runtime"
exit "$fail"
