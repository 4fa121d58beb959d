/** lib/core/addr.ts: the shared address and prefix primitives. */
import { describe, expect, test } from "bun:test";
import { maskAddr, parsePrefix, prefixContains, prefixToString } from "../../lib/core/addr.ts";

describe("core/addr", () => {
  test("maskAddr copies, also a Node Buffer (whose slice() is a view)", () => {
    const buf = Buffer.from([192, 0, 2, 255]);
    const m = maskAddr(buf, 24);
    expect([...m]).toEqual([192, 0, 2, 0]);
    expect([...buf]).toEqual([192, 0, 2, 255]);
    expect([...maskAddr(new Uint8Array([0xff, 0xff]), 3)]).toEqual([0xe0, 0]);
  });

  test("parsePrefix names the masked prefix when host bits are set", () => {
    expect(() => parsePrefix("192.0.2.1/24")).toThrow('invalid prefix "192.0.2.1/24": host bits set (did you mean 192.0.2.0/24?)');
    expect(prefixToString(parsePrefix("2001:db8::/32"))).toBe("2001:db8::/32");
  });

  test("prefixContains", () => {
    expect(prefixContains(parsePrefix("192.0.2.0/24"), parsePrefix("192.0.2.128/25"))).toBe(true);
    expect(prefixContains(parsePrefix("192.0.2.128/25"), parsePrefix("192.0.2.0/24"))).toBe(false);
    expect(prefixContains(parsePrefix("192.0.2.0/24"), parsePrefix("198.51.100.0/24"))).toBe(false);
    expect(prefixContains(parsePrefix("0.0.0.0/0"), parsePrefix("2001:db8::/32"))).toBe(false);
  });
});
