// The agent's two HTTP servers, routed as kube-proxy routes them:
// - health server (--healthz-bind-address): /healthz and /livez from the ProxyHealth tracker,
//   each response counted in kubeproxy_proxy_{healthz,livez}_total{code}.
// - metrics server (--metrics-bind-address): /metrics, /proxyMode, and the generic apiserver
//   /healthz ("ok" while the process serves; it does not reflect proxy health upstream either).
// Unknown paths get Go's "404 page not found".
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatBindAddress, type BindAddress } from './bind-address.js';
import type { HealthResponse, ProxyHealth } from './health.js';
import type { ProxyMetrics } from './metrics.js';

export interface RunningServer {
  /** Where it listens; port 0 in the request is reported as the port the kernel picked. */
  address: BindAddress;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /** What /proxyMode answers (default "iptables"). */
  proxyMode?: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

const TEXT = 'text/plain; charset=utf-8';

export function startHealthServer(addr: BindAddress, health: ProxyHealth, metrics: ProxyMetrics): Promise<RunningServer> {
  const routes = new Map<string, Handler>([
    [
      '/healthz',
      (req, res) => {
        const r = health.healthz();
        metrics.proxyHealthzTotal.inc({ code: String(r.status) });
        send(req, res, r);
      },
    ],
    [
      '/livez',
      (req, res) => {
        const r = health.livez();
        metrics.proxyLivezTotal.inc({ code: String(r.status) });
        send(req, res, r);
      },
    ],
  ]);
  return listen(addr, routes, 'health');
}

export function startMetricsServer(addr: BindAddress, metrics: ProxyMetrics, opts: MetricsServerOptions = {}): Promise<RunningServer> {
  const proxyMode = opts.proxyMode ?? 'iptables';
  const ok: Handler = (req, res) => {
    // apiserver's healthz handler: "?verbose" lists the (only) ping check.
    const verbose = new URL(req.url ?? '/', 'http://x').searchParams.has('verbose');
    send(req, res, text(200, verbose ? '[+]ping ok\nhealthz check passed\n' : 'ok'));
  };
  const routes = new Map<string, Handler>([
    [
      '/metrics',
      async (req, res) => {
        const { contentType, body } = await metrics.render();
        send(req, res, { status: 200, body, headers: { 'Content-Type': contentType } });
      },
    ],
    ['/proxyMode', (req, res) => send(req, res, text(200, proxyMode))],
    ['/healthz', ok],
    ['/healthz/ping', ok],
  ]);
  return listen(addr, routes, 'metrics');
}

function text(status: number, body: string): { status: number; body: string; headers: Record<string, string> } {
  return { status, body, headers: { 'Content-Type': TEXT, 'X-Content-Type-Options': 'nosniff' } };
}

function send(req: IncomingMessage, res: ServerResponse, r: HealthResponse | ReturnType<typeof text>): void {
  const body = Buffer.from(r.body, 'utf8');
  res.writeHead(r.status, { ...r.headers, 'Content-Length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function listen(addr: BindAddress, routes: Map<string, Handler>, what: string): Promise<RunningServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const handler = routes.get(path);
    void (async () => {
      try {
        if (handler === undefined) send(req, res, text(404, '404 page not found\n'));
        else await handler(req, res);
      } catch (err) {
        // A failing collector must not take the process down; the request fails instead.
        if (!res.headersSent) send(req, res, text(500, `${what} server: ${errorMessage(err)}\n`));
        else res.destroy();
      }
    })();
  });
  // Probes and scrapes are small; do not let a slow client hold a socket for minutes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  return new Promise<RunningServer>((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot start the ${what} server on ${formatBindAddress(addr)}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen({ host: addr.host, port: addr.port }, () => {
      server.off('error', onError);
      const bound = server.address() as AddressInfo;
      resolve({ address: { host: addr.host, port: bound.port }, close: () => closeServer(server) });
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err !== undefined && (err as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING' ? reject(err) : resolve()));
    // Idle keep-alive sockets would otherwise hold close() open until they time out.
    server.closeAllConnections();
  });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
