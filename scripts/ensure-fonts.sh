#!/usr/bin/env bash
# Makes sure the fonts the non-digit generator (bench/nondigit_sets.py) prints letters in are
# there: Debian's fonts-dejavu-core and fonts-liberation. Installs them with apt-get
# (--no-install-recommends, with sudo when not root) when a file is missing; fails loudly if it
# cannot, since the digit-check tests need a printed letter.
set -euo pipefail

if [ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf ] \
    && [ -f /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ]; then
    echo "fonts: found fonts-dejavu-core and fonts-liberation"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi
echo "fonts: installing Debian's fonts-dejavu-core and fonts-liberation"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    fonts-dejavu-core fonts-liberation
