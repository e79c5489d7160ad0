import { request } from 'node:http';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listenFailureEvent, serviceHealthBody, ServiceHealthServer, type ServiceHealthServerOptions } from '../../src/serve/service-health.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path = '/', method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A TCP listener on 127.0.0.1 at `port` (0: the kernel picks). */
function occupy(port = 0): Promise<Server> {
  const s = createServer();
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port }, () => resolve(s));
  });
}

function closeNet(s: Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

/** A port free on 127.0.0.1 right now: listen on 0, note the number, let it go. */
async function freePort(): Promise<number> {
  const s = await occupy();
  const { port } = s.address() as AddressInfo;
  await closeNet(s);
  return port;
}

/** Fails fast (instead of at the test timeout) when `p` does not settle within `ms`. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
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

describe('serviceHealthBody', () => {
  it('is upstream text: TAB-indented, fields in order, no trailing newline', () => {
    expect(serviceHealthBody('ns1/svc1', 18, true)).toBe(
      '{\n\t"service": {\n\t\t"namespace": "ns1",\n\t\t"name": "svc1"\n\t},\n\t"localEndpoints": 18,\n\t"serviceProxyHealthy": true\n}',
    );
  });
});

describe('listenFailureEvent', () => {
  it('has upstream reference, reason, action and message', () => {
    expect(listenFailureEvent('node-a', 'ns/svc', 30000, new Error('listen EADDRINUSE'))).toEqual({
      regarding: { kind: 'Service', namespace: 'ns', name: 'svc', uid: 'ns/svc' },
      type: 'Warning',
      reason: 'FailedToStartServiceHealthcheck',
      action: 'Listen',
      note: 'node node-a failed to start healthcheck "ns/svc" on port 30000: listen EADDRINUSE',
    });
  });
});

describe('ServiceHealthServer over 127.0.0.1', () => {
  const servers: ServiceHealthServer[] = [];
  const blockers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await Promise.all(blockers.splice(0).map((s) => closeNet(s)));
  });

  function make(opts: Partial<ServiceHealthServerOptions> = {}): ServiceHealthServer {
    const s = new ServiceHealthServer({ addresses: ['127.0.0.1'], proxyHealthy: () => true, ...opts });
    servers.push(s);
    return s;
  }

  it('answers 503 with 0 local endpoints, 200 with some, 503 again at 0 (upstream TestServer)', async () => {
    const hs = make();
    const port = await freePort();
    await hs.syncServices(new Map([['ns/svc', port]]));
    expect(hs.status()).toEqual([{ service: 'ns/svc', port, listening: true }]);

    const none = await get(port);
    expect(none.status).toBe(503);
    expect(none.body).toBe(serviceHealthBody('ns/svc', 0, true));

    hs.syncEndpoints(new Map([['ns/svc', 18]]));
    const some = await get(port);
    expect(some.status).toBe(200);
    expect(some.body).toBe(serviceHealthBody('ns/svc', 18, true));

    hs.syncEndpoints(new Map([['ns/svc', 0]]));
    expect((await get(port)).status).toBe(503);
    hs.syncEndpoints(new Map([['ns/svc', 3]]));
    hs.syncEndpoints(new Map()); // absent from the map counts as 0
    expect(JSON.parse((await get(port)).body)).toMatchObject({ localEndpoints: 0 });
  });

  it('answers 503 while the proxy is unhealthy, even with endpoints', async () => {
    let healthy = false;
    const hs = make({ proxyHealthy: () => healthy });
    const port = await freePort();
    await hs.syncServices(new Map([['ns/svc', port]]));
    hs.syncEndpoints(new Map([['ns/svc', 7]]));

    const r = await get(port);
    expect(r.status).toBe(503);
    expect(r.body).toBe('{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "svc"\n\t},\n\t"localEndpoints": 7,\n\t"serviceProxyHealthy": false\n}');

    healthy = true;
    expect((await get(port)).status).toBe(200);
  });

  it('sends upstream headers, and answers any path and method the same', async () => {
    const hs = make();
    const port = await freePort();
    await hs.syncServices(new Map([['ns2/svc2', port]]));
    hs.syncEndpoints(new Map([['ns2/svc2', 2]]));

    const r = await get(port, '/healthz');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-load-balancing-endpoint-weight']).toBe('2');
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength(r.body)));
    expect(r.body).toBe(serviceHealthBody('ns2/svc2', 2, true));

    for (const [path, method] of [['/', 'GET'], ['/any/thing?x=1', 'GET'], ['/x', 'POST']] as const) {
      const other = await get(port, path, method);
      expect(other.status, `${method} ${path}`).toBe(200);
      expect(other.body, `${method} ${path}`).toBe(r.body);
    }
    const head = await get(port, '/', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('closes the listener of a removed service (connection refused afterwards)', async () => {
    const hs = make();
    const [p1, p2] = [await freePort(), await freePort()];
    await hs.syncServices(new Map([['ns/a', p1], ['ns/b', p2]]));
    expect((await get(p1)).status).toBe(503);

    await hs.syncServices(new Map([['ns/b', p2]]));
    await expect(get(p1)).rejects.toThrow(/ECONNREFUSED/);
    expect((await get(p2)).status).toBe(503);
    expect(hs.status()).toEqual([{ service: 'ns/b', port: p2, listening: true }]);
  });

  it('follows two services changing ports, including swapping them in one sync', async () => {
    const hs = make();
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    await hs.syncServices(new Map([['ns/a', p1], ['ns/b', p2]]));
    hs.syncEndpoints(new Map([['ns/a', 1], ['ns/b', 0]]));
    expect(JSON.parse((await get(p1)).body)).toMatchObject({ service: { name: 'a' } });
    expect(JSON.parse((await get(p2)).body)).toMatchObject({ service: { name: 'b' } });

    await hs.syncServices(new Map([['ns/a', p2], ['ns/b', p1]]));
    const onP1 = await get(p1);
    const onP2 = await get(p2);
    expect(JSON.parse(onP1.body)).toMatchObject({ service: { name: 'b' }, localEndpoints: 0 });
    expect(onP1.status).toBe(503);
    expect(JSON.parse(onP2.body)).toMatchObject({ service: { name: 'a' }, localEndpoints: 1 });
    expect(onP2.status).toBe(200);

    await hs.syncServices(new Map([['ns/a', p3], ['ns/b', p1]]));
    await expect(get(p2)).rejects.toThrow(/ECONNREFUSED/);
    expect(JSON.parse((await get(p3)).body)).toMatchObject({ service: { name: 'a' } });
    expect(JSON.parse((await get(p1)).body)).toMatchObject({ service: { name: 'b' } });
  });

  it('reports a listen failure through the hook and retries it on the next sync', async () => {
    const blocker = await occupy();
    blockers.push(blocker);
    const port = (blocker.address() as AddressInfo).port;
    const onListenError = vi.fn<(service: string, port: number, error: Error) => void>();
    const hs = make({ onListenError });
    const wanted = new Map([['ns/svc', port]]);

    await hs.syncServices(wanted);
    expect(onListenError).toHaveBeenCalledTimes(1);
    const [svc, p, err] = onListenError.mock.calls[0] ?? [];
    expect([svc, p]).toEqual(['ns/svc', port]);
    expect(err?.message).toMatch(/EADDRINUSE/);
    expect(hs.status()).toEqual([{ service: 'ns/svc', port, listening: false }]);

    await hs.syncServices(wanted); // still taken: reported again
    expect(onListenError).toHaveBeenCalledTimes(2);

    await closeNet(blockers.splice(0)[0] ?? blocker);
    await hs.syncServices(wanted);
    expect(onListenError).toHaveBeenCalledTimes(2);
    expect(hs.status()).toEqual([{ service: 'ns/svc', port, listening: true }]);
    hs.syncEndpoints(new Map([['ns/svc', 1]]));
    expect((await get(port)).status).toBe(200);
  });

  it('with a retry interval, retries a failed listen without waiting for a sync', async () => {
    const blocker = await occupy();
    blockers.push(blocker);
    const port = (blocker.address() as AddressInfo).port;
    const onListenError = vi.fn<(service: string, port: number, error: Error) => void>();
    const hs = make({ onListenError, retryIntervalMs: 20 });

    await hs.syncServices(new Map([['ns/svc', port]]));
    hs.syncEndpoints(new Map([['ns/svc', 4]]));
    expect(onListenError).toHaveBeenCalled();
    expect(hs.status()[0]?.listening).toBe(false);

    await closeNet(blockers.splice(0)[0] ?? blocker);
    await vi.waitFor(() => expect(hs.status()[0]?.listening).toBe(true), { timeout: 2_000, interval: 10 });
    // The count given before the listener opened is served at once.
    const r = await get(port);
    expect(r.status).toBe(200);
    expect(r.headers['x-load-balancing-endpoint-weight']).toBe('4');
  });

  it('a failure of one service does not stop the others from opening', async () => {
    const blocker = await occupy();
    blockers.push(blocker);
    const taken = (blocker.address() as AddressInfo).port;
    const free = await freePort();
    const onListenError = vi.fn<(service: string, port: number, error: Error) => void>();
    const hs = make({ onListenError });

    await hs.syncServices(new Map([['ns/bad', taken], ['ns/good', free]]));
    expect(onListenError.mock.calls.map((c) => c[0])).toEqual(['ns/bad']);
    expect((await get(free)).status).toBe(503);
    expect(hs.status().map((s) => s.listening)).toEqual([false, true]);
  });

  it('close() closes every listener, even with a client stuck mid-request, and later syncs do nothing', async () => {
    const hs = make();
    const [p1, p2] = [await freePort(), await freePort()];
    await hs.syncServices(new Map([['ns/a', p1], ['ns/b', p2]]));
    expect((await get(p2)).status).toBe(503);
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = new Socket();
      s.once('error', reject);
      s.connect(p1, '127.0.0.1', () => resolve(s));
    });
    sock.on('error', () => undefined);
    const sockClosed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n'); // headers never finish
    await new Promise((r) => setTimeout(r, 50)); // let the server accept and start parsing

    // Without dropping connections, close() would wait for the server's headers timeout.
    await within(1_000, hs.close(), 'close()');
    await within(1_000, sockClosed, 'client socket close');
    await expect(get(p1)).rejects.toThrow(/ECONNREFUSED/);
    await expect(get(p2)).rejects.toThrow(/ECONNREFUSED/);
    await hs.syncServices(new Map([['ns/a', p1]]));
    await expect(get(p1)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('rejects listen addresses that are not IPs; no addresses means the wildcard', () => {
    expect(() => new ServiceHealthServer({ addresses: ['localhost'], proxyHealthy: () => true })).toThrow(/not an IP address/);
    expect(() => new ServiceHealthServer({ addresses: ['fe80::1%eth0'], proxyHealthy: () => true })).toThrow(/not an IP address/);
    // Constructing with [] binds nothing until syncServices; the wildcard itself is not bound in tests.
    expect(new ServiceHealthServer({ addresses: [], proxyHealthy: () => true }).status()).toEqual([]);
  });
});
