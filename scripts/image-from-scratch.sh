#!/usr/bin/env bash
# Proves the Dockerfile's runtime stage on a machine that cannot reach a registry: an OCI image built with
# buildah FROM scratch holding what the distroless stage holds for assay (the release binary, the shared
# libraries it links, the CA bundle, a passwd entry for uid 65532, a data directory it owns), then
# `assay --version` and `assay serve` run from that image: with podman when containers can run here, otherwise
# from the image's own root filesystem (buildah mount) with chroot as uid 65532, saying why podman could not.
# `assay serve` is checked by /readyz and by pricing the sample ring through the API.
#
#   scripts/image-from-scratch.sh        # installs buildah and podman (apt) when absent; builds the release binary
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v podman >/dev/null || need+=(podman)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ "$(id -u)" -eq 0 ] || { echo "run as root: buildah mount and chroot need it here" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --bin assay
bin="$target/release/assay"

root=$(mktemp -d)
chmod 0755 "$root" # it becomes the image's /, which uid 65532 must be able to enter
ctr=""
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "$ctr" ] && { buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; }
  rm -rf "$root" "$root.serve.log"
}
trap cleanup EXIT

# The root filesystem: the binary, each library ldd names (the loader included), the CA bundle, users, data dir.
install -D -m 0755 "$bin" "$root/usr/local/bin/assay"
# As the Dockerfile does: the line tables stay in the build cache, the image gets the symbols only.
strip --strip-debug "$root/usr/local/bin/assay"
for lib in $(ldd "$bin" | awk '/=> \// {print $3} !/=>/ && $1 ~ /^\// {print $1}'); do
  # With its own mode: the loader (ld-linux) must stay executable for uid 65532 to start anything.
  install -D -m "$(stat -c %a "$(readlink -f "$lib")")" "$(readlink -f "$lib")" "$root$lib"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$root/etc" "$root/tmp" "$root/var/lib/assay"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chown 65532:65532 "$root/var/lib/assay"

version=$("$bin" --version | awk '{print $2}')
ctr=$(buildah from scratch)
buildah copy "$ctr" "$root/" / >/dev/null
# buildah copy makes everything root's; the data directory is the service's (as the Dockerfile's --chown does).
# (Copying var/lib's contents, so the entry for the assay directory itself is what gets the owner.)
buildah copy --chown 65532:65532 "$ctr" "$root/var/lib" /var/lib >/dev/null
buildah config --user 65532:65532 --workingdir /var/lib/assay \
  --env ASSAY_LISTEN=0.0.0.0:8080 --env ASSAY_DATA=/var/lib/assay \
  --entrypoint '["/usr/local/bin/assay"]' --cmd serve --port 8080 \
  --label org.opencontainers.image.title=assay --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.licenses=MIT OR Apache-2.0" "$ctr"
buildah commit -q "$ctr" "localhost/assay:$version-scratch" >/dev/null
buildah rm "$ctr" >/dev/null
echo "image localhost/assay:$version-scratch: $(buildah images --format '{{.Size}}' "localhost/assay:$version-scratch")," \
  "user $(buildah inspect --format '{{.OCIv1.Config.User}}' "localhost/assay:$version-scratch")," \
  "$(find "$root" -type f | wc -l) files, no shell: $([ -e "$root/bin/sh" ] && echo yes || echo none)"

port=18080
check_serve() { # base URL: ready, then the sample ring priced through the API
  for _ in $(seq 1 100); do curl -fsS "$1/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "$1/readyz" >/dev/null
  job=$(curl -fsS -H 'Content-Type: model/stl' --data-binary @samples/pixelverse_ring.stl "$1/v1/quotes?alloy=18k-yellow" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  for _ in $(seq 1 100); do
    status=$(curl -fsS "$1/v1/quotes/$job" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d.get("quotes",[{}])[0].get("total",""))')
    case "$status" in done*) echo "assay serve in the image priced the sample ring: $status"; return 0 ;; failed*) break ;; esac
    sleep 0.2
  done
  echo "assay serve in the image did not price the sample: $status" >&2
  return 1
}

if podman_out=$(podman run --rm "localhost/assay:$version-scratch" --version 2>&1); then
  echo "podman run assay --version: $podman_out"
  podman run -d --rm --name assay-scratch -p "127.0.0.1:$port:8080" "localhost/assay:$version-scratch" >/dev/null
  serve_pid=""
  trap 'podman rm -f assay-scratch >/dev/null 2>&1 || true; cleanup' EXIT
  check_serve "http://127.0.0.1:$port"
else
  echo "podman cannot run a container here: $(echo "$podman_out" | tail -1)"
  echo "running from the image's root filesystem instead (buildah mount + chroot as uid 65532)"
  ctr=$(buildah from "localhost/assay:$version-scratch")
  mnt=$(buildah mount "$ctr")
  echo "chroot assay --version: $(chroot --userspec=65532:65532 "$mnt" /usr/local/bin/assay --version)"
  # The image has no env and no shell: the environment is set outside, the binary is the only thing run inside.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ASSAY_DATA=/var/lib/assay chroot --userspec=65532:65532 "$mnt" \
    /usr/local/bin/assay serve --listen "127.0.0.1:$port" >"$root.serve.log" 2>&1 &
  serve_pid=$!
  check_serve "http://127.0.0.1:$port" || { tail -5 "$root.serve.log" >&2; exit 1; }
fi
