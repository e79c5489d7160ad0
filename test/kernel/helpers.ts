// Shared helpers for the real-kernel packet tests: input files, `compile --apply` inside the lab's
// node namespace, probe-result summaries and an iptables-save parser.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPTABLES_LAYOUTS, type IptablesLayout } from '../../src/backends/iptables/options.js';
import type { RulesByChain } from '../support/iptables-text.js';
import { list, type K8sObject } from '../support/objects.js';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { type ExecResult, type Lab, type PodSpec, type ProbeResult, createLab, requireKernelTestPrereqs } from './lab/index.js';

export const NODE_NAME = 'node-a';
export const REMOTE_NODE = 'node-b';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const NODE_IP = '10.0.0.10';
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** The tests drive the built CLI: a missing build must fail loudly, not test a stale or absent binary. */
export function requireBuiltCli(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the kernel tests`);
}

/** A private temp dir for input files; `cleanup()` removes it. */
export class TempFiles {
  private counter = 0;
  private constructor(readonly dir: string) {}

  static async create(): Promise<TempFiles> {
    return new TempFiles(await mkdtemp(join(tmpdir(), 'switchboard-kernel-')));
  }

  /** Writes the objects as a `kind: List` and returns the path. */
  async write(objects: readonly K8sObject[], name?: string): Promise<string> {
    return this.writeText(list(objects), name ?? `objects-${++this.counter}.json`);
  }

  async writeText(text: string, name: string): Promise<string> {
    const path = join(this.dir, name);
    await writeFile(path, text, 'utf8');
    return path;
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface CompileFlags {
  /** Default CLUSTER_CIDR; null leaves the flag out. */
  clusterCidr?: string | null;
  masqueradeAll?: boolean;
  nodeName?: string;
  /** --iptables-layout; left out (the CLI's default, kube-proxy) when undefined. */
  layout?: IptablesLayout;
  /** --backend; left out (the CLI's default, iptables) when undefined. */
  backend?: KernelBackend;
  /** --node-ip; left out when undefined. */
  nodeIp?: string;
  /** --nodeport-addresses; left out when undefined. */
  nodePortAddresses?: string;
  /** --iptables-localhost-nodeports; left out when undefined. */
  localhostNodePorts?: boolean;
}

/** Every iptables layout: the packet-level suites run once per layout, as the README promises the same behaviour. */
export const LAYOUTS: readonly IptablesLayout[] = IPTABLES_LAYOUTS;

/**
 * The backend the packet-level suites drive: iptables on the host; `ipvs` when the IPVS tests run the same
 * suites inside the QEMU guest (test/vm), whose kernel has IPVS.
 */
export const KERNEL_BACKEND: 'iptables' | 'ipvs' = process.env['SWITCHBOARD_KERNEL_BACKEND'] === 'ipvs' ? 'ipvs' : 'iptables';

export type KernelBackend = 'iptables' | 'ipvs' | 'nftables';

/** One way of programming the node that the packet-level suites must see behave the same. */
export interface Flavour {
  readonly name: string;
  readonly backend: KernelBackend;
  /** The compile flags that select it. */
  readonly flags: CompileFlags;
}

export const FLAVOURS: readonly Flavour[] =
  KERNEL_BACKEND === 'ipvs'
    ? [{ name: 'ipvs backend', backend: 'ipvs', flags: { backend: 'ipvs' } }]
    : [
        ...LAYOUTS.map((layout): Flavour => ({ name: `iptables, ${layout} layout`, backend: 'iptables', flags: { layout } })),
        // The host kernel has nf_tables, so the nftables backend runs here with the iptables flavours.
        { name: 'nftables backend', backend: 'nftables', flags: { backend: 'nftables' } },
      ];

export function compileArgs(files: readonly string[], flags: CompileFlags = {}): string[] {
  const args = [CLI, 'compile', '--apply', '--node-name', flags.nodeName ?? NODE_NAME];
  for (const f of files) args.push('-f', f);
  const cidr = flags.clusterCidr === undefined ? CLUSTER_CIDR : flags.clusterCidr;
  if (cidr !== null) args.push('--cluster-cidr', cidr);
  if (flags.masqueradeAll === true) args.push('--masquerade-all');
  if (flags.layout !== undefined) args.push('--iptables-layout', flags.layout);
  if (flags.backend !== undefined) args.push('--backend', flags.backend);
  if (flags.nodeIp !== undefined) args.push('--node-ip', flags.nodeIp);
  if (flags.nodePortAddresses !== undefined) args.push('--nodeport-addresses', flags.nodePortAddresses);
  if (flags.localhostNodePorts !== undefined) args.push(`--iptables-localhost-nodeports=${String(flags.localhostNodePorts)}`);
  return args;
}

/** `switchboard compile --apply` run INSIDE the lab's node namespace; never throws on a non-zero exit. */
export function compileApply(lab: Lab, files: string | readonly string[], flags: CompileFlags = {}): Promise<ExecResult> {
  const paths = typeof files === 'string' ? [files] : files;
  return lab.exec('node', process.execPath, compileArgs(paths, flags), { reject: false });
}

/** Writes `objects`, applies them and insists on exit 0; flushes conntrack so old NAT bindings cannot steer probes. */
export async function applyObjects(
  lab: Lab,
  files: TempFiles,
  objects: readonly K8sObject[],
  flags: CompileFlags = {},
): Promise<ExecResult> {
  const path = await files.write(objects);
  const r = await compileApply(lab, path, flags);
  if (r.exitCode !== 0) {
    throw new Error(`compile --apply exited ${String(r.exitCode)}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`);
  }
  await flushConntrack(lab);
  return r;
}

export async function flushConntrack(lab: Lab): Promise<void> {
  await lab.exec('node', 'conntrack', ['-F'], { reject: false });
}

/** The pod names that answered; throws (with every result) if any probe failed. */
export function podsHit(results: readonly ProbeResult[]): string[] {
  return results.map((r) => {
    if (!r.ok) throw new Error(`probe failed: ${r.error} (all: ${JSON.stringify(results)})`);
    return r.reply.pod;
  });
}

/** `ok:<pod>` or the error, per probe. */
export function outcomes(results: readonly ProbeResult[]): string[] {
  return results.map((r) => (r.ok ? `ok:${r.reply.pod}` : r.error));
}

export function tally(items: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[i] = (out[i] ?? 0) + 1;
  return out;
}

export function chainsOf(dump: RulesByChain, table: string): Map<string, string[]> {
  return dump.get(table) ?? new Map<string, string[]>();
}

/** Per-service chains (not the shared KUBE-SERVICES) with a rule containing `needle`. */
export function chainsMentioning(dump: RulesByChain, table: string, needle: string): string[] {
  return [...chainsOf(dump, table)]
    .filter(([name, rules]) => name !== 'KUBE-SERVICES' && rules.some((r) => r.includes(needle)))
    .map(([name]) => name)
    .sort();
}

/** Does any line of the dump (declaration, rule or jump target) name this chain? */
export function mentionsChain(saveText: string, chain: string): boolean {
  return new RegExp(`(^:${chain} )|(^-A ${chain} )|(-[jg] ${chain}( |$))`, 'm').test(saveText);
}

/** The raw (un-normalised) iptables-save (ip6tables-save for ipv6) of the node namespace, as the CLI reads it. */
export async function rawSave(lab: Lab, family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<string> {
  return (await lab.exec('node', family === 'ipv4' ? 'iptables-save' : 'ip6tables-save', [])).stdout;
}

/** The members of the flat layout's KUBE-LOOP-BACK ipset in the node namespace, sorted; [] without the set. */
export async function loopBackMembers(lab: Lab): Promise<string[]> {
  const r = await lab.exec('node', 'ipset', ['list', 'KUBE-LOOP-BACK'], { reject: false });
  return (r.stdout.split('Members:')[1] ?? '').trim().split('\n').filter((l) => l !== '').sort();
}

/** The nftables families of our tables: `ip kube-proxy` for IPv4 Services and `ip6 kube-proxy` for IPv6 ones, as kube-proxy. */
export type NftFamily = 'ip' | 'ip6';

/** Our nftables table of `family` (default ip) as `nft list table` prints it in the node namespace; '' without the table. */
export async function nftTable(lab: Lab, family: NftFamily = 'ip'): Promise<string> {
  const r = await lab.exec('node', 'nft', ['list', 'table', family, 'kube-proxy'], { reject: false });
  return r.exitCode === 0 ? r.stdout : '';
}

/** Removes the nftables backend's tables (ip and ip6) from the node namespace, in one transaction; a no-op without them. */
export async function resetNftables(lab: Lab): Promise<void> {
  // Adding a table that exists is a no-op, so add-then-delete removes it whether or not it was there.
  const input = (['ip', 'ip6'] as const).map((f) => `table ${f} kube-proxy\ndelete table ${f} kube-proxy\n`).join('');
  await lab.exec('node', 'nft', ['-f', '-'], { input });
}

/** IPVS mode's state in the node namespace (after resetNetfilter, so no rule names a set any more). */
export async function resetIpvs(lab: Lab): Promise<void> {
  await lab.exec('node', 'ipvsadm', ['-C']);
  await lab.exec('node', 'ip', ['link', 'del', 'kube-ipvs0'], { reject: false });
  await lab.exec('node', 'ipset', ['destroy'], { reject: false });
}

/** `ipvsadm -S -n` in the node namespace: the IPVS table as restore lines, sorted. */
export async function ipvsTable(lab: Lab): Promise<string[]> {
  return (await lab.exec('node', 'ipvsadm', ['-S', '-n'])).stdout.split('\n').filter((l) => l !== '').sort();
}

/** The addresses (CIDR form) on kube-ipvs0, sorted; [] without the device. */
export async function boundAddresses(lab: Lab): Promise<string[]> {
  const r = await lab.exec('node', 'ip', ['-o', 'address', 'show', 'dev', 'kube-ipvs0'], { reject: false });
  return [...r.stdout.matchAll(/ inet6? (\S+)/g)].map((m) => m[1]!).sort();
}

/** What IPVS mode programmed besides iptables: the IPVS table, the sets and kube-ipvs0's addresses. */
export async function ipvsState(lab: Lab): Promise<string> {
  const sets = (await lab.exec('node', 'ipset', ['save'])).stdout.split('\n').sort();
  return [...(await ipvsTable(lab)), '', ...sets, '', ...(await boundAddresses(lab))].join('\n');
}

/** The lab and temp dir of one kernel test file; valid inside tests, after the suite's beforeAll ran. */
export interface KernelLab {
  lab: Lab;
  files: TempFiles;
}

/**
 * Registers the lifecycle every kernel test file shares: prerequisites checked loudly, one lab with these
 * pods, netfilter reset before each test, and the lab and temp files removed afterwards even on failure.
 */
export function useKernelLab(pods: readonly PodSpec[]): KernelLab {
  const ctx = {} as KernelLab;
  beforeAll(async () => {
    requireKernelTestPrereqs();
    requireBuiltCli();
    ctx.files = await TempFiles.create();
    ctx.lab = await createLab();
    await Promise.all(pods.map((pod) => ctx.lab.addPod(pod)));
  });
  afterAll(async () => {
    try {
      await ctx.lab?.destroy();
    } finally {
      await ctx.files?.cleanup();
    }
  });
  beforeEach(async () => {
    await ctx.lab.resetNetfilter();
    if (KERNEL_BACKEND === 'ipvs') await resetIpvs(ctx.lab);
    else await resetNftables(ctx.lab);
  });
  return ctx;
}
