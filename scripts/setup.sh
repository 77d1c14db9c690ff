#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian machine that has only the .NET SDK, git and node/npm.
# The library itself needs nothing from here: its native parts (ONNX Runtime, SkiaSharp) come from NuGet packages.
# Idempotent: every step checks first and does nothing when its result is already there.
#   bash scripts/setup.sh          the demo's data: Fashion-MNIST (Debian's dataset-fashion-mnist)
#   bash scripts/setup.sh --test   also what the tests need: ONNX's operator test data (libonnx-testdata) and headless
#                                  Chromium for the HTML report checks
set -euo pipefail

packages=(dataset-fashion-mnist)
if [[ "${1:-}" == "--test" ]]; then packages+=(libonnx-testdata chromium chromium-driver fonts-dejavu-core); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: ready"
