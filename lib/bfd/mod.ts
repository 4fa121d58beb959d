/**
 * BFD (RFC 5880 asynchronous mode; RFC 5881 single hop, RFC 5883 multihop)
 * for the daemon: the control packet codec, one session's state machine and
 * timers, the UDP transport, and the manager that owns the sessions.
 * lib/router/bfd-glue.ts ties sessions to BGP neighbours.
 */
export { BfdDiag, BfdPacketError, BfdState, type BfdStateName, type ControlPacket, decodeControl, diagText, encodeControl } from "./packet.ts";
export { type BfdParams, BfdSession, type BfdStateChange, type DownCause, SLOW_START_TX_MS } from "./session.ts";
export { type BfdSender, type BfdTransport, MULTIHOP_PORT, SINGLE_HOP_PORT, UdpTransport, type UdpTransportOptions } from "./transport.ts";
export { BfdManager, type BfdManagerOptions, type BfdPeerSpec, type BfdSessionInfo } from "./manager.ts";
