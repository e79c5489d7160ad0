// Kernel benchmark (`npm run bench -- --kernel`, root): what applying costs in a real kernel at 1,000 / 5,000 /
// 10,000 Services x 10 endpoints, for Switchboard's iptables backend and, as the baseline, a kube-proxy-shaped
// payload applied the kube-proxy way (one `iptables-restore --noflush` per sync, a full sync in one COMMIT, a
// partial sync rewriting every fixed chain including KUBE-SERVICES). Each run happens in a throw-away network
// namespace (a worker process started with `ip netns exec`). Numbers, not asserts.
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { defaultIptablesOptions, type IptablesOptions, maxChainsPerTransaction } from '../../src/backends/iptables/options.js';
import { FIXED_CHAINS, type Table } from '../../src/backends/shared/iptables-fixed.js';
import { iptablesCommands } from '../../src/kernel/iptables.js';
import type { IptablesMode } from '../../src/kernel/iptables-mode.js';
import { EMPTY_LIVE_RULES } from '../../src/kernel/syntax/iptables-save.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { normalizeService } from '../../src/model/service.js';
import type { ClusterState } from '../../src/model/state.js';
import { type JsonObject } from '../../src/model/fields.js';
import { loadObjects } from '../../src/sources/objects.js';
import { KernelApplier, syncBackend } from '../../src/sync/applier.js';
import { addNamespace, deleteNamespace, sweepStaleLabs } from '../kernel/lab/netns.js';
import { endpointSlice, service, syntheticCluster, type K8sObject } from '../support/objects.js';
import { flagValue } from './args.js';

/** Our two iptables layouts (see --iptables-layout), and the kube-proxy-shaped baseline. */
export type Flavour = 'switchboard' | 'switchboard-flat' | 'kube-proxy';
const FLAVOURS: readonly Flavour[] = ['switchboard', 'switchboard-flat', 'kube-proxy'];
export type Step = 'cold' | 'restart' | 'endpoint' | 'add' | 'delete';
const STEPS: readonly Step[] = ['cold', 'restart', 'endpoint', 'add', 'delete'];

interface WorkerConfig {
  readonly flavour: Flavour;
  readonly mode: IptablesMode;
  readonly services: number;
  readonly endpoints: number;
  readonly rounds: number;
  /** A baseline restore still running after this is stopped and reported as "> cap". */
  readonly capMs: number;
}

/** One step's outcome: the median wall time of the apply (null when it hit the cap) and the payload size. */
export interface StepResult {
  readonly step: Step;
  readonly ms: number | null;
  readonly bytes: number;
  readonly samples: readonly number[];
  readonly note?: string;
}

export interface RunResult {
  readonly flavour: Flavour;
  readonly mode: IptablesMode;
  readonly services: number;
  readonly endpoints: number;
  readonly capMs: number;
  readonly steps: readonly StepResult[];
  readonly peakRssMB: number;
  readonly error?: string;
}

const NODE = 'node-1';
const CLUSTER_CIDR = '10.128.0.0/9';
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// --- the worker: runs inside the namespace ------------------------------------------------------------------

function must<T>(r: { status: 'ok'; value: T } | { status: string }, what: string): T {
  if (r.status !== 'ok' || !('value' in r)) throw new Error(`bench object invalid: ${what}`);
  return r.value as T;
}

/** The i-th synthetic Service's slice with its first endpoint moved to a fresh IP (one endpoint changed). */
function changedSlice(i: number, round: number, endpoints: number): K8sObject {
  const eps = [];
  for (let e = 0; e < endpoints; e++) {
    const n = i * endpoints + e;
    const ip = e === 0 ? `10.127.${(round >> 8) & 255}.${round & 255}` : `10.${128 + ((n >> 16) & 127)}.${(n >> 8) & 255}.${n & 255}`;
    eps.push({ ip, nodeName: `node-${n % 50}` });
  }
  return endpointSlice({ namespace: `ns${i % 100}`, name: `svc${i}-abcde`, service: `svc${i}`, ports: [{ name: 'http', port: 8080 }], endpoints: eps });
}

function extraService(round: number, endpoints: number): { svc: K8sObject; slice: K8sObject } {
  const name = `extra${round}`;
  const eps = Array.from({ length: endpoints }, (_, e) => ({ ip: `10.126.${round & 255}.${e + 1}` }));
  return {
    svc: service({ namespace: 'bench', name, clusterIP: `10.95.${(round >> 8) & 255}.${round & 255}`, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    slice: endpointSlice({ namespace: 'bench', name: `${name}-x`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints: eps }),
  };
}

/** The changes every flavour goes through after the two full syncs, in order. */
function* changes(cfg: WorkerConfig, state: ClusterState): Generator<Step> {
  for (let r = 1; r <= cfg.rounds; r++) {
    const i = (r * 7919) % cfg.services;
    state.setSlice(must(normalizeEndpointSlice(changedSlice(i, r, cfg.endpoints) as JsonObject), 'slice'));
    yield 'endpoint';
  }
  for (let r = 1; r <= cfg.rounds; r++) {
    const { svc, slice } = extraService(r, cfg.endpoints);
    const s = must(normalizeService(svc as JsonObject), 'service');
    state.setService(s);
    state.setSlice(must(normalizeEndpointSlice(slice as JsonObject), 'slice'));
    yield 'add';
    state.deleteSlice('bench', `extra${r}-x`);
    state.deleteService(s.key);
    yield 'delete';
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

function emit(r: StepResult): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

function collect(steps: Map<Step, { samples: number[]; bytes: number }>, step: Step, ms: number, bytes: number): void {
  const s = steps.get(step) ?? { samples: [], bytes: 0 };
  s.samples.push(ms);
  s.bytes = bytes;
  steps.set(step, s);
}

function options(cfg: WorkerConfig): IptablesOptions {
  return defaultIptablesOptions({
    clusterCidr: CLUSTER_CIDR,
    // The agent's own choice for the mode; kube-proxy always writes one transaction.
    maxChainsPerTransaction: cfg.flavour === 'kube-proxy' ? Infinity : maxChainsPerTransaction(cfg.mode),
    layout: cfg.flavour === 'switchboard-flat' ? 'flat' : 'kube-proxy',
  });
}

/** The synthetic cluster of this run, loaded as the agent holds it. */
function syntheticState(cfg: WorkerConfig): ClusterState {
  const objects = syntheticCluster(cfg.services, cfg.endpoints);
  return loadObjects(objects.map((object, i) => ({ source: 'bench', location: `${i}`, object: object as JsonObject })), NODE).state;
}

async function switchboardWorker(cfg: WorkerConfig): Promise<void> {
  const kernel = { applier: new KernelApplier(), readKernel: true };
  const tools = iptablesCommands(cfg.mode, 'IPv4');
  const state = syntheticState(cfg);
  const all = [...state.takeChanges()];
  for (const step of ['cold', 'restart'] as const) {
    // A new backend each time, as a (re)started agent: it reads what the kernel holds and syncs over it.
    const backend = new IptablesBackend(options(cfg), tools);
    backend.update(state, all);
    const { ms, value } = await timed(() => syncBackend(backend, true, kernel));
    emit({ step, ms, bytes: value.bytes, samples: [ms] });
    if (step === 'restart') {
      const steps = new Map<Step, { samples: number[]; bytes: number }>();
      for (const s of changes(cfg, state)) {
        backend.update(state, state.takeChanges());
        const r = await timed(() => syncBackend(backend, false, kernel));
        collect(steps, s, r.ms, r.value.bytes);
      }
      for (const [s, { samples, bytes }] of steps) emit({ step: s, ms: median(samples), bytes, samples });
    }
  }
}

type Chains = Map<string, Map<string, string[]>>;

/** table -> chain -> rules of a one-COMMIT-per-table full payload (chains declared with `:` only). */
function parseFull(text: string): Chains {
  const out: Chains = new Map();
  let table: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = new Map();
      out.set(line.slice(1), table);
    } else if (line.startsWith(':')) table?.set(line.slice(1).split(' ')[0]!, []);
    else if (line.startsWith('-A ')) table?.get(line.split(' ', 2)[1]!)?.push(line);
  }
  return out;
}

/**
 * kube-proxy's partial sync (1.27+) from the full payloads before and after a change: every fixed chain declared
 * and rewritten (KUBE-SERVICES with all its rules), changed and new per-service chains declared and written,
 * vanished ones declared and deleted.
 */
export function kubeProxyPartial(before: Chains, after: Chains): string {
  const out: string[] = [];
  for (const [table, chains] of after) {
    const fixed = new Set<string>(FIXED_CHAINS[table as Table] ?? []);
    const prev = before.get(table) ?? new Map<string, string[]>();
    const write = [...chains].filter(([name, rules]) => fixed.has(name) || prev.get(name)?.join('\n') !== rules.join('\n'));
    const gone = [...prev.keys()].filter((c) => !chains.has(c));
    out.push(`*${table}`, ...write.map(([n]) => `:${n} - [0:0]`), ...gone.map((n) => `:${n} - [0:0]`));
    for (const [, rules] of write) out.push(...rules);
    out.push(...gone.map((n) => `-X ${n}`), 'COMMIT');
  }
  return `${out.join('\n')}\n`;
}

async function kubeProxyWorker(cfg: WorkerConfig): Promise<void> {
  const { restore } = iptablesCommands(cfg.mode, 'IPv4');
  const state = syntheticState(cfg);
  const compiler = new IptablesCompiler(options(cfg));
  compiler.update(state, state.takeChanges());
  const fullText = (): string => {
    const plan = compiler.planFull(EMPTY_LIVE_RULES);
    plan.commit();
    return plan.payload.text;
  };
  /** Wall time of one kube-proxy-style restore, or null when it was still running at the cap. */
  const apply = async (text: string): Promise<number | null> => {
    const t = performance.now();
    const r = await execa(restore, ['-w', '5', '--noflush', '--counters'], { input: text, timeout: cfg.capMs, reject: false });
    if (r.timedOut) return null;
    if (r.exitCode !== 0) throw new Error(`${restore} failed: ${r.stderr}`);
    return performance.now() - t;
  };
  let text = fullText();
  for (const step of ['cold', 'restart'] as const) {
    const ms = await apply(text);
    emit({ step, ms, bytes: text.length, samples: ms === null ? [] : [ms], ...(ms === null ? { note: `stopped at the ${cfg.capMs} ms cap` } : {}) });
    // The later steps need the full ruleset in the kernel.
    if (ms === null) return;
  }
  let before = parseFull(text);
  const steps = new Map<Step, { samples: number[]; bytes: number }>();
  for (const s of changes(cfg, state)) {
    compiler.update(state, state.takeChanges());
    text = fullText();
    const after = parseFull(text);
    const partial = kubeProxyPartial(before, after);
    before = after;
    const ms = await apply(partial);
    if (ms === null) throw new Error(`a ${s} restore hit the ${cfg.capMs} ms cap`);
    collect(steps, s, ms, partial.length);
  }
  for (const [s, { samples, bytes }] of steps) emit({ step: s, ms: median(samples), bytes, samples });
}

export async function worker(argv: readonly string[]): Promise<number> {
  const cfg = JSON.parse(argv[argv.indexOf('--worker') + 1]!) as WorkerConfig;
  await (cfg.flavour === 'kube-proxy' ? kubeProxyWorker(cfg) : switchboardWorker(cfg));
  process.stdout.write(`${JSON.stringify({ peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`);
  return 0;
}

// --- the parent: namespaces, workers, report ----------------------------------------------------------------

export interface KernelBenchOptions {
  readonly sizes: readonly number[];
  readonly endpoints: number;
  readonly rounds: number;
  readonly modes: readonly IptablesMode[];
  readonly flavours: readonly Flavour[];
  /** The baseline's cap is this many times Switchboard's own cold start (and at least minCapMs). */
  readonly capFactor: number;
  readonly minCapMs: number;
}


export function parseKernelBenchArgs(argv: readonly string[]): KernelBenchOptions {
  const list = (name: string, fallback: string) => (flagValue(argv, name) ?? fallback).split(',').map((s) => s.trim());
  const sizes = list('kernel-sizes', '1000,5000,10000').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--kernel-sizes: a comma-separated list of positive integers');
  const modes = list('kernel-modes', 'nft,legacy');
  for (const m of modes) if (m !== 'nft' && m !== 'legacy') throw new Error(`--kernel-modes: ${m} is not nft or legacy`);
  const flavours = list('kernel-flavours', FLAVOURS.join(','));
  for (const f of flavours) if (!(FLAVOURS as readonly string[]).includes(f)) throw new Error(`--kernel-flavours: ${f} is not one of ${FLAVOURS.join(', ')}`);
  return {
    sizes,
    endpoints: Number(flagValue(argv, 'kernel-endpoints') ?? 10),
    rounds: Number(flagValue(argv, 'kernel-rounds') ?? 5),
    modes: modes as IptablesMode[],
    flavours: flavours as Flavour[],
    capFactor: Number(flagValue(argv, 'kernel-cap-factor') ?? 12),
    minCapMs: 1000 * Number(flagValue(argv, 'kernel-min-cap') ?? 30),
  };
}

/** Runs one worker in a fresh namespace that is deleted afterwards, whatever happens. */
async function runInNamespace(entry: string, cfg: WorkerConfig, index: number): Promise<RunResult> {
  const ns = `sbt${process.pid}-kb${index}`;
  await addNamespace(ns);
  const steps: StepResult[] = [];
  let peakRssMB = 0;
  try {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, entry, '--worker', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = JSON.parse(buffered.slice(0, nl)) as StepResult | { peakRssMB: number };
        buffered = buffered.slice(nl + 1);
        if ('step' in line) {
          steps.push(line);
          console.error(`  ${cfg.mode} ${cfg.flavour} ${cfg.services}: ${line.step} ${line.ms === null ? `> ${cfg.capMs} ms (capped)` : `${line.ms.toFixed(0)} ms`}, ${line.bytes} bytes`);
        } else peakRssMB = line.peakRssMB;
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const base = { flavour: cfg.flavour, mode: cfg.mode, services: cfg.services, endpoints: cfg.endpoints, capMs: cfg.capMs, steps, peakRssMB };
    return code === 0 ? base : { ...base, error: `worker exited ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}` };
  } finally {
    await deleteNamespace(ns);
  }
}

async function modeAvailable(mode: IptablesMode): Promise<string | undefined> {
  const ns = `sbt${process.pid}-kbprobe`;
  await addNamespace(ns);
  try {
    const r = await execa('ip', ['netns', 'exec', ns, `iptables-${mode}`, '-t', 'nat', '-S'], { reject: false });
    return r.exitCode === 0 ? undefined : `iptables-${mode} does not work here: ${r.stderr || r.shortMessage}`;
  } finally {
    await deleteNamespace(ns);
  }
}

const fmtMs = (r: StepResult | undefined, capMs: number): string => {
  if (r === undefined) return '-';
  if (r.ms === null) return `> ${(capMs / 1000).toFixed(0)} s`;
  return r.ms >= 1000 ? `${(r.ms / 1000).toFixed(1)} s` : `${r.ms.toFixed(0)} ms`;
};
const fmtBytes = (n: number | undefined): string =>
  n === undefined ? '-' : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} kB` : `${n} B`;

export function formatTable(results: readonly RunResult[]): string {
  const head = ['mode', 'services', 'payload', 'cold start', 'restart', '1 endpoint', 'add 1 svc', 'delete 1 svc', 'bytes: full / endpoint / add / delete', 'peak RSS'];
  const rows = results.map((r) => {
    const s = (step: Step) => r.steps.find((x) => x.step === step);
    return [
      r.mode === 'nft' ? 'nf_tables' : 'legacy',
      String(r.services),
      { switchboard: 'Switchboard', 'switchboard-flat': 'Switchboard, flat layout', 'kube-proxy': 'kube-proxy-shaped' }[r.flavour],
      ...STEPS.map((step) => fmtMs(s(step), r.capMs)),
      [s('cold')?.bytes, s('endpoint')?.bytes, s('add')?.bytes, s('delete')?.bytes].map(fmtBytes).join(' / '),
      `${r.peakRssMB} MB${r.error ? ` (error: ${r.error})` : ''}`,
    ];
  });
  const lines = [head, head.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`);
  return lines.join('\n');
}

export async function main(argv: readonly string[], entry: string): Promise<number> {
  if (argv.includes('--worker')) return worker(argv);
  if (process.getuid?.() !== 0) {
    console.error('npm run bench -- --kernel needs root (it creates network namespaces and programs their netfilter tables)');
    return 2;
  }
  const opts = parseKernelBenchArgs(argv);
  await sweepStaleLabs();
  const results: RunResult[] = [];
  let index = 0;
  for (const mode of opts.modes) {
    const missing = await modeAvailable(mode);
    if (missing !== undefined) {
      console.error(`skipping ${mode}: ${missing}`);
      continue;
    }
    for (const services of opts.sizes) {
      let ourCold: number | undefined;
      for (const flavour of opts.flavours) {
        const capMs = Math.max(opts.minCapMs, ourCold === undefined ? 0 : ourCold * opts.capFactor);
        const cfg: WorkerConfig = { flavour, mode, services, endpoints: opts.endpoints, rounds: opts.rounds, capMs };
        const r = await runInNamespace(entry, cfg, index++);
        results.push(r);
        if (flavour === 'switchboard') ourCold = r.steps.find((s) => s.step === 'cold')?.ms ?? undefined;
      }
    }
  }
  console.log(`Kernel benchmark: services x ${opts.endpoints} endpoints, median of ${opts.rounds} changes per small step`);
  console.log(formatTable(results));
  console.log(JSON.stringify({ kernelBench: results.map(({ steps, ...r }) => ({ ...r, steps: steps.map(({ samples, ...s }) => s) })) }));
  return results.some((r) => r.error !== undefined) ? 1 : 0;
}
