// Package wildcard provides informers over kcp's wildcard endpoint /clusters/*: one list and
// one watch per type for every logical cluster, with objects keyed by (logical cluster,
// namespace, name) — objects of different workspaces may share namespace and name — and a
// lister per logical cluster.
//
// It is built from client-go's reflector, FIFO and indexer. It owns only this cache; it must
// not import the syncer, the controllers or test/.
package wildcard
