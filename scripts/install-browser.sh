#!/usr/bin/env bash
# The real browser the quote page's system test drives: Debian's chromium and chromium-driver, and Python's
# selenium from PyPI. Skips what is already there.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "${need[*]} missing and apt-get is not available: install them by hand" >&2; exit 1; }
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  echo "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "selenium==4.*"
echo "browser: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | head -1), selenium $(python3 -c 'import selenium; print(selenium.__version__)')"
