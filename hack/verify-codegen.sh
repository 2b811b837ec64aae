#!/usr/bin/env bash
# Fails when the generated code or CRDs differ from what hack/update-codegen.sh produces.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a "$root/." "$tmp/"
(cd "$tmp" && hack/update-codegen.sh >/dev/null 2>&1)
if ! diff -r -q "$root/sdk" "$tmp/sdk" >/dev/null || ! diff -r -q "$root/config/crds" "$tmp/config/crds" >/dev/null; then
  echo "generated code is stale; run 'make codegen' and commit the result:" >&2
  diff -r "$root/sdk" "$tmp/sdk" | head -40 >&2 || true
  diff -r "$root/config/crds" "$tmp/config/crds" | head -40 >&2 || true
  exit 1
fi
echo "generated code is up to date" >&2
