#!/usr/bin/env bash
# Generates a typed client from the OpenAPI document a fresh `assay serve` serves, with the real generator a
# shop would use (openapi-typescript, npm), and type-checks scripts/openapi-client/client.ts against it with
# TypeScript's compiler in strict mode: a quote's total must be a string, the geometry's volume a number, and a
# job's fields must follow its status. The npm packages go to ~/.cache/assay-tools/openapi-client (installed
# when missing; versions pinned in package.json), Node.js, npm and curl from Debian when they are missing. Pass
# the assay binary as $1 [default: cargo's debug build].
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
bin="${1:-${CARGO_TARGET_DIR:-$repo/target}/debug/assay}"
[ -x "$bin" ] || { echo "no assay binary at $bin: build it with cargo build" >&2; exit 1; }
# Node.js, npm and curl from Debian when missing (the machine image usually has them).
need=()
command -v npm >/dev/null || need+=(nodejs npm)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "${need[*]} missing and apt-get is not available: install them by hand" >&2; exit 1; }
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "installing ${need[*]} (apt-get)"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
tools="$HOME/.cache/assay-tools/openapi-client"
mkdir -p "$tools"
cp "$here/openapi-client/package.json" "$here/openapi-client/client.ts" "$here/openapi-client/tsconfig.json" "$tools/"
if ! (cd "$tools" && npx --no-install tsc --version 2>/dev/null | grep -q 5.9.3 && npx --no-install openapi-typescript --version 2>/dev/null | grep -q 7.13.0); then
  echo "installing openapi-typescript 7.13.0 and typescript 5.9.3 (npm) into $tools"
  (cd "$tools" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
work="$(mktemp -d)"
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && exec "$bin" serve --listen 127.0.0.1:0 --data "$work/data" >"$work/serve.log" 2>&1) &
pid=$!
addr=""
for _ in $(seq 1 100); do
  addr="$(grep -o 'listening on http://[0-9.:]*' "$work/serve.log" 2>/dev/null | head -1 | sed 's|listening on http://||')" || true
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "assay serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
curl -sf "http://$addr/openapi.json" -o "$work/openapi.json"
(cd "$tools" && npx --no-install openapi-typescript "$work/openapi.json" -o assay.d.ts >/dev/null)
(cd "$tools" && npx --no-install tsc -p tsconfig.json)
echo "openapi-typescript types from http://$addr/openapi.json: client.ts type-checks (total: string, volume_mm3: number, fields by status)"
