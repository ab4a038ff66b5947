#!/usr/bin/env bash
# What the tests need from PyPI, installed once (skipped when present): the official Standard Webhooks library
# for Python, which the webhook receiver of the system tests verifies every request with.
set -euo pipefail
if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check "standardwebhooks==1.1.*"
fi
python3 -c 'import standardwebhooks' && echo "test tools: standardwebhooks (Python) present"
