#!/usr/bin/env bash
# Installs everything sipfarm needs on a Debian machine: the Debian packages (etcd for
# membership, SIPp and Kamailio for the tests and benchmarks) and a venv at .venv/ with
# sipfarm in it.
# Idempotent: a second run installs nothing and leaves .venv/ as it is.
set -euo pipefail
cd "$(dirname "$0")"

DEBIAN_PACKAGES=(python3 python3-venv python3-dev gcc sip-tester kamailio etcd-server iproute2 procps nftables conntrack)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install: Debian packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
# Kamailio is only a benchmark peer, and sipfarm starts its own etcd: never leave the
# Debian services running (on 5060, on 2379).
for service in kamailio etcd; do
    if systemctl is-enabled "$service" >/dev/null 2>&1; then
        as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
done

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.sipfarm-installed
want=$(cat pyproject.toml sipfarm/sip/*.c | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
fi
echo "install: ready (.venv/bin/sipfarm)"
