#!/usr/bin/env bash
# Install the system programs the cluster tests drive: headless Chromium (opens the Ray
# dashboard) and Prometheus (scrapes Ray's metrics port). Debian packages, via apt.
#
# Idempotent: a program already on PATH is skipped, so a second run costs nothing.
# Exit codes: 0 = everything present; 3 = apt is not usable here (not root, no apt-get,
# or the package index cannot be reached) -- the tests turn that into a skip outside CI.
set -euo pipefail

declare -A PACKAGE_FOR=([chromium]=chromium [prometheus]=prometheus)
missing=()
for program in chromium prometheus; do
    if command -v "$program" >/dev/null 2>&1; then
        echo "install-test-deps: $program already installed ($(command -v "$program"))"
    else
        missing+=("${PACKAGE_FOR[$program]}")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: apt-get not found; install ${missing[*]} by hand" >&2
    exit 3
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "install-test-deps: need root (or passwordless sudo) to apt-get install" \
             "${missing[*]}" >&2
        exit 3
    fi
fi
SUDO=${SUDO:-}

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: apt-get install ${missing[*]}"
# The index may be stale or empty on a fresh image: refresh it once if the install fails.
# --no-install-recommends keeps Chromium from pulling in a desktop's worth of fonts/themes.
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    if ! $SUDO apt-get update -q >/dev/null; then
        echo "install-test-deps: apt-get update failed (no package registry reachable?)" >&2
        exit 3
    fi
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
for program in chromium prometheus; do
    command -v "$program" >/dev/null 2>&1 || {
        echo "install-test-deps: $program still missing after apt-get install" >&2
        exit 1
    }
done
echo "install-test-deps: done"
