import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_HEALTHZ_PORT, DEFAULT_METRICS_PORT, formatBindAddress, parseBindAddress } from '../../src/serve/bind-address.js';
import { ProxyHealth } from '../../src/serve/health.js';
import { startHealthServer, startMetricsServer, type RunningServer } from '../../src/serve/http.js';
import { ProxyMetrics } from '../../src/serve/metrics.js';

describe('parseBindAddress', () => {
  it('accepts IP:port, [IPv6]:port and a bare IP (default port), as kube-proxy', () => {
    expect(parseBindAddress('0.0.0.0:10256', DEFAULT_HEALTHZ_PORT)).toEqual({ host: '0.0.0.0', port: 10256 });
    expect(parseBindAddress('127.0.0.1:10249', DEFAULT_METRICS_PORT)).toEqual({ host: '127.0.0.1', port: 10249 });
    expect(parseBindAddress('[::]:10256', DEFAULT_HEALTHZ_PORT)).toEqual({ host: '::', port: 10256 });
    expect(parseBindAddress('[fd00::1]:8080', DEFAULT_HEALTHZ_PORT)).toEqual({ host: 'fd00::1', port: 8080 });
    expect(parseBindAddress('10.1.2.3', DEFAULT_HEALTHZ_PORT)).toEqual({ host: '10.1.2.3', port: 10256 });
    expect(parseBindAddress('::', DEFAULT_METRICS_PORT)).toEqual({ host: '::', port: 10249 });
  });

  it('returns null for the empty string (server disabled)', () => {
    expect(parseBindAddress('', DEFAULT_HEALTHZ_PORT)).toBeNull();
  });

  it('rejects bad input with a message naming the value and the problem', () => {
    const bad: Array<[string, RegExp]> = [
      ['localhost:10256', /"localhost" is not a valid IP address/],
      ['1.2.3.4:', /port "" is not a number/],
      ['1.2.3.4:http', /port "http" is not a number/],
      ['1.2.3.4:70000', /port 70000 is out of range 1-65535/],
      ['1.2.3.4:0', /port 0 is out of range 1-65535/],
      ['::1:10256', /\[IP\]:port/],
      ['[::1]10256', /expected ":port"/],
      ['[::1:10256', /missing "\]"/],
      ['[1.2.3.4]:80', /not a valid IPv6 address/],
      ['fe80::1%eth0', /./],
      ['1.2.3.4:-1', /is not a number/],
    ];
    for (const [input, why] of bad) {
      expect(() => parseBindAddress(input, DEFAULT_HEALTHZ_PORT), input).toThrow(why);
      expect(() => parseBindAddress(input, DEFAULT_HEALTHZ_PORT), input).toThrow(`bind address ${JSON.stringify(input)}`);
    }
  });

  it('allows port 0 only when asked, and formats addresses back', () => {
    expect(parseBindAddress('127.0.0.1:0', 1, { allowEphemeralPort: true })).toEqual({ host: '127.0.0.1', port: 0 });
    expect(formatBindAddress({ host: '::', port: 10256 })).toBe('[::]:10256');
    expect(formatBindAddress({ host: '0.0.0.0', port: 10249 })).toBe('0.0.0.0:10249');
  });
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, opts: { method?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Fails fast (instead of at the test timeout) when `p` does not settle within `ms`. */
async function within<T>(ms: number, p: Promise<T> | undefined, what: string): Promise<T> {
  if (p === undefined) throw new Error(`${what}: nothing to wait for`);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const LOOPBACK_EPHEMERAL = { host: '127.0.0.1', port: 0 };

describe('health and metrics servers over 127.0.0.1', () => {
  const running: RunningServer[] = [];
  const agents: Agent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) a.destroy();
    await Promise.all(running.splice(0).map((s) => s.close()));
  });

  async function setup() {
    let now = Date.UTC(2025, 0, 1);
    const health = new ProxyHealth({ healthTimeoutMs: 1_000, now: () => now });
    const metrics = new ProxyMetrics({ processMetrics: false });
    const hs = await startHealthServer(LOOPBACK_EPHEMERAL, health, metrics);
    const ms = await startMetricsServer(LOOPBACK_EPHEMERAL, metrics);
    running.push(hs, ms);
    return { health, metrics, hs, ms, step: (ms: number) => (now += ms) };
  }

  it('reports the ephemeral ports it got', async () => {
    const { hs, ms } = await setup();
    expect(hs.address.host).toBe('127.0.0.1');
    expect(hs.address.port).toBeGreaterThan(0);
    expect(ms.address.port).toBeGreaterThan(0);
    expect(ms.address.port).not.toBe(hs.address.port);
  });

  it('serves /healthz and /livez with upstream status codes, headers and bodies, and counts them in /metrics', async () => {
    const { health, hs, ms, step } = await setup();
    health.updated();

    const ok = await get(hs.address.port, '/healthz');
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('application/json');
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
    expect(JSON.parse(ok.body)).toMatchObject({ nodeEligible: true, healthy: true, currentTime: '2025-01-01T00:00:00Z' });

    health.queuedUpdate();
    step(1_000);
    expect((await get(hs.address.port, '/healthz')).status).toBe(503);
    const livezLate = await get(hs.address.port, '/livez?x=1'); // query strings do not change the route
    expect(livezLate.status).toBe(503);
    expect(JSON.parse(livezLate.body)).toMatchObject({ healthy: false });

    health.updated();
    health.setNode({ deleting: true, toBeDeleted: false });
    expect((await get(hs.address.port, '/healthz')).status).toBe(503);
    expect((await get(hs.address.port, '/livez')).status).toBe(200);

    const head = await get(hs.address.port, '/livez', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');

    const scrape = await get(ms.address.port, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(scrape.body).toContain('kubeproxy_proxy_healthz_total{code="200"} 1');
    expect(scrape.body).toContain('kubeproxy_proxy_healthz_total{code="503"} 2');
    expect(scrape.body).toContain('kubeproxy_proxy_livez_total{code="503"} 1');
    expect(scrape.body).toContain('kubeproxy_proxy_livez_total{code="200"} 2');
  });

  it('metrics server answers /proxyMode, /healthz like kube-proxy, and 404 elsewhere', async () => {
    const { hs, ms } = await setup();
    const mode = await get(ms.address.port, '/proxyMode');
    expect(mode).toMatchObject({ status: 200, body: 'iptables' });
    expect(mode.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(await get(ms.address.port, '/healthz')).toMatchObject({ status: 200, body: 'ok' });
    expect((await get(ms.address.port, '/healthz?verbose')).body).toBe('[+]ping ok\nhealthz check passed\n');
    expect(await get(ms.address.port, '/nope')).toMatchObject({ status: 404, body: '404 page not found\n' });
    expect((await get(hs.address.port, '/metrics')).status).toBe(404);
    expect((await get(hs.address.port, '/healthz/')).status).toBe(404);
  });

  it('close() resolves promptly with an idle keep-alive connection open, and frees the port', async () => {
    const { hs } = await setup();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    expect((await get(hs.address.port, '/livez', { agent })).status).toBe(200);
    const open = Object.values(agent.freeSockets).flat().length;
    expect(open).toBe(1); // the socket really is held open

    await within(1_000, running.splice(running.indexOf(hs), 1)[0]?.close(), 'server close');
    await expect(get(hs.address.port, '/livez')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('close() does not wait for a client stuck mid-request', async () => {
    const { ms } = await setup();
    const sock = connect(ms.address.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    sock.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'); // headers never finish
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 50)); // let the server accept and start parsing

    await within(1_000, running.splice(running.indexOf(ms), 1)[0]?.close(), 'server close');
    await within(1_000, closed, 'client socket close');
  });

  it('fails to start with an error naming the address when the port is taken', async () => {
    const { hs, health, metrics } = await setup();
    await expect(startHealthServer({ host: '127.0.0.1', port: hs.address.port }, health, metrics)).rejects.toThrow(
      `cannot start the health server on 127.0.0.1:${hs.address.port}: listen EADDRINUSE`,
    );
  });
});
