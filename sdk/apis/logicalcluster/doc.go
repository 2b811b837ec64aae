// Package logicalcluster implements the small part of kcp's logical-cluster conventions TMC
// needs: workspace paths such as "root:org:team-a", their validation, and the URL under which
// a workspace is served ("<base>/clusters/<path>"). It must not import anything outside the
// standard library so that API types and clients can use it freely.
package logicalcluster
