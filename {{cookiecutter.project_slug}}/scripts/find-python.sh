#!/bin/sh
# Print the path of a Python this project supports, for `make` to build .venv with.
#
# Python {{ cookiecutter.python_version }} (the oldest supported, as in pyproject.toml) when
# there is one, else the newest other supported version; each looked for on PATH, then
# among pyenv's installed versions (any patch release), then with `uv python find` when
# uv is there. A pyenv shim of a version that is not selected fails when run, so every
# candidate is run once.
# None fits: one line on stderr saying which versions would, and exit status 1.
{%- from "pythons.jinja" import supported %}{% set versions = supported(cookiecutter.python_version).split() %}
set -u

supported="{{ versions | join(" ") }}"
preferred="{{ versions | first }}"

is_python() { # is_python CANDIDATE VERSION: true if CANDIDATE runs and is Python VERSION
    [ -n "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$2" ]
}

find_version() { # find_version VERSION: print a working interpreter of VERSION, if any
    for name in "python$1" python3 python; do
        candidate=$(command -v "$name" 2>/dev/null) || continue
        if is_python "$candidate" "$1"; then echo "$candidate"; return 0; fi
    done
    for candidate in "${PYENV_ROOT:-${HOME:-}/.pyenv}/versions/$1".*/bin/"python$1"; do
        if is_python "$candidate" "$1"; then echo "$candidate"; return 0; fi
    done
    if command -v uv >/dev/null 2>&1; then
        candidate=$(uv python find --no-project "$1" 2>/dev/null)
        if is_python "$candidate" "$1"; then echo "$candidate"; return 0; fi
    fi
    return 1
}

others=""
for version in $supported; do
    [ "$version" = "$preferred" ] || others="$version $others" # newest first
done
for version in $preferred $others; do
    find_version "$version" && exit 0
done
echo "ERROR: no Python {{ versions | join(", ") }} found (on PATH, under pyenv, by uv):" \
    "install one (uv python install $preferred, pyenv install $preferred, or your system's" \
    "python$preferred package), or run make with PYTHON=/path/to/python." >&2
exit 1
