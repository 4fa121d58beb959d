/**
 * MRT (RFC 6396 with the RFC 8050 ADD-PATH extensions) reading: framing,
 * decoding with the BGP wire codec, and the printable views `bgpctl mrt` uses.
 */
export * from "./types.ts";
export * from "./framer.ts";
export * from "./decoder.ts";
export * from "./reader.ts";
export * from "./view.ts";
