// Agent benchmark: the real `switchboard run` in a lab node namespace, fed by the wire-level test API server with
// N synthetic Services x M endpoints plus one probe Service whose EndpointSlice flips between two real pods.
// Measures network programming latency (EndpointSlice change at the API server -> first TCP connection through
// the ClusterIP answered by the new pod, seen by a persistent prober in a client pod), the agent's resident
// memory, and the time to the first full sync. Numbers, not asserts. Run by test/bench/bin/agent-bench.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { IPTABLES_MODE_ENV } from '../../src/kernel/iptables-mode.js';
import { IPTABLES_LAYOUTS, type IptablesLayout } from '../../src/backends/iptables/options.js';
import { Agent, ApiFixture } from '../kernel/agent-harness.js';
import { CLUSTER_CIDR, NODE_NAME, TempFiles } from '../kernel/helpers.js';
import { type Lab, createLab, emptyTablesRules, requireKernelTestPrereqs } from '../kernel/lab/index.js';
import { endpointSlice, service, syntheticCluster, type K8sObject } from '../support/objects.js';
import { flagValue } from './args.js';

export type Runtime = 'cli' | 'bundle';
export type ModeChoice = 'auto' | 'nft' | 'legacy';
export const BENCH_BACKENDS = ['iptables', 'nftables'] as const;
export type BenchBackend = (typeof BENCH_BACKENDS)[number];

export interface AgentBenchOptions {
  readonly sizes: readonly number[];
  readonly endpoints: number;
  readonly rounds: number;
  readonly runtimes: readonly Runtime[];
  /** `auto` lets the agent detect (nft on an empty node); otherwise SWITCHBOARD_IPTABLES_MODE is set for it. */
  readonly iptablesModes: readonly ModeChoice[];
  /** --iptables-layout for every agent run. */
  readonly layout: IptablesLayout;
  /** --backend for every agent run (iptables, or nftables: that one takes no layout and times no iptables tools). */
  readonly backend: BenchBackend;
  /** Agent start to first full sync; 10,000 Services may take a minute on a slow machine. */
  readonly initialSyncTimeoutMs: number;
  /** One flip must show in packets within this. */
  readonly flipTimeoutMs: number;
}

export interface Memory {
  readonly rssMB: number;
  readonly hwmMB: number;
}

export interface Round {
  readonly expect: string;
  /** Date.now() just before `server.apply(slice)`. */
  readonly appliedAt: number;
  /** `server.apply(slice)` to the first connection answered by `expect`. */
  readonly latencyMs: number;
  readonly attempts: number;
  /** Outcomes of the attempts before the new pod answered, e.g. {"ok:a": 120}. */
  readonly others: Readonly<Record<string, number>>;
  /** The sync the agent logged for this change (undefined if none was seen). */
  readonly sync: SyncRecord | undefined;
}

export interface SyncRecord {
  readonly full: boolean;
  readonly durationMs: number;
  readonly bytes: number | undefined;
  /** Wall-clock time of the log line (end of the sync), ms. */
  readonly loggedAt: number;
}

export interface ToolTiming {
  readonly what: string;
  readonly medianMs: number;
  readonly maxMs: number;
}

export interface RunResult {
  readonly runtime: Runtime;
  readonly layout: IptablesLayout;
  readonly backend: BenchBackend;
  readonly modeChoice: ModeChoice;
  readonly entry: string;
  readonly services: number;
  readonly endpointsPerService: number;
  readonly iptablesMode: string;
  /** Agent spawn to its "initial list complete" log line. */
  readonly initialListMs: number;
  /** Agent spawn to its first "full sync applied" log line. */
  readonly firstFullSyncMs: number;
  readonly firstFullSync: SyncRecord;
  readonly memoryAfterFullSync: Memory;
  readonly memoryAfterRounds: Memory;
  readonly rounds: readonly Round[];
  readonly tools: readonly ToolTiming[];
}

/** A run that could not finish (for example a first full sync slower than the timeout); the others still run. */
export interface RunFailure {
  readonly runtime: Runtime;
  readonly modeChoice: ModeChoice;
  readonly services: number;
  readonly error: string;
  /** The agent's memory when the run was given up, if it was still alive. */
  readonly memoryAtFailure: Memory | undefined;
}

export type RunOutcome = RunResult | RunFailure;

// --- arguments -------------------------------------------------------------------------------------------


function positiveInt(text: string, flag: string): number {
  const n = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag}: ${JSON.stringify(text)} is not a positive integer`);
  return n;
}

function parseLayout(text: string): IptablesLayout {
  const layout = IPTABLES_LAYOUTS.find((l) => l === text);
  if (layout === undefined) throw new Error(`--agent-layout: ${JSON.stringify(text)} is not one of ${IPTABLES_LAYOUTS.join(', ')}`);
  return layout;
}

/** Reads only the agent flags; the rest of `npm run bench`'s flags (--services, --rounds...) are the compile bench's. */
function parseBackend(text: string): BenchBackend {
  const backend = BENCH_BACKENDS.find((b) => b === text);
  if (backend === undefined) throw new Error(`--agent-backend: ${JSON.stringify(text)} is not one of ${BENCH_BACKENDS.join(', ')}`);
  return backend;
}

export function parseAgentBenchArgs(argv: readonly string[]): AgentBenchOptions {
  const sizes = (flagValue(argv, 'agent-sizes') ?? '1000,10000').split(',').map((s) => positiveInt(s.trim(), 'agent-sizes'));
  const runtimes = (flagValue(argv, 'agent-runtimes') ?? 'cli').split(',').map((r) => {
    const t = r.trim();
    if (t !== 'cli' && t !== 'bundle') throw new Error(`--agent-runtimes: ${JSON.stringify(t)} is not one of cli, bundle`);
    return t;
  });
  const modes = (flagValue(argv, 'agent-iptables-modes') ?? 'auto,legacy').split(',').map((m) => {
    const t = m.trim();
    if (t !== 'auto' && t !== 'nft' && t !== 'legacy') throw new Error(`--agent-iptables-modes: ${JSON.stringify(t)} is not one of auto, nft, legacy`);
    return t;
  });
  return {
    sizes,
    endpoints: positiveInt(flagValue(argv, 'agent-endpoints') ?? '10', 'agent-endpoints'),
    rounds: positiveInt(flagValue(argv, 'agent-rounds') ?? '20', 'agent-rounds'),
    runtimes,
    iptablesModes: modes,
    layout: parseLayout(flagValue(argv, 'agent-layout') ?? 'kube-proxy'),
    backend: parseBackend(flagValue(argv, 'agent-backend') ?? 'iptables'),
    // Generous for 10,000 Services in legacy mode (about 10 s here); nft's full restore is far slower (see the report).
    initialSyncTimeoutMs: 1000 * positiveInt(flagValue(argv, 'agent-initial-sync-timeout') ?? '180', 'agent-initial-sync-timeout'),
    flipTimeoutMs: 30_000,
  };
}

// --- small helpers ---------------------------------------------------------------------------------------

const root = fileURLToPath(new URL('../..', import.meta.url));
const PROBER = fileURLToPath(new URL('./bin/flip-prober.mjs', import.meta.url));
const ENTRIES: Record<Runtime, string> = { cli: `${root}dist/cli/main.js`, bundle: `${root}dist/switchboard.mjs` };

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' };
/** Outside syntheticCluster's 10.96.0.0-10.96.255.255 ClusterIPs. */
const PROBE_IP = '10.97.0.1';
const PROBE_NAME = 'bench-probe';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** VmRSS and VmHWM of a live process. */
export function readMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (m === null) throw new Error(`/proc/${pid}/status has no ${field} line`);
    return Number(m[1]);
  };
  return { rssMB: Math.round(kb('VmRSS') / 102.4) / 10, hwmMB: Math.round(kb('VmHWM') / 102.4) / 10 };
}

function probeService(): K8sObject {
  return service({ name: PROBE_NAME, clusterIP: PROBE_IP, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
}

function probeSlice(ip: string): K8sObject {
  return endpointSlice({ name: `${PROBE_NAME}-1`, service: PROBE_NAME, ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip }] });
}

/** The agent's JSON log lines, parsed incrementally (pino: `msg`, ISO `time`). */
class AgentLog {
  private parsed = 0;
  readonly records: Record<string, unknown>[] = [];
  constructor(private readonly agent: Agent) {}

  private refresh(): void {
    const lines = this.agent.lines;
    for (; this.parsed < lines.length; this.parsed++) {
      const line = lines[this.parsed]!;
      if (!line.startsWith('{')) continue;
      try {
        this.records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  }

  /** The first record from index `from` on that matches; throws on timeout or if the agent exits. */
  async waitFor(test: (r: Record<string, unknown>) => boolean, timeoutMs: number, what: string, exited: () => boolean, from = 0): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      this.refresh();
      for (; i < this.records.length; i++) if (test(this.records[i]!)) return this.records[i]!;
      if (exited()) throw new Error(`the agent exited while waiting for ${what}; last output:\n${this.agent.lines.slice(-8).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last output:\n${this.agent.lines.slice(-8).join('\n')}`);
      await sleep(5);
    }
  }

  get length(): number {
    this.refresh();
    return this.records.length;
  }
}

function timeOf(r: Record<string, unknown>): number {
  const t = r['time'];
  const ms = typeof t === 'string' ? Date.parse(t) : typeof t === 'number' ? t : Number.NaN;
  if (Number.isNaN(ms)) throw new Error(`agent log record without a usable time: ${JSON.stringify(r)}`);
  return ms;
}

function syncRecord(r: Record<string, unknown>): SyncRecord {
  return {
    full: r['msg'] === 'full sync applied',
    durationMs: typeof r['durationMs'] === 'number' ? r['durationMs'] : Number.NaN,
    bytes: typeof r['bytes'] === 'number' ? r['bytes'] : undefined,
    loggedAt: timeOf(r),
  };
}

const isSync = (r: Record<string, unknown>) => r['msg'] === 'full sync applied' || r['msg'] === 'partial sync applied';

/** The persistent prober (bin/flip-prober.mjs) in the client pod's namespace. */
class Prober {
  private readonly sub;
  private readonly messages: unknown[] = [];
  private buffered = '';
  private exited = false;
  private stderr = '';

  constructor(ns: string) {
    this.sub = execa('ip', ['netns', 'exec', ns, process.execPath, PROBER, '--ip', PROBE_IP, '--port', '80'], {
      buffer: false,
      reject: false,
      cleanup: true,
      stdin: 'pipe',
    });
    this.sub.stdout.setEncoding('utf8');
    this.sub.stderr.setEncoding('utf8');
    this.sub.stdout.on('data', (c: string) => {
      this.buffered += c;
      const parts = this.buffered.split('\n');
      this.buffered = parts.pop() ?? '';
      for (const p of parts) this.messages.push(JSON.parse(p) as unknown);
    });
    this.sub.stderr.on('data', (c: string) => {
      this.stderr = (this.stderr + c).slice(-4000);
    });
    void this.sub.then(() => {
      this.exited = true;
    });
  }

  async next(test: (m: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => typeof m === 'object' && m !== null && test(m as Record<string, unknown>));
      if (i >= 0) return this.messages.splice(i, 1)[0] as Record<string, unknown>;
      if (this.exited) throw new Error(`the prober exited while waiting for ${what}; stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`prober: timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${this.stderr}`);
      await sleep(1);
    }
  }

  async ready(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!this.messages.includes('ready')) {
      if (this.exited || Date.now() > deadline) throw new Error(`flip-prober did not start; stderr: ${this.stderr}`);
      await sleep(10);
    }
    this.messages.splice(this.messages.indexOf('ready'), 1);
  }

  send(msg: Record<string, unknown>): void {
    this.sub.stdin.write(`${JSON.stringify(msg)}\n`);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.sub.stdin.end();
    const timer = setTimeout(() => this.sub.kill('SIGKILL'), 2_000);
    await this.sub;
    clearTimeout(timer);
  }
}

// --- measurements ----------------------------------------------------------------------------------------

/** Runs a command in a lab namespace `reps` times; wall time includes `ip netns exec` and process start. */
async function timeTool(lab: Lab, where: string, what: string, cmd: string, args: string[], inputs: readonly (string | undefined)[]): Promise<ToolTiming> {
  const ms: number[] = [];
  for (const input of inputs) {
    const t = performance.now();
    const r = await lab.exec(where, cmd, args, { reject: false, timeout: 120_000, ...(input !== undefined ? { input } : {}) });
    ms.push(performance.now() - t);
    if (r.exitCode !== 0) throw new Error(`${what}: ${cmd} ${args.join(' ')} in ${where} exited ${String(r.exitCode)}: ${r.stderr}`);
  }
  return { what, medianMs: Math.round(percentile(ms, 50) * 10) / 10, maxMs: Math.round(Math.max(...ms) * 10) / 10 };
}

/** A tiny `--noflush` restore (create, then delete, a private nat chain), as the agent runs it, and iptables-save. */
async function toolTimings(lab: Lab, mode: string, services: number): Promise<ToolTiming[]> {
  const restore = mode === 'legacy' || mode === 'nft' ? `iptables-${mode}-restore` : 'iptables-restore';
  const save = mode === 'legacy' || mode === 'nft' ? `iptables-${mode}-save` : 'iptables-save';
  const args = ['-w', '5', '-W', '100000', '--noflush', '--counters'];
  const add = '*nat\n:SWITCHBOARD-BENCH - [0:0]\n-A SWITCHBOARD-BENCH -j RETURN\nCOMMIT\n';
  const del = '*nat\n:SWITCHBOARD-BENCH - [0:0]\n-X SWITCHBOARD-BENCH\nCOMMIT\n';
  const inputs = [add, del, add, del, add, del];
  return [
    await timeTool(lab, 'c', `tiny ${restore} --noflush, empty namespace`, restore, args, inputs),
    await timeTool(lab, 'node', `tiny ${restore} --noflush, node with ${services} services`, restore, args, inputs),
    await timeTool(lab, 'node', `${save} (whole ruleset), node with ${services} services`, save, [], [undefined, undefined, undefined]),
  ];
}

/**
 * lab.resetNetfilter() flushes the default (nft) tables only; rules a legacy run left would make the next `auto`
 * agent detect legacy (more rules), so legacy tables that exist are emptied too.
 */
async function resetBothModes(lab: Lab): Promise<void> {
  await lab.resetNetfilter();
  // And the nftables backend's table, which no iptables flush touches.
  await lab.exec('node', 'nft', ['delete', 'table', 'ip', 'kube-proxy'], { reject: false });
  const legacy = await lab.exec('node', 'iptables-legacy-save', [], { reject: false });
  if (legacy.exitCode === 0 && /^-/m.test(legacy.stdout)) {
    const r = await lab.exec('node', 'iptables-legacy-restore', [], { input: `${emptyTablesRules()}\n`, reject: false });
    if (r.exitCode !== 0) throw new Error(`emptying the legacy tables of ${lab.nodeNs} failed: ${r.stderr}`);
  }
}

function startAgent(lab: Lab, api: ApiFixture, entry: string, layout: IptablesLayout, backend: BenchBackend): Agent {
  return new Agent(lab.nodeNs, [
    entry,
    'run',
    '--backend',
    backend,
    '--iptables-layout',
    layout,
    '--kubeconfig',
    api.kubeconfigPath,
    '--node-name',
    NODE_NAME,
    '--cluster-cidr',
    CLUSTER_CIDR,
    '--min-sync-period',
    '0',
    // Long, so no periodic full sync lands inside the measurement.
    '--sync-period',
    '1h',
    // "partial sync applied" is a debug line.
    '--log-level',
    'debug',
  ]);
}

class RunError extends Error {
  constructor(
    message: string,
    readonly memory: Memory | undefined,
  ) {
    super(message);
  }
}

async function measureRun(lab: Lab, api: ApiFixture, runtime: Runtime, modeChoice: ModeChoice, services: number, opts: AgentBenchOptions, withTools: boolean): Promise<RunResult> {
  const entry = ENTRIES[runtime];
  await resetBothModes(lab);
  // The agent inherits the environment through `ip netns exec`.
  if (modeChoice === 'auto') delete process.env[IPTABLES_MODE_ENV];
  else process.env[IPTABLES_MODE_ENV] = modeChoice;
  // Each run starts from pod A, so the first flip goes to B.
  api.server.apply(probeSlice(A.ip));
  const started = Date.now();
  const agent = startAgent(lab, api, entry, opts.layout, opts.backend);
  let exited = false;
  void agent.exitCode.then(() => {
    exited = true;
  });
  const log = new AgentLog(agent);
  const isExited = () => exited;
  let prober: Prober | undefined;
  try {
    const pid = agent.pid;
    if (pid === undefined) throw new Error(`could not start the agent (${entry})`);
    const listed = await log.waitFor((r) => r['msg'] === 'initial list complete', opts.initialSyncTimeoutMs, 'the initial list', isExited);
    const first = await log.waitFor((r) => r['msg'] === 'full sync applied', opts.initialSyncTimeoutMs, 'the first full sync', isExited);
    // `ip netns exec` execs in place, so this is the agent's own pid; make sure before trusting /proc.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(entry)) throw new Error(`pid ${pid} is not the agent: ${cmdline.replace(/\0/g, ' ')}`);
    const memoryAfterFullSync = readMemory(pid);
    const modeRecord = log.records.find((r) => r['msg'] === 'iptables mode chosen');
    const iptablesMode = typeof modeRecord?.['mode'] === 'string' ? modeRecord['mode'] : 'unknown';

    prober = new Prober(lab.pods.get(C.name)?.ns ?? '');
    await prober.ready();
    const rounds: Round[] = [];
    for (let i = 1; i <= opts.rounds; i++) {
      const target = i % 2 === 1 ? B : A;
      prober.send({ cmd: 'flip', id: i, expect: target.name, giveUpMs: opts.flipTimeoutMs });
      const armed = await prober.next((m) => m['id'] === i, 15_000, `flip ${i} to be armed`);
      if (armed['armed'] !== true) throw new Error(`flip ${i} (to ${target.name}): ${String(armed['error'])}`);
      const logFrom = log.length;
      const t0 = Date.now();
      api.server.apply(probeSlice(target.ip));
      const seen = await prober.next((m) => m['id'] === i, opts.flipTimeoutMs + 5_000, `flip ${i} to ${target.name}`);
      if (typeof seen['at'] !== 'number') throw new Error(`flip ${i} (to ${target.name}): ${String(seen['error'])} ${JSON.stringify(seen['others'])}`);
      const syncLine = await log.waitFor(isSync, 5_000, `the agent's sync log line for flip ${i}`, isExited, logFrom).catch(() => undefined);
      rounds.push({
        expect: target.name,
        appliedAt: t0,
        latencyMs: seen['at'] - t0,
        attempts: typeof seen['attempts'] === 'number' ? seen['attempts'] : 0,
        others: (seen['others'] ?? {}) as Record<string, number>,
        sync: syncLine === undefined ? undefined : syncRecord(syncLine),
      });
    }
    await prober.stop();
    prober = undefined;
    const memoryAfterRounds = readMemory(pid);
    const tools = withTools && opts.backend === 'iptables' ? await toolTimings(lab, iptablesMode, services) : [];
    return {
      layout: opts.layout,
      backend: opts.backend,
      runtime,
      modeChoice,
      entry,
      services,
      endpointsPerService: opts.endpoints,
      iptablesMode,
      initialListMs: timeOf(listed) - started,
      firstFullSyncMs: timeOf(first) - started,
      firstFullSync: syncRecord(first),
      memoryAfterFullSync,
      memoryAfterRounds,
      rounds,
      tools,
    };
  } catch (e) {
    let memory: Memory | undefined;
    try {
      if (!exited && agent.pid !== undefined) memory = readMemory(agent.pid);
    } catch {
      // already gone
    }
    throw new RunError(e instanceof Error ? e.message : String(e), memory);
  } finally {
    await prober?.stop().catch(() => undefined);
    await agent.stop('SIGKILL');
  }
}

/** Builds dist/switchboard.mjs with the project's own `bundle` script, so the numbers are for the current source. */
function buildBundle(): void {
  const r = spawnSync('npm', ['run', 'bundle', '--silent'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run bundle failed (exit ${String(r.status)}): ${r.stderr}${r.stdout}`);
}

/** Kills what a killed agent may leave running in the node namespace (an iptables-restore of a full sync). */
function killLeftoverTools(nodeNs: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', nodeNs], { encoding: 'utf8' }).stdout ?? '';
  for (const pid of pids.split(/\s+/).filter((p) => p !== '')) {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue; // gone
    }
    if (!comm.startsWith('iptables') && !comm.startsWith('xtables')) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export async function runAgentBench(opts: AgentBenchOptions, onResult: (r: RunOutcome) => void = () => undefined): Promise<RunOutcome[]> {
  requireKernelTestPrereqs();
  if (!existsSync(ENTRIES.cli)) throw new Error(`${ENTRIES.cli} is missing: run \`npm run build\` first`);
  if (opts.runtimes.includes('bundle')) buildBundle();
  const results: RunOutcome[] = [];
  const lab = await createLab();
  try {
    await Promise.all([A, B, C].map((p) => lab.addPod(p)));
    for (const size of opts.sizes) {
      // A fresh API server per size, so sizes can come in any order.
      const files = await TempFiles.create();
      let api: ApiFixture | undefined;
      try {
        api = await ApiFixture.start(lab, files);
        api.server.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME } } });
        api.server.applyMany(syntheticCluster(size, opts.endpoints, { nodePorts: process.argv.includes('--nodeports'), dualStack: process.argv.includes('--dual-stack') }));
        api.server.apply(probeService());
        for (const modeChoice of opts.iptablesModes) {
          let toolsMeasured = false;
          for (const runtime of opts.runtimes) {
            console.log(`(starting the ${runtime} agent, iptables mode ${modeChoice}, ${size} services; waiting up to ${opts.initialSyncTimeoutMs / 1000} s for its first full sync)`);
            let r: RunOutcome;
            try {
              r = await measureRun(lab, api, runtime, modeChoice, size, opts, !toolsMeasured);
              toolsMeasured = true;
            } catch (e) {
              killLeftoverTools(lab.nodeNs);
              const memoryAtFailure = e instanceof RunError ? e.memory : undefined;
              r = { runtime, modeChoice, services: size, error: e instanceof Error ? e.message : String(e), memoryAtFailure };
            }
            results.push(r);
            onResult(r);
          }
        }
      } finally {
        await api?.close();
        await files.cleanup();
      }
    }
  } finally {
    await lab.destroy();
  }
  return results;
}

// --- report ----------------------------------------------------------------------------------------------

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const pad = (s: string, n: number) => s.padStart(n);

export function formatRun(r: RunResult): string {
  const lat = r.rounds.map((x) => x.latencyMs);
  const synced = r.rounds.filter((x): x is Round & { sync: SyncRecord } => x.sync !== undefined);
  const syncMs = synced.map((x) => x.sync.durationMs);
  const lines = [
    `Agent ${r.runtime} (${r.entry.slice(root.length)}), ${r.services} services x ${r.endpointsPerService} endpoints, ${r.backend === 'nftables' ? 'nftables backend' : `iptables ${r.iptablesMode} (${r.modeChoice === 'auto' ? 'detected' : 'forced'}), ${r.layout} layout`}:`,
    `  start -> initial list ${r.initialListMs} ms; start -> first full sync applied ${r.firstFullSyncMs} ms (that sync: ${f1(r.firstFullSync.durationMs)} ms, ${r.firstFullSync.bytes ?? '?'} bytes)`,
    `  memory after first full sync: VmRSS ${r.memoryAfterFullSync.rssMB} MB, VmHWM ${r.memoryAfterFullSync.hwmMB} MB; after ${r.rounds.length} flips: VmRSS ${r.memoryAfterRounds.rssMB} MB, VmHWM ${r.memoryAfterRounds.hwmMB} MB   target: <= 250 MB`,
    `  programming latency (apply -> new pod answers): median ${percentile(lat, 50)} ms, p90 ${percentile(lat, 90)} ms, max ${Math.max(...lat)} ms over ${lat.length} flips   target: median <= 100 ms at 10,000`,
    `  agent partial syncs (durationMs, compile + restore): median ${f1(percentile(syncMs, 50))} ms, max ${f1(Math.max(...syncMs))} ms; ${r.rounds.length - synced.length} flips without a sync line`,
    `  per flip, ms: latency = before sync (watch + queue) + sync (agent's durationMs) + after log (to the first answer);`,
    `  a negative "after log" means the rule already worked that long before the agent's sync ended`,
    `  ${pad('flip', 4)} ${pad('to', 3)} ${pad('latency', 8)} ${pad('before sync', 11)} ${pad('sync', 8)} ${pad('after log', 9)} ${pad('bytes', 6)} ${pad('tries', 6)}  other answers`,
  ];
  r.rounds.forEach((x, i) => {
    // before sync: watch delivery, decode and queueing (the sync starts at loggedAt - durationMs); after log: the
    // log line to the first answering connection (kernel visibility + prober resolution; ms clock granularity).
    const s = x.sync;
    const before = s === undefined ? '-' : String(Math.round(s.loggedAt - s.durationMs - x.appliedAt));
    const after = s === undefined ? '-' : String(x.appliedAt + x.latencyMs - s.loggedAt);
    const others = Object.entries(x.others).map(([k, n]) => `${k} x${n}`).join(', ');
    lines.push(
      `  ${pad(String(i + 1), 4)} ${pad(x.expect, 3)} ${pad(String(x.latencyMs), 8)} ${pad(before, 11)} ${pad(s === undefined ? '-' : f1(s.durationMs), 8)} ${pad(after, 9)} ${pad(String(s?.bytes ?? '-'), 6)} ${pad(String(x.attempts), 6)}  ${others}`,
    );
  });
  for (const t of r.tools) lines.push(`  ${t.what}: median ${t.medianMs} ms, max ${t.maxMs} ms`);
  return lines.join('\n');
}

export function formatFailure(r: RunFailure): string {
  const m = r.memoryAtFailure;
  const mem = m === undefined ? '' : `\n  agent memory when given up: VmRSS ${m.rssMB} MB, VmHWM ${m.hwmMB} MB`;
  return `Agent ${r.runtime}, iptables mode ${r.modeChoice}, ${r.services} services: FAILED: ${r.error}${mem}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  let opts: AgentBenchOptions;
  try {
    opts = parseAgentBenchArgs(argv);
  } catch (e) {
    console.error(`agent bench: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  console.log(
    `\nAgent benchmark (switchboard run --min-sync-period 0 --sync-period 1h in a lab namespace): sizes ${opts.sizes.join(', ')} x ${opts.endpoints} endpoints, ` +
      `${opts.rounds} flips each, runtimes ${opts.runtimes.join(', ')}, iptables modes ${opts.iptablesModes.join(', ')}`,
  );
  try {
    const results = await runAgentBench(opts, (r) => console.log('error' in r ? formatFailure(r) : formatRun(r)));
    console.log(JSON.stringify({ agentBench: results.map((r) => ('error' in r ? r : summary(r))) }));
    return results.some((r) => 'error' in r) ? 1 : 0;
  } catch (e) {
    console.error(`agent bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return 1;
  }
}

function summary(r: RunResult): Record<string, unknown> {
  const lat = r.rounds.map((x) => x.latencyMs);
  return {
    runtime: r.runtime,
    backend: r.backend,
    modeChoice: r.modeChoice,
    services: r.services,
    iptablesMode: r.iptablesMode,
    initialListMs: r.initialListMs,
    firstFullSyncMs: r.firstFullSyncMs,
    firstFullSyncDurationMs: r.firstFullSync.durationMs,
    rssAfterFullSyncMB: r.memoryAfterFullSync.rssMB,
    hwmAfterFullSyncMB: r.memoryAfterFullSync.hwmMB,
    rssAfterRoundsMB: r.memoryAfterRounds.rssMB,
    hwmAfterRoundsMB: r.memoryAfterRounds.hwmMB,
    latencyMedianMs: percentile(lat, 50),
    latencyP90Ms: percentile(lat, 90),
    latencyMaxMs: Math.max(...lat),
    partialSyncMs: r.rounds.map((x) => x.sync?.durationMs ?? null),
    tools: r.tools,
  };
}
