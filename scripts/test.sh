#!/usr/bin/env bash
# README's test command: installs what the tests need (idempotent), builds, runs every test, then checks the NuGet
# package from a fresh console app (scripts/package-test.sh).
# The oracle fixtures must be at ../shared (beside the repository).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" --test
cd "$root"
dotnet test Vega.MLNet.sln -c Release --nologo "$@"
bash "$root/scripts/package-test.sh"
