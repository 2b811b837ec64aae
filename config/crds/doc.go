// Package crds embeds the CustomResourceDefinitions generated from sdk/apis (by
// `make codegen`) so that tests, the local environment and the kubectl plugin install exactly
// what is in the repository.
//
// It must not import anything of TMC but the generated manifests it embeds.
package crds
