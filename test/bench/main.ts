// npm run bench [-- --services N --endpoints M --rounds R --cli-runs N --nodeports]   (compile, then agent benchmarks)
// npm run bench -- --kernel [kernel-bench flags]               (apply costs in a real kernel; see kernel.ts)
// npm run bench -- --soak [soak flags]                         (churn soak with the real agent; see soak.ts)
// Prints compile-time numbers for an N x M cluster: the whole `switchboard compile` process on a JSON List
// (wall time and peak RSS, against a floor: node reading, parsing and re-serialising the same file), and
// in-process full and one-endpoint incremental compiles. Numbers, not asserts.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { parseManifestText } from '../../src/sources/manifests.js';
import { loadObjects } from '../../src/sources/objects.js';
import { endpointSlice, list, syntheticCluster } from '../support/objects.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const services = arg('services', 10_000);
const endpoints = arg('endpoints', 10);
const rounds = arg('rounds', 200);
// This file runs bundled as dist-bench/bench.mjs, one level below the project root.
const root = fileURLToPath(new URL('..', import.meta.url));
for (const [flag, script] of [['--kernel', 'kernel-bench.mjs'], ['--soak', 'soak-bench.mjs']] as const) {
  if (!process.argv.includes(flag)) continue;
  const r = spawnSync(process.execPath, [`${root}test/bench/bin/${script}`, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

// --nodeports: every Service a NodePort Service (the external-traffic issue's benchmark).
const nodePorts = process.argv.includes('--nodeports');
const dualStack = process.argv.includes('--dual-stack');
const objects = syntheticCluster(services, endpoints, { nodePorts, dualStack });
const text = list(objects);
const dir = await mkdtemp(join(tmpdir(), 'switchboard-bench-'));
const file = join(dir, 'cluster.json');
await writeFile(file, text);

// 1. The whole process, as an operator runs it, against a floor: `node` itself reading the same file,
// JSON.parse-ing it and re-serialising it (JSON.stringify) to stdout. Both go to /dev/null and are timed the
// same way; python3 reports each child's peak RSS (getrusage children, one python3 per run). The two are
// interleaved and each repeated `--cli-runs` times (default 5): timings on a shared machine drift, so only a
// floor measured in the same run says how far the compile is from reading and writing its input.
const cliRuns = arg('cli-runs', 5);
const floorScript = join(dir, 'floor.cjs');
await writeFile(
  floorScript,
  "const text = require('node:fs').readFileSync(process.argv[2], 'utf8');\n" + 'process.stdout.write(JSON.stringify(JSON.parse(text)));\n',
);
const compileArgs = [`${root}dist/cli/main.js`, 'compile', '-f', file, '--node-name', 'node-1', '--cluster-cidr', '10.128.0.0/9'];
const floorArgs = [floorScript, file];
interface ProcessRun {
  readonly code: number;
  readonly seconds: number;
  readonly maxRssKb: number;
  readonly stderr: string;
}
function timeProcess(args: readonly string[]): ProcessRun {
  const probe = spawnSync(
    'python3',
    [
      '-c',
      'import resource,subprocess,sys,time\n' +
        't=time.monotonic(); r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); e=time.monotonic()-t\n' +
        'print(r.returncode, e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)',
      process.execPath,
      ...args,
    ],
    { encoding: 'utf8' },
  );
  const [code, seconds, maxRssKb] = probe.stdout.trim().split(' ').map(Number);
  return { code: code ?? 1, seconds: seconds ?? NaN, maxRssKb: maxRssKb ?? 0, stderr: probe.stderr };
}
const compileRuns: ProcessRun[] = [];
const floorRuns: ProcessRun[] = [];
for (let i = 0; i < cliRuns; i++) {
  // Alternate which goes first, so neither always follows the other (page cache, CPU frequency).
  if (i % 2 === 0) {
    floorRuns.push(timeProcess(floorArgs));
    compileRuns.push(timeProcess(compileArgs));
  } else {
    compileRuns.push(timeProcess(compileArgs));
    floorRuns.push(timeProcess(floorArgs));
  }
}
const failed = [...compileRuns, ...floorRuns].find((r) => r.code !== 0);
if (failed !== undefined) console.error(`a whole-process run failed (exit ${failed.code}): ${failed.stderr}`);
const code = compileRuns.find((r) => r.code !== 0)?.code ?? 0;
const seconds = median(compileRuns.map((r) => r.seconds));
const maxRssKb = median(compileRuns.map((r) => r.maxRssKb));
const floorSeconds = median(floorRuns.map((r) => r.seconds));
const floorMaxRssKb = median(floorRuns.map((r) => r.maxRssKb));
await rm(dir, { recursive: true, force: true });

// 2. In process: parse + load + render + assemble, then one endpoint changing.
const t0 = performance.now();
const parsed = parseManifestText(text, 'bench');
const loaded = loadObjects(parsed.objects, 'node-1');
const compiler = new IptablesCompiler(defaultIptablesOptions({ clusterCidr: '10.128.0.0/9' }));
compiler.update(loaded.state, loaded.state.takeChanges());
const tLoaded = performance.now();
const full = compiler.planFull();
const tFull = performance.now();
full.commit();

const sliceOf = (i: number, round: number) => {
  // Each Service is followed by its IPv4 slice (and, dual-stack, its IPv6 one).
  const obj = objects[i * (dualStack ? 3 : 2) + 1]!;
  const eps = (obj['endpoints'] as Array<{ addresses: string[]; nodeName?: string }>).map((e, k) => ({
    ip: k === 0 ? `10.127.${(round >> 8) & 255}.${round & 255}` : e.addresses[0]!,
    ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
  }));
  const meta = obj['metadata'] as { name: string; namespace: string };
  return endpointSlice({ namespace: meta.namespace, name: meta.name, service: `svc${i}`, ports: [{ name: 'http', port: 8080 }], endpoints: eps });
};
const incremental: number[] = [];
let partialBytes = 0;
let partialText = '';
for (let round = 0; round < rounds; round++) {
  const i = (round * 7919) % services;
  const obj = sliceOf(i, round + 1);
  const start = performance.now();
  const r = normalizeEndpointSlice(obj);
  if (r.status !== 'ok') throw new Error('bench slice invalid');
  loaded.state.setSlice(r.value);
  compiler.update(loaded.state, loaded.state.takeChanges());
  const plan = compiler.planPartial();
  incremental.push(performance.now() - start);
  if (plan === undefined) throw new Error('expected a partial payload');
  partialBytes = plan.payload.text.length;
  partialText = plan.payload.text;
  plan.commit();
}
global.gc?.();
const heap = process.memoryUsage();
const s = full.payload.stats;

const result = {
  services,
  endpointsPerService: endpoints,
  inputBytes: text.length,
  cliExitCode: code,
  cliRuns,
  cliSeconds: Number(seconds.toFixed(3)),
  cliPeakRssMB: Number((maxRssKb / 1024).toFixed(1)),
  cliMaxPeakRssMB: Number((Math.max(...compileRuns.map((r) => r.maxRssKb)) / 1024).toFixed(1)),
  floorSeconds: Number(floorSeconds.toFixed(3)),
  floorPeakRssMB: Number((floorMaxRssKb / 1024).toFixed(1)),
  cliOverFloor: Number((seconds / floorSeconds).toFixed(2)),
  inProcessLoadMs: Number((tLoaded - t0).toFixed(1)),
  inProcessFullAssembleMs: Number((tFull - tLoaded).toFixed(1)),
  fullPayloadBytes: full.payload.text.length,
  natRules: s.natRulesTotal,
  filterRules: s.filterRulesTotal,
  chains: s.chainsWritten,
  incrementalMedianMs: Number(median(incremental).toFixed(3)),
  incrementalP99Ms: Number(p99(incremental).toFixed(3)),
  incrementalPayloadBytes: partialBytes,
  inProcessPeakRssMB: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
  heapUsedAfterMB: Number((heap.heapUsed / 1024 / 1024).toFixed(1)),
};

console.log(`Switchboard compile benchmark: ${services} services x ${endpoints} endpoints${nodePorts ? ", a NodePort each" : ""}${dualStack ? ", dual-stack (an IPv6 ClusterIP and slice each)" : ""} (${mb(text.length)} JSON List)`);
console.log(`  switchboard compile (whole process): ${result.cliSeconds} s, peak RSS ${result.cliPeakRssMB} MB (max ${result.cliMaxPeakRssMB} MB; exit ${code})   target: <= 400 MB`);
console.log(`  floor (read, JSON.parse, stringify): ${result.floorSeconds} s, peak RSS ${result.floorPeakRssMB} MB`);
console.log(`  compile / floor:                      ${result.cliOverFloor}x   (medians of ${cliRuns} interleaved runs each)   target: <= 2.0x`);
console.log(`  in-process full compile:              load+render ${result.inProcessLoadMs} ms, assemble ${result.inProcessFullAssembleMs} ms`);
console.log(`  full payload:                         ${mb(result.fullPayloadBytes)}, ${s.natRulesTotal} nat rules, ${s.filterRulesTotal} filter rules, ${s.chainsWritten} chains`);
console.log(`  one-endpoint incremental compile:     median ${result.incrementalMedianMs} ms, p99 ${result.incrementalP99Ms} ms over ${rounds} rounds   target: <= 2 ms`);
console.log(`  one-endpoint partial payload:         ${partialBytes} bytes`);
console.log(`  in-process peak RSS:                  ${result.inProcessPeakRssMB} MB`);
if (process.argv.includes('--show-partial')) console.log(partialText);
console.log(JSON.stringify(result));

// Agent benchmarks (programming latency, agent memory; root and a lab namespace): `--agent-sizes none` skips them.
const agentSizes = process.argv.indexOf('--agent-sizes');
if (agentSizes < 0 || process.argv[agentSizes + 1] !== 'none') {
  const agent = spawnSync(process.execPath, [`${root}test/bench/bin/agent-bench.mjs`, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (agent.status !== 0) process.exitCode = agent.status ?? 1;
}
