// What the text-level fakes (iptables, ipset, ipvs, ip) share: the error they throw, naming the input line the
// real tool would have refused, and address handling that matches how the tools print addresses back.
import { isIPv4, isIPv6 } from 'node:net';

/** An input the real tool would refuse: which tool, which line (1-based, as the tools count), and why. */
export class FakeToolError extends Error {
  override readonly name = 'FakeToolError';

  constructor(
    readonly tool: string,
    readonly lineNumber: number | undefined,
    readonly line: string | undefined,
    readonly reason: string,
  ) {
    super(lineNumber === undefined ? `${tool}: ${reason}` : `${tool}: line ${lineNumber} (${line ?? ''}): ${reason}`);
  }
}

/** Several refused lines of one input (ipvsadm -R keeps going after a refused line). */
export class FakeToolErrors extends Error {
  override readonly name = 'FakeToolErrors';

  constructor(
    readonly tool: string,
    readonly errors: readonly FakeToolError[],
  ) {
    super(`${tool}: ${errors.length} line(s) refused:\n${errors.map((e) => `  ${e.message}`).join('\n')}`);
  }
}

/** The input's lines with their 1-based numbers; a final newline does not make an extra line. */
export function numberedLines(text: string): Array<{ n: number; line: string }> {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((line, i) => ({ n: i + 1, line }));
}

export type AddressFamily = 'IPv4' | 'IPv6';

/** The family of a bare address, or undefined when it is not one. */
export function addressFamily(text: string): AddressFamily | undefined {
  if (isIPv4(text)) return 'IPv4';
  if (isIPv6(text) && !text.includes('%')) return 'IPv6';
  return undefined;
}

/**
 * An address as the tools print it back: IPv4 unchanged, IPv6 compressed and lower-case (`FD00:0::1` is
 * `fd00::1`), so two spellings of one address are one member, one real server, one address on a link.
 */
export function canonicalAddress(text: string): string | undefined {
  const family = addressFamily(text);
  if (family === 'IPv4') return text;
  if (family === 'IPv6') return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  return undefined;
}

/** Splits `10.0.0.1:80` / `[fd00::1]:80`; undefined when malformed. */
export function splitHostPort(text: string): { address: string; port: string } | undefined {
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(text) ?? /^([^:[\]]+):([^:]*)$/.exec(text);
  return m === null ? undefined : { address: m[1]!, port: m[2]! };
}

/** A port number 0..65535 written in decimal, or undefined. */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

export const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
