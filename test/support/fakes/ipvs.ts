// In-memory models of IPVS mode's other two tools, at the text level of their input:
// - FakeIpvs: `ipvsadm -R`. Not atomic and not stopped by the kernel's refusals: ipvsadm runs each line, prints
//   the kernel's complaint and goes on, so the fake applies every line it can, collects the refusals and throws
//   them all at the end. Where ipvsadm's own checks call fail() (a bad address, weight or timeout, an option
//   the command does not take, a first word that is not a command) it exits at once: later lines never run.
//   Semantics from ipvsadm.c (process_options, generic_opt_check's table, restore_table).
// - FakeIpLinks: the dummy device's addresses through `ip -batch -`, which stops at the first failing line.
import {
  type AddressFamily,
  FakeToolError,
  FakeToolErrors,
  addressFamily,
  byString,
  canonicalAddress,
  numberedLines,
  parsePort,
  splitHostPort,
} from './common.js';

const IPVSADM = 'ipvsadm -R';
const IP_BATCH = 'ip -batch -';
/** The kernel's schedulers (ip_vs_*.ko); another name is refused by the kernel, not by ipvsadm's parser. */
const SCHEDULERS = new Set(['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos']);
/** ipvsadm's defaults: the scheduler of -A/-E without -s, the timeout of -p without a value, -a/-e's weight. */
const DEFAULT_SCHEDULER = 'wlc';
const DEFAULT_PERSISTENCE = 300;

type Method = 'masq' | 'route' | 'tunnel';
const METHOD_FLAG: Record<Method, string> = { masq: '-m', route: '-g', tunnel: '-i' };

interface Service {
  readonly key: string;
  readonly family: AddressFamily | undefined;
  readonly port: number;
  scheduler: string;
  persistence: number | undefined;
  reals: Map<string, { method: Method; weight: number }>;
}

/** A line ipvsadm's fail() rejects (it exits); popt's errors and the kernel's refusals let it go on. */
class SyntaxProblem extends Error {}

type Command = 'add-service' | 'edit-service' | 'delete-service' | 'clear' | 'add-server' | 'edit-server' | 'delete-server';

const COMMANDS: Readonly<Record<string, Command>> = {
  '-A': 'add-service', '--add-service': 'add-service',
  '-E': 'edit-service', '--edit-service': 'edit-service',
  '-D': 'delete-service', '--delete-service': 'delete-service',
  '-C': 'clear', '--clear': 'clear',
  '-a': 'add-server', '--add-server': 'add-server',
  '-e': 'edit-server', '--edit-server': 'edit-server',
  '-d': 'delete-server', '--delete-server': 'delete-server',
};
const SERVICE_FLAGS: Readonly<Record<string, string>> = {
  '-t': '-t', '--tcp-service': '-t',
  '-u': '-u', '--udp-service': '-u',
  '--sctp-service': '--sctp-service',
  '-f': '-f', '--fwmark-service': '-f',
};
/** Options each command takes (ipvsadm refuses the others), by their short names. */
const ALLOWED: Readonly<Record<Command, ReadonlySet<string>>> = {
  'add-service': new Set(['-s', '-p']),
  'edit-service': new Set(['-s', '-p']),
  'delete-service': new Set(),
  clear: new Set(),
  'add-server': new Set(['-r', '-m', '-g', '-i', '-w']),
  'edit-server': new Set(['-r', '-m', '-g', '-i', '-w']),
  'delete-server': new Set(['-r']),
};
const OPTION_NAMES: Readonly<Record<string, string>> = {
  '-s': '-s', '--scheduler': '-s',
  '-p': '-p', '--persistent': '-p',
  '-r': '-r', '--real-server': '-r',
  '-m': '-m', '--masquerading': '-m',
  '-g': '-g', '--gatewaying': '-g',
  '-i': '-i', '--ipip': '-i',
  '-w': '-w', '--weight': '-w',
};

interface ParsedLine {
  command: Command;
  service: { key: string; family: AddressFamily | undefined; port: number } | undefined;
  options: Map<string, string>;
}

export class FakeIpvs {
  private services = new Map<string, Service>();

  /**
   * `ipvsadm -R`: every line the kernel accepts takes effect; the refused ones are thrown together at the end
   * (FakeToolErrors). A line ipvsadm cannot parse stops the run there, with the refusals so far.
   */
  restore(text: string): void {
    const errors: FakeToolError[] = [];
    for (const { n, line } of numberedLines(text)) {
      if (line.trim() === '') continue;
      let parsed: ParsedLine;
      try {
        parsed = parseLine(line);
      } catch (e) {
        errors.push(new FakeToolError(IPVSADM, n, line, e instanceof Error ? e.message : String(e)));
        if (e instanceof SyntaxProblem) throw new FakeToolErrors(IPVSADM, errors);
        continue;
      }
      try {
        this.applyParsed(parsed);
      } catch (e) {
        errors.push(new FakeToolError(IPVSADM, n, line, e instanceof Error ? e.message : String(e)));
      }
    }
    if (errors.length > 0) throw new FakeToolErrors(IPVSADM, errors);
  }

  /** Canonical text, which is also `ipvsadm -S -n`'s form: services sorted, each followed by its real servers sorted. */
  dump(): string {
    const out: string[] = [];
    for (const [key, s] of [...this.services].sort((a, b) => byString(a[0], b[0]))) {
      out.push(`-A ${key} -s ${s.scheduler}${s.persistence === undefined ? '' : ` -p ${s.persistence}`}`);
      for (const [hostPort, r] of [...s.reals].sort((a, b) => byString(a[0], b[0]))) {
        out.push(`-a ${key} -r ${hostPort} ${METHOD_FLAG[r.method]} -w ${r.weight}`);
      }
    }
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  /** `ipvsadm -S -n`, readable by parseIpvsadmSave (the same text as dump()). */
  save(): string {
    return this.dump();
  }

  /** Service keys (`-t 10.96.0.10:80`), sorted. */
  serviceKeys(): string[] {
    return [...this.services.keys()].sort(byString);
  }

  private applyParsed({ command, service, options }: ParsedLine): void {
    if (command === 'clear') {
      this.services.clear();
      return;
    }
    const svc = service!;
    const existing = this.services.get(svc.key);
    switch (command) {
      case 'add-service':
      case 'edit-service': {
        const scheduler = options.get('-s') ?? DEFAULT_SCHEDULER;
        if (!SCHEDULERS.has(scheduler)) throw new Error(`Scheduler not found: ${scheduler}`);
        const p = options.get('-p');
        // -E without -p turns persistence off: every -A/-E line states the whole service.
        const persistence = p === undefined ? undefined : p === '' ? DEFAULT_PERSISTENCE : Number(p);
        if (command === 'add-service') {
          if (existing !== undefined) throw new Error('Service already exists');
          this.services.set(svc.key, { key: svc.key, family: svc.family, port: svc.port, scheduler, persistence, reals: new Map() });
        } else {
          if (existing === undefined) throw new Error('No such service');
          existing.scheduler = scheduler;
          existing.persistence = persistence;
        }
        return;
      }
      case 'delete-service':
        // Its real servers go with it.
        if (!this.services.delete(svc.key)) throw new Error('No such service');
        return;
      default: {
        if (existing === undefined) throw new Error('Service not defined');
        const method: Method = options.has('-i') ? 'tunnel' : options.has('-m') ? 'masq' : 'route';
        const real = parseRealServer(options.get('-r'), existing, method, command !== 'delete-server');
        if (real.family !== existing.family && existing.family !== undefined && method !== 'tunnel') {
          throw new Error('Invalid argument (a real server of another address family needs tunnelling)');
        }
        const weight = Number(options.get('-w') ?? '1');
        const have = existing.reals.get(real.hostPort);
        if (command === 'add-server') {
          if (have !== undefined) throw new Error('Destination already exists');
          existing.reals.set(real.hostPort, { method, weight });
        } else if (command === 'edit-server') {
          if (have === undefined) throw new Error('No such destination');
          existing.reals.set(real.hostPort, { method, weight });
        } else if (!existing.reals.delete(real.hostPort)) {
          throw new Error('No such destination');
        }
      }
    }
  }
}

/**
 * `10.0.0.1:80`, `[fd00::1]:80`, or an address alone (then the service's port). `-a`/`-e` of a direct-routing
 * or tunnelled real server of a port service take the service's port whatever was written (`-d` does not).
 */
function parseRealServer(text: string | undefined, svc: Service, method: Method, adding: boolean): { hostPort: string; family: AddressFamily } {
  if (text === undefined) throw new Error('a real server (-r) is required');
  const hp = splitHostPort(text);
  const rawAddress = hp === undefined ? text.replace(/^\[(.*)\]$/, '$1') : hp.address;
  const address = canonicalAddress(rawAddress);
  const family = addressFamily(rawAddress);
  if (address === undefined || family === undefined) throw new Error(`illegal real server address: ${text}`);
  let port = hp === undefined ? svc.port : parsePort(hp.port);
  if (port === undefined) throw new Error(`illegal real server port: ${text}`);
  if (adding && method !== 'masq' && !svc.key.startsWith('-f')) port = svc.port;
  return { hostPort: family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`, family };
}

/** ipvsadm's parsing of one line; throws SyntaxProblem where it would exit. */
function parseLine(line: string): ParsedLine {
  const words = line.trim().split(/\s+/);
  let service: ParsedLine['service'];
  const options = new Map<string, string>();
  const problem = (text: string): SyntaxProblem => new SyntaxProblem(text);
  // ipvsadm takes the command from the first option only; anything else there ends the run (tryhelp_exit).
  const command = COMMANDS[words[0] ?? ''];
  if (command === undefined) throw problem(`the first word must be a command, not ${words[0] ?? ''}`);
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    if (COMMANDS[w] !== undefined) throw problem('multiple commands specified');
    const flag = SERVICE_FLAGS[w];
    if (flag !== undefined) {
      if (service !== undefined) throw problem('multiple service types specified');
      const arg = words[++i];
      // popt's own errors make ipvsadm skip the line, not exit.
      if (arg === undefined) throw new Error(`${w}: missing argument`);
      service = parseService(flag, arg);
      continue;
    }
    const opt = OPTION_NAMES[w];
    if (opt === undefined) throw new Error(`${w}: unknown option (or one not modelled)`);
    if (options.has(opt) || (['-m', '-g', '-i'].includes(opt) && ['-m', '-g', '-i'].some((m) => options.has(m)))) {
      throw problem(`multiple ${opt === '-m' || opt === '-g' || opt === '-i' ? 'forwarding methods' : opt} specified`);
    }
    if (opt === '-m' || opt === '-g' || opt === '-i') {
      options.set(opt, '');
    } else if (opt === '-p') {
      // -p's timeout is optional: the next word is it only when it is not an option.
      const next = words[i + 1];
      if (next !== undefined && !next.startsWith('-')) {
        if (!/^\d+$/.test(next) || Number(next) < 1) throw problem(`illegal timeout for persistent service: ${next}`);
        options.set(opt, next);
        i++;
      } else options.set(opt, '');
    } else {
      const arg = words[++i];
      if (arg === undefined) throw new Error(`${w}: missing argument`);
      if (opt === '-w' && (!/^\d+$/.test(arg) || Number(arg) > 65535)) throw problem(`illegal weight specified: ${arg}`);
      options.set(opt, arg);
    }
  }
  for (const opt of options.keys()) if (!ALLOWED[command].has(opt)) throw problem(`Illegal '${opt}' option with the '${command}' command`);
  if (command === 'clear') {
    if (service !== undefined) throw problem(`Illegal service option with the 'clear' command`);
  } else if (service === undefined) {
    throw problem('a service (-t, -u, --sctp-service or -f) is required');
  }
  if (command.endsWith('server') && !options.has('-r')) throw problem('a real server (-r) is required');
  if ((command === 'add-service' || command === 'edit-service') && service?.port === 0 && !service.key.startsWith('-f') && !options.has('-p')) {
    throw problem('Zero port specified for non-persistent service');
  }
  return { command, service, options };
}

function parseService(flag: string, arg: string): NonNullable<ParsedLine['service']> {
  if (flag === '-f') {
    if (!/^\d+$/.test(arg) || Number(arg) < 1) throw new SyntaxProblem(`illegal fwmark: ${arg}`);
    return { key: `-f ${Number(arg)}`, family: undefined, port: 0 };
  }
  // An address without a port is port 0 (then only a persistent service is allowed). Host and port names,
  // which ipvsadm would resolve, are not modelled.
  const hp = splitHostPort(arg) ?? { address: arg.replace(/^\[(.*)\]$/, '$1'), port: '0' };
  const address = canonicalAddress(hp.address);
  const port = parsePort(hp.port);
  if (address === undefined || port === undefined) throw new SyntaxProblem(`illegal virtual server address[:port] specified: ${arg}`);
  const family = addressFamily(hp.address)!;
  return { key: `${flag} ${family === 'IPv6' ? `[${address}]` : address}:${port}`, family, port };
}

/** IFNAMSIZ - 1. */
const DEVICE_NAME_MAX = 15;

interface LinkAddress {
  readonly address: string;
  readonly prefix: number;
  readonly family: AddressFamily;
}

/** Links and their addresses as `ip` changes them: `ip link add/del` and `ip -batch -` of address add/del. */
export class FakeIpLinks {
  private links = new Map<string, LinkAddress[]>();

  /** `ip link add DEV type dummy`: refused ("File exists") when the device is there. */
  linkAdd(dev: string): void {
    if (dev === '' || dev.length > DEVICE_NAME_MAX || /[\s/]/.test(dev)) throw new FakeToolError('ip link add', undefined, undefined, `"${dev}" is not a valid device name`);
    if (this.links.has(dev)) throw new FakeToolError('ip link add', undefined, undefined, 'RTNETLINK answers: File exists');
    this.links.set(dev, []);
  }

  /** `ip link del DEV`: its addresses go with it. */
  linkDel(dev: string): void {
    if (!this.links.delete(dev)) throw new FakeToolError('ip link del', undefined, undefined, `Cannot find device "${dev}"`);
  }

  hasLink(dev: string): boolean {
    return this.links.has(dev);
  }

  /** A device's addresses (without prefix, as Switchboard reads them), sorted; undefined without the device. */
  addresses(dev: string, family?: AddressFamily): string[] | undefined {
    const list = this.links.get(dev);
    if (list === undefined) return undefined;
    return [...new Set(list.filter((a) => family === undefined || a.family === family).map((a) => a.address))].sort(byString);
  }

  /** `ip -batch -`: stops at the first failing line, the lines before it applied. */
  batch(text: string): void {
    for (const { n, line } of numberedLines(text)) {
      // ip cuts a line at '#' and skips what is left empty.
      const words = line.replace(/#.*/, '').trim().split(/\s+/).filter((w) => w !== '');
      if (words.length === 0) continue;
      try {
        this.applyWords(words);
      } catch (e) {
        throw new FakeToolError(IP_BATCH, n, line, e instanceof Error ? e.message : String(e));
      }
    }
  }

  /** Canonical text: devices sorted, each with its addresses (with prefix) sorted. */
  dump(): string {
    const out: string[] = [];
    for (const [dev, list] of [...this.links].sort((a, b) => byString(a[0], b[0]))) {
      out.push(dev);
      for (const a of list.map((x) => `${x.address}/${x.prefix}`).sort(byString)) out.push(`  ${a}`);
    }
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  private applyWords(words: readonly string[]): void {
    const [object = '', verb = '', ...rest] = words;
    // ip takes any prefix of a keyword ("a", "addr"); "address" is the first object matching "a".
    if (!'address'.startsWith(object)) throw new Error(`Object "${object}" is not modelled (only address)`);
    const add = verb !== '' && 'add'.startsWith(verb);
    const del = verb !== '' && 'delete'.startsWith(verb);
    if (!add && !del) throw new Error(`Command "${verb}" is not modelled (only add and del)`);
    let dev: string | undefined;
    let local: string | undefined;
    for (let i = 0; i < rest.length; i++) {
      const w = rest[i]!;
      if (w === 'dev') {
        dev = rest[++i];
        if (dev === undefined) throw new Error('Command line is not complete. Try option "help"');
      } else if (w === 'local') {
        local = rest[++i];
      } else if (local === undefined) {
        local = w;
      } else {
        throw new Error(`Either "local" is duplicate, or "${w}" is garbage (other keywords are not modelled)`);
      }
    }
    if (dev === undefined) throw new Error('Not enough information: "dev" argument is required.');
    if (local === undefined) throw new Error('Not enough information: address is required.');
    const list = this.links.get(dev);
    if (list === undefined) throw new Error(`Cannot find device "${dev}"`);
    const a = parsePrefixed(local);
    // IPv4 addresses are one per (address, prefix); IPv6 one per address. A delete names both.
    const same = (x: LinkAddress): boolean => x.address === a.address && (x.prefix === a.prefix || (add && a.family === 'IPv6'));
    const i = list.findIndex(same);
    if (add) {
      if (i >= 0) throw new Error('RTNETLINK answers: File exists');
      list.push(a);
    } else {
      if (i < 0) throw new Error('RTNETLINK answers: Cannot assign requested address');
      list.splice(i, 1);
    }
  }
}

function parsePrefixed(text: string): LinkAddress {
  const [raw = '', prefixText, ...more] = text.split('/');
  const address = canonicalAddress(raw);
  const family = addressFamily(raw);
  const max = family === 'IPv6' ? 128 : 32;
  const prefix = prefixText === undefined ? max : /^\d+$/.test(prefixText) ? Number(prefixText) : NaN;
  if (address === undefined || family === undefined || more.length > 0 || !(prefix >= 0 && prefix <= max)) {
    throw new Error(`any valid prefix is expected rather than "${text}".`);
  }
  return { address, prefix, family };
}
