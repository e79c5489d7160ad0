// `switchboard trace` through the built CLI, as tests outside this repository call it (issue 17's contract):
// its JSON fields and types, its exit codes (0 reached, 3 rejected, dropped or not a Service address, 2 usage
// or bad input), -f from files and stdin, both families of a dual-stack input, each backend.
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { endpointSlice, list, service } from '../support/objects.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (args: string[], input?: string) =>
  execa(process.execPath, [`${root}dist/cli/main.js`, 'trace', ...args], { cwd: root, reject: false, ...(input !== undefined ? { input } : {}) });
const WEB = ['-f', 'rules/examples/web.yaml', '--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16', '--node-ip', '10.0.0.10'];
const DUAL = ['-f', 'rules/examples/dual-stack.yaml', '--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/48'];

interface TraceJson {
  from: string;
  to: string;
  protocol: string;
  service: string | null;
  kind: string | null;
  verdict: string;
  masquerade: boolean;
  endpoints: { ip: string; port: number; probability: number }[];
  path: string[];
}

async function json(args: string[], input?: string): Promise<{ exitCode: number | undefined; out: TraceJson; stderr: string }> {
  const r = await run([...args, '-o', 'json'], input);
  return { exitCode: r.exitCode, out: JSON.parse(r.stdout) as TraceJson, stderr: r.stderr };
}

describe('switchboard trace -o json', () => {
  it('a ClusterIP from the node: the contract\'s fields, in order, with their types', async () => {
    const { exitCode, out } = await json([...WEB, '--to', '10.96.0.50:80']);
    expect(exitCode).toBe(0);
    expect(Object.keys(out).slice(0, 9)).toEqual(['from', 'to', 'protocol', 'service', 'kind', 'verdict', 'masquerade', 'endpoints', 'path']);
    expect(out).toMatchObject({ from: '10.0.0.10', to: '10.96.0.50:80', protocol: 'tcp', service: 'default/web:http', kind: 'clusterIP', verdict: 'dnat', masquerade: true });
    expect(out.endpoints.map(({ ip, port, probability }) => ({ ip, port, probability }))).toEqual([
      { ip: '10.244.1.5', port: 8080, probability: 0.5 },
      { ip: '10.244.2.6', port: 8080, probability: 0.5 },
    ]);
    expect(out.endpoints.reduce((n, e) => n + e.probability, 0)).toBeCloseTo(1, 12);
    expect(out.path.length).toBeGreaterThan(0);
    expect(out.path.every((s) => typeof s === 'string')).toBe(true);
    // From the node: the OUTPUT chains, not PREROUTING.
    expect(out.path[0]).toMatch(/^nat OUTPUT: /);
  });

  it('from a pod (--from): PREROUTING, not masqueraded; UDP by /udp', async () => {
    const { exitCode, out } = await json([...WEB, '--to', '10.96.0.10:53/udp', '--from', '10.244.1.9']);
    expect(exitCode).toBe(0);
    expect(out).toMatchObject({ from: '10.244.1.9', protocol: 'udp', service: 'kube-system/dns:dns', verdict: 'dnat', masquerade: false });
    expect(out.endpoints).toEqual([expect.objectContaining({ ip: '10.244.1.7', port: 53, probability: 1 })]);
    expect(out.path[0]).toMatch(/^nat PREROUTING: /);
  });

  it('no endpoints: REJECT, exit 3, the Service named (unnamed port: ns/name)', async () => {
    const { exitCode, out } = await json([...WEB, '--to', '10.96.0.60:80']);
    expect(exitCode).toBe(3);
    expect(out).toMatchObject({ service: 'default/gone', kind: 'clusterIP', verdict: 'reject', endpoints: [] });
    expect(out.path.at(-1)).toContain('"default/gone has no endpoints"');
  });

  it('internalTrafficPolicy Local without a local endpoint: DROP, exit 3', async () => {
    const { exitCode, out } = await json(['-f', 'rules/examples/features.yaml', '--node-name', 'node-a', '--node-ip', '10.0.0.10', '--to', '10.96.1.12:80']);
    expect(exitCode).toBe(3);
    expect(out).toMatchObject({ service: 'shop/remote-only', kind: 'clusterIP', verdict: 'drop' });
  });

  it.each([
    ['another port of a ClusterIP', '10.96.0.50:81'],
    ['the ClusterIP in UDP', '10.96.0.50:80/udp'],
    ['an address no Service has', '10.1.2.3:80'],
  ])('not a Service address (%s): verdict none, service and kind null, exit 3', async (_name, to) => {
    const { exitCode, out } = await json([...WEB, '--to', to]);
    expect(exitCode).toBe(3);
    expect(out).toMatchObject({ service: null, kind: null, verdict: 'none', endpoints: [] });
  });

  it('a dual-stack input: the family of --to, each to its own endpoints; a NodePort and an LB IP', async () => {
    const v6 = await json([...DUAL, '--to', '[fd00:10:96::50]:80']);
    expect(v6.exitCode).toBe(0);
    expect(v6.out).toMatchObject({ from: '2001:db8::2', to: '[fd00:10:96::50]:80', service: 'default/web:http', kind: 'clusterIP' });
    expect(v6.out.endpoints.map((e) => e.ip)).toEqual(['fd00:10:244:1::5', 'fd00:10:244:2::6']);
    const v4 = await json([...DUAL, '--to', '10.96.0.50:80']);
    expect(v4.out.endpoints.map((e) => e.ip)).toEqual(['10.244.1.5', '10.244.2.6']);
    // externalTrafficPolicy Local: from outside, the local endpoint only; the client's address kept.
    const np = await json([...DUAL, '--to', '192.168.0.2:30443', '--from', '203.0.113.5']);
    expect(np.out).toMatchObject({ service: 'shop/shop:https', kind: 'nodePort', verdict: 'dnat', masquerade: false });
    expect(np.out.endpoints).toEqual([expect.objectContaining({ ip: '10.244.1.20', port: 8443, probability: 1 })]);
    const lb = await json([...DUAL, '--to', '198.51.100.20:443', '--from', '203.0.113.200']);
    expect(lb.exitCode).toBe(3);
    expect(lb.out).toMatchObject({ service: 'shop/shop:https', kind: 'loadBalancer', verdict: 'drop' });
  });

  it.each(['iptables', 'nftables', 'ipvs'])('--backend %s: the same answer for the same Service port', async (backend) => {
    const { exitCode, out } = await json([...WEB, '--backend', backend, '--to', '10.96.0.50:80', '--from', '10.244.1.9']);
    expect(exitCode).toBe(0);
    expect(out).toMatchObject({ service: 'default/web:http', kind: 'clusterIP', verdict: 'dnat', masquerade: false });
    expect(out.endpoints.map(({ ip, probability }) => [ip, probability])).toEqual([
      ['10.244.1.5', 0.5],
      ['10.244.2.6', 0.5],
    ]);
  });

  it('reads -f - from stdin', async () => {
    const input = list([
      service({ name: 'a', clusterIP: '10.96.0.1', ports: [{ name: 'p', port: 80, targetPort: 8080 }] }),
      endpointSlice({ name: 'a-1', service: 'a', ports: [{ name: 'p', port: 8080 }], endpoints: [{ ip: '10.244.0.5' }] }),
    ]);
    const { exitCode, out } = await json(['-f', '-', '--node-name', 'n1', '--node-ip', '10.0.0.10', '--to', '10.96.0.1:80'], input);
    expect(exitCode).toBe(0);
    expect(out).toMatchObject({ service: 'default/a:p', endpoints: [{ ip: '10.244.0.5', port: 8080, probability: 1 }] });
  });
});

describe('switchboard trace, text and errors', () => {
  it('prints the Service, the verdict, the endpoints with their shares and the path', async () => {
    const r = await run([...WEB, '--to', '10.96.0.50:80']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('service     default/web:http (clusterIP)');
    expect(r.stdout).toMatch(/10\.244\.1\.5:8080 +50%/);
    expect(r.stdout).toContain('nat KUBE-SERVICES: -m comment --comment "default/web:http cluster IP"');
  });

  it.each([
    [['-f', 'rules/examples/web.yaml', '--node-ip', '10.0.0.10'], /required option '--to/],
    [[...WEB, '--to', '10.96.0.50'], /--to: "10.96.0.50" is not IP:PORT/],
    [[...WEB, '--to', '10.96.0.50:0'], /is not IP:PORT/],
    [[...WEB, '--to', '10.96.0.50:80/icmp'], /is not IP:PORT/],
    [[...WEB, '--to', 'fd00::1:80'], /is not IP:PORT|in brackets/],
    [[...WEB, '--to', '10.96.0.50:80', '--from', 'pod-a'], /--from: "pod-a" is not an IP address/],
    [[...WEB, '--to', '10.96.0.50:80', '--from', 'fd00::1'], /not of one IP family/],
    [['--to', '10.96.0.50:80', '--node-ip', '10.0.0.10'], /either -f FILE/],
    [[...WEB, '--live', '--to', '10.96.0.50:80'], /either -f FILE/],
    [['-f', 'rules/examples/web.yaml', '--node-name', 'node-a', '--to', '10.96.0.50:80'], /node's IPv4 address is not known/],
    [[...WEB, '--to', '10.96.0.50:80', '-o', 'yaml'], /Allowed choices are text, json/],
    [[...WEB, '--to', '10.96.0.50:80', '--backend', 'bpf'], /Allowed choices are iptables, ipvs, nftables/],
  ])('exits 2 on usage error %j', async (args, message) => {
    const r = await run(args as string[], '');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('exits 2 naming file, object and field for bad input, and traces nothing', async () => {
    const input = list([service({ namespace: 'shop', name: 'bad', clusterIP: '10.96.0.2', ports: [{ port: 70000 }] })]);
    const r = await run(['-f', '-', '--node-name', 'n1', '--node-ip', '10.0.0.10', '--to', '10.96.0.2:80'], input);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('Service shop/bad: spec.ports[0].port: 70000 is out of range 1-65535');
    expect(r.stdout).toBe('');
    const missing = await run(['-f', 'no/such.yaml', '--node-ip', '10.0.0.10', '--to', '10.96.0.2:80']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('no/such.yaml: cannot read: ENOENT');
  });
});
