// Package benchrig measures a gateway at scale on one machine: it starts
// gateway processes sharing one port (SO_REUSEPORT) and load-generating
// client processes spread over source addresses 127.0.0.x, because one
// process holds fewer than 20,000 descriptors here and one source address
// has about 28,000 ports to a destination. The parent drives them over
// JSON lines on their standard input and output through three phases:
//
//   - idle: every session authenticates (a real Ed25519 player token,
//     verified offline by the gateway) and stays silent; the gateways'
//     resident memory over their empty baseline, per session, and the
//     kernel's socket memory are read from /proc;
//   - round trips: the clients send OpEcho requests open loop at a fixed
//     total rate, each stamped with its intended send time, so latency
//     includes any queueing a stalled gateway causes (no coordinated
//     omission);
//   - pushes: the gateways fan OpPush frames out to their sessions at a
//     fixed total rate and the clients count and time what they read.
//
// The client is not the game client (internal/gameclient): it runs all its
// sessions on one epoll loop per process so that the load generator, which
// shares the two cores with the gateways, costs as little as possible.
// `livecell bench-gateway` runs a Rig and prints its Summary as JSON.
package benchrig
