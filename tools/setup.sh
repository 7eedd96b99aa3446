#!/usr/bin/env bash
# Installs everything the kit needs on a fresh Debian 12 machine, and nothing
# on a second run: apt packages are checked with dpkg first, and the venv is
# rebuilt only when host/python/requirements.lock or pyproject.toml change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_packages=(
  qemu-system-x86      # TCG guest boots
  musl-tools           # static PID 1 (musl-gcc)
  busybox-static       # guest userland for EXEC
  linux-image-cloud-amd64  # default Track A kernel (modular)
  linux-source-6.1     # Kconfig tree for validation and fragment kernel builds
  linux-source-6.12    # second Kconfig tree (bookworm-security): `wslx kconfig check --source 6.12`
  build-essential bc flex bison libelf-dev libssl-dev xz-utils kmod
  python3-venv
  git                  # the constants lint lists the tree's files; benchmarks record the commit
  python3-dev          # Python.h: the host codec's C extension (build/agentx, wslx.agentx.ccodec)
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "[setup] apt: all ${#apt_packages[@]} packages present"
fi

stamp=.venv/.wslx-setup-stamp
want="$(cat host/python/requirements.lock host/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "[setup] venv: up to date (.venv)"
else
  echo "[setup] venv: creating .venv with pinned dependencies"
  python3 -m venv .venv
  quiet() { "$@" 2>&1 | { grep -vE "Location 'file:|^\s*$" || true; }; }  # pip's noise about this machine's mirrors
  quiet .venv/bin/pip install -q -r host/python/requirements.lock
  PYTHONWARNINGS=ignore quiet .venv/bin/pip install -q --no-deps --no-build-isolation -e host/python
  echo "$want" > "$stamp"
fi
