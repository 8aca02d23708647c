#!/usr/bin/env bash
# Builds FerretDB (1.24.2: the SQLite backend) into a path: build-ferretdb.sh <version> <target>.
# Run by `influencer-node setup` (lib/embedded/install.ts), which prints each "step: " line it
# reads with the time the step took, and the last lines of the output if the build fails.
# `go install ...@v1.24.2` alone produces a binary that panics at start: the module lacks
# build/version/version.txt, which its release tooling normally generates. So build from a
# copy of the module source with that file written.
set -euo pipefail
version=${1:?usage: build-ferretdb.sh <version> <target>}
target=${2:?usage: build-ferretdb.sh <version> <target>}

echo "step: download the module source (go mod download)"
src=$(go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "go mod download named no source directory for FerretDB $version" >&2; exit 1; }

echo "step: copy it and write its version file"
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"

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
