// Stale UDP conntrack cleanup: parsing real `conntrack -L` output (conntrack-tools 1.4.7, captured in lab
// namespaces), the serving-backend map, the stale filter (upstream's TestCleanStaleEntries cases that apply
// to ClusterIPs), and the reconcile I/O against a scripted runner.
import { describe, expect, it } from 'vitest';
import { parseConntrackList, parseDeletedCount } from '../../src/sync/conntrack-parse.js';
import { ConntrackError, ConntrackReconciler, reconcileConntrack } from '../../src/sync/conntrack.js';
import type { ConntrackFlow } from '../../src/sync/conntrack-parse.js';
import { type ServiceBackends, deleteFilters, servingUdpBackends, staleFlows, withDeletedFrontends } from '../../src/sync/conntrack-plan.js';
import type { ConntrackRunner as Runner, RunResult } from '../../src/kernel/conntrack.js';
import { ToolError } from '../../src/kernel/exec.js';
import { load } from '../support/compile.js';
import { type K8sObject, endpointSlice, service } from '../support/objects.js';

// Captured with `conntrack -L -p udp -f ipv4` / `-f ipv6` (and one `conntrack -L` for the TCP line).
const REPLIED = 'udp      17 29 src=10.244.2.2 dst=10.96.0.10 sport=40001 dport=53 src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=40001 mark=0 use=1';
const ASSURED = 'udp      17 119 src=10.244.2.2 dst=10.96.0.10 sport=40001 dport=53 src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=40001 [ASSURED] mark=0 use=1';
const UNREPLIED_ZONE =
  'udp      17 99 src=10.244.2.2 dst=10.96.0.10 sport=1234 dport=53 [UNREPLIED] src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=1234 mark=5 zone=7 use=1';
const IPV6 =
  'udp      17 119 src=fd00:10:244:2::2 dst=fd00:96::10 sport=40006 dport=53 src=fd00:10:244:1::3 dst=fd00:10:244:2::2 sport=5353 dport=40006 [ASSURED] mark=0 use=1';
const EXTENDED = 'ipv4     2 udp      17 29 src=10.244.2.2 dst=10.96.0.10 sport=40003 dport=53 src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=40003 mark=0 use=1';
const WITH_ID = 'udp      17 29 src=10.244.2.2 dst=10.96.0.10 sport=40003 dport=53 src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=40003 mark=0 use=1 id=2075755987';
const TCP = 'tcp      6 119 TIME_WAIT src=10.244.2.2 dst=10.96.0.10 sport=50366 dport=53 src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=50366 [ASSURED] mark=0 use=1';

describe('parseConntrackList', () => {
  it('reads both tuples, flags, mark and zone of real lines', () => {
    const [replied, assured, unreplied, v6] = parseConntrackList([REPLIED, ASSURED, UNREPLIED_ZONE, IPV6].join('\n'));
    expect(replied).toEqual({
      protocol: 'udp',
      origSrc: '10.244.2.2',
      origDst: '10.96.0.10',
      origSport: 40001,
      origDport: 53,
      replySrc: '10.244.1.3',
      replyDst: '10.244.2.2',
      replySport: 5353,
      replyDport: 40001,
      unreplied: false,
      assured: false,
      mark: 0,
      zone: undefined,
    });
    expect([assured?.assured, assured?.unreplied]).toEqual([true, false]);
    expect([unreplied?.unreplied, unreplied?.mark, unreplied?.zone, unreplied?.replySrc, unreplied?.replySport]).toEqual([
      true,
      5,
      7,
      '10.244.1.3',
      5353,
    ]);
    expect([v6?.origDst, v6?.replySrc, v6?.replySport]).toEqual(['fd00:96::10', 'fd00:10:244:1::3', 5353]);
  });

  it('accepts -o extended and -o id, TCP lines, blank lines and the summary line', () => {
    const text = `${EXTENDED}\n\n${WITH_ID}\n${TCP}\nconntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.\n`;
    const flows = parseConntrackList(text);
    expect(flows.map((f) => [f.protocol, f.origSport])).toEqual([
      ['udp', 40003],
      ['udp', 40003],
      ['tcp', 50366],
    ]);
  });

  it('ignores protocols without ports and canonicalises IPv6 text', () => {
    const icmp = 'icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 use=1';
    const upper = IPV6.replace('dst=fd00:96::10', 'dst=FD00:96:0:0:0:0:0:10');
    const flows = parseConntrackList(`${icmp}\n${upper}`);
    expect(flows.map((f) => f.origDst)).toEqual(['fd00:96::10']);
  });

  it('fails loudly on a UDP line it cannot read, naming the line', () => {
    const truncated = 'udp      17 29 src=10.244.2.2 dst=10.96.0.10 sport=40001 dport=53 mark=0 use=1';
    expect(() => parseConntrackList(`${REPLIED}\n${truncated}`)).toThrow(/line 2 .*sport=40001 dport=53 mark=0/);
    expect(() => parseConntrackList(REPLIED.replace('dst=10.96.0.10', 'dst=10.96.0'))).toThrow(/line 1/);
  });

  it('reads the deleted count from the summary', () => {
    expect(parseDeletedCount('conntrack v1.4.7 (conntrack-tools): 1700 flow entries have been deleted.\n')).toBe(1700);
    expect(parseDeletedCount('conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.')).toBe(0);
    expect(parseDeletedCount('Operation not permitted')).toBeUndefined();
  });
});

const SVC_IP = '172.30.1.1';
const SERVING = '10.240.0.4';
const NOT_SERVING = '10.240.1.5';
const TERMINATING = '10.240.3.7';
const DELETED = '10.240.2.6';

/** Upstream's cleanup test Service: the same port number on TCP, UDP and SCTP, endpoints on 9090. */
function upstreamService(): K8sObject[] {
  return [
    service({
      namespace: 'test',
      name: 'cleanup-test',
      clusterIP: SVC_IP,
      ports: [
        { name: 'test-tcp', port: 8000, targetPort: 9090 },
        { name: 'test-udp', port: 8000, protocol: 'UDP', targetPort: 9090 },
        { name: 'test-sctp', port: 8000, protocol: 'SCTP', targetPort: 9090 },
      ],
    }),
    endpointSlice({
      namespace: 'test',
      name: 'cleanup-test-0',
      service: 'cleanup-test',
      ports: [
        { name: 'test-tcp', port: 9090 },
        { name: 'test-udp', port: 9090, protocol: 'UDP' },
        { name: 'test-sctp', port: 9090, protocol: 'SCTP' },
      ],
      endpoints: [
        { ip: SERVING },
        { ip: NOT_SERVING, ready: false, serving: false },
        // Serving but terminating: still a legitimate target for existing flows.
        { ip: TERMINATING, ready: false, serving: true, terminating: true },
      ],
    }),
  ];
}

function flow(protocol: string, origDst: string, origDport: number, replySrc: string, replySport: number): ConntrackFlow {
  return {
    protocol,
    origSrc: '10.244.9.9',
    origDst,
    origSport: 40000,
    origDport,
    replySrc,
    replyDst: '10.244.9.9',
    replySport,
    replyDport: 40000,
    unreplied: false,
    assured: false,
    mark: 0,
    zone: undefined,
  };
}

const key = (f: ConntrackFlow) => `${f.protocol} ${f.origDst}:${f.origDport} -> ${f.replySrc}:${f.replySport}`;

describe('servingUdpBackends', () => {
  it('maps each UDP ClusterIP:port to its serving endpoints only (not TCP, not SCTP)', () => {
    const b = servingUdpBackends(load(upstreamService()).state, 'IPv4');
    expect([...b.byServiceIP].map(([k, v]) => [k, [...v].sort()])).toEqual([
      [`${SVC_IP}:8000`, [`${SERVING}:9090`, `${TERMINATING}:9090`]],
    ]);
    expect(b.byNodePort.size).toBe(0);
  });

  it('keeps a UDP port without endpoints as an empty set, and skips other families and headless Services', () => {
    const objects = [
      service({ name: 'empty', clusterIP: '10.96.0.30', ports: [{ name: 'u', port: 53, protocol: 'UDP' }] }),
      service({ name: 'headless', clusterIP: 'None', ports: [{ name: 'u', port: 53, protocol: 'UDP' }] }),
    ];
    const state = load(objects).state;
    expect([...servingUdpBackends(state, 'IPv4').byServiceIP].map(([k, v]) => [k, v.size])).toEqual([['10.96.0.30:53', 0]]);
    expect(servingUdpBackends(state, 'IPv6').byServiceIP.size).toBe(0);
  });

  it('adds external IPs, load-balancer IPs and the NodePort of a UDP port, with the same serving endpoints', () => {
    const objects = [
      service({
        name: 'dns-lb',
        type: 'LoadBalancer',
        clusterIP: '10.96.0.54',
        ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }],
        externalIPs: ['192.168.99.1'],
        loadBalancerIngress: [{ ip: '203.0.113.1' }, { ip: '203.0.113.2', ipMode: 'Proxy' }],
      }),
      endpointSlice({ name: 'dns-lb-1', service: 'dns-lb', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }], endpoints: [{ ip: '10.244.1.2' }] }),
    ];
    const b = servingUdpBackends(load(objects).state, 'IPv4');
    expect([...b.byServiceIP].map(([k, v]) => [k, [...v]])).toEqual([
      ['10.96.0.54:53', ['10.244.1.2:53']],
      ['192.168.99.1:53', ['10.244.1.2:53']],
      ['203.0.113.1:53', ['10.244.1.2:53']],
    ]);
    expect([...b.byNodePort].map(([k, v]) => [k, [...v]])).toEqual([[30053, ['10.244.1.2:53']]]);
  });

  it('merges slices through endpointsForPort: a named targetPort resolves per slice', () => {
    const objects = [
      service({ name: 'dns', clusterIP: '10.96.0.53', ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 'dns' }] }),
      endpointSlice({ name: 'dns-a', service: 'dns', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: [{ ip: '10.244.1.2' }] }),
      endpointSlice({ name: 'dns-b', service: 'dns', ports: [{ name: 'dns', port: 1053, protocol: 'UDP' }], endpoints: [{ ip: '10.244.1.3' }] }),
    ];
    const b = servingUdpBackends(load(objects).state, 'IPv4');
    expect([...(b.byServiceIP.get('10.96.0.53:53') ?? [])].sort()).toEqual(['10.244.1.2:5353', '10.244.1.3:1053']);
  });
});

describe('staleFlows', () => {
  const backends = servingUdpBackends(load(upstreamService()).state, 'IPv4');

  it("follows upstream's cleanup test: only UDP flows to the service port whose backend is not serving", () => {
    const flows: ConntrackFlow[] = [];
    for (const backend of [SERVING, NOT_SERVING, DELETED, TERMINATING]) {
      for (const proto of ['tcp', 'udp', 'sctp']) {
        for (const port of [8000, 3000]) flows.push(flow(proto, SVC_IP, port, backend, 9090));
      }
    }
    expect(staleFlows(flows, backends).map(key)).toEqual([
      `udp ${SVC_IP}:8000 -> ${NOT_SERVING}:9090`,
      `udp ${SVC_IP}:8000 -> ${DELETED}:9090`,
    ]);
  });

  it('treats a serving IP with an old target port as stale (the endpoint changed port)', () => {
    expect(staleFlows([flow('udp', SVC_IP, 8000, SERVING, 8080)], backends).map(key)).toEqual([`udp ${SVC_IP}:8000 -> ${SERVING}:8080`]);
  });

  it('deletes never-DNATed flows to the service port (reply from the service IP itself), as upstream does', () => {
    const flows = [flow('udp', SVC_IP, 8000, SVC_IP, 8000), flow('udp', SVC_IP, 3000, SVC_IP, 3000)];
    expect(staleFlows(flows, backends).map(key)).toEqual([`udp ${SVC_IP}:8000 -> ${SVC_IP}:8000`]);
  });

  it('leaves flows to other destinations alone, even from the same backends', () => {
    const flows = [flow('udp', '10.96.9.9', 8000, DELETED, 9090), flow('udp', DELETED, 9090, DELETED, 9090)];
    expect(staleFlows(flows, backends)).toEqual([]);
  });

  it('removes every flow of a port with no serving endpoint', () => {
    const empty: ServiceBackends = { byServiceIP: new Map([[`${SVC_IP}:8000`, new Set<string>()]]), byNodePort: new Map() };
    expect(staleFlows([flow('udp', SVC_IP, 8000, SERVING, 9090)], empty)).toHaveLength(1);
  });

  it('matches NodePorts on any destination IP', () => {
    const np: ServiceBackends = { byServiceIP: new Map(), byNodePort: new Map([[30053, new Set([`${SERVING}:9090`])]]) };
    const flows = [flow('udp', '10.0.0.10', 30053, SERVING, 9090), flow('udp', '192.168.1.1', 30053, DELETED, 9090)];
    expect(staleFlows(flows, np).map(key)).toEqual([`udp 192.168.1.1:30053 -> ${DELETED}:9090`]);
  });

  it('works for IPv6 (bracketed host:port on both sides)', () => {
    const [v6] = parseConntrackList(IPV6);
    if (v6 === undefined) throw new Error('IPv6 line did not parse');
    const keep: ServiceBackends = { byServiceIP: new Map([['[fd00:96::10]:53', new Set(['[fd00:10:244:1::3]:5353'])]]), byNodePort: new Map() };
    const drop: ServiceBackends = { byServiceIP: new Map([['[fd00:96::10]:53', new Set(['[fd00:10:244:1::4]:5353'])]]), byNodePort: new Map() };
    expect(staleFlows([v6], keep)).toEqual([]);
    expect(staleFlows([v6], drop)).toEqual([v6]);
  });
});

describe('withDeletedFrontends and deleteFilters', () => {
  it('adds the frontends that disappeared, with no legitimate backend, and keeps current ones as they are', () => {
    const current: ServiceBackends = { byServiceIP: new Map([['10.96.0.1:53', new Set(['10.244.1.2:53'])]]), byNodePort: new Map() };
    const previous: ServiceBackends = {
      byServiceIP: new Map([
        ['10.96.0.1:53', new Set(['10.244.1.9:53'])],
        ['10.96.0.2:53', new Set(['10.244.1.3:53'])],
      ]),
      byNodePort: new Map([[30053, new Set(['10.244.1.3:53'])]]),
    };
    const merged = withDeletedFrontends(current, previous);
    expect([...merged.byServiceIP].map(([k, v]) => [k, [...v]])).toEqual([
      ['10.96.0.1:53', ['10.244.1.2:53']],
      ['10.96.0.2:53', []],
    ]);
    expect([...merged.byNodePort].map(([k, v]) => [k, v.size])).toEqual([[30053, 0]]);
  });

  it('groups stale flows by frontend and backend', () => {
    const stale = [
      { ...flow('udp', SVC_IP, 8000, DELETED, 9090), origSport: 1 },
      { ...flow('udp', SVC_IP, 8000, DELETED, 9090), origSport: 2 },
      flow('udp', SVC_IP, 8000, NOT_SERVING, 9090),
    ];
    expect(deleteFilters(stale)).toEqual([
      { origDst: SVC_IP, origDport: 8000, replySrc: DELETED, replySport: 9090, flows: 2 },
      { origDst: SVC_IP, origDport: 8000, replySrc: NOT_SERVING, replySport: 9090, flows: 1 },
    ]);
  });
});

/** A runner that answers from a script and records every call. */
function scripted(answer: (args: readonly string[]) => RunResult | Error): { run: Runner; calls: string[][] } {
  const calls: string[][] = [];
  const run: Runner = (args) => {
    calls.push(['conntrack', ...args]);
    const a = answer(args);
    return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
  };
  return { run, calls };
}

const ok = (stdout: string, stderr = ''): RunResult => ({ exitCode: 0, stdout, stderr });
const deletedMsg = (n: number) => `conntrack v1.4.7 (conntrack-tools): ${n} flow entries have been deleted.\n`;
const line = (sport: number, backend: string, bport = 9090) =>
  `udp      17 29 src=10.244.2.2 dst=${SVC_IP} sport=${sport} dport=8000 [UNREPLIED] src=${backend} dst=10.244.2.2 sport=${bport} dport=${sport} mark=0 use=1`;

describe('reconcileConntrack', () => {
  const state = () => load(upstreamService()).state;
  const table = [line(1, SERVING), line(2, DELETED), line(3, DELETED), line(4, NOT_SERVING)].join('\n');

  it('lists UDP flows of the family and deletes each stale (frontend, backend) pair with one exact filter', async () => {
    const { run, calls } = scripted((args) => (args[0] === '-L' ? ok(table) : ok('', deletedMsg(args.includes(DELETED) ? 2 : 1))));
    const r = await reconcileConntrack(state(), 'IPv4', { run });
    expect(calls).toEqual([
      ['conntrack', '-L', '-f', 'ipv4', '-p', 'udp'],
      ['conntrack', '-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', SVC_IP, '--orig-port-dst', '8000', '--reply-src', DELETED, '--reply-port-src', '9090'],
      ['conntrack', '-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', SVC_IP, '--orig-port-dst', '8000', '--reply-src', NOT_SERVING, '--reply-port-src', '9090'],
    ]);
    expect([r.flows, r.stale, r.deleted]).toEqual([4, 3, 3]);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('tolerates a flow that expired before the delete (exit 1, "0 flow entries have been deleted")', async () => {
    const { run } = scripted((args) => (args[0] === '-L' ? ok(table) : { exitCode: 1, stdout: '', stderr: deletedMsg(0) }));
    const r = await reconcileConntrack(state(), 'IPv4', { run });
    expect([r.stale, r.deleted]).toEqual([3, 0]);
  });

  it('tries every delete, then reports the failures with the count that did go', async () => {
    const { run, calls } = scripted((args) => {
      if (args[0] === '-L') return ok(table);
      return args.includes(DELETED) ? { exitCode: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): Operation not permitted' } : ok('', deletedMsg(1));
    });
    const err = await reconcileConntrack(state(), 'IPv4', { run }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConntrackError);
    expect((err as ConntrackError).message).toMatch(/1 of 2 conntrack deletes failed: .*--reply-src 10\.240\.2\.6.* exited 1: .*Operation not permitted/);
    expect((err as ConntrackError).deleted).toBe(1);
    expect(calls).toHaveLength(3);
  });

  it('fails with the tool error when listing fails or conntrack is missing, deleting nothing', async () => {
    const failing = scripted(() => ({ exitCode: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): Operation failed: Permission denied' }));
    await expect(reconcileConntrack(state(), 'IPv4', { run: failing.run })).rejects.toThrow(/conntrack -L -f ipv4 -p udp exited 1: .*Permission denied/);
    expect(failing.calls).toHaveLength(1);
    const missing = scripted(() => new ToolError({ code: 'TOOL_MISSING', what: 'conntrack -L -f ipv4 -p udp', reason: 'command not found (install the conntrack package)', command: 'conntrack -L -f ipv4 -p udp' }));
    await expect(reconcileConntrack(state(), 'IPv4', { run: missing.run })).rejects.toThrow(/command not found/);
  });

  it('refuses to delete anything when the listing has a line it cannot read', async () => {
    const { run, calls } = scripted(() => ok(`${line(2, DELETED)}\nudp      17 29 src=10.244.2.2 dst=${SVC_IP} sport=9 dport=8000 mark=0 use=1`));
    await expect(reconcileConntrack(state(), 'IPv4', { run })).rejects.toThrow(ConntrackError);
    expect(calls).toHaveLength(1);
  });

  it('does not list anything when no UDP frontend exists', async () => {
    const { run, calls } = scripted(() => ok(''));
    const tcpOnly = load([service({ name: 'web', clusterIP: '10.96.0.80', ports: [{ port: 80 }] })]).state;
    expect(await reconcileConntrack(tcpOnly, 'IPv4', { run })).toMatchObject({ deleted: 0, flows: 0, stale: 0 });
    expect(calls).toEqual([]);
  });

  it('uses ipv6 for the IPv6 family', async () => {
    const { run, calls } = scripted(() => ok(''));
    const previous: ServiceBackends = { byServiceIP: new Map([['[fd00:96::10]:53', new Set<string>()]]), byNodePort: new Map() };
    await reconcileConntrack(load([]).state, 'IPv6', { run, previous });
    expect(calls).toEqual([['conntrack', '-L', '-f', 'ipv6', '-p', 'udp']]);
  });
});

describe('ConntrackReconciler', () => {
  it('remembers the frontends of the last successful reconcile, so a deleted Service loses all its flows', async () => {
    const table = [line(1, SERVING), line(2, TERMINATING)].join('\n');
    const { run, calls } = scripted((args) => (args[0] === '-L' ? ok(table) : ok('', deletedMsg(1))));
    const reconciler = new ConntrackReconciler('IPv4', { run });
    expect(await reconciler.reconcile(load(upstreamService()).state)).toMatchObject({ flows: 2, stale: 0, deleted: 0 });
    // The Service is deleted: both flows, serving until now, are stale.
    expect(await reconciler.reconcile(load([]).state)).toMatchObject({ flows: 2, stale: 2, deleted: 2 });
    expect(calls.filter((c) => c[1] === '-D').map((c) => c[c.indexOf('--reply-src') + 1])).toEqual([SERVING, TERMINATING]);
    // Once cleaned, the deleted Service is forgotten: nothing is listed any more.
    calls.length = 0;
    expect(await reconciler.reconcile(load([]).state)).toMatchObject({ flows: 0, deleted: 0 });
    expect(calls).toEqual([]);
  });

  it('keeps the memory when a reconcile fails, so the next one still cleans the deleted Service', async () => {
    let fail = false;
    const { run } = scripted((args) => {
      if (fail) return { exitCode: 1, stdout: '', stderr: 'boom' };
      return args[0] === '-L' ? ok(line(1, SERVING)) : ok('', deletedMsg(1));
    });
    const reconciler = new ConntrackReconciler('IPv4', { run });
    await reconciler.reconcile(load(upstreamService()).state);
    fail = true;
    await expect(reconciler.reconcile(load([]).state)).rejects.toThrow(/boom/);
    fail = false;
    expect(await reconciler.reconcile(load([]).state)).toMatchObject({ stale: 1, deleted: 1 });
  });
});
