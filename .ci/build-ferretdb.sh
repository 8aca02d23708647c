#!/usr/bin/env bash
# Builds FerretDB 1.24.2 (SQLite backend) into $(go env GOPATH)/bin/ferretdb.
# `go install ...@v1.24.2` alone produces a binary that panics at start: the module lacks
# build/version/version.txt, which its release tooling normally generates. So build from a
# copy of the module source with that file written.
set -euo pipefail
version=v1.24.2
gopath=$(go env GOPATH)
target="$gopath/bin/ferretdb"
if [ -x "$target" ] && "$target" --version >/dev/null 2>&1; then
  echo "ferretdb: already built at $target"; exit 0
fi
src=$(go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
mkdir -p "$gopath/bin"
(cd "$work" && go build -trimpath -o "$target" ./cmd/ferretdb) || \
  (cd "$work" && go build -trimpath -ldflags=-checklinkname=0 -o "$target" ./cmd/ferretdb)
"$target" --version | head -1
