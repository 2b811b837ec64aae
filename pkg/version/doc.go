// Package version holds the version stamped into TMC binaries at build time.
//
// It must not import anything outside the standard library.
package version
