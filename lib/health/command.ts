/**
 * How an `exec:` string of a health check becomes arguments, without a
 * shell (pure; the config schema checks commands with it, the exec probe
 * runs what it returns).
 */

/**
 * Split a command line into arguments, without a shell: whitespace separates
 * arguments; '...' is literal; "..." is literal except \" and \\; a backslash
 * outside quotes escapes the next character. No variables, globs, pipes or
 * redirections (use `shell: true` for those). Throws on an unterminated quote.
 */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inArg = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      inArg = true;
      const end = c === "'" ? line.indexOf("'", i + 1) : closingDouble(line, i + 1);
      if (end < 0) throw new Error(`unterminated ${c} quote in command "${line}"`);
      const body = line.slice(i + 1, end);
      cur += c === "'" ? body : body.replace(/\\(["\\])/g, "$1");
      i = end;
    } else if (c === "\\" && i + 1 < line.length) {
      inArg = true;
      cur += line[++i];
    } else if (/\s/.test(c)) {
      if (inArg) out.push(cur);
      cur = "";
      inArg = false;
    } else {
      inArg = true;
      cur += c;
    }
  }
  if (inArg) out.push(cur);
  return out;
}

function closingDouble(s: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === '"') return i;
  }
  return -1;
}
