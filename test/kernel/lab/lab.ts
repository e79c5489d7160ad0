// The kernel test lab: one node namespace and pod namespaces wired to it like a point-to-point CNI node,
// dual-stack. All of it lives in namespaces named sbt<pid>-<n>-*; nothing (address, route, interface, sysctl)
// is ever added to or changed in the root namespace.
//
//   node ns  sbt<pid>-<n>-node
//     eth0      10.0.0.10/24 and fd00:10::10/64 (LabOptions.nodeIP / nodeIP6): a blackhole uplink, the default
//               route of both families, so unrouted destinations time out (see addBlackholeUplink)
//     v<k><pod> one host veth per pod, carrying the node IPs as 10.0.0.10/32 and fd00:10::10/128; routes
//               <pod ip>/32 and <pod ip6>/128 point at it
//     net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=1
//   pod ns   sbt<pid>-<n>-<pod>
//     eth0      <pod ip>/32 and <pod ip6>/128; the node IPs on-link, default routes via them
//     an echo server on the spec's TCP and UDP ports, on 0.0.0.0 and on :: (see bin/echo-server.mjs)
//
// IPv6 addresses mirror the IPv4 ones (mirrorIPv6 in addresses.ts): a.b.c.d is fd00:a:b:c::d, so
//   node 10.0.0.10 -> fd00:10::10, its /24 -> fd00:10::/64
//   pods 10.244.0.0/16 (cluster CIDR) -> fd00:10:244::/48, e.g. 10.244.1.2 -> fd00:10:244:1::2
//   Services 10.96.0.0/12 -> e.g. 10.96.0.1 -> fd00:10:96::1 (unrouted: into eth0, like the IPv4 VIPs)
//   external clients (pods outside the cluster CIDR) 192.168.50.2 -> fd00:192:168:50::2
// A PodSpec's `ip6` (and LabOptions.nodeIP6) overrides the mirror. Every lab namespace has IPv6 on and
// duplicate address detection off (accept_dad=0, addresses added `nodad`), so addresses work at once;
// ICMP and ICMPv6 error rate limits are off in every lab namespace.
import { spawnSync } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalIPv6, mirrorIPv6 } from './addresses.js';
import {
  addBlackholeUplink,
  addNamespace,
  deleteNamespace,
  ipv6Sysctls,
  sysctls,
  wirePod,
} from './netns.js';
import { startEchoServer, type EchoServer } from './processes.js';
import { probeFrom, type ProbeResult, type ProbeTarget } from './probe.js';
import {
  emptyTablesRules,
  iptablesRestore,
  iptablesSave,
  type IptablesFamily,
  type IptablesTable,
} from './iptables.js';
import { runIn, type ExecResult, type RunOptions } from './run.js';

export interface LabOptions {
  /** Node address on eth0 (a /24) and on every host-side veth (/32). Default 10.0.0.10. */
  nodeIP?: string;
  /** Node IPv6 address on eth0 (a /64) and on every host-side veth (/128). Default mirrorIPv6(nodeIP), fd00:10::10. */
  nodeIP6?: string;
}

export interface PodSpec {
  name: string;
  ip: string;
  /** The pod's IPv6 address. Default mirrorIPv6(ip): 10.244.1.2 is fd00:10:244:1::2. */
  ip6?: string;
  tcpPorts?: number[];
  udpPorts?: number[];
  /** TCP connections stay open this long after the reply line (graceful-termination tests). */
  holdMs?: number;
}

export interface Pod {
  name: string;
  ns: string;
  ip: string;
  /** The pod's IPv6 address, in the form the echo servers report peers in (RFC 5952). */
  ip6: string;
  /** Host-side veth in the node namespace. */
  hostVeth: string;
}

/** 'node' or a pod name. */
export type Where = 'node' | string;

export interface Lab {
  readonly nodeNs: string;
  readonly nodeIP: string;
  readonly nodeIP6: string;
  readonly pods: ReadonlyMap<string, Pod>;
  addPod(spec: PodSpec): Promise<Pod>;
  removePod(name: string): Promise<void>;
  stopPodServer(name: string): Promise<void>;
  startPodServer(name: string): Promise<void>;
  exec(where: Where, cmd: string, args: string[], opts?: RunOptions): Promise<ExecResult>;
  probe(from: Where, target: ProbeTarget): Promise<ProbeResult[]>;
  /** iptables-save in the node ns, normalised (no comments, zero counters). */
  iptablesSave(table?: IptablesTable): Promise<string>;
  /** ip6tables-save in the node ns, normalised as iptablesSave. */
  ip6tablesSave(table?: IptablesTable): Promise<string>;
  /** iptables-restore in the node ns; `--noflush` unless `noflush: false`. */
  iptablesRestore(rules: string, opts?: { noflush?: boolean }): Promise<void>;
  /** ip6tables-restore in the node ns; `--noflush` unless `noflush: false`. */
  ip6tablesRestore(rules: string, opts?: { noflush?: boolean }): Promise<void>;
  /**
   * Flushes filter/nat/mangle/raw of iptables and ip6tables in the node ns (policies back to ACCEPT) and
   * the conntrack table (both families).
   */
  resetNetfilter(): Promise<void>;
  destroy(): Promise<void>;
}

let labCounter = 0;

/**
 * The kernel rate-limits ICMP errors per destination host (burst of 6, then 1/s), so a 7th quick
 * REJECT or UDP-closed-port probe would time out instead of being refused. Tests want determinism.
 * Per netns, for ICMP and ICMPv6; the global icmp_msgs_per_sec bucket (1000/s, burst 50) still applies.
 */
const NO_ICMP_RATE_LIMIT = { 'net.ipv4.icmp_ratelimit': '0', 'net.ipv6.icmp.ratelimit': '0' } as const;

interface PodState {
  pod: Pod;
  spec: PodSpec;
  server: EchoServer | undefined;
}

class LabImpl implements Lab {
  readonly nodeNs: string;
  readonly nodeIP: string;
  readonly nodeIP6: string;
  private readonly prefix: string;
  private readonly podStates = new Map<string, PodState>();
  /** Every namespace we created and have not deleted yet, for destroy() and the exit hook. */
  private readonly namespaces = new Set<string>();
  private vethCounter = 0;
  private destroying: Promise<void> | undefined;
  private readonly exitHook = (): void => this.destroySync();

  constructor(prefix: string, nodeIP: string, nodeIP6: string) {
    this.prefix = prefix;
    this.nodeNs = `${prefix}-node`;
    this.nodeIP = nodeIP;
    this.nodeIP6 = nodeIP6;
    // Last resort if the runner exits without afterAll: kill servers and drop namespaces synchronously.
    process.once('exit', this.exitHook);
  }

  get pods(): ReadonlyMap<string, Pod> {
    return new Map([...this.podStates].map(([k, v]) => [k, v.pod]));
  }

  async init(): Promise<void> {
    await addNamespace(this.nodeNs);
    this.namespaces.add(this.nodeNs);
    // Before any interface is added: eth0 and the host veths copy the namespace's IPv6 defaults.
    await sysctls(this.nodeNs, { ...ipv6Sysctls({ forwarding: true }), 'net.ipv4.ip_forward': '1', ...NO_ICMP_RATE_LIMIT });
    await addBlackholeUplink(this.nodeNs, `${this.nodeIP}/24`, `${this.nodeIP6}/64`);
  }

  private ensureAlive(): void {
    if (this.destroying !== undefined) throw new Error(`lab ${this.prefix} has been destroyed`);
  }

  private state(name: string): PodState {
    const s = this.podStates.get(name);
    if (s === undefined) throw new Error(`lab ${this.prefix}: no pod named ${name}`);
    return s;
  }

  private nsOf(where: Where): string {
    return where === 'node' ? this.nodeNs : this.state(where).pod.ns;
  }

  async addPod(spec: PodSpec): Promise<Pod> {
    this.ensureAlive();
    if (!/^[a-z0-9][a-z0-9-]*$/.test(spec.name) || spec.name === 'node') {
      throw new Error(`bad pod name ${JSON.stringify(spec.name)} (lowercase alnum/dash, not "node")`);
    }
    if (this.podStates.has(spec.name)) throw new Error(`pod ${spec.name} already exists`);
    if (!isIPv4(spec.ip)) throw new Error(`pod ${spec.name}: ${spec.ip} is not an IPv4 address`);
    if (spec.ip6 !== undefined && !isIPv6(spec.ip6)) throw new Error(`pod ${spec.name}: ${spec.ip6} is not an IPv6 address`);
    const ip6 = spec.ip6 === undefined ? mirrorIPv6(spec.ip) : canonicalIPv6(spec.ip6);

    const ns = `${this.prefix}-${spec.name}`;
    // Interface names are limited to 15 chars; the counter keeps truncated names unique.
    const hostVeth = `v${++this.vethCounter}${spec.name.replace(/-/g, '')}`.slice(0, 15);
    const pod: Pod = { name: spec.name, ns, ip: spec.ip, ip6, hostVeth };
    const st: PodState = { pod, spec, server: undefined };
    await addNamespace(ns);
    this.namespaces.add(ns);
    this.podStates.set(spec.name, st);
    // Before wirePod: the pod's eth0 is born in this namespace and copies its IPv6 defaults (no DAD).
    await sysctls(ns, { ...ipv6Sysctls({ forwarding: false }), ...NO_ICMP_RATE_LIMIT });
    await wirePod({
      nodeNs: this.nodeNs,
      podNs: ns,
      hostVeth,
      nodeIP: this.nodeIP,
      nodeIP6: this.nodeIP6,
      podIP: spec.ip,
      podIP6: ip6,
    });
    await this.startPodServer(spec.name);
    return pod;
  }

  async removePod(name: string): Promise<void> {
    const st = this.state(name);
    await this.stopPodServer(name);
    // Deleting the pod ns destroys its veth end, which takes the host end and its /32 route with it.
    await deleteNamespace(st.pod.ns);
    this.namespaces.delete(st.pod.ns);
    this.podStates.delete(name);
  }

  async stopPodServer(name: string): Promise<void> {
    const st = this.state(name);
    const server = st.server;
    st.server = undefined;
    await server?.stop();
  }

  async startPodServer(name: string): Promise<void> {
    this.ensureAlive();
    const st = this.state(name);
    if (st.server !== undefined) throw new Error(`pod ${name}: echo server already running`);
    st.server = await startEchoServer({
      ns: st.pod.ns,
      name,
      tcpPorts: st.spec.tcpPorts ?? [],
      udpPorts: st.spec.udpPorts ?? [],
      holdMs: st.spec.holdMs ?? 0,
    });
  }

  exec(where: Where, cmd: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
    return runIn(this.nsOf(where), cmd, args, opts);
  }

  probe(from: Where, target: ProbeTarget): Promise<ProbeResult[]> {
    return probeFrom(this.nsOf(from), target);
  }

  iptablesSave(table?: IptablesTable): Promise<string> {
    return iptablesSave(this.nodeNs, table);
  }

  ip6tablesSave(table?: IptablesTable): Promise<string> {
    return iptablesSave(this.nodeNs, table, 'ipv6');
  }

  iptablesRestore(rules: string, opts: { noflush?: boolean } = {}): Promise<void> {
    return iptablesRestore(this.nodeNs, rules, opts);
  }

  ip6tablesRestore(rules: string, opts: { noflush?: boolean } = {}): Promise<void> {
    return iptablesRestore(this.nodeNs, rules, opts, 'ipv6');
  }

  async resetNetfilter(): Promise<void> {
    const families: IptablesFamily[] = ['ipv4', 'ipv6'];
    await Promise.all(families.map((f) => iptablesRestore(this.nodeNs, emptyTablesRules(), { noflush: false }, f)));
    // Old NAT bindings would otherwise keep steering reused tuples. Without -f, conntrack -F empties both
    // families (lab.test checks that IPv6 entries go too).
    await runIn(this.nodeNs, 'conntrack', ['-F'], { reject: false });
  }

  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: unknown[] = [];
    await Promise.all(
      [...this.podStates.values()].map(async (st) => {
        const server = st.server;
        st.server = undefined;
        await server?.stop().catch((e: unknown) => errors.push(e));
      }),
    );
    // Pods first, node last; deleteNamespace also kills anything else still running inside.
    const order = [...this.namespaces].filter((n) => n !== this.nodeNs);
    if (this.namespaces.has(this.nodeNs)) order.push(this.nodeNs);
    for (const ns of order) {
      try {
        await deleteNamespace(ns);
        this.namespaces.delete(ns);
      } catch (e) {
        errors.push(e);
      }
    }
    this.podStates.clear();
    process.off('exit', this.exitHook);
    if (errors.length > 0) {
      throw new AggregateError(errors, `lab ${this.prefix}: destroy incomplete`);
    }
  }

  private destroySync(): void {
    for (const ns of this.namespaces) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split(/\s+/).filter((p) => p !== '')) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    this.namespaces.clear();
  }
}

/** Builds a dual-stack node namespace (`sbt<pid>-<n>-node`) ready for pods. Call `destroy()` when done. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const nodeIP = opts.nodeIP ?? '10.0.0.10';
  if (!isIPv4(nodeIP)) throw new Error(`nodeIP ${nodeIP} is not an IPv4 address`);
  if (opts.nodeIP6 !== undefined && !isIPv6(opts.nodeIP6)) throw new Error(`nodeIP6 ${opts.nodeIP6} is not an IPv6 address`);
  const nodeIP6 = opts.nodeIP6 === undefined ? mirrorIPv6(nodeIP) : canonicalIPv6(opts.nodeIP6);
  const lab = new LabImpl(`sbt${process.pid}-${++labCounter}`, nodeIP, nodeIP6);
  try {
    await lab.init();
  } catch (e) {
    await lab.destroy().catch(() => undefined);
    throw e;
  }
  return lab;
}

/** Runs `fn` with a fresh lab and always destroys it afterwards. */
export async function withLab<T>(fn: (lab: Lab) => Promise<T>, opts: LabOptions = {}): Promise<T> {
  const lab = await createLab(opts);
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}
