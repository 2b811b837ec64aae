#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go
# modules pinned in hack/tools/go.mod into a cache outside the repository, keyed by version, and
# skips what is already there. Prints the cache directory on its last line.
#
#   hack/test-binaries.sh          build what is missing
#   hack/test-binaries.sh --dir    only print the directory
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/hack/tools"

modver() { awk -v m="$1" '$1 == m { print $2; exit }' "$tools/go.mod"; }
k8s=$(modver k8s.io/kubernetes)
etcd=$(modver go.etcd.io/etcd/server/v3)
kwok=$(modver sigs.k8s.io/kwok)
version="k8s-${k8s}_etcd-${etcd}_kwok-${kwok}"
dir="${TMC_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tmc/bin/$version}"

if [[ "${1:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
declare -A pkgs=(
  [etcd]=./etcd
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
)
order=(kube-apiserver etcd kube-controller-manager kube-scheduler kwok)

missing=()
for b in "${order[@]}"; do
  [[ -x "$dir/$b" ]] || missing+=("$b")
done
if [[ ! -s "$dir/kwok-stages.yaml" ]]; then
  (cd "$tools" && go run ./kwokstages > "$dir/kwok-stages.yaml.tmp") && mv "$dir/kwok-stages.yaml.tmp" "$dir/kwok-stages.yaml"
fi

if ((${#missing[@]} == 0)); then
  echo "test binaries: all present ($version)" >&2
  echo "$dir"
  exit 0
fi

echo "test binaries: building ${missing[*]} into $dir" >&2
echo "test binaries: a cold build takes about 15 minutes on 2 cores (kube-apiserver alone about 11); later runs reuse the cache" >&2
i=0
for b in "${missing[@]}"; do
  i=$((i + 1))
  start=$(date +%s)
  echo "test binaries: [$i/${#missing[@]}] building $b ..." >&2
  ldflags="-s -w"
  if [[ "$b" == kube-* ]]; then
    # Stamp the version the way Kubernetes' own build does, so /version reports it.
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=${k8s:1:1}"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$k8s") -X k8s.io/component-base/version.gitTreeState=clean"
  fi
  (cd "$tools" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$dir/$b.tmp" "${pkgs[$b]}")
  mv "$dir/$b.tmp" "$dir/$b"
  echo "test binaries: [$i/${#missing[@]}] $b built in $(($(date +%s) - start))s" >&2
done
echo "$dir"
