// Package options holds the flags of tmc-virtual-workspaces and turns them into the
// handler's options and the serving address.
package options
