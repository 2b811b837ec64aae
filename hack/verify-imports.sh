#!/usr/bin/env bash
# Fails if production code imports test code: every Go file outside test/ that is not a
# _test.go file must not import github.com/tmc-dev/tmc/test/... (what ships, such as
# kubectl-tmc, must never depend on the test tree). Uses `go list`, so build tags and every
# import form count.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
module=github.com/tmc-dev/tmc
bad=""
# Non-test imports of every package outside test/, on every platform the binaries ship for.
for platform in linux/amd64 darwin/arm64 windows/amd64; do
  out=$(GOOS=${platform%/*} GOARCH=${platform#*/} go list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' ./... |
    awk -v m="$module" '$1 !~ "^" m "/test(/|$)" { for (i = 2; i <= NF; i++) if ($i ~ "^" m "/test(/|$)") print $1 " imports " $i }')
  bad+="$out"$'\n'
done
bad=$(sort -u <<<"$bad" | sed '/^$/d')
if [[ -n "$bad" ]]; then
  echo "production code must not import test/ (move what it needs to pkg/, e.g. pkg/localenv):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "no production import of test/" >&2
