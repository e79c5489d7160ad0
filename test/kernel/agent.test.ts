// End to end: the real agent (`switchboard run`) in a lab's node namespace, fed by the wire-level test API
// server, with real packets from a client pod through the ClusterIP. Each change must show in packets within
// a bounded time; API outages, agent restarts and outside flushes must never cost a working rule.
import { hostname } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { type Agent, type ApiFixture, HEALTHZ_PORT, HEALTH_CHECK_NODE_PORT, METRICS_PORT, NsProcess, eventually, healthCheckedLoadBalancer, useAgentLab } from './agent-harness.js';
import { NODE_NAME, TempFiles, loopBackMembers, outcomes } from './helpers.js';
import type { Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' }; // the client

const WEB_IP = '10.96.5.10';
const DB_IP = '10.96.5.11';
/** Every change must reach the kernel within this (the agent runs with --min-sync-period 0). */
const CHANGE_BOUND_MS = 5_000;

const node: K8sObject = { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME } } };

function web(name = 'web', clusterIP = WEB_IP, port = 80): K8sObject {
  return service({ name, clusterIP, ports: [{ name: 'http', port, targetPort: 'http' }] });
}

function slice(name: string, ips: string[]): K8sObject {
  return endpointSlice({ name: `${name}-1`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints: ips.map((ip) => ({ ip })) });
}

describe('switchboard run (end to end)', () => {
  let lab: Lab;
  let files: TempFiles;
  let api: ApiFixture;
  let agent: Agent | undefined;

  /** What 6 TCP probes from the client pod to `ip:80` see: sorted distinct outcomes. */
  async function seen(ip = WEB_IP): Promise<string[]> {
    const results = await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 6, timeoutMs: 300 });
    return [...new Set(outcomes(results))].sort();
  }

  async function expectSeen(expected: string[], what: string, ip = WEB_IP): Promise<number> {
    return eventually(async () => {
      const got = await seen(ip);
      return JSON.stringify(got) === JSON.stringify(expected) ? true : JSON.stringify(got);
    }, CHANGE_BOUND_MS, what);
  }

  async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    const script = `const r = await fetch('http://127.0.0.1:${port}${path}'); console.log(JSON.stringify({ status: r.status, body: await r.text() }));`;
    const r = await lab.exec('node', process.execPath, ['--input-type=module', '-e', script]);
    return JSON.parse(r.stdout) as { status: number; body: string };
  }

  const ctx = useAgentLab([A, B, C], [node]);
  beforeAll(() => {
    ({ lab, files, api } = ctx);
  });

  it('programs a new Service, follows endpoint scale-up and scale-down, and removes a deleted Service', async () => {
    await lab.resetNetfilter();
    agent = api.startAgent();
    await agent.ready();
    // Nothing yet: without a rule the ClusterIP is just routed to the node's (black-holed) uplink.
    expect(await seen()).toEqual(['timeout']);

    api.server.apply(web());
    api.server.apply(slice('web', [A.ip]));
    await expectSeen(['ok:a'], 'service created with endpoint a');

    api.server.apply(slice('web', [A.ip, B.ip]));
    await expectSeen(['ok:a', 'ok:b'], 'scaled up to a and b');

    api.server.apply(slice('web', [B.ip]));
    await expectSeen(['ok:b'], 'scaled down to b');

    api.server.apply(slice('web', []));
    await expectSeen(['refused'], 'no endpoints: REJECT');
    await agent.waitFor((l) => l.includes('selector but no endpoints') && l.includes('default/web'), 2_000, 'the no-endpoints warning');

    api.server.apply(slice('web', [A.ip]));
    await expectSeen(['ok:a'], 'endpoints back');
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
    await eventually(async () => !(await lab.iptablesSave('nat')).includes('default/web'), CHANGE_BOUND_MS, 'web rules removed');
    expect(await seen()).toEqual(['timeout']);
  });

  it('with --iptables-layout flat, keeps the loop-back set in step through partial syncs (hairpin to new endpoints works)', async () => {
    await lab.resetNetfilter();
    agent = api.startAgent({ extraArgs: ['--iptables-layout', 'flat'] });
    await agent.ready();
    const members = (): Promise<string[]> => loopBackMembers(lab);
    const entry = (ip: string): string => `${ip},tcp:8080,${ip}`;
    /** The peer address `pod` sees when it reaches itself through the ClusterIP: the node's, if masqueraded. */
    const hairpinPeer = async (pod: string): Promise<string> => {
      const [r] = await lab.probe(pod, { proto: 'tcp', ip: WEB_IP, port: 80, timeoutMs: 1_000 });
      return r?.ok === true && r.reply.pod === pod ? r.reply.peer : JSON.stringify(r);
    };

    api.server.apply(web());
    api.server.apply(slice('web', [A.ip]));
    await expectSeen(['ok:a'], 'flat: service created with endpoint a');
    expect(await members()).toEqual([entry(A.ip)]);
    expect(await hairpinPeer('a')).toBe(lab.nodeIP);
    expect(await lab.iptablesSave('nat')).not.toContain(':KUBE-SEP-');

    api.server.apply(slice('web', [B.ip]));
    await expectSeen(['ok:b'], 'flat: endpoint a replaced by b');
    // b's entry went in with the partial sync that made b an endpoint; a's leaves with the next sync.
    expect(await members()).toContain(entry(B.ip));
    expect(await hairpinPeer('b')).toBe(lab.nodeIP);
    api.server.apply(web('db', DB_IP));
    api.server.apply(slice('db', [B.ip]));
    await expectSeen(['ok:b'], 'flat: db created', DB_IP);
    await eventually(async () => JSON.stringify(await members()) === JSON.stringify([entry(B.ip)]) || JSON.stringify(await members()), CHANGE_BOUND_MS, 'a leaves the set');
    for (const name of ['db', 'web']) {
      api.server.remove('Service', 'default', name);
      api.server.remove('EndpointSlice', 'default', `${name}-1`);
    }
  });

  it('keeps every rule through an API outage and a server restart, and catches up on what changed meanwhile', async () => {
    await lab.resetNetfilter();
    api.server.apply(web());
    api.server.apply(slice('web', [A.ip]));
    agent = api.startAgent();
    await agent.ready();
    await expectSeen(['ok:a'], 'initial state');

    await api.stopBridge(); // every API connection breaks, new ones are refused
    await api.server.stop();
    api.server.apply(slice('web', [B.ip])); // changes while the agent cannot see them
    api.server.apply(web('db', DB_IP));
    api.server.apply(slice('db', [A.ip]));
    await agent.waitFor((l) => l.includes('API request failed; retrying'), 5_000, 'the agent noticing the outage');
    expect(await seen()).toEqual(['ok:a']); // the kernel still has the last known state

    await api.server.restart();
    await api.startBridge();
    await expectSeen(['ok:b'], 'web caught up after the restart');
    await expectSeen(['ok:a'], 'db created during the outage', DB_IP);

    // The server forgets its history (as after etcd compaction): the agent must re-list, not miss changes.
    await api.stopBridge();
    api.server.compact();
    api.server.remove('Service', 'default', 'db');
    api.server.remove('EndpointSlice', 'default', 'db-1');
    await api.startBridge();
    await eventually(async () => !(await lab.iptablesSave('nat')).includes('default/db'), 15_000, 'db deletion seen after a re-list');
    expect(await seen()).toEqual(['ok:b']);
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
  });

  it('traffic keeps flowing while the agent is killed and restarted, and SIGTERM leaves the rules in place', async () => {
    await lab.resetNetfilter();
    api.server.apply(web());
    api.server.apply(slice('web', [A.ip, B.ip]));
    agent = api.startAgent();
    await agent.ready();
    await expectSeen(['ok:a', 'ok:b'], 'initial state');

    // Probe continuously across a hard kill and a restart (which runs a full sync over the live rules).
    const during = lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80, count: 40, timeoutMs: 500, intervalMs: 100 });
    await new Promise((r) => setTimeout(r, 500));
    await agent.stop('SIGKILL');
    agent = api.startAgent();
    await agent.ready();
    const results = outcomes(await during);
    expect(results.filter((r) => !r.startsWith('ok:'))).toEqual([]);

    // SIGTERM: a clean exit 0, and the rules stay for the next agent.
    expect(await agent.stop('SIGTERM')).toBe(0);
    agent = undefined;
    expect(await seen()).toEqual(['ok:a', 'ok:b']);
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
  });

  it('restores its rules after they are flushed from outside (canary chain)', async () => {
    await lab.resetNetfilter();
    api.server.apply(web());
    api.server.apply(slice('web', [A.ip]));
    agent = api.startAgent({ syncPeriod: '1h' }); // only the canary can notice
    await agent.ready();
    await expectSeen(['ok:a'], 'initial state');

    // Flushes and deletes every chain of every table, as `iptables -F; iptables -X` would. (No probe here:
    // the canary check may already have repaired it, and the log line below proves it was noticed.)
    await lab.resetNetfilter();
    await eventually(async () => JSON.stringify(await seen()) === '["ok:a"]', 10_000, 'rules restored after the flush');
    await agent.waitFor((l) => l.includes('canary chain missing'), 1_000, 'the canary warning');
    // One repair per family the agent programs (the reset flushes iptables and ip6tables alike).
    const repaired = agent.records().filter((r) => r['msg'] === 'full sync applied' && r['reason'] === 'canary chain missing: rules were flushed from outside');
    const families = agent.records().find((r) => r['msg'] === 'IP families programmed')?.['families'];
    expect(repaired.map((r) => r['family'] ?? 'IPv4').sort()).toEqual([...(families as string[])].sort());
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
  });

  it('serves healthz, livez and metrics, and an invalid object never costs programmed rules', async () => {
    await lab.resetNetfilter();
    api.server.apply(web());
    api.server.apply(slice('web', [A.ip]));
    agent = api.startAgent();
    await agent.ready();

    const healthz = await httpGet(HEALTHZ_PORT, '/healthz');
    expect(healthz.status).toBe(200);
    expect(JSON.parse(healthz.body)).toMatchObject({ nodeEligible: true, healthy: true });
    expect((await httpGet(HEALTHZ_PORT, '/livez')).status).toBe(200);

    // A port out of range: rejected with a log line naming the object and field; the old version stays.
    const bad = web();
    (bad['spec'] as { ports: { port: number }[] }).ports[0]!.port = 70000;
    api.server.apply(bad);
    await agent.waitFor((l) => l.includes('object rejected') && l.includes('spec.ports[0].port'), 5_000, 'the rejection');
    expect(await seen()).toEqual(['ok:a']);

    const metrics = await httpGet(METRICS_PORT, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\} \d/m);
    expect(metrics.body).toMatch(/^kubeproxy_sync_proxy_rules_iptables_total\{ip_family="IPv4",table="nat"\} (\d+)/m);
    expect(metrics.body).toMatch(/^kubeproxy_sync_full_proxy_rules_duration_seconds_count\{ip_family="IPv4"\} [1-9]/m);
    expect(metrics.body).toMatch(/^kubeproxy_proxy_healthz_total\{code="200"\} [1-9]/m);

    // The Node is being deleted: healthz says 503 so load balancers drain it; livez stays 200.
    api.server.apply({ ...node, metadata: { name: NODE_NAME, deletionTimestamp: new Date().toISOString(), finalizers: ['test'] } });
    await eventually(async () => (await httpGet(HEALTHZ_PORT, '/healthz')).status === 503, CHANGE_BOUND_MS, 'healthz 503 on node deletion');
    expect((await httpGet(HEALTHZ_PORT, '/livez')).status).toBe(200);
    api.server.apply(node);
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
  });

  it('serves the health-check node port of an eTP Local LoadBalancer: 200 with local endpoints, 503 without, closed when gone', async () => {
    await lab.resetNetfilter();
    const HCNP = HEALTH_CHECK_NODE_PORT;
    const lb = healthCheckedLoadBalancer.service;
    const lbSlice = (nodeName: string): K8sObject => healthCheckedLoadBalancer.slice(A.ip, nodeName);
    api.server.apply(lb);
    api.server.apply(lbSlice(NODE_NAME));
    agent = api.startAgent();
    await agent.ready();

    await eventually(async () => (await httpGet(HCNP, '/any/path')).status === 200, CHANGE_BOUND_MS, 'health check 200');
    const ok = await httpGet(HCNP, '/');
    expect(JSON.parse(ok.body)).toEqual({ service: { namespace: 'default', name: 'lb' }, localEndpoints: 1, serviceProxyHealthy: true });
    // The endpoint moves to another node: this node has none, so load balancers must skip it.
    api.server.apply(lbSlice('node-b'));
    await eventually(async () => (await httpGet(HCNP, '/')).status === 503, CHANGE_BOUND_MS, 'health check 503');
    expect(JSON.parse((await httpGet(HCNP, '/')).body)).toMatchObject({ localEndpoints: 0 });
    // The filter ACCEPT for the port, as upstream.
    expect(await lab.iptablesSave('filter')).toMatch(new RegExp(`-A KUBE-NODEPORTS .*health check node port.* --dport ${HCNP} -j ACCEPT`));
    // The Service goes: so does the listener.
    api.server.remove('Service', 'default', 'lb');
    api.server.remove('EndpointSlice', 'default', 'lb-1');
    await eventually(async () => {
      const script = `try { await fetch('http://127.0.0.1:${HCNP}/'); console.log('open'); } catch { console.log('closed'); }`;
      const r = await lab.exec('node', process.execPath, ['--input-type=module', '-e', script]);
      return r.stdout.trim() === 'closed' ? true : r.stdout.trim();
    }, CHANGE_BOUND_MS, 'listener closed');
  });

  it('sends kube-proxy\'s Warning Event when a health-check node port is taken, as one series while it stays taken', async () => {
    await lab.resetNetfilter();
    const HCNP = 32112;
    // Something else on the node holds the port first.
    const blocker = new NsProcess(lab.nodeNs, ['-e', `require('node:net').createServer().listen(${HCNP}, () => console.log('ready'))`]);
    try {
      await blocker.waitFor((l) => l === 'ready', 10_000, 'the port blocker');
      api.server.apply(service({
        name: 'lb-taken',
        type: 'LoadBalancer',
        clusterIP: '10.96.5.21',
        ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 31081 }],
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: HCNP,
      }));
      agent = api.startAgent();
      await agent.ready();

      const failures = () => api.server.objects('Event', 'default').filter((e) => e['reason'] === 'FailedToStartServiceHealthcheck');
      await eventually(async () => failures().length === 1, CHANGE_BOUND_MS, 'the Event at the API server');
      const [event] = failures();
      expect(event).toMatchObject({
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        type: 'Warning',
        action: 'Listen',
        regarding: { kind: 'Service', namespace: 'default', name: 'lb-taken', uid: 'default/lb-taken' },
        reportingController: 'kube-proxy',
        reportingInstance: `kube-proxy-${hostname()}`,
      });
      expect(String(event?.['note'])).toMatch(
        new RegExp(`^node ${NODE_NAME} failed to start healthcheck "default/lb-taken" on port ${HCNP}: listen EADDRINUSE: address already in use \\S*:${HCNP}$`),
      );

      // The listen is retried every 5 s: the next failure counts in the same Event instead of adding one.
      await eventually(async () => Number((failures()[0]?.['series'] as { count?: number } | undefined)?.count ?? 0) >= 2, 15_000, 'the series');
      expect(failures()).toHaveLength(1);
      expect(api.server.requests.filter((r) => r.method === 'POST' && r.path === '/apis/events.k8s.io/v1/namespaces/default/events')).toHaveLength(1);
      expect(agent.records().filter((r) => r['msg'] === 'failed to start service health check; retrying on the next sync').length).toBeGreaterThanOrEqual(2);

      // Freed: the next retry opens it.
      await blocker.stop('SIGKILL');
      await eventually(async () => {
        try {
          return (await httpGet(HCNP, '/')).status === 503;
        } catch (e) {
          return String(e); // refused until the retry
        }
      }, 15_000, 'the health check listening');
    } finally {
      await blocker.stop('SIGKILL');
      api.server.remove('Service', 'default', 'lb-taken');
    }
  });
});
