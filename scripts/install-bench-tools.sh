#!/usr/bin/env bash
# Installs what benches/compare.sh compares against, skipping what is already there: admesh, hyperfine and GNU
# time from Debian, trimesh and numpy from PyPI.
set -euo pipefail
need=()
command -v admesh >/dev/null || need+=(admesh)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c "import trimesh, numpy" 2>/dev/null || { echo "installing trimesh numpy (pip)"; python3 -m pip install -q trimesh numpy; }
