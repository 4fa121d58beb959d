/**
 * Public surface of the BGP protocol code: wire codec, capability
 * negotiation, session FSM and transport. Other layers import from here.
 */
export * from "./types.ts";
export * from "./errors.ts";
export * from "./framer.ts";
export * from "./prefix.ts";
// Address and prefix text, so the codec is usable on its own.
export * from "../core/addr.ts";
export * from "./open.ts";
export * from "./negotiate.ts";
export * from "./notification.ts";
export * from "./attributes.ts";
export * from "./update.ts";
export * from "./route.ts";
