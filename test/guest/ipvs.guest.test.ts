// IPVS mode in a real kernel with IPVS (the QEMU guest; see test/vm): what the shared packet suites
// (clusterip, policies) cannot show, because it is about IPVS's own table: updates that remove exactly what
// went away, graceful termination of a busy TCP backend, and cleanup.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import {
  CLI,
  NODE_NAME,
  TempFiles,
  applyObjects,
  boundAddresses,
  compileApply,
  ipvsState,
  ipvsTable,
  loopBackMembers,
  podsHit,
  useKernelLab,
} from '../kernel/helpers.js';
import { eventually } from '../kernel/agent-harness.js';
import type { Lab } from '../kernel/lab/index.js';
import { parseIpvsadmList } from '../../src/backends/ipvs/ipvsadm.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [5353] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080], udpPorts: [5353] };
/**
 * Holds every TCP connection open for 20 s after its reply line: a busy backend. Long enough for the drain to be
 * applied while the connection is open, even on the guest's emulated CPU.
 */
const S = { name: 's', ip: '10.244.1.4', tcpPorts: [8080], holdMs: 20_000 };
const C = { name: 'c', ip: '10.244.2.2' };

const IPVS = { backend: 'ipvs' } as const;
const ep = (ip: string) => ({ ip, nodeName: NODE_NAME });

function web(ips: string[]): K8sObject[] {
  return [
    service({ name: 'web', clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 8080 }] }),
    endpointSlice({ name: 'web-1', service: 'web', ports: [{ port: 8080 }], endpoints: ips.map(ep) }),
  ];
}

function dns(ips: string[]): K8sObject[] {
  return [
    service({ name: 'dns', clusterIP: '10.96.0.53', ports: [{ port: 53, protocol: 'UDP', targetPort: 5353 }] }),
    endpointSlice({ name: 'dns-1', service: 'dns', ports: [{ port: 5353, protocol: 'UDP' }], endpoints: ips.map(ep) }),
  ];
}

describe('IPVS backend: the IPVS table itself', () => {
  const ctx = useKernelLab([A, B, S, C]);
  let lab: Lab;
  let files: TempFiles;
  beforeAll(() => {
    ({ lab, files } = ctx);
  });

  it('updates remove exactly what went away: an idle TCP endpoint, a UDP endpoint, then a whole Service', async () => {
    await applyObjects(lab, files, [...web([A.ip, B.ip]), ...dns([A.ip, B.ip])], IPVS);
    expect(await ipvsTable(lab)).toEqual([
      '-A -t 10.96.0.10:80 -s rr',
      '-A -u 10.96.0.53:53 -s rr',
      `-a -t 10.96.0.10:80 -r ${A.ip}:8080 -m -w 1`,
      `-a -t 10.96.0.10:80 -r ${B.ip}:8080 -m -w 1`,
      `-a -u 10.96.0.53:53 -r ${A.ip}:5353 -m -w 1`,
      `-a -u 10.96.0.53:53 -r ${B.ip}:5353 -m -w 1`,
    ]);
    expect(await boundAddresses(lab)).toEqual(['10.96.0.10/32', '10.96.0.53/32']);

    // UDP traffic to both endpoints: IPVS now holds UDP connection entries for A.
    const udp = podsHit(await lab.probe('c', { proto: 'udp', ip: '10.96.0.53', port: 53, count: 4 })).sort();
    expect(udp).toEqual(['a', 'a', 'b', 'b']);
    expect(await activeConnections(lab, A.ip)).toBeGreaterThan(0);

    // A leaves both Services: its TCP endpoint has had no connection and UDP is never drained, so both go at once.
    await applyObjects(lab, files, [...web([B.ip]), ...dns([B.ip])], IPVS);
    expect(await ipvsTable(lab)).toEqual([
      '-A -t 10.96.0.10:80 -s rr',
      '-A -u 10.96.0.53:53 -s rr',
      `-a -t 10.96.0.10:80 -r ${B.ip}:8080 -m -w 1`,
      `-a -u 10.96.0.53:53 -r ${B.ip}:5353 -m -w 1`,
    ]);
    expect(await loopBackMembers(lab)).toEqual([`${B.ip},tcp:8080,${B.ip}`, `${B.ip},udp:5353,${B.ip}`]);
    expect(podsHit(await lab.probe('c', { proto: 'udp', ip: '10.96.0.53', port: 53, count: 4 }))).toEqual(Array(4).fill('b'));

    // The DNS Service is deleted: its virtual server, address and set members go; web stays as it was.
    await applyObjects(lab, files, web([B.ip]), IPVS);
    expect(await ipvsTable(lab)).toEqual(['-A -t 10.96.0.10:80 -s rr', `-a -t 10.96.0.10:80 -r ${B.ip}:8080 -m -w 1`]);
    expect(await boundAddresses(lab)).toEqual(['10.96.0.10/32']);
    const state = await ipvsState(lab);
    expect(state).not.toContain('10.96.0.53');
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.10', port: 80, count: 2 }))).toEqual(['b', 'b']);
  });

  it('graceful termination: a busy TCP endpoint is drained at weight 0, keeps its connection, and goes once idle', async () => {
    await applyObjects(lab, files, web([S.ip]), IPVS);
    // A client in pod c opens a connection, prints the reply, and reports how the connection ended; it then
    // resets its end, so IPVS forgets the connection in seconds instead of after TIME_WAIT's two minutes.
    const client = `
      const net = require('node:net');
      const sock = net.connect({ host: '10.96.0.10', port: 80 });
      let data = '';
      sock.on('data', (d) => { data += d; if (data.includes('\\n')) process.stdout.write('reply ' + data); data = ''; });
      sock.on('end', () => { process.stdout.write('end\\n'); sock.resetAndDestroy(); });
      sock.on('error', (e) => { process.stdout.write('error ' + e.code + '\\n'); process.exit(1); });
      sock.on('close', () => process.exit(0));
      setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(1); }, 60000);
    `;
    const busy = lab.exec('c', process.execPath, ['-e', client], { reject: false });
    // Wait until IPVS counts the connection, then take S away while it is open.
    await eventually(async () => (await activeConnections(lab, S.ip)) > 0, 20_000, 'the client connection to appear in ipvsadm -L');
    // Applied without applyObjects' conntrack flush, which would pull the open connection's entry away.
    const applied = await compileApply(lab, await files.write(web([B.ip])), IPVS);
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(await ipvsTable(lab)).toEqual([
      '-A -t 10.96.0.10:80 -s rr',
      `-a -t 10.96.0.10:80 -r ${B.ip}:8080 -m -w 1`,
      `-a -t 10.96.0.10:80 -r ${S.ip}:8080 -m -w 0`,
    ]);
    // The connection was open while the drain was applied, so what follows is about a live connection.
    expect(await activeConnections(lab, S.ip)).toBeGreaterThan(0);
    // New connections go to the endpoint that serves; the old one carries on to its natural end.
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.10', port: 80, count: 4 }))).toEqual(Array(4).fill('b'));
    const r = await busy;
    // One reply from s, then the server's own end of the connection: it survived the drain.
    const lines = r.stdout.trim().split('\n').map((l) => (l.startsWith('reply ') ? `reply ${(JSON.parse(l.slice(6)) as { pod: string }).pod}` : l));
    expect(lines, r.stderr).toEqual(['reply s', 'end']);
    expect(r.exitCode).toBe(0);
    // Once IPVS has no connection left for S, the next sync deletes it.
    await eventually(async () => (await activeConnections(lab, S.ip)) === 0, 30_000, `IPVS to forget the connections to ${S.ip}`);
    await applyObjects(lab, files, web([B.ip]), IPVS);
    expect(await ipvsTable(lab)).toEqual(['-A -t 10.96.0.10:80 -s rr', `-a -t 10.96.0.10:80 -r ${B.ip}:8080 -m -w 1`]);
  });

  it('cleanup removes our virtual servers, kube-ipvs0, sets and chains, and leaves a foreign virtual server', async () => {
    await applyObjects(lab, files, [...web([A.ip]), ...dns([A.ip])], IPVS);
    // Someone else's IPVS service, on an address that is not on kube-ipvs0.
    await lab.exec('node', 'ipvsadm', ['-A', '-t', '192.0.2.1:443', '-s', 'wlc']);
    const r = await lab.exec('node', process.execPath, [CLI, 'cleanup'], { reject: false });
    expect(r.stderr, `cleanup said:\n${r.stderr}`).toContain('ipvs: removed 2 virtual servers and kube-ipvs0');
    expect(r.exitCode).toBe(0);
    expect(await ipvsTable(lab)).toEqual(['-A -t 192.0.2.1:443 -s wlc']);
    expect((await lab.exec('node', 'ip', ['link', 'show', 'kube-ipvs0'], { reject: false })).exitCode).not.toBe(0);
    expect((await lab.exec('node', 'ipset', ['list', '-n'])).stdout.trim()).toBe('');
    expect(await lab.iptablesSave()).not.toContain('KUBE-');
    // A second cleanup finds nothing of ours.
    const again = await lab.exec('node', process.execPath, [CLI, 'cleanup'], { reject: false });
    expect(again.stderr).toContain('ipvs: nothing to remove');
  });
});

/** Active plus inactive IPVS connections to this real server, over all virtual servers. */
async function activeConnections(lab: Lab, ip: string): Promise<number> {
  const counts = parseIpvsadmList((await lab.exec('node', 'ipvsadm', ['-L', '-n'])).stdout);
  let n = 0;
  for (const reals of counts.values()) for (const [hostPort, c] of reals) if (hostPort.startsWith(`${ip}:`)) n += c;
  return n;
}
