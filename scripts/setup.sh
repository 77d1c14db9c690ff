#!/usr/bin/env bash
# Installs what Vega.MLNet needs on a Debian machine that has only the .NET SDK, git and node/npm. Idempotent:
# every step checks first and does nothing when its result is already there.
#   bash scripts/setup.sh          runtime needs (native libraries, Fashion-MNIST, ONNX Runtime)
#   bash scripts/setup.sh --test   also what the tests need (ONNX operator test data, headless Chromium)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ORT_VERSION=1.30.0
ORT_SHA256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75   # sha256 of onnxruntime-node-1.30.0.tgz

packages=(libturbojpeg0 libpng16-16 libopenblas0-pthread dataset-fashion-mnist)
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

native="$root/.native/linux-x64"
lib="$native/libonnxruntime.so.1"
stamp="$native/onnxruntime.version"
if [[ ! -f "$lib" || "$(cat "$stamp" 2>/dev/null)" != "$ORT_VERSION" ]]; then
  echo "setup: fetching ONNX Runtime $ORT_VERSION (npm package onnxruntime-node)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tgz="$tmp/onnxruntime-node-$ORT_VERSION.tgz"
  echo "$ORT_SHA256  $tgz" | sha256sum -c --quiet - || { echo "setup: sha256 mismatch for $tgz" >&2; exit 1; }
  tar -xzf "$tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  mkdir -p "$native"
  install -m 0644 "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib"
  echo "$ORT_VERSION" > "$stamp"
fi
echo "setup: ready (ONNX Runtime $ORT_VERSION at .native/linux-x64)"
