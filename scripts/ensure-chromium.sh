#!/usr/bin/env bash
# Makes sure Debian's chromium is at /usr/bin/chromium for the browser tests (tests/page/).
# Playwright's own browser download needs internet the service machines may not have, so the
# tests drive the distribution's package instead. Installs it with apt-get when missing (with
# sudo when not root); if that is impossible it says so and exits 0: the page tests then skip
# with a clear reason instead of failing the whole suite.
set -euo pipefail

CHROMIUM=${CAPSNET_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    echo "chromium: found $CHROMIUM"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: $CHROMIUM is missing and there is no apt-get here; the page tests will skip" >&2
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "chromium: not root and no sudo, cannot apt-get install chromium; the page tests will skip" >&2
        exit 0
    fi
fi

echo "chromium: installing Debian's chromium package and the libraries it needs (apt-get --no-install-recommends)"
if "${SUDO[@]}" apt-get update -qq \
    && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; then
    echo "chromium: installed $(command -v chromium)"
else
    echo "chromium: apt-get install failed; the page tests will skip" >&2
fi
