// An in-memory `ipset restore -exist`, at the text level of its input. Like the real tool it applies line by
// line and stops at the first refused line, earlier lines staying applied (no transaction). With -exist, creating
// a set that exists alike, adding a member that is there and deleting one that is not are no-ops; a missing
// set, another set under the same name, or a malformed member is still an error. Only the set types
// Switchboard creates are modelled (hash:ip, hash:ip,port, hash:ip,port,ip, hash:ip,port,net, bitmap:port with
// `range`), and members as single entries.
import { type AddressFamily, FakeToolError, addressFamily, byString, canonicalAddress, numberedLines, parsePort } from './common.js';

const TOOL = 'ipset restore -exist';
/** IPSET_MAXNAMELEN - 1. */
const NAME_MAX = 31;
const TYPES = new Set(['hash:ip', 'hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'bitmap:port']);
const PROTOCOLS = new Set(['tcp', 'udp', 'sctp', 'udplite']);
/** Create options with a value, and the flags; hashsize and the like do not make a set different (the kernel resizes). */
const VALUE_OPTIONS = new Set(['family', 'hashsize', 'maxelem', 'timeout', 'netmask', 'bucketsize', 'initval', 'range']);
const FLAG_OPTIONS = new Set(['counters', 'comment', 'skbinfo', 'forceadd']);
const NOT_IDENTITY = new Set(['hashsize', 'bucketsize', 'initval']);

interface IpSet {
  readonly type: string;
  readonly family: AddressFamily;
  /** Create options as written, in a canonical order (family first). */
  readonly options: ReadonlyMap<string, string>;
  /** What makes two creates "exactly the same set" for -exist: type, family, maxelem, timeout, flags. */
  readonly identity: string;
  readonly maxelem: number;
  members: Set<string>;
}

export class FakeIpset {
  private sets = new Map<string, IpSet>();

  /** `isReferenced(name)`: whether an iptables rule uses the set (destroy then fails, as in the kernel). */
  constructor(public isReferenced: (name: string) => boolean = () => false) {}

  /** `ipset restore -exist`: throws at the first refused line, leaving the lines before it applied. */
  restore(text: string): void {
    for (const { n, line } of numberedLines(text)) {
      const words = line.trim().split(/\s+/);
      // ipset restore skips blank lines and comments, and takes COMMIT (which only flushes its buffer).
      if (words[0] === '' || words[0]!.startsWith('#') || line.trimStart() === 'COMMIT') continue;
      try {
        this.applyLine(words);
      } catch (e) {
        throw new FakeToolError(TOOL, n, line, e instanceof Error ? e.message : String(e));
      }
    }
  }

  /** Canonical text: sets sorted by name, with type and identity options, members sorted. */
  dump(): string {
    const out: string[] = [];
    for (const [name, s] of [...this.sets].sort((a, b) => byString(a[0], b[0]))) {
      out.push(`${name} ${s.type} ${s.identity}`);
      for (const m of [...s.members].sort(byString)) out.push(`  ${m}`);
    }
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  /** `ipset save`: a create line per set (its options as given) and an add line per member, sorted. */
  save(): string {
    const out: string[] = [];
    for (const [name, s] of [...this.sets].sort((a, b) => byString(a[0], b[0]))) {
      const opts = [...s.options].map(([k, v]) => (v === '' ? k : `${k} ${v}`)).join(' ');
      out.push(`create ${name} ${s.type} ${opts}`);
      for (const m of [...s.members].sort(byString)) out.push(`add ${name} ${m}`);
    }
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  names(): string[] {
    return [...this.sets.keys()].sort(byString);
  }

  has(name: string): boolean {
    return this.sets.has(name);
  }

  type(name: string): string | undefined {
    return this.sets.get(name)?.type;
  }

  /** A set's members in ipset's printed form, sorted; undefined without the set. */
  members(name: string): string[] | undefined {
    const s = this.sets.get(name);
    return s === undefined ? undefined : [...s.members].sort(byString);
  }

  private need(name: string | undefined): IpSet {
    if (name === undefined) throw new Error('a set name is required');
    const s = this.sets.get(name);
    if (s === undefined) throw new Error(`The set with the given name does not exist (${name})`);
    return s;
  }

  private applyLine(words: string[]): void {
    const [command, name, ...args] = words;
    switch (command) {
      case 'create':
      case '-N': {
        const created = parseCreate(name, args);
        const had = this.sets.get(name!);
        if (had === undefined) this.sets.set(name!, created);
        else if (had.type !== created.type || had.identity !== created.identity) {
          throw new Error(`Set cannot be created: set with the same name already exists (${name} is ${had.type} ${had.identity})`);
        }
        return;
      }
      case 'add':
      case '-A':
      case 'del':
      case '-D': {
        const s = this.need(name);
        if (args.length !== 1) throw new Error(`one member expected (entry options are not modelled): ${args.join(' ')}`);
        const member = parseMember(s, args[0]!);
        if (command === 'del' || command === '-D') s.members.delete(member);
        else if (!s.members.has(member)) {
          if (s.members.size >= s.maxelem) throw new Error(`Hash is full, cannot add more elements (maxelem ${s.maxelem})`);
          s.members.add(member);
        }
        return;
      }
      case 'flush':
      case '-F':
        if (args.length > 0) throw new Error(`Unknown argument: ${args[0]}`);
        if (name === undefined) for (const s of this.sets.values()) s.members.clear();
        else this.need(name).members.clear();
        return;
      case 'swap':
      case '-W': {
        const other = args[0];
        if (args.length !== 1) throw new Error('swap needs two set names');
        const a = this.need(name);
        const b = this.need(other);
        if (a.type !== b.type || a.family !== b.family) throw new Error(`The sets cannot be swapped: their type does not match (${a.type} ${a.family}, ${b.type} ${b.family})`);
        this.sets.set(name!, b);
        this.sets.set(other!, a);
        return;
      }
      case 'rename':
      case '-E': {
        const to = args[0];
        if (args.length !== 1) throw new Error('rename needs two set names');
        const s = this.need(name);
        checkName(to!);
        if (this.sets.has(to!)) throw new Error(`A set with the new name already exists (${to})`);
        this.sets.delete(name!);
        this.sets.set(to!, s);
        return;
      }
      case 'destroy':
      case '-X': {
        if (args.length > 0) throw new Error(`Unknown argument: ${args[0]}`);
        const names = name === undefined ? [...this.sets.keys()] : [name];
        if (name !== undefined) this.need(name);
        for (const n of names) if (this.isReferenced(n)) throw new Error(`Set cannot be destroyed: it is in use by a kernel component (${n})`);
        for (const n of names) this.sets.delete(n);
        return;
      }
      default:
        throw new Error(`Unknown command ${command}`);
    }
  }
}

function checkName(name: string): void {
  if (name.length > NAME_MAX) throw new Error(`Syntax error: setname '${name}' is longer than ${NAME_MAX} characters`);
}

function parseCreate(name: string | undefined, args: readonly string[]): IpSet {
  if (name === undefined) throw new Error('create needs a set name');
  checkName(name);
  const [type, ...rest] = args;
  if (type === undefined) throw new Error('create needs a set type');
  if (!TYPES.has(type)) throw new Error(`Syntax error: Unknown set type ${type} (or one not modelled)`);
  const given = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const opt = rest[i]!;
    if (given.has(opt)) throw new Error(`Syntax error: ${opt} given twice`);
    if (FLAG_OPTIONS.has(opt)) given.set(opt, '');
    else if (VALUE_OPTIONS.has(opt)) {
      const value = rest[++i];
      if (value === undefined) throw new Error(`Syntax error: ${opt} needs a value`);
      if (opt === 'range') {
        if (!/^\d+-\d+$/.test(value)) throw new Error(`Syntax error: '${value}' is invalid as a port range`);
      } else if (opt !== 'family' && opt !== 'initval' && !/^\d+$/.test(value)) throw new Error(`Syntax error: '${value}' is invalid as number`);
      given.set(opt, value);
    } else throw new Error(`Unknown argument: '${opt}'`);
  }
  const familyWord = given.get('family') ?? 'inet';
  if (familyWord !== 'inet' && familyWord !== 'inet6') throw new Error(`Syntax error: unknown family ${familyWord}`);
  const family: AddressFamily = familyWord === 'inet' ? 'IPv4' : 'IPv6';
  if (given.has('netmask') && type !== 'hash:ip') throw new Error(`Unknown argument: 'netmask' for ${type}`);
  const bitmap = type === 'bitmap:port';
  if (bitmap) {
    for (const k of given.keys()) if (!['range', 'timeout', 'counters', 'comment', 'skbinfo'].includes(k)) throw new Error(`Unknown argument: '${k}' for ${type}`);
    if (!given.has('range')) throw new Error('Syntax error: bitmap:port needs a range');
  } else if (given.has('range')) throw new Error(`Unknown argument: 'range' for ${type}`);
  const options = new Map<string, string>(bitmap ? [] : [['family', familyWord]]);
  for (const [k, v] of given) if (k !== 'family') options.set(k, v);
  // The kernel's default maxelem, so that leaving it out and writing it out are the same set.
  const identityOptions = new Map(options);
  if (!bitmap && !identityOptions.has('maxelem')) identityOptions.set('maxelem', '65536');
  const identity = [...identityOptions]
    .filter(([k]) => !NOT_IDENTITY.has(k))
    .sort((a, b) => byString(a[0], b[0]))
    .map(([k, v]) => (v === '' ? k : `${k} ${v}`))
    .join(' ');
  return { type, family, options, identity, maxelem: bitmap ? 65536 : Number(identityOptions.get('maxelem')), members: new Set() };
}

/** A member in the form ipset prints it back (`10.0.0.1,tcp:80`), checked against the set's type and family. */
function parseMember(s: IpSet, text: string): string {
  const parts = text.split(',');
  const address = (part: string | undefined): string => {
    const canonical = part === undefined ? undefined : canonicalAddress(part);
    if (canonical === undefined || addressFamily(part!) !== s.family) {
      throw new Error(`Syntax error: cannot parse '${part ?? ''}' as an ${s.family} address (ranges and CIDRs are not modelled)`);
    }
    return canonical;
  };
  const port = (part: string | undefined): string => {
    if (part === undefined) throw new Error(`Syntax error: a port is required in ${text}`);
    const colon = part.indexOf(':');
    const proto = colon < 0 ? 'tcp' : part.slice(0, colon).toLowerCase();
    const number = colon < 0 ? part : part.slice(colon + 1);
    if (!PROTOCOLS.has(proto)) throw new Error(`Syntax error: invalid protocol '${proto}' (or one not modelled)`);
    if (parsePort(number) === undefined) throw new Error(`Syntax error: invalid port '${number}' (names and ranges are not modelled)`);
    return `${proto}:${Number(number)}`;
  };
  const net = (part: string | undefined): string => {
    const [ip, prefix] = (part ?? '').split('/');
    const width = s.family === 'IPv4' ? 32 : 128;
    if (prefix !== undefined && (!/^\d+$/.test(prefix) || Number(prefix) < 1 || Number(prefix) > width)) {
      throw new Error(`Syntax error: invalid prefix in '${part ?? ''}' (the kernel refuses /0)`);
    }
    const a = address(ip);
    return prefix === undefined || Number(prefix) === width ? a : `${a}/${Number(prefix)}`;
  };
  const expected = s.type === 'bitmap:port' ? 1 : s.type.split(',').length;
  if (parts.length !== expected) throw new Error(`Syntax error: ${text} is not a ${s.type} entry`);
  switch (s.type) {
    case 'bitmap:port': {
      const n = parts[0]!;
      if (parsePort(n) === undefined) throw new Error(`Syntax error: invalid port '${n}'`);
      return String(Number(n));
    }
    case 'hash:ip,port,net':
      return `${address(parts[0])},${port(parts[1])},${net(parts[2])}`;
    case 'hash:ip':
      return address(parts[0]);
    case 'hash:ip,port':
      return `${address(parts[0])},${port(parts[1])}`;
    default:
      return `${address(parts[0])},${port(parts[1])},${address(parts[2])}`;
  }
}
