#!/usr/bin/env bash
# The package as a user gets it: packs src/Vega.MLNet into a local feed, copies the console app kept in
# test/PackageConsumer out of the repository, adds the package with `dotnet add package`, and runs a zero-shot
# classification of the real images in ../shared, which checks itself against PyTorch's embeddings and checks the
# package's contents (README, license, notices, XML docs, declared dependencies). Run by
# scripts/test.sh (and so by CI). Needs only the .NET SDK and the NuGet feed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$(cd "$root/.." && pwd)/shared"
[[ -f "$shared/README.md" ]] || { echo "package-test: the fixtures are missing at $shared" >&2; exit 1; }
version="0.2.0-ci.$(date -u +%Y%m%d%H%M%S).$$"   # unique, so no stale copy in the NuGet cache is ever used
work="$(mktemp -d)"
cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}/vega.mlnet/$version"
trap 'rm -rf "$work" "$cache"' EXIT

echo "package-test: dotnet pack src/Vega.MLNet ($version)"
dotnet pack "$root/src/Vega.MLNet" -c Release -o "$work/feed" -p:Version="$version" --nologo -v quiet -clp:ErrorsOnly
nupkg="$work/feed/Vega.MLNet.$version.nupkg"
# The cluster extension packs too, and depends on the same version of the library (it is a friend of its internals).
dotnet pack "$root/src/Vega.MLNet.Orleans" -c Release -o "$work/feed" -p:Version="$version" --nologo -v quiet -clp:ErrorsOnly
grep -q "id=\"Vega.MLNet\" version=\"$version\"" \
  "$root/src/Vega.MLNet.Orleans/obj/Release/Vega.MLNet.Orleans.$version.nuspec" \
  || { echo "package-test: Vega.MLNet.Orleans does not depend on Vega.MLNet $version" >&2; exit 1; }
echo "package-test: Vega.MLNet.Orleans $version packs and depends on Vega.MLNet $version"
cp -r "$root/test/PackageConsumer" "$work/app"
cat > "$work/app/nuget.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
CONFIG
cd "$work/app"
dotnet add package Vega.MLNet --version "$version" >/dev/null
dotnet run -c Release -- "$shared" "$nupkg"

# The quick starts of README.md and of the package's own README must compile as written against the package.
mkdir -p "$work/readme"
cp "$work/app/nuget.config" "$work/app/PackageConsumer.csproj" "$work/readme/"
for doc in README.md src/Vega.MLNet/PACKAGE.md; do
  awk '/^## Quick start/{f=1} f&&/^```csharp/{c=1;next} c&&/^```/{exit} c' "$root/$doc" > "$work/readme/Program.cs"
  [[ -s "$work/readme/Program.cs" ]] || { echo "package-test: no quick start found in $doc" >&2; exit 1; }
  (cd "$work/readme" && dotnet build -c Release --nologo -v quiet -clp:ErrorsOnly)
  echo "package-test: the quick start of $doc compiles against the package"
done

# The ML.NET samples must use the package's public API only (the vega tool around them may see internals).
mkdir -p "$work/samples"
cp "$work/app/nuget.config" "$work/app/PackageConsumer.csproj" "$work/samples/"
cp -r "$root/src/Vega.MLNet.Samples/Samples" "$work/samples/Samples"
(cd "$work/samples" && dotnet build -c Release --nologo -v quiet -clp:ErrorsOnly -p:OutputType=Library)
echo "package-test: the ML.NET samples build against the package's public API"
