#!/usr/bin/env bash
# README's main command: installs what it needs (idempotent), builds, and runs `vega demo` on the built-in default.
# Extra arguments go to `vega demo` (see `bash scripts/demo.sh --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
dotnet build src/Vega.MLNet.Samples -c Release --nologo -v quiet -clp:ErrorsOnly
dotnet "src/Vega.MLNet.Samples/bin/Release/net10.0/vega.dll" demo "$@"
