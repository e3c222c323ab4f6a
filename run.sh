#!/usr/bin/env bash
# The development workflow, one command each; every command first makes sure .venv
# holds the project and its test tools (installed from pyproject.toml, nothing by hand).
#   ./run.sh serve   serve the example content on http://127.0.0.1:8000/ (granian)
#   ./run.sh build   build the example content into public/
#   ./run.sh check   list problem posts in the content directory
#   ./run.sh test    lint, type-check and run every test (as root, apt-get installs chromium, nginx)
#   ./run.sh bench   the benchmarks (bench/RESULTS.md); --quick for a short run
#   ./run.sh stress  --base-url http://127.0.0.1:8000 [--seconds N --clients C]: bounded load
#   ./run.sh audit   pip-audit over requirements.txt (needs PyPI's JSON API or OSV)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when the dependencies changed since the last install. The runtime
    # dependencies come pinned, with hashes, from requirements.txt (what a PaaS installs).
    if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ] \
        || [ requirements.txt -nt "$VENV/.installed" ]; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
        touch "$VENV/.installed"
    fi
}

# The browser tests open the feeds in a real headless Chromium, Debian's package.
browser() {
    command -v chromium >/dev/null 2>&1 && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing Debian's chromium for the browser tests" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "run.sh: the browser tests need chromium (sudo apt-get install chromium)" >&2
    fi
}

# The fleet test puts Debian's nginx (deploy/nginx.conf) in front of several instances.
proxy() {
    if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing Debian's nginx for the fleet test" >&2
        apt-get update -qq
        # nginx-light is the smallest build (Debian 12); later releases have only nginx.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    else
        echo "run.sh: the fleet test needs nginx (sudo apt-get install nginx-light)" >&2
    fi
}

command=${1:-help}
shift || true
case "$command" in
    serve)
        setup
        exec "$VENV/bin/feeds" serve "$@"
        ;;
    build)
        setup
        exec "$VENV/bin/feeds" build "$@"
        ;;
    check)
        setup
        exec "$VENV/bin/feeds" check "$@"
        ;;
    test)
        setup
        browser
        proxy
        "$VENV/bin/ruff" check feeds tests bench
        "$VENV/bin/ruff" format --check feeds tests bench
        "$VENV/bin/mypy"
        exec "$VENV/bin/pytest" "$@"
        ;;
    bench)
        setup
        exec "$VENV/bin/python" -m bench.run "$@"
        ;;
    stress)
        setup
        exec "$VENV/bin/python" -m tests.stress.load "$@"
        ;;
    audit)
        setup
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pip-audit
        exec "$VENV/bin/pip-audit" --strict --require-hashes -r requirements.txt "$@"
        ;;
    *)
        sed -n '2,10p' "$0"
        exit 2
        ;;
esac
