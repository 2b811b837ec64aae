#!/usr/bin/env bash
# Regenerates deepcopy functions, CRD manifests (controller-tools) and the typed clientset,
# listers and informers (code-generator). Tool versions are pinned here and run through
# `go run`, so nothing needs to be installed.
set -euo pipefail

CONTROLLER_TOOLS_VERSION=v0.23.0
CODE_GENERATOR_VERSION=v0.37.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
module=github.com/tmc-dev/tmc
boilerplate=hack/boilerplate.go.txt
groups=(workload/v1alpha1 scheduling/v1alpha1)

controller_gen() { GOFLAGS=-mod=mod go run "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_TOOLS_VERSION}" "$@"; }
codegen() { GOFLAGS=-mod=mod go run "k8s.io/code-generator/cmd/$1@${CODE_GENERATOR_VERSION}" "${@:2}"; }

echo "codegen: deepcopy" >&2
controller_gen object:headerFile="$boilerplate" paths=./sdk/apis/...

echo "codegen: CRDs" >&2
rm -f config/crds/*.yaml
controller_gen crd:allowDangerousTypes=false paths=./sdk/apis/... output:crd:artifacts:config=config/crds

inputs=()
for g in "${groups[@]}"; do inputs+=("$module/sdk/apis/$g"); done

echo "codegen: clientset" >&2
rm -rf sdk/client
codegen client-gen \
  --go-header-file "$boilerplate" \
  --clientset-name versioned \
  --input-base "" \
  $(printf -- '--input %s ' "${inputs[@]}") \
  --output-dir sdk/client/clientset \
  --output-pkg "$module/sdk/client/clientset"

echo "codegen: listers" >&2
codegen lister-gen \
  --go-header-file "$boilerplate" \
  --output-dir sdk/client/listers \
  --output-pkg "$module/sdk/client/listers" \
  "${inputs[@]}"

echo "codegen: informers" >&2
codegen informer-gen \
  --go-header-file "$boilerplate" \
  --versioned-clientset-package "$module/sdk/client/clientset/versioned" \
  --listers-package "$module/sdk/client/listers" \
  --output-dir sdk/client/informers \
  --output-pkg "$module/sdk/client/informers" \
  "${inputs[@]}"

gofmt -w sdk
echo "codegen: done" >&2
