// Command kwokstages prints the kwok stage configuration that pkg/localenv hands to kwok:
// nodes become Ready with leases, pods become Running and Ready and are deleted promptly.
// The stages come from the kwok module pinned in go.mod, so they always match the kwok binary.
package main

import (
	"fmt"
	"os"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	docs := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for i, d := range docs {
		if i > 0 {
			fmt.Fprintln(os.Stdout, "---")
		}
		fmt.Fprintln(os.Stdout, strings.TrimSpace(d))
	}
}
