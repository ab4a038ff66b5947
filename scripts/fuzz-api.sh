#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI description with schemathesis (PyPI) against a fresh `assay serve`:
# no request may get a 5xx, every answer must match the description, and the service must still be healthy and
# ready afterwards. Not part of CI (about two minutes, and it needs PyPI); run it after changing the API:
#   scripts/fuzz-api.sh [MAX_EXAMPLES]          (default 1000 per operation)
# schemathesis is installed into ~/.cache/assay-tools/venv, skipped when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
examples=${1:-1000}
venv=${ASSAY_TOOLS_VENV:-$HOME/.cache/assay-tools/venv}
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  echo "installing schemathesis $version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
cargo build --release -q
work=$(mktemp -d)
"$CARGO_TARGET_DIR/release/assay" serve --listen 127.0.0.1:0 --data "$work/data" --log-format json \
  >"$work/stdout" 2>"$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  addr=$(sed -n 's/^assay serve listening on //p' "$work/stdout")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "assay serve did not start:" >&2; cat "$work/log" >&2; exit 1; }
echo "fuzzing $addr ($examples examples per operation)"
# From the scratch folder: schemathesis keeps a .schemathesis/ folder where it runs.
(cd "$work" && "$venv/bin/st" run "$addr/openapi.json" --seed 1 --max-examples "$examples" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance)
curl -sf "$addr/healthz" >/dev/null || { echo "not healthy after the run" >&2; exit 1; }
curl -sf "$addr/readyz" >/dev/null || { echo "not ready after the run" >&2; exit 1; }
if grep -q '"log.level":"error"' "$work/log"; then
  echo "error lines in the service's log:" >&2
  grep '"log.level":"error"' "$work/log" | head -n 20 >&2
  exit 1
fi
echo "no server error, answers as described, still healthy and ready, no error logged"
