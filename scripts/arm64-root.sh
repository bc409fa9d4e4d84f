#!/usr/bin/env bash
# Unpacks Debian bookworm's arm64 CPython 3.11 (and the libraries it and the
# test dependencies load) into a private root: build/wheels/arm64-root.
# scripts/wheels.sh takes the Python headers from it; scripts/test_wheel.sh
# runs the interpreter under qemu-aarch64-static with -L on it. Versions and
# sha256 sums are pinned in scripts/lock/debian-arm64.txt; apt fetches from the
# machine's configured Debian sources, with state of its own under build/, so
# the host's package database is not touched. Prints the root's path.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
lock="$repo/scripts/lock/debian-arm64.txt"
base="$repo/build/wheels"
root="$base/arm64-root"
stamp="$root/.lock-sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$root"
  exit 0
fi
apt_dir="$base/apt-arm64"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
touch "$apt_dir/status"
apt_opts=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
          -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
          -o Dir::State::status="$apt_dir/status" -o Debug::NoLocking=1)
apt-get "${apt_opts[@]}" -qq update >&2
cd "$apt_dir/debs"
specs=$(awk '{print $1}' "$lock")
# shellcheck disable=SC2086
if ! apt-get "${apt_opts[@]}" -qq download $specs >&2 2>"$apt_dir/download.log"; then
  cat "$apt_dir/download.log" >&2
  echo "arm64-root: a pinned Debian package is no longer served (see above);" \
       "refresh scripts/lock/debian-arm64.txt (scripts/README.md)" >&2
  exit 1
fi
rm -rf "$root" && mkdir -p "$root"
while read -r spec sum; do
  pkg="${spec%%=*}" ver="${spec#*=}"
  deb=$(ls "${pkg}_${ver/:/%3a}_arm64.deb")
  echo "$sum  $deb" | sha256sum --quiet -c - >&2
  dpkg -x "$deb" "$root"
done <"$lock"
echo "$want" >"$stamp"
echo "$root"
