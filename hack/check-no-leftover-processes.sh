#!/usr/bin/env bash
# Fails if any test server (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok from the test-binary cache, working in a test environment directory tmc-env-*) is
# still running after the tests. A local environment started with `kubectl tmc dev up` lives
# elsewhere and is not counted.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$("$root/hack/test-binaries.sh" --dir)
left=$(pgrep -a -f "^$dir/.*/tmc-env-" || true)
if [[ -n "$left" ]]; then
  echo "processes left running after the tests:" >&2
  echo "$left" >&2
  exit 1
fi
echo "no test server left running" >&2
