#!/usr/bin/env bash
# Checks the Prometheus alerting rules and runs their unit tests:
#   promtool check rules k8s/observability/alerts.yaml
#   promtool test rules  k8s/observability/alerts.test.yaml
# and that k8s/observability/prometheusrule.yaml is alerts.yaml wrapped for the Prometheus Operator
# (`scripts/check-alerts.sh --write` rewrites it).
# promtool comes from Debian's `prometheus` package, installed when promtool is not on PATH (a minute or two the
# first time; later runs skip it). The package's daemon is not started.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=k8s/observability
rules=$dir/alerts.yaml
tests=$dir/alerts.test.yaml
operator=$dir/prometheusrule.yaml

install_promtool() {
  if ! command -v apt-get >/dev/null; then
    echo "promtool is not on PATH and apt-get is not available: install promtool (Prometheus 2.x) by hand" >&2
    exit 1
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "promtool is missing and installing it needs root or sudo" >&2; exit 1; }
    sudo=(sudo -n)
  fi
  local started=$SECONDS
  echo "promtool not found: installing Debian's prometheus package (promtool ships in it)"
  export DEBIAN_FRONTEND=noninteractive
  # Outside a container image that already has one, a policy-rc.d that says no keeps the package's postinst from
  # starting a Prometheus daemon on :9090.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    made_policy=1
  fi
  # An image with no package lists (or an old one) gets them first.
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq
  fi
  local status=0
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
  if [ "$status" != 0 ]; then
    # A stale list names package versions the mirror no longer has: refresh it once and retry.
    "${sudo[@]}" apt-get update -qq
    status=0
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
  fi
  [ -z "$made_policy" ] || "${sudo[@]}" rm -f "$policy"
  if [ "$status" != 0 ]; then
    echo "apt-get install prometheus failed (exit $status)" >&2
    exit 1
  fi
  echo "installed prometheus $(dpkg-query -W -f '${Version}' prometheus) in $((SECONDS - started)) s"
}

# The PrometheusRule object for the Prometheus Operator: alerts.yaml indented under `spec:`.
render_operator() {
  cat <<'EOF'
# Generated from alerts.yaml by scripts/check-alerts.sh --write: edit alerts.yaml, not this file.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: assay
  labels:
    app.kubernetes.io/part-of: assay
    # kube-prometheus-stack selects rules by its release label by default; set yours in an overlay.
    release: prometheus
spec:
EOF
  sed -e 's/^\(.\)/  \1/' "$rules"
}

if [ "${1:-}" = --write ]; then
  render_operator >"$operator"
  echo "wrote $operator"
  exit 0
fi

command -v promtool >/dev/null || [ -x /usr/bin/promtool ] || install_promtool
promtool=$(command -v promtool || echo /usr/bin/promtool)
"$promtool" --version 2>&1 | head -n 1

if ! diff -u "$operator" <(render_operator) >/dev/null; then
  echo "$operator is not alerts.yaml wrapped: run scripts/check-alerts.sh --write" >&2
  diff -u "$operator" <(render_operator) >&2 || true
  exit 1
fi

"$promtool" check rules "$rules"
"$promtool" test rules "$tests"
