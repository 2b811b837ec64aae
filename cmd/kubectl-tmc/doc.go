// Command kubectl-tmc is the kubectl plugin of TMC ("kubectl tmc ...").
//
// It only wires pkg/cliplugins; it must not import the reconcilers or anything under test/.
package main
