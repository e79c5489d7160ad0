import type { IPFamily } from '../../model/ip.js';
import { savedProbability } from './probability.js';

/**
 * Our restore lines rewritten the way `iptables-save` prints them back (legacy and nft print the same), so
 * a full sync can tell which chains the kernel already holds verbatim and skip them. Only the vocabulary our
 * compiler writes is understood; anything else gives `undefined`, which callers treat as "different" and
 * so rewrite the chain: a wrong "different" costs time, a wrong "same" would cost correctness.
 */

interface Option {
  readonly negated: boolean;
  readonly flag: string;
  readonly args: readonly string[];
}

interface Extension {
  readonly name: string;
  readonly options: Option[];
}

/** Options per match and target, with their argument counts. */
const PORTS = { '--sport': 1, '--dport': 1 };
const MATCHES: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  comment: { '--comment': 1 },
  tcp: PORTS,
  udp: PORTS,
  sctp: PORTS,
  statistic: { '--mode': 1, '--probability': 1 },
  recent: {
    '--name': 1,
    '--set': 0,
    '--rcheck': 0,
    '--update': 0,
    '--remove': 0,
    '--seconds': 1,
    '--reap': 0,
    '--mask': 1,
    '--rsource': 0,
    '--rdest': 0,
  },
  mark: { '--mark': 1 },
  conntrack: { '--ctstate': 1 },
  addrtype: { '--src-type': 1, '--dst-type': 1 },
  set: { '--match-set': 2 },
};
const TARGETS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  DNAT: { '--to-destination': 1 },
  MARK: { '--or-mark': 1, '--xor-mark': 1, '--set-xmark': 1 },
  MASQUERADE: { '--random-fully': 0, '--to-ports': 1 },
  REJECT: { '--reject-with': 1 },
};
/** Addresses, interfaces and protocol, in the order iptables-save prints them (before any match). */
const CORE = ['-s', '-d', '-i', '-o', '-p'] as const;
type Core = (typeof CORE)[number];

/** Splits a rule into words, honouring double quotes and backslash escapes as iptables-restore does. */
function words(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let word = '';
    let quoted = false;
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (c === '\\' && i + 1 < line.length) word += line[++i];
      else if (c === '"') quoted = !quoted;
      else if (c === ' ' && !quoted) break;
      else word += c;
    }
    if (quoted) return undefined;
    out.push(word);
  }
  return out;
}

/** One rule (`-A CHAIN …`) in iptables-save's form, or undefined when it uses options not modelled here. */
export function toSaveForm(line: string, family: IPFamily): string | undefined {
  const w = words(line);
  if (w === undefined || w[0] !== '-A' || w.length < 2) return undefined;
  const core = new Map<Core, Option>();
  const matches: Extension[] = [];
  let target: Extension | undefined;
  for (let i = 2; i < w.length; ) {
    const negated = w[i] === '!';
    if (negated) i++;
    const flag = w[i++];
    if (flag === undefined) return undefined;
    if ((CORE as readonly string[]).includes(flag)) {
      const arg = w[i++];
      if (arg === undefined || core.has(flag as Core)) return undefined;
      core.set(flag as Core, { negated, flag, args: [arg] });
    } else if (flag === '-m' || flag === '-j') {
      const name = w[i++];
      if (name === undefined || negated || target !== undefined) return undefined;
      const known = flag === '-m' ? MATCHES[name] : (TARGETS[name] ?? {});
      if (known === undefined) return undefined;
      if (flag === '-m') matches.push({ name, options: [] });
      else target = { name, options: [] };
    } else {
      // An extension option belongs to the target if given after it, else to the latest match that knows it.
      const owner = target ?? [...matches].reverse().find((m) => MATCHES[m.name]![flag] !== undefined);
      const arity = owner === undefined ? undefined : (target ? TARGETS[owner.name] : MATCHES[owner.name])?.[flag];
      if (owner === undefined || arity === undefined || i + arity > w.length) return undefined;
      owner.options.push({ negated, flag, args: w.slice(i, i + arity) });
      i += arity;
    }
  }
  const parts = [`-A ${w[1]}`];
  for (const flag of CORE) {
    const o = core.get(flag);
    if (o === undefined) continue;
    const arg = flag === '-s' || flag === '-d' ? withPrefix(o.args[0]!, family) : o.args[0]!;
    parts.push(`${o.negated ? '! ' : ''}${flag} ${arg}`);
  }
  for (const m of matches) {
    const text = savedMatch(m, family);
    if (text === undefined) return undefined;
    parts.push(text);
  }
  if (target !== undefined) {
    const text = savedTarget(target, family);
    if (text === undefined) return undefined;
    parts.push(text);
  }
  return parts.join(' ');
}

/** A chain body (`-A` lines, each ending in a newline) as iptables-save's lines joined by newlines. */
export function chainSaveForm(body: string, family: IPFamily): string | undefined {
  const out: string[] = [];
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const saved = toSaveForm(line, family);
    if (saved === undefined) return undefined;
    out.push(saved);
  }
  return out.join('\n');
}

function withPrefix(address: string, family: IPFamily): string {
  return address.includes('/') ? address : `${address}/${family === 'IPv4' ? 32 : 128}`;
}

/** `--flag args` of `options` in `order` (each at most once), with `!` where negated; undefined if any is left. */
function inOrder(ext: Extension, order: readonly string[], render: (o: Option) => string | undefined = plain): string | undefined {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const flag of order) {
    const all = ext.options.filter((o) => o.flag === flag);
    if (all.length > 1) return undefined;
    if (all.length === 0) continue;
    const text = render(all[0]!);
    if (text === undefined) return undefined;
    out.push(text);
    seen.add(flag);
  }
  if (ext.options.some((o) => !seen.has(o.flag))) return undefined;
  return out.join(' ');
}

function plain(o: Option): string {
  return [...(o.negated ? ['!'] : []), o.flag, ...o.args].join(' ');
}

const FULL_MASK = 0xffffffff;

/** A mark or mark/mask as the mark match and MARK target print them: lowercase hex. */
function markValue(text: string): [number, number | undefined] | undefined {
  const [v, m] = text.split('/');
  const value = Number(v);
  const mask = m === undefined ? undefined : Number(m);
  if (!Number.isInteger(value) || (mask !== undefined && !Number.isInteger(mask))) return undefined;
  return [value >>> 0, mask === undefined ? undefined : mask >>> 0];
}
const hex = (n: number): string => `0x${n.toString(16)}`;

function savedMatch(m: Extension, family: IPFamily): string | undefined {
  const head = `-m ${m.name}`;
  let body: string | undefined;
  switch (m.name) {
    case 'comment':
      body = inOrder(m, ['--comment'], (o) => (o.negated ? undefined : `--comment ${quoted(o.args[0]!)}`));
      break;
    case 'tcp':
    case 'udp':
    case 'sctp':
      body = inOrder(m, ['--sport', '--dport']);
      break;
    case 'statistic': {
      if (m.options.some((o) => o.negated)) return undefined;
      const mode = m.options.find((o) => o.flag === '--mode')?.args[0];
      if (mode !== 'random') return undefined;
      body = inOrder(m, ['--mode', '--probability'], (o) => {
        if (o.flag === '--mode') return plain(o);
        const p = savedProbability(o.args[0]!);
        return p === undefined ? undefined : `--probability ${p}`;
      });
      break;
    }
    case 'recent': {
      if (m.options.some((o) => o.negated)) return undefined;
      const has = (flag: string): boolean => m.options.some((o) => o.flag === flag);
      const defaults: Option[] = [];
      if (!has('--mask')) defaults.push({ negated: false, flag: '--mask', args: [family === 'IPv4' ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'] });
      if (!has('--rsource') && !has('--rdest')) defaults.push({ negated: false, flag: '--rsource', args: [] });
      if (!has('--name')) defaults.push({ negated: false, flag: '--name', args: ['DEFAULT'] });
      const order = ['--rcheck', '--set', '--update', '--remove', '--seconds', '--reap', '--name', '--mask', '--rsource', '--rdest'];
      body = inOrder({ name: m.name, options: [...m.options, ...defaults] }, order);
      break;
    }
    case 'mark':
      body = inOrder(m, ['--mark'], (o) => {
        const v = markValue(o.args[0]!);
        if (v === undefined) return undefined;
        const [value, mask] = v;
        const arg = mask === undefined || mask === FULL_MASK ? hex(value) : `${hex(value)}/${hex(mask)}`;
        return `${o.negated ? '! ' : ''}--mark ${arg}`;
      });
      break;
    case 'conntrack':
      body = inOrder(m, ['--ctstate']);
      break;
    case 'addrtype':
      body = inOrder(m, ['--src-type', '--dst-type']);
      break;
    case 'set':
      body = inOrder(m, ['--match-set']);
      break;
    default:
      return undefined;
  }
  if (body === undefined) return undefined;
  return body === '' ? head : `${head} ${body}`;
}

function savedTarget(t: Extension, family: IPFamily): string | undefined {
  const head = `-j ${t.name}`;
  if (t.options.some((o) => o.negated)) return undefined;
  let body: string | undefined;
  switch (t.name) {
    case 'DNAT':
      body = inOrder(t, ['--to-destination']);
      break;
    case 'MASQUERADE':
      body = inOrder(t, ['--to-ports', '--random-fully']);
      break;
    case 'REJECT':
      body = t.options.length === 0 ? `--reject-with ${family === 'IPv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}` : inOrder(t, ['--reject-with']);
      break;
    case 'MARK': {
      if (t.options.length !== 1) return undefined;
      const o = t.options[0]!;
      const v = markValue(o.args[0]!);
      if (v === undefined) return undefined;
      const [value, mask] = v;
      if (o.flag === '--or-mark' && mask === undefined) body = `--set-xmark ${hex(value)}/${hex(value)}`;
      else if (o.flag === '--xor-mark' && mask === undefined) body = `--set-xmark ${hex(value)}/0x0`;
      else if (o.flag === '--set-xmark') body = `--set-xmark ${hex(value)}/${hex(mask ?? FULL_MASK)}`;
      else return undefined;
      break;
    }
    default:
      // A jump to a chain or a plain verdict has no options.
      body = t.options.length === 0 ? '' : undefined;
  }
  if (body === undefined) return undefined;
  return body === '' ? head : `${head} ${body}`;
}

/** iptables-save always quotes a comment, escaping quotes and backslashes. */
function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
