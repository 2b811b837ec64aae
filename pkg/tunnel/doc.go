// Package tunnel is the reverse tunnel between a syncer and the virtual-workspace server,
// after kcp's tunneler: the syncer dials out (the physical cluster needs no inbound
// access), upgrades one HTTP/1.1 connection to the tmc-tunnel protocol and multiplexes SPDY
// streams over it. The direction of requests is the reverse of the dial: the server opens a
// stream per request (Registry.DialContext, a net.Conn carrying one HTTP/1.1 exchange, so
// that 101 upgrades — SPDY and WebSocket exec, attach and portforward — pass through
// unchanged) and the syncer serves its Handler on every stream it accepts (Run).
//
// registry.go is the server's end: Accept takes over an already-authorised request as the
// tunnel of one SyncTarget key (a newer tunnel of the same key replaces the older one),
// DialContext opens streams over it. client.go is the syncer's end: it dials with the
// rest.Config's TLS and credential, serves streams, and reconnects with jittered exponential
// backoff (slowly after a 401 or 403). Both ends ping; a peer that sends nothing for three
// ping intervals (a partition without a FIN) ends the tunnel (conn.go), so the syncer
// reconnects. metrics.go holds the series; nothing is registered globally.
//
// It imports only the standard library, apimachinery and the streaming module, client-go's
// rest and transport, klog and prometheus: never pkg/reconciler or anything under test/.
package tunnel
