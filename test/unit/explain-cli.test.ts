// `switchboard explain service` through the built CLI: the contract of issue 17 (argument forms, -f and stdin,
// -o json, exit codes 0 / 3 / 2), and the API-server path against the wire-level test API server.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestApiServer } from '../apiserver/server.js';
import { type K8sObject, kNode, kPod, kService, kSlice, kubectlYaml } from '../support/kubectl-dump.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// No kubeconfig from the machine running the tests: -f never reads one, and API tests name theirs.
const env = { KUBECONFIG: '', HOME: '/nonexistent' };
const run = (args: string[], input?: string) =>
  execa(process.execPath, [`${root}dist/cli/main.js`, ...args], { cwd: root, reject: false, env, extendEnv: false, ...(input !== undefined ? { input } : {}) });

const web = (ready: boolean): K8sObject[] => [
  kService({ namespace: 'shop', name: 'web', clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
  kSlice({ namespace: 'shop', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde', ready }] }),
  kPod({ namespace: 'shop', name: 'web-7d9c5b8f4-abcde', labels: { app: 'web' }, node: 'node-a', ip: '10.244.1.5', ready, containers: [{ name: 'web', ports: [{ name: 'http', containerPort: 8080 }], readiness: { path: '/healthz', port: 8080 } }] }),
  kNode('node-a', '172.18.0.3'),
];

interface JsonOut {
  service: string;
  node: string;
  served: boolean;
  findings: { code: string; severity: string; message: string; fix: string }[];
  ports: { name: string; verdict: string; endpoints: { ip: string; pod: string | null; node: string | null; ready: boolean }[] }[];
}

describe('switchboard explain service (CLI)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'explain-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 and prints the verdict when every port is served', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, kubectlYaml(web(true)));
    const r = await run(['explain', 'service', 'shop/web', '-f', file, '--node-name', 'node-a']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('port http 80/TCP -> targetPort "http": DNAT to 1 of 1 endpoint');
    expect(r.stdout).toContain('* 10.244.1.5:8080');
    expect(r.stdout).toContain('web-7d9c5b8f4-abcde');
  });

  it('exits 3 with findings when a port is not served; svc is an alias; -f - reads stdin; -o json', async () => {
    const r = await run(['explain', 'svc', 'shop/web', '-f', '-', '--node-name', 'node-a', '-o', 'json'], kubectlYaml(web(false)));
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(3);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(doc.service).toBe('shop/web');
    expect(doc.node).toBe('node-a');
    expect(doc.served).toBe(false);
    expect(doc.findings.map((f) => [f.code, f.severity])).toEqual([['PodsNotReady', 'error']]);
    expect(doc.ports.map((p) => p.verdict)).toEqual(['reject']);
    expect(doc.ports[0]?.endpoints).toEqual([{ ip: '10.244.1.5', port: 8080, node: 'node-a', ready: false, serving: false, terminating: false, pod: 'web-7d9c5b8f4-abcde' }]);
  });

  it('exits 3 for a Service that does not exist, and for a headless one', async () => {
    const file = join(dir, 'more.yaml');
    await writeFile(file, kubectlYaml([...web(true), kService({ namespace: 'shop', name: 'db', clusterIP: 'None', ports: [{ port: 5432 }] })]));
    const missing = await run(['explain', 'service', 'shop/wbe', '-f', file, '--node-name', 'node-a']);
    expect(missing.exitCode).toBe(3);
    expect(missing.stdout).toContain('ServiceNotFound: Service shop/wbe not found in the input');
    expect(missing.stdout).toContain('similar names in namespace shop: web');
    const headless = await run(['explain', 'service', 'shop/db', '-f', file, '--node-name', 'node-a', '-o', 'json']);
    expect(headless.exitCode).toBe(3);
    expect((JSON.parse(headless.stdout) as JsonOut).ports.map((p) => p.verdict)).toEqual(['not-proxied']);
  });

  it('warnings alone keep exit 0', async () => {
    const items = web(true);
    items.push(kPod({ namespace: 'shop', name: 'web-7d9c5b8f4-pend1', labels: { app: 'web' }, node: 'node-a', containers: [{ name: 'web', ports: [{ name: 'http', containerPort: 8080 }] }] }));
    const r = await run(['explain', 'service', 'shop/web', '-f', '-', '--node-name', 'node-a', '-o', 'json'], kubectlYaml(items));
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as JsonOut).findings.map((f) => [f.code, f.severity])).toEqual([['PodsNotReady', 'warning']]);
  });

  it.each([
    [['explain', 'service', 'shop/web/x', '-f', '-'], /"shop\/web\/x" is not NAMESPACE\/NAME/],
    [['explain', 'service', 'shop/Web', '-f', '-'], /is not NAMESPACE\/NAME/],
    [['explain', 'service', '-f', '-'], /missing required argument 'service'/],
    [['explain', 'service', 'shop/web', '-f', '-', '-o', 'yaml'], /Allowed choices are text, json/],
    [['explain', 'service', 'shop/web', '-f', '-', '--backend', 'bpf'], /Allowed choices are iptables, ipvs, nftables/],
    [['explain', 'service', 'shop/web', '-f', '-', '--node-ip', 'nope'], /--node-ip: "nope" is not an IP address/],
    [['explain', 'service', 'shop/web', '-f', '-', '--cluster-cidr', '10.244.0.1/16'], /--cluster-cidr/],
    [['explain', 'service', 'shop/web', '-f', '-', '--live'], /unknown option '--live'/],
    [['explain', 'service', 'shop/web', '--kubeconfig', '/nonexistent/kubeconfig'], /--kubeconfig: \/nonexistent\/kubeconfig does not exist/],
    [['explain', 'service', 'shop/web'], /no API server configuration/],
    [['explain', 'pod', 'shop/web'], /unknown command 'pod'/],
  ])('exits 2 on usage error %j', async (args, message) => {
    const r = await run(args, '');
    expect(r.stderr).toMatch(message);
    expect(r.exitCode).toBe(2);
  });

  it('exits 2 on unreadable input: a missing file, broken YAML, an invalid Service', async () => {
    const missing = await run(['explain', 'service', 'shop/web', '-f', join(dir, 'no-such.yaml')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('no-such.yaml: cannot read: ENOENT');
    const broken = await run(['explain', 'service', 'shop/web', '-f', '-'], 'apiVersion: v1\nkind: List\nitems: [\n');
    expect(broken.exitCode).toBe(2);
    expect(broken.stderr).toContain('YAML error');
    const invalid = await run(['explain', 'service', 'shop/web', '-f', '-'], kubectlYaml([kService({ namespace: 'shop', name: 'web', clusterIP: '10.96.0.50', ports: [{ port: 70000 }] })]));
    expect(invalid.exitCode).toBe(2);
    expect(invalid.stderr).toContain('error: Service shop/web: spec.ports[0].port: 70000 is out of range 1-65535');
    expect(invalid.stdout).toBe('');
  });
});

describe('switchboard explain service against the API server', () => {
  let server: TestApiServer;
  let dir: string;
  let kubeconfig: string;
  beforeAll(async () => {
    server = await TestApiServer.start({ tls: true, token: 'operator-token' });
    dir = await mkdtemp(join(tmpdir(), 'explain-api-'));
    kubeconfig = join(dir, 'kubeconfig');
    await server.writeKubeconfig(kubeconfig);
    for (const o of [
      kService({ namespace: 'shop', name: 'api', clusterIP: '10.96.0.60', selector: { app: 'api-svc' }, ports: [{ port: 80, targetPort: 8080 }] }),
      kSlice({ namespace: 'shop', service: 'api', ports: null, endpoints: null }),
      kPod({ namespace: 'shop', name: 'api-service-5f7d8-aaaaa', labels: { app: 'api-service' }, node: 'node-a', ip: '10.244.1.20' }),
      kPod({ namespace: 'shop', name: 'api-service-5f7d8-bbbbb', labels: { app: 'api-service' }, node: 'node-b', ip: '10.244.2.20' }),
      kPod({ namespace: 'other', name: 'api-svc-0', labels: { app: 'api-svc' }, node: 'node-a', ip: '10.244.1.99' }),
      ...web(true),
      kService({ namespace: 'staging', name: 'web', clusterIP: '10.96.5.50', ports: [{ port: 80 }] }),
    ]) {
      server.apply(o);
    }
  });
  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const explainApi = (ref: string, ...extra: string[]) => run(['explain', 'service', ref, '--kubeconfig', kubeconfig, '--node-name', 'node-a', '-o', 'json', ...extra]);

  it('reads the Service, its slices, the namespace\'s Pods and the Node: SelectorMatchesNoPods names the closest Pods', async () => {
    const before = server.requests.length;
    const r = await explainApi('shop/api');
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(3);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(doc.served).toBe(false);
    expect(doc.ports.map((p) => p.verdict)).toEqual(['reject']);
    expect(doc.findings.map((f) => f.code)).toEqual(['SelectorMatchesNoPods']);
    expect(doc.findings[0]?.message).toContain('closest: 2 Pods (api-service-5f7d8-aaaaa, api-service-5f7d8-bbbbb) with app=api-service (selector wants api-svc)');
    // Only the Service's namespace is listed: the Pod in "other" is not read.
    expect(doc.findings[0]?.message).not.toContain('other');
    const paths = server.requests.slice(before).map((q) => `${q.path}${q.query.get('labelSelector') ? `?${q.query.get('labelSelector') ?? ''}` : ''}`);
    expect(paths).toEqual([
      '/api/v1/namespaces/shop/services/api',
      '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?kubernetes.io/service-name=api',
      '/api/v1/namespaces/shop/pods',
      '/api/v1/nodes/node-a',
    ]);
  });

  it('a served Service exits 0, its endpoints named by Pod', async () => {
    const r = await explainApi('shop/web');
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(doc.served).toBe(true);
    expect(doc.findings).toEqual([]);
    expect(doc.ports[0]?.endpoints.map((ep) => [ep.ip, ep.pod, ep.node])).toEqual([['10.244.1.5', 'web-7d9c5b8f4-abcde', 'node-a']]);
  });

  it('Pods forbidden: degrades to PodChecksSkipped (info) and judges from the slices', async () => {
    server.failNext(1, { status: 403, match: (q) => q.path.endsWith('/pods') });
    const r = await explainApi('shop/web');
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(doc.findings.map((f) => [f.code, f.severity])).toEqual([['PodChecksSkipped', 'info']]);
    expect(doc.findings[0]?.message).toContain('forbidden');
  });

  it('not found: suggestions from the namespace and other namespaces', async () => {
    const r = await explainApi('shop/wbe');
    expect(r.exitCode).toBe(3);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(doc.findings[0]?.message).toBe(`Service shop/wbe not found in the API server (${server.url}); similar names in namespace shop: web`);
    const r2 = await explainApi('default/web');
    expect((JSON.parse(r2.stdout) as JsonOut).findings[0]?.message).toContain('a Service named web exists in namespaces shop, staging');
  });

  it('exits 2 when the API server refuses the credentials', async () => {
    const bad = join(dir, 'bad-kubeconfig');
    await writeFile(bad, server.kubeconfig().replace('operator-token', 'wrong-token'));
    const r = await run(['explain', 'service', 'shop/web', '--kubeconfig', bad, '--node-name', 'node-a']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('cannot read shop/web from');
    expect(r.stderr).toContain('HTTP 401');
    expect(r.stdout).toBe('');
  });
});
