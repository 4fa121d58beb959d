/**
 * MRT (RFC 6396 with the RFC 8050 ADD-PATH extensions): reading (framing,
 * decoding with the BGP wire codec, the printable views `bgpctl mrt` uses)
 * and writing (writer.ts: `show rib --mrt`, mrtDump).
 */
export * from "./types.ts";
export * from "./framer.ts";
export * from "./decoder.ts";
export * from "./reader.ts";
export * from "./view.ts";
export * from "./writer.ts";
export * from "./dump.ts";
export * from "./save.ts";
