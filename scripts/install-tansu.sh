#!/usr/bin/env bash
# Installs the Kafka-compatible broker the system tests run (tansu 0.6.0 with the in-memory storage engine),
# unless that version is already installed. The first build takes 15 to 25 minutes on 2 cores; it is kept in
# ~/.cargo/bin (or $TANSU_ROOT/bin), so later runs skip it.
set -euo pipefail
version=0.6.0
root=${TANSU_ROOT:-$HOME/.cargo}
bin=$root/bin/tansu
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "tansu $version already installed at $bin"
  exit 0
fi
echo "installing tansu $version (features dynostore) into $root: this takes 15 to 25 minutes the first time"
cargo install tansu --version "$version" --features dynostore --locked --root "$root"
"$bin" --version
