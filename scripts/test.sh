#!/usr/bin/env bash
# README's test command: installs what the tests need (idempotent), builds, runs every test.
# The oracle fixtures must be at ../shared (beside the repository).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" --test
cd "$root"
dotnet test Vega.MLNet.sln -c Release --nologo "$@"
