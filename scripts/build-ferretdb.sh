#!/usr/bin/env bash
# Builds FerretDB (1.24.2: the SQLite backend) into a path: build-ferretdb.sh <version> <target>.
# Run by `influencer-node setup` (lib/ops/embedded/install.ts), which prints each "step: " line it
# reads with the time the step took, and the last lines of the output if the build fails.
# Two fixes to the module source, applied to a copy:
# - `go install ...@v1.24.2` alone produces a binary that panics at start: the module lacks
#   build/version/version.txt, which its release tooling normally generates; it is written here.
# - its SQLite backend filters `{_id: <string>}` on the expression `_ferretdb_sjson->'$._id'` while
#   its unique _id index is on `_ferretdb_sjson->"_id"`, so SQLite scans the whole table for every
#   lookup by _id (300 ms at 200,000 documents). The filter is made to name the indexed expression
#   (0.3 ms). The build says so in `ferretdb --version` ("package: influencer-node-id-index").
set -euo pipefail
version=${1:?usage: build-ferretdb.sh <version> <target>}
target=${2:?usage: build-ferretdb.sh <version> <target>}

echo "step: download the module source (go mod download)"
src=$(go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "go mod download named no source directory for FerretDB $version" >&2; exit 1; }

echo "step: copy it, write its version file, make lookups by _id use the _id index"
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
echo "influencer-node-id-index" > "$work/build/version/package.txt"
metadata="$work/internal/backends/sqlite/metadata/metadata.go"
sed -i "s|IDColumn = DefaultColumn + \"->'\\\$._id'\"|IDColumn = DefaultColumn + \`->\"_id\"\`|" "$metadata"
grep -q 'IDColumn = DefaultColumn + `->"_id"`' "$metadata" || { echo "the _id index fix did not apply to $metadata" >&2; exit 1; }

echo "step: compile (go build, the longest step)"
mkdir -p "$(dirname "$target")"
# built beside the target and moved in at the end, so a failed build never leaves a broken binary
partial="$target.partial"
# Go ≥ 1.23 refuses the linknames some of its dependencies use unless told not to check them
(cd "$work" && go build -trimpath -o "$partial" ./cmd/ferretdb) || \
  (cd "$work" && go build -trimpath -ldflags=-checklinkname=0 -o "$partial" ./cmd/ferretdb)

echo "step: check it starts (ferretdb --version)"
# through a file: `--version | head -1` would fail the script (pipefail) when head closes the pipe early
"$partial" --version > "$work/version.out"
head -1 "$work/version.out"
mv "$partial" "$target"
