// Command tmc-virtual-workspaces serves TMC's virtual workspaces: the syncer and upsyncer
// views of every SyncTarget (pkg/virtualworkspace/syncer) over HTTPS, with metrics and
// health endpoints.
//
// It only wires pkg/virtualworkspace and pkg/cliutil; it must not import the syncer, the
// tmc-controller's reconcilers or anything under test/.
package main
