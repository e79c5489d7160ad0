// Stale UDP conntrack cleanup on a real kernel: a client that keeps its UDP source port stays pinned to the
// endpoint its first datagram was DNAT'ed to, even after that endpoint left the Service or the Service was
// deleted. The reconciler (dist/sync/conntrack.js) runs inside the node namespace, where the flows are.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ConntrackFlow, parseConntrackList } from '../../src/sync/conntrack-parse.js';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { NODE_NAME, TempFiles, applyObjects, compileApply, podsHit, tally, useKernelLab } from './helpers.js';
import type { Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [5353], udpPorts: [5353] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [5353], udpPorts: [5353] };
const C = { name: 'c', ip: '10.244.2.2' }; // client only

const SVC_IP = '10.96.0.53';

/** dns: 53/UDP and 53/TCP → 5353 on the given endpoints. */
function dns(endpointIPs: readonly string[]): K8sObject[] {
  return [
    service({
      name: 'dns',
      clusterIP: SVC_IP,
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 5353 },
      ],
    }),
    endpointSlice({
      name: 'dns-1',
      service: 'dns',
      ports: [
        { name: 'dns', port: 5353, protocol: 'UDP' },
        { name: 'dns-tcp', port: 5353, protocol: 'TCP' },
      ],
      endpoints: endpointIPs.map((ip) => ({ ip, nodeName: NODE_NAME })),
    }),
  ];
}

const dist = (rel: string) => fileURLToPath(new URL(`../../dist/${rel}`, import.meta.url));
const RECONCILER_MODULES = ['sync/conntrack.js', 'sources/manifests.js', 'sources/objects.js'].map(dist);

/**
 * Runs in the node namespace: one ConntrackReconciler (as the agent holds one) reconciles each manifest
 * file in turn and prints the results as JSON. Args: the three module paths, then the files.
 */
const RECONCILE_SCRIPT = `
import { readFile } from 'node:fs/promises';
const [conntrackUrl, manifestsUrl, objectsUrl, ...files] = process.argv.slice(1);
const { ConntrackReconciler } = await import(conntrackUrl);
const { parseManifestText } = await import(manifestsUrl);
const { loadObjects } = await import(objectsUrl);
const reconciler = new ConntrackReconciler('IPv4');
const results = [];
for (const file of files) {
  const parsed = parseManifestText(await readFile(file, 'utf8'), file);
  if (parsed.errors.length > 0) throw new Error(JSON.stringify(parsed.errors));
  results.push(await reconciler.reconcile(loadObjects(parsed.objects, ${JSON.stringify(NODE_NAME)}).state));
}
process.stdout.write(JSON.stringify(results));
`;

/**
 * Runs in the client pod: one datagram per source port, each from a socket bound to that port, so the same
 * port always means the same 5-tuple and the same conntrack entry. Prints the answering pod per port.
 */
const SENDER_SCRIPT = `
const dgram = require('node:dgram');
const [ip, port, ...sports] = process.argv.slice(1);
(async () => {
  const out = [];
  for (const sport of sports) {
    out.push(await new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      const done = (v) => { clearTimeout(t); s.close(); resolve(v); };
      const t = setTimeout(() => done('timeout'), 700);
      s.on('message', (m) => done(JSON.parse(m.toString()).pod));
      s.on('error', (e) => done(e.code));
      s.bind(Number(sport), () => s.send('x', Number(port), ip));
    }));
  }
  process.stdout.write(JSON.stringify(out));
})();
`;

interface ReconcileResult {
  deleted: number;
  flows: number;
  stale: number;
  durationMs: number;
}

describe('stale UDP conntrack cleanup on a real kernel', () => {
  const ctx = useKernelLab([A, B, C]);
  let lab: Lab;
  let files: TempFiles;
  beforeAll(() => {
    for (const m of RECONCILER_MODULES) if (!existsSync(m)) throw new Error(`${m} is missing: run \`npm run build\` first`);
    ({ lab, files } = ctx);
  });

  /** Applies without flushing conntrack: the flows from before the change are the point of these tests. */
  async function reapply(objects: readonly K8sObject[]): Promise<void> {
    const r = await compileApply(lab, await files.write(objects));
    if (r.exitCode !== 0) throw new Error(`compile --apply exited ${String(r.exitCode)}: ${r.stderr}`);
  }

  async function sendFrom(sports: readonly number[]): Promise<string[]> {
    const r = await lab.exec('c', process.execPath, ['-e', SENDER_SCRIPT, SVC_IP, '53', ...sports.map(String)]);
    return JSON.parse(r.stdout) as string[];
  }

  /** Fixed source ports whose flows went to A and to B (the DNAT pick is random, so try until both show up). */
  async function pinnedPorts(): Promise<{ toA: number; toB: number }> {
    const sports = Array.from({ length: 30 }, (_, i) => 41000 + i);
    const pods = await sendFrom(sports);
    const toA = sports[pods.indexOf('a')];
    const toB = sports[pods.indexOf('b')];
    if (toA === undefined || toB === undefined) throw new Error(`30 datagrams did not reach both a and b: ${JSON.stringify(pods)}`);
    return { toA, toB };
  }

  async function flows(proto: 'udp' | 'tcp', ...filter: string[]): Promise<ConntrackFlow[]> {
    const r = await lab.exec('node', 'conntrack', ['-L', '-f', 'ipv4', '-p', proto, ...filter]);
    return parseConntrackList(r.stdout);
  }

  const toService = (fs: readonly ConntrackFlow[], backendIP: string) =>
    fs.filter((f) => f.origDst === SVC_IP && f.origDport === 53 && f.replySrc === backendIP);

  async function reconcileInNode(snapshots: readonly (readonly K8sObject[])[]): Promise<ReconcileResult[]> {
    const paths = await Promise.all(snapshots.map((s) => files.write(s)));
    const modules = RECONCILER_MODULES.map((m) => pathToFileURL(m).href);
    const r = await lab.exec('node', process.execPath, ['--input-type=module', '-e', RECONCILE_SCRIPT, ...modules, ...paths], {
      reject: false,
    });
    if (r.exitCode !== 0) throw new Error(`reconciler exited ${String(r.exitCode)}: ${r.stderr}`);
    return JSON.parse(r.stdout) as ReconcileResult[];
  }

  it('an endpoint leaves: its UDP flows go, the other endpoint, TCP and non-Service flows stay', async () => {
    await applyObjects(lab, files, dns([A.ip, B.ip]));
    const { toA, toB } = await pinnedPorts();
    // More flows on fresh ports, over both protocols.
    expect(Object.keys(tally(podsHit(await lab.probe('c', { proto: 'udp', ip: SVC_IP, port: 53, count: 20 })))).sort()).toEqual(['a', 'b']);
    expect(Object.keys(tally(podsHit(await lab.probe('c', { proto: 'tcp', ip: SVC_IP, port: 53, count: 20 })))).sort()).toEqual(['a', 'b']);
    // A flow to B that no Service is involved in.
    expect(podsHit(await lab.probe('c', { proto: 'udp', ip: B.ip, port: 5353 }))).toEqual(['b']);

    await reapply(dns([A.ip]));

    // The bug being fixed: the pinned client still reaches B although B left the Service.
    expect(await sendFrom([toB, toA])).toEqual(['b', 'a']);
    const udpBefore = await flows('udp');
    const tcpToB = toService(await flows('tcp'), B.ip);
    expect(toService(udpBefore, B.ip).length).toBeGreaterThan(0);
    expect(tcpToB.length).toBeGreaterThan(0);

    const [result] = await reconcileInNode([dns([A.ip])]);
    expect(result?.stale).toBe(toService(udpBefore, B.ip).length);
    expect(result?.deleted).toBe(toService(udpBefore, B.ip).length);

    const udpAfter = await flows('udp');
    expect(toService(udpAfter, B.ip)).toEqual([]);
    expect(toService(udpAfter, A.ip).map((f) => f.origSport).sort()).toEqual(toService(udpBefore, A.ip).map((f) => f.origSport).sort());
    expect(udpAfter.filter((f) => f.origDst === B.ip)).toHaveLength(1);
    expect(toService(await flows('tcp'), B.ip).map((f) => f.origSport).sort()).toEqual(tcpToB.map((f) => f.origSport).sort());

    // The pinned client is re-balanced onto A, and new flows only reach A.
    expect(await sendFrom([toB, toA])).toEqual(['a', 'a']);
    expect(podsHit(await lab.probe('c', { proto: 'udp', ip: SVC_IP, port: 53, count: 10 }))).toEqual(Array(10).fill('a'));
  });

  it('the Service is deleted: all its UDP flows go on the next reconcile, TCP flows stay', async () => {
    await applyObjects(lab, files, dns([A.ip, B.ip]));
    const { toA, toB } = await pinnedPorts();
    await lab.probe('c', { proto: 'tcp', ip: SVC_IP, port: 53, count: 4 });
    const tcpBefore = (await flows('tcp', '--orig-dst', SVC_IP)).length;
    expect(tcpBefore).toBeGreaterThan(0);

    await reapply([]);
    // No rules any more, yet the pinned clients still reach their endpoints.
    expect(await sendFrom([toA, toB])).toEqual(['a', 'b']);
    const udpBefore = await flows('udp', '--orig-dst', SVC_IP);
    expect(udpBefore.length).toBeGreaterThanOrEqual(2);

    // The reconciler saw the Service before (first snapshot: nothing is stale) and sees it gone now.
    const results = await reconcileInNode([dns([A.ip, B.ip]), []]);
    expect(results.map((r) => r.deleted)).toEqual([0, udpBefore.length]);

    expect(await flows('udp', '--orig-dst', SVC_IP)).toEqual([]);
    expect((await flows('tcp', '--orig-dst', SVC_IP)).length).toBe(tcpBefore);
    // Without a Service the ClusterIP leads nowhere, like in the lab before any rules.
    expect(await sendFrom([toA])).toEqual(['timeout']);
  });
});
