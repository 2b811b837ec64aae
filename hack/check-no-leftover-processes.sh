#!/usr/bin/env bash
# Fails if any process started from the test-binary cache (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok) is still running after the tests.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$("$root/hack/test-binaries.sh" --dir)
left=$(pgrep -a -f "^$dir/" || true)
if [[ -n "$left" ]]; then
  echo "processes left running after the tests:" >&2
  echo "$left" >&2
  exit 1
fi
echo "no test server left running" >&2
