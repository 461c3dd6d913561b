#!/bin/sh
# Installs, with apt-get, the Debian packages agoplua needs; silent when all are present.
# Not root: prints the exact command to run and fails.
#   usage: scripts/deps.sh [fuzz]    (fuzz: also clang and libFuzzer, for make fuzz)
set -eu
pkgs="build-essential pkg-config liblua5.4-dev lua5.4 lua-unit libopenblas-dev libpng-dev \
zlib1g-dev libreadline-dev libdnnl-dev python3-numpy nodejs npm libopenmpi-dev openmpi-bin"
missing=""
if [ "${1:-}" = fuzz ]; then
    pkgs="$pkgs clang-14 libfuzzer-14-dev libomp-14-dev"
fi
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
# node/npm may come with the image rather than from Debian: accept a working npm.
case "$missing" in *" npm"*|*" nodejs"*)
    if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
        missing=$(printf '%s' "$missing" | sed 's/ nodejs//; s/ npm//')
    fi ;;
esac
[ -z "$missing" ] && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "deps: installing:$missing"
        sudo sh -c "$cmd"
        exit 0
    fi
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run as root:  $cmd" >&2
    exit 1
fi
echo "deps: installing:$missing"
sh -c "$cmd" >/tmp/agoplua-deps.log 2>&1 || { cat /tmp/agoplua-deps.log >&2; exit 1; }
