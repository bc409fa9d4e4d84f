#!/usr/bin/env bash
# scripts/find_python.sh 3.X: prints the path of a working CPython 3.X, or
# exits 1. pyenv's shims answer `command -v` even for versions pyenv has not
# activated, so each candidate is run once before it is believed.
set -u
minor="$1"
for cand in "$(command -v "python$minor" 2>/dev/null)" \
            "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$minor".*/bin/"python$minor" \
            /usr/bin/"python$minor" /usr/local/bin/"python$minor"; do
  if [[ -n "$cand" && -x "$cand" ]] && "$cand" -c pass 2>/dev/null; then
    echo "$cand"
    exit 0
  fi
done
exit 1
