import { spawnSync } from 'node:child_process';
import { isIPv4 } from 'node:net';
import {
  addBlackholeUplink,
  addNamespace,
  deleteNamespace,
  sysctl,
  wirePod,
} from './netns.js';
import { startEchoServer, type EchoServer } from './processes.js';
import { probeFrom, type ProbeResult, type ProbeTarget } from './probe.js';
import {
  emptyTablesRules,
  iptablesRestore,
  iptablesSave,
  type IptablesTable,
} from './iptables.js';
import { runIn, type ExecResult, type RunOptions } from './run.js';

export interface LabOptions {
  /** Node address on eth0 (a /24) and on every host-side veth (/32). Default 10.0.0.10. */
  nodeIP?: string;
}

export interface PodSpec {
  name: string;
  ip: string;
  tcpPorts?: number[];
  udpPorts?: number[];
  /** TCP connections stay open this long after the reply line (graceful-termination tests). */
  holdMs?: number;
}

export interface Pod {
  name: string;
  ns: string;
  ip: string;
  /** Host-side veth in the node namespace. */
  hostVeth: string;
}

/** 'node' or a pod name. */
export type Where = 'node' | string;

export interface Lab {
  readonly nodeNs: string;
  readonly nodeIP: string;
  readonly pods: ReadonlyMap<string, Pod>;
  addPod(spec: PodSpec): Promise<Pod>;
  removePod(name: string): Promise<void>;
  stopPodServer(name: string): Promise<void>;
  startPodServer(name: string): Promise<void>;
  exec(where: Where, cmd: string, args: string[], opts?: RunOptions): Promise<ExecResult>;
  probe(from: Where, target: ProbeTarget): Promise<ProbeResult[]>;
  iptablesSave(table?: IptablesTable): Promise<string>;
  /** iptables-restore in the node ns; `--noflush` unless `noflush: false`. */
  iptablesRestore(rules: string, opts?: { noflush?: boolean }): Promise<void>;
  /** Flushes filter/nat/mangle/raw in the node ns (policies back to ACCEPT) and the conntrack table. */
  resetNetfilter(): Promise<void>;
  destroy(): Promise<void>;
}

let labCounter = 0;

/**
 * The kernel rate-limits ICMP errors per destination host (burst of 6, then 1/s), so a 7th quick
 * REJECT or UDP-closed-port probe would time out instead of being refused. Tests want determinism.
 * Per netns; the global icmp_msgs_per_sec bucket (1000/s, burst 50) still applies.
 */
async function disableIcmpRateLimit(ns: string): Promise<void> {
  await sysctl(ns, 'net.ipv4.icmp_ratelimit', '0');
}

interface PodState {
  pod: Pod;
  spec: PodSpec;
  server: EchoServer | undefined;
}

class LabImpl implements Lab {
  readonly nodeNs: string;
  readonly nodeIP: string;
  private readonly prefix: string;
  private readonly podStates = new Map<string, PodState>();
  /** Every namespace we created and have not deleted yet, for destroy() and the exit hook. */
  private readonly namespaces = new Set<string>();
  private vethCounter = 0;
  private destroying: Promise<void> | undefined;
  private readonly exitHook = (): void => this.destroySync();

  constructor(prefix: string, nodeIP: string) {
    this.prefix = prefix;
    this.nodeNs = `${prefix}-node`;
    this.nodeIP = nodeIP;
    // Last resort if the runner exits without afterAll: kill servers and drop namespaces synchronously.
    process.once('exit', this.exitHook);
  }

  get pods(): ReadonlyMap<string, Pod> {
    return new Map([...this.podStates].map(([k, v]) => [k, v.pod]));
  }

  async init(): Promise<void> {
    await addNamespace(this.nodeNs);
    this.namespaces.add(this.nodeNs);
    await addBlackholeUplink(this.nodeNs, `${this.nodeIP}/24`);
    await sysctl(this.nodeNs, 'net.ipv4.ip_forward', '1');
    await disableIcmpRateLimit(this.nodeNs);
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

    const ns = `${this.prefix}-${spec.name}`;
    // Interface names are limited to 15 chars; the counter keeps truncated names unique.
    const hostVeth = `v${++this.vethCounter}${spec.name.replace(/-/g, '')}`.slice(0, 15);
    const pod: Pod = { name: spec.name, ns, ip: spec.ip, hostVeth };
    const st: PodState = { pod, spec, server: undefined };
    await addNamespace(ns);
    this.namespaces.add(ns);
    this.podStates.set(spec.name, st);
    await disableIcmpRateLimit(ns);
    await wirePod({ nodeNs: this.nodeNs, podNs: ns, hostVeth, nodeIP: this.nodeIP, podIP: spec.ip });
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

  iptablesRestore(rules: string, opts: { noflush?: boolean } = {}): Promise<void> {
    return iptablesRestore(this.nodeNs, rules, opts);
  }

  async resetNetfilter(): Promise<void> {
    await iptablesRestore(this.nodeNs, emptyTablesRules(), { noflush: false });
    // Old NAT bindings would otherwise keep steering reused tuples.
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

/** Builds a node namespace (`sbt<pid>-<n>-node`) ready for pods. Call `destroy()` when done. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const nodeIP = opts.nodeIP ?? '10.0.0.10';
  if (!isIPv4(nodeIP)) throw new Error(`nodeIP ${nodeIP} is not an IPv4 address`);
  const lab = new LabImpl(`sbt${process.pid}-${++labCounter}`, nodeIP);
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
