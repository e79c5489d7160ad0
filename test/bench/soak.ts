// Churn soak (`npm run bench -- --soak`, root): the real agent (`switchboard run`) in a lab node namespace, fed by
// the wire-level test API server. Each round adds N Services x M endpoints, waits until the kernel holds them,
// deletes them all and waits until they are gone, while a client pod keeps connecting to a stable Service.
// Reports, per round, the agent's memory and the node's rule count after the deletes, and at the end the probes
// that failed. Bounded in time (--soak-rounds, --soak-max-minutes); everything lives in lab namespaces.
import { existsSync } from 'node:fs';
import { Agent, ApiFixture, eventually } from '../kernel/agent-harness.js';
import { CLI, CLUSTER_CIDR, NODE_NAME, TempFiles } from '../kernel/helpers.js';
import { createLab, requireKernelTestPrereqs, type Lab } from '../kernel/lab/index.js';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { readMemory, type Memory } from './agent.js';
import { flagValue } from './args.js';

export interface SoakOptions {
  readonly services: number;
  readonly endpoints: number;
  readonly rounds: number;
  readonly maxMinutes: number;
}

export interface SoakRound {
  readonly round: number;
  /** Objects created at the API server -> the node holds every new Service's chain. */
  readonly addMs: number;
  /** Objects deleted -> none of those chains is left. */
  readonly deleteMs: number;
  readonly memory: Memory;
  /** The agent's V8 heap in use (its nodejs_heap_size_used_bytes metric), MB: growth here, unlike RSS, is a leak. */
  readonly heapUsedMB: number;
  /** nat + filter rules and chains in the node namespace after the deletes. */
  readonly rules: number;
  readonly chains: number;
  readonly probesOk: number;
  readonly probesFailed: number;
}

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' };
const STABLE_IP = '10.97.0.1';


export function parseSoakArgs(argv: readonly string[]): SoakOptions {
  const num = (name: string, fallback: number): number => {
    const n = Number(flagValue(argv, name) ?? fallback);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  return { services: num('soak-services', 1000), endpoints: num('soak-endpoints', 10), rounds: num('soak-rounds', 5), maxMinutes: num('soak-max-minutes', 20) };
}

/** Round r's churn Services: their own namespace, ClusterIPs 10.98.x.y, endpoints 10.200.0.0/13 (no pods behind). */
function churn(round: number, opts: SoakOptions): K8sObject[] {
  const out: K8sObject[] = [];
  for (let i = 0; i < opts.services; i++) {
    const name = `churn${i}`;
    out.push(service({ namespace: `soak${round}`, name, clusterIP: `10.98.${(i >> 8) & 255}.${i & 255}`, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }));
    const endpoints = Array.from({ length: opts.endpoints }, (_, e) => {
      const n = i * opts.endpoints + e;
      return { ip: `10.${200 + ((n >> 16) & 7)}.${(n >> 8) & 255}.${n & 255}` };
    });
    out.push(endpointSlice({ namespace: `soak${round}`, name: `${name}-s`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints }));
  }
  return out;
}

/** Rules and chains of every table; churnChains counts churn Services that reach endpoints (nat KUBE-SERVICES). */
async function natCounts(lab: Lab): Promise<{ rules: number; chains: number; churnChains: number }> {
  const text = await lab.iptablesSave();
  let rules = 0;
  let chains = 0;
  let churnChains = 0;
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ')) rules++;
    else if (line.startsWith(':')) chains++;
    // A Service seen before its EndpointSlice gets a filter REJECT rule first; only the nat jump means "programmed".
    if (table === 'nat' && line.startsWith('-A KUBE-SERVICES ') && line.includes('"soak')) churnChains++;
  }
  return { rules, chains, churnChains };
}

/** The agent's heap in use, from its metrics endpoint (default 127.0.0.1:10249 in the node namespace). */
async function heapUsedMB(lab: Lab): Promise<number> {
  const script = "const r = await fetch('http://127.0.0.1:10249/metrics'); process.stdout.write(await r.text());";
  const r = await lab.exec('node', process.execPath, ['--input-type=module', '-e', script]);
  const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(r.stdout);
  if (m === null) throw new Error('the agent metrics have no nodejs_heap_size_used_bytes');
  return Math.round(Number(m[1]) / 1024 / 102.4) / 10;
}

/** Connects to the stable Service from pod C, again and again, until stopped; counts answers from pod A. */
class ProbeLoop {
  ok = 0;
  failed: string[] = [];
  private running = true;
  private readonly done: Promise<void>;
  constructor(lab: Lab) {
    this.done = (async () => {
      while (this.running) {
        for (const r of await lab.probe(C.name, { proto: 'tcp', ip: STABLE_IP, port: 80, count: 5, timeoutMs: 1000, intervalMs: 20 })) {
          if (r.ok && r.reply.pod === A.name) this.ok++;
          else this.failed.push(r.ok ? `answered by ${r.reply.pod}` : r.error);
        }
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

export async function runSoak(opts: SoakOptions, onRound: (r: SoakRound) => void): Promise<{ rounds: SoakRound[]; failedProbes: string[]; before: { rules: number; chains: number }; error?: string }> {
  requireKernelTestPrereqs();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const deadline = Date.now() + opts.maxMinutes * 60_000;
  const lab = await createLab();
  const files = await TempFiles.create();
  let api: ApiFixture | undefined;
  let agent: Agent | undefined;
  let probes: ProbeLoop | undefined;
  const rounds: SoakRound[] = [];
  try {
    await Promise.all([A, C].map((p) => lab.addPod(p)));
    api = await ApiFixture.start(lab, files);
    api.server.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME } });
    api.server.apply(service({ name: 'stable', clusterIP: STABLE_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }));
    api.server.apply(endpointSlice({ name: 'stable-1', service: 'stable', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: A.ip }] }));
    agent = api.startAgent({ syncPeriod: '1h' });
    await agent.ready(60_000);
    await eventually(async () => (await natCounts(lab)).rules > 0, 30_000, 'the first sync');
    const before = await natCounts(lab);
    probes = new ProbeLoop(lab);
    for (let round = 1; round <= opts.rounds && Date.now() < deadline; round++) {
      const objects = churn(round, opts);
      let t = performance.now();
      api.server.applyMany(objects);
      await eventually(async () => (await natCounts(lab)).churnChains === opts.services || 'not all yet', 300_000, `round ${round}: all churn Services programmed`);
      const addMs = Math.round(performance.now() - t);
      t = performance.now();
      for (const o of objects) {
        const meta = o['metadata'] as { namespace: string; name: string };
        api.server.remove(String(o['kind']), meta.namespace, meta.name);
      }
      await eventually(async () => (await natCounts(lab)).churnChains === 0 || 'some left', 300_000, `round ${round}: all churn Services removed`);
      // A deletion above the transaction limit removes the chains in COMMITs after the KUBE-SERVICES edits: give
      // them a moment, so the count below checks the end state, not a sync in flight (a real drift still shows).
      await eventually(async () => (await natCounts(lab)).chains === before.chains || 'chains left', 30_000, 'chains removed').catch(() => undefined);
      const deleteMs = Math.round(performance.now() - t);
      const after = await natCounts(lab);
      const pid = agent.pid;
      if (pid === undefined) throw new Error('the agent is not running');
      const r: SoakRound = { round, addMs, deleteMs, memory: readMemory(pid), heapUsedMB: await heapUsedMB(lab), rules: after.rules, chains: after.chains, probesOk: probes.ok, probesFailed: probes.failed.length };
      rounds.push(r);
      onRound(r);
    }
    await probes.stop();
    return { rounds, failedProbes: probes.failed, before };
  } finally {
    await probes?.stop();
    await agent?.stop('SIGKILL');
    await api?.close();
    await files.cleanup();
    await lab.destroy();
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  const opts = parseSoakArgs(argv);
  console.log(`Churn soak: ${opts.rounds} rounds of +${opts.services} / -${opts.services} Services x ${opts.endpoints} endpoints, probing a stable Service throughout`);
  console.log('| round | add -> programmed | delete -> gone | agent VmRSS / VmHWM | agent heap used | node rules / chains after | probes ok / failed |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  const result = await runSoak(opts, (r) =>
    console.log(`| ${r.round} | ${r.addMs} ms | ${r.deleteMs} ms | ${r.memory.rssMB} / ${r.memory.hwmMB} MB | ${r.heapUsedMB} MB | ${r.rules} / ${r.chains} | ${r.probesOk} / ${r.probesFailed} |`),
  );
  const first = result.rounds[0];
  const last = result.rounds.at(-1);
  const ruleDrift = result.rounds.some((r) => r.rules !== result.before.rules || r.chains !== result.before.chains);
  console.log(`before churn: ${result.before.rules} rules / ${result.before.chains} chains; after every round: ${ruleDrift ? 'DIFFERENT (see table)' : 'the same'}`);
  if (first && last) {
    console.log(`agent VmRSS round 1 -> round ${last.round}: ${first.memory.rssMB} -> ${last.memory.rssMB} MB; heap used ${first.heapUsedMB} -> ${last.heapUsedMB} MB`);
  }
  console.log(`failed probes on the stable Service: ${result.failedProbes.length}${result.failedProbes.length ? ` (${[...new Set(result.failedProbes)].slice(0, 5).join('; ')})` : ''}`);
  console.log(JSON.stringify({ soak: { ...opts, before: result.before, rounds: result.rounds, failedProbes: result.failedProbes.length } }));
  return result.failedProbes.length > 0 || ruleDrift ? 1 : 0;
}
