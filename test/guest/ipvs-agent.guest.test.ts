// The agent with --backend ipvs in a kernel with IPVS (the QEMU guest; see test/vm): its partial syncs,
// which diff against what the agent last applied rather than the kernel, must keep the IPVS table, the sets
// and kube-ipvs0 in step with real packets; deleting kube-ipvs0 from outside must be repaired. The health-check
// node port of an eTP Local LoadBalancer answers a client off the node.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { type Agent, type ApiFixture, HEALTH_CHECK_NODE_PORT, eventually, healthCheckedLoadBalancer, useAgentLab } from '../kernel/agent-harness.js';
import { NODE_NAME, TempFiles, boundAddresses, ipvsTable, loopBackMembers, outcomes, resetIpvs } from '../kernel/helpers.js';
import type { Lab } from '../kernel/lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' };
const WEB_IP = '10.96.5.10';
/** Generous: the guest's CPUs are emulated. */
const CHANGE_BOUND_MS = 20_000;
/**
 * The agent's start and first full sync: on an emulated CPU of a busy host this took over 60 s once. Each test
 * gets this on top of the guest's 120 s test timeout.
 */
const AGENT_READY_MS = 120_000;

const node: K8sObject = { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME } };
const web = service({ name: 'web', clusterIP: WEB_IP, ports: [{ port: 80, targetPort: 8080 }] });
const slice = (ips: string[]): K8sObject =>
  endpointSlice({ name: 'web-1', service: 'web', ports: [{ port: 8080 }], endpoints: ips.map((ip) => ({ ip, nodeName: NODE_NAME })) });

describe('switchboard run --backend ipvs (end to end)', { timeout: 120_000 + AGENT_READY_MS }, () => {
  let lab: Lab;
  let files: TempFiles;
  let api: ApiFixture;
  let agent: Agent | undefined;

  async function seen(from = 'c'): Promise<string[]> {
    const results = await lab.probe(from, { proto: 'tcp', ip: WEB_IP, port: 80, count: 6, timeoutMs: 1_000 });
    return [...new Set(outcomes(results))].sort();
  }

  async function expectSeen(expected: string[], what: string): Promise<void> {
    await eventually(async () => {
      const got = await seen();
      return JSON.stringify(got) === JSON.stringify(expected) ? true : JSON.stringify(got);
    }, CHANGE_BOUND_MS, what);
  }

  const ctx = useAgentLab([A, B, C], [node]);
  beforeAll(() => {
    ({ lab, files, api } = ctx);
  });

  /** A clean node, web with endpoint a at the API server, and an IPVS agent that has programmed it. */
  async function startWithWebOnA(): Promise<Agent> {
    await lab.resetNetfilter();
    await resetIpvs(lab);
    api.server.apply(web);
    api.server.apply(slice([A.ip]));
    const started = api.startAgent({ extraArgs: ['--backend', 'ipvs'] });
    await started.ready(AGENT_READY_MS);
    await expectSeen(['ok:a'], 'programmed at start');
    return started;
  }

  it('follows create, scale, hairpin to a new endpoint, no endpoints and delete through partial syncs', async () => {
    await lab.resetNetfilter();
    await resetIpvs(lab);
    agent = api.startAgent({ extraArgs: ['--backend', 'ipvs'] });
    await agent.ready(AGENT_READY_MS);

    api.server.apply(web);
    api.server.apply(slice([A.ip]));
    await expectSeen(['ok:a'], 'service created with endpoint a');

    api.server.apply(slice([A.ip, B.ip]));
    await expectSeen(['ok:a', 'ok:b'], 'scaled up to a and b');

    api.server.apply(slice([B.ip]));
    await expectSeen(['ok:b'], 'scaled down to b');
    // b reaching itself through the ClusterIP is masqueraded to the node: its set member came with the partial sync.
    expect(await loopBackMembers(lab)).toEqual([`${B.ip},tcp:8080,${B.ip}`]);
    const [self] = await lab.probe('b', { proto: 'tcp', ip: WEB_IP, port: 80, timeoutMs: 2_000 });
    expect(self?.ok === true ? [self.reply.pod, self.reply.peer] : self).toEqual(['b', lab.nodeIP]);

    api.server.apply(slice([]));
    await expectSeen(['refused'], 'no endpoints: REJECT');

    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
    await eventually(async () => !(await ipvsTable(lab)).some((l) => l.includes(WEB_IP)), CHANGE_BOUND_MS, 'virtual server removed');
    expect(await boundAddresses(lab)).not.toContain(`${WEB_IP}/32`);
    // Unbound again, the ClusterIP is routed to the node's black-holed uplink, as before the Service existed.
    expect(await seen()).toEqual(['timeout']);
    // Every partial sync was applied without a failure (a failure would have forced a full sync).
    const failures = agent.records().filter((r) => r['msg'] === undefined ? false : String(r['msg']).startsWith('sync failed'));
    expect(failures).toEqual([]);
  });

  it('a line ipvsadm -R refuses fails the partial sync, and the full sync that follows reconciles without drift', async () => {
    agent = await startWithWebOnA();
    // Someone adds b to our virtual server behind the agent's back, with another weight; the agent still
    // believes the table holds only a, so its partial sync's `-a ... b` is refused ("already exists").
    await lab.exec('node', 'ipvsadm', ['-a', '-t', `${WEB_IP}:80`, '-r', `${B.ip}:8080`, '-m', '-w', '5']);
    api.server.apply(slice([A.ip, B.ip]));
    const failed = await agent.waitFor((l) => l.includes('sync failed'), CHANGE_BOUND_MS, 'the refused partial sync');
    expect(failed).toContain('ipvsadm -R failed');
    expect(failed).toContain('already exists');
    // The retry is a full sync against the kernel: b ends up exactly once, with our weight.
    await eventually(async () => {
      const table = (await ipvsTable(lab)).filter((l) => l.startsWith('-a'));
      const want = [`-a -t ${WEB_IP}:80 -r ${A.ip}:8080 -m -w 1`, `-a -t ${WEB_IP}:80 -r ${B.ip}:8080 -m -w 1`];
      return JSON.stringify(table) === JSON.stringify(want) ? true : JSON.stringify(table);
    }, CHANGE_BOUND_MS, 'the table reconciled to a and b, weight 1');
    await expectSeen(['ok:a', 'ok:b'], 'both endpoints serve');
    const fulls = agent.records().filter((r) => r['msg'] === 'full sync applied' && r['reason'] === 'previous sync failed');
    expect(fulls.length).toBeGreaterThanOrEqual(1);
  });

  it('repairs kube-ipvs0 deleted from outside', async () => {
    agent = await startWithWebOnA();
    await lab.exec('node', 'ip', ['link', 'del', 'kube-ipvs0']);
    await expectSeen(['ok:a'], 'the device and its address restored by a full sync');
    // Repaired by the first full sync: its virtual server was still recognised as ours (through KUBE-IPVS-IPS),
    // so nothing was added twice and refused.
    const failures = agent.records().filter((r) => String(r['msg'] ?? '').startsWith('sync failed'));
    expect(failures).toEqual([]);
    expect(agent.records().some((r) => r['msg'] === 'full sync applied' && r['reason'] !== 'initial sync')).toBe(true);
  });

  it('serves the health-check node port of an eTP Local LoadBalancer to a client off the node: 200, then 503 without a local endpoint', async () => {
    await lab.resetNetfilter();
    await resetIpvs(lab);
    const HCNP = HEALTH_CHECK_NODE_PORT;
    const lb = healthCheckedLoadBalancer.service;
    const lbSlice = (nodeName: string): K8sObject => healthCheckedLoadBalancer.slice(A.ip, nodeName);
    /** GET on the node IP's health-check port from pod c, through the node's INPUT rules. */
    const health = async (): Promise<{ status: number; body: string }> => {
      // Before the listener is up the connection fails: status 0, so `eventually` keeps polling.
      const script =
        `try { const r = await fetch('http://${lab.nodeIP}:${HCNP}/', { signal: AbortSignal.timeout(10_000) }); ` +
        `console.log(JSON.stringify({ status: r.status, body: await r.text() })); } ` +
        `catch (e) { console.log(JSON.stringify({ status: 0, body: String(e) })); }`;
      const r = await lab.exec('c', process.execPath, ['--input-type=module', '-e', script]);
      return JSON.parse(r.stdout) as { status: number; body: string };
    };
    api.server.apply(lb);
    api.server.apply(lbSlice(NODE_NAME));
    agent = api.startAgent({ extraArgs: ['--backend', 'ipvs'] });
    await agent.ready(AGENT_READY_MS);

    let last = { status: 0, body: '' };
    const status = (want: number) => async (): Promise<boolean | string> => {
      last = await health();
      return last.status === want ? true : JSON.stringify(last);
    };
    await eventually(status(200), CHANGE_BOUND_MS, 'health check 200');
    expect(JSON.parse(last.body)).toMatchObject({ localEndpoints: 1 });
    // The port is in upstream's set, accepted in filter KUBE-NODE-PORT from INPUT.
    expect((await lab.exec('node', 'ipset', ['list', 'KUBE-HEALTH-CHECK-NODE-PORT'])).stdout).toMatch(new RegExp(`^${HCNP}$`, 'm'));
    expect(await lab.iptablesSave('filter')).toContain('--match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT');
    // The endpoint moves to another node: load balancers must skip this one.
    api.server.apply(lbSlice('node-b'));
    await eventually(status(503), CHANGE_BOUND_MS, 'health check 503');
    api.server.remove('Service', 'default', 'lb');
    api.server.remove('EndpointSlice', 'default', 'lb-1');
  });
});
