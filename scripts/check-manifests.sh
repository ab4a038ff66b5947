#!/usr/bin/env bash
# Renders every kustomization under k8s/ with kubectl's kustomize and validates what comes out: the Kubernetes
# objects with kubernetes-validate (PyPI) against Kubernetes 1.30 in strict mode (unknown fields refused), the
# custom resources (KEDA's ScaledObject, the Prometheus Operator's monitors and rules) against their own CRD
# schemas with scripts/validate-crs.mjs. Installs kubernetes-validate (pip) and the npm packages (into
# ~/.cache/assay-npm-k8s) when absent. Needs kubectl 1.27 or later (kustomize built in).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is not installed (it carries kustomize): install kubectl 1.27+" >&2; exit 1; }
command -v kubernetes-validate >/dev/null || python3 -m pip install -q "kubernetes-validate==1.37.*"
npm_k8s="$HOME/.cache/assay-npm-k8s"
if [ ! -d "$npm_k8s/node_modules/@kubernetes-models/keda" ] || [ ! -d "$npm_k8s/node_modules/@kubernetes-models/prometheus-operator" ] \
  || [ ! -d "$npm_k8s/node_modules/js-yaml" ]; then
  mkdir -p "$npm_k8s"
  (cd "$npm_k8s" && npm install --no-audit --no-fund --silent @kubernetes-models/keda@0.4 \
    @kubernetes-models/prometheus-operator@6 js-yaml@4 >/dev/null)
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dir in k8s/base k8s/overlays/example k8s/overlays/keda k8s/overlays/tenants k8s/observability; do
  name=$(echo "$dir" | tr / _)
  kubectl kustomize --load-restrictor LoadRestrictionsNone "$dir" >"$out/$name.yaml"
  # Kubernetes kinds only; the custom resources are checked below against their own schemas.
  kubernetes-validate -k 1.30.0 --strict --quiet "$out/$name.yaml" 2>&1 | grep -v "Couldn't find schema for kind \(ScaledObject\|ServiceMonitor\|PodMonitor\|PrometheusRule\)" || true
  kubernetes-validate -k 1.30.0 --strict --quiet --no-warn "$out/$name.yaml" >/dev/null \
    || { echo "$dir: kubernetes-validate refused the rendered objects" >&2; exit 1; }
  echo "$dir: $(grep -c '^kind:' "$out/$name.yaml") objects rendered, Kubernetes kinds valid for 1.30"
done
ASSAY_NPM_K8S="$npm_k8s" node scripts/validate-crs.mjs "$out"/*.yaml
# Two autoscalers on one Deployment fight: the KEDA overlay must have dropped the base's CPU HPA.
if grep -q '^kind: HorizontalPodAutoscaler' "$out/k8s_overlays_keda.yaml"; then
  echo "k8s/overlays/keda still has the base's HorizontalPodAutoscaler beside the ScaledObject" >&2
  exit 1
fi
grep -q '^kind: HorizontalPodAutoscaler' "$out/k8s_overlays_example.yaml" \
  || { echo "k8s/overlays/example lost the CPU HPA" >&2; exit 1; }
# The tenants overlay: gateways take keys from the tenants file only (the two settings exclude each other).
if grep -q 'ASSAY_API_KEYS' "$out/k8s_overlays_tenants.yaml" || ! grep -q 'kind: Deployment' "$out/k8s_overlays_tenants.yaml" \
  || [ "$(grep -c 'value: /etc/assay/tenants/tenants.toml' "$out/k8s_overlays_tenants.yaml")" -ne 2 ]; then
  echo "k8s/overlays/tenants: the gateway still has ASSAY_API_KEYS, or the gateway and notifier lack ASSAY_TENANTS" >&2
  exit 1
fi
echo "manifests: every overlay renders and validates"
