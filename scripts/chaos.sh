#!/usr/bin/env bash
# The chaos run (tests/system_chaos.rs, kept out of the default test run): tansu, two gateways, three workers,
# ASSAY_CHAOS_JOBS jobs (10,000) at ASSAY_CHAOS_RATE per second (25) through both gateways, a worker killed with
# SIGKILL and replaced every ASSAY_CHAOS_KILL_SECS (8), a gateway killed and restarted midway, the broker frozen
# for 5 s. Prints throughput and submit-to-result p50/p99. Installs tansu when absent (scripts/install-tansu.sh).
#   scripts/chaos.sh                       # the full run
#   ASSAY_CHAOS_JOBS=300 scripts/chaos.sh  # a short one
#   ASSAY_CHAOS_BROKER=mock ASSAY_CHAOS_STATIC=1 scripts/chaos.sh  # librdkafka's mock cluster in its own process
#   ASSAY_CHAOS_BROKER=mock ASSAY_CHAOS_COOPERATIVE=1 scripts/chaos.sh  # workers and notifiers cooperative-sticky
# The jobs are a tenant's whose webhook `assay notifier` delivers (killed and replaced at 70 %) to
# scripts/webhook-receiver.py, which needs standardwebhooks (scripts/install-test-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tansu.sh
scripts/install-test-tools.sh
cargo test --release --test system_chaos -- --ignored --nocapture
