#!/usr/bin/env bash
# Brings PublicAPI.Unshipped.txt of the shipped projects in line with the code after a deliberate change of the public
# surface: builds, then adds the symbols the analyzer reports as new (RS0016) and removes those it cannot find (RS0017).
# Review the diff of the PublicAPI files: it is the change of the package's API.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for project in src/Vega.MLNet src/Vega.MLNet.Orleans; do
  log="$(dotnet build "$root/$project" -c Release --nologo -v quiet -clp:ErrorsOnly 2>&1 || true)"
  file="$root/$project/PublicAPI.Unshipped.txt"
  ROOT="$root" PROJECT="$project" LOG="$log" python3 - "$file" <<'PY'
import os, re, sys
path = sys.argv[1]
log = os.environ["LOG"]
mine = os.path.join(os.environ["ROOT"], os.environ["PROJECT"])
added, removed = set(), set()
for line in log.splitlines():
    if f"{mine}/" not in line.split("(")[0]:
        continue
    m = re.search(r"RS0016: Symbol '(.*)' is not part of the declared public API", line)
    if m: added.add(m.group(1))
    m = re.search(r"RS0017: Symbol '(.*)' is part of the declared API, but is either not public or could not be found", line)
    if m: removed.add(m.group(1))
lines = open(path).read().splitlines()
head, body = lines[0], set(l for l in lines[1:] if l.strip())
body = (body - removed) | added
open(path, "w").write(head + "\n" + "\n".join(sorted(body)) + "\n")
print(f"{path}: +{len(added)} -{len(removed)}")
PY
done
