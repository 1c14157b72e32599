#!/usr/bin/env bash
# Headless Chromium, its WebDriver and a CJK font (so the console's Chinese text renders in
# the screenshots), from Debian's packages, for the staff console's browser test. Skips what
# is already there; prints the chromedriver path.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-zenhei)
if [ ${#need[@]} -gt 0 ]; then
    echo "[install-browser] installing ${need[*]}" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
command -v chromedriver
