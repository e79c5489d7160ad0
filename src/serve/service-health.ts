// kube-proxy's per-service health-check server (pkg/proxy/healthcheck/service_health.go @124526cf):
// for every externalTrafficPolicy: Local LoadBalancer Service, an HTTP listener on its
// healthCheckNodePort that tells cloud load balancers whether this node has ready local endpoints.
//
// What follows upstream:
// - one listener per service on each node address (upstream nodePortAddresses.GetNodeIPs()); no
//   addresses (MatchAll) means listening on every address. Go's "0.0.0.0:<port>" is a dual-stack
//   wildcard, so we let Node pick its own wildcard (host omitted: "::" dual-stack where IPv6 exists,
//   else "0.0.0.0"), not an IPv4-only "0.0.0.0". Make one instance per agent, not one per family:
//   two wildcard listeners on the same port cannot coexist.
// - any method and any path get the same answer: 200 iff localEndpoints != 0 and the proxy is
//   healthy, else 503; the TAB-indented body, no trailing newline; Content-Type, nosniff and
//   X-Load-Balancing-Endpoint-Weight headers. Connections are HTTP/1.1 keep-alive, as Go's server.
// - a service whose port changed or went away is closed before new listeners open, so two services
//   can swap ports in one sync.
// - a failed listen closes the service's other listeners, is logged, reported through onListenError (upstream
//   sends a Warning Event; `switchboard run` does too, see listenFailureEvent), and retried on the next syncServices.
// Differences, on purpose:
// - an optional retry timer also retries failed listens between syncs;
// - endpoint counts are kept per service name, so a listener opened by a retry (or after a port
//   change) answers with the last count at once; upstream starts it at 0 until its proxier's
//   SyncEndpoints call that follows SyncServices.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { pino } from 'pino';
import type { Logger } from '../log/logger.js';
import { formatBindAddress } from './bind-address.js';

export interface ServiceHealthServerOptions {
  /** Node IPs to listen on (resolved --nodeport-addresses). Empty: every address, as upstream's MatchAll. */
  addresses: readonly string[];
  /** Proxy health (e.g. ProxyHealth#isHealthy); false turns every answer into 503. */
  proxyHealthy: () => boolean;
  log?: Logger;
  /** Called on every failed listen, e.g. to emit a Kubernetes Event (see listenFailureEvent). */
  onListenError?: (service: string, port: number, error: Error) => void;
  /** Also retry failed listens this often (ms). Unset or 0: only on the next syncServices, as upstream. */
  retryIntervalMs?: number;
}

export interface ServiceHealthStatus {
  service: string;
  port: number;
  /** False while the listen is failing and waits for a retry. */
  listening: boolean;
}

/**
 * Upstream's Event for a failed listen (Warning, reason FailedToStartServiceHealthcheck, action Listen), about
 * the Service. Upstream's reference carries "ns/name" as the uid, not the Service's: kept, so `kubectl describe
 * service` (which selects by the real uid) does not list it, as with kube-proxy.
 */
export function listenFailureEvent(
  nodeName: string,
  service: string,
  port: number,
  error: Error,
): {
  regarding: { kind: 'Service'; namespace: string; name: string; uid: string };
  type: 'Warning';
  reason: 'FailedToStartServiceHealthcheck';
  action: 'Listen';
  note: string;
} {
  const { namespace, name } = splitName(service);
  // Go's %q of a Kubernetes name is its JSON string form (names are plain ASCII).
  const note = `node ${nodeName} failed to start healthcheck ${JSON.stringify(service)} on port ${port}: ${error.message}`;
  return { regarding: { kind: 'Service', namespace, name, uid: service }, type: 'Warning', reason: 'FailedToStartServiceHealthcheck', action: 'Listen', note };
}

/** The response body exactly as upstream prints it: TAB-indented, keys in this order, no trailing newline. */
export function serviceHealthBody(service: string, localEndpoints: number, proxyHealthy: boolean): string {
  const { namespace, name } = splitName(service);
  return [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(namespace)},`,
    `\t\t"name": ${JSON.stringify(name)}`,
    '\t},',
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${proxyHealthy}`,
    '}',
  ].join('\n');
}

interface Instance {
  port: number;
  servers: Server[];
}

export class ServiceHealthServer {
  // undefined = the wildcard (host omitted from listen()).
  private readonly hosts: readonly (string | undefined)[];
  private readonly proxyHealthy: () => boolean;
  private readonly log: Logger;
  private readonly onListenError: ((service: string, port: number, error: Error) => void) | undefined;
  private readonly retryIntervalMs: number;

  private wanted = new Map<string, number>();
  private counts = new Map<string, number>();
  private readonly active = new Map<string, Instance>();
  // Listens and closes are asynchronous; running them one after the other keeps `active` true.
  private queue: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: ServiceHealthServerOptions) {
    for (const a of opts.addresses) {
      // Zones ("fe80::1%eth0") are not node IPs to upstream either.
      if (isIP(a) === 0 || a.includes('%')) throw new Error(`service health server: ${JSON.stringify(a)} is not an IP address`);
    }
    this.hosts = opts.addresses.length === 0 ? [undefined] : [...new Set(opts.addresses)];
    this.proxyHealthy = opts.proxyHealthy;
    this.log = opts.log ?? pino({ level: 'silent' });
    this.onListenError = opts.onListenError;
    const retry = opts.retryIntervalMs ?? 0;
    if (!Number.isFinite(retry) || retry < 0) throw new Error(`service health server: bad retry interval ${retry}`);
    this.retryIntervalMs = retry;
  }

  /**
   * Makes `wanted` ("ns/name" -> healthCheckNodePort) the set served: closes services that went away
   * or changed port, opens new ones, retries failed ones. Never rejects; failures are logged/reported.
   */
  syncServices(wanted: ReadonlyMap<string, number>): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.wanted = new Map(wanted);
    for (const service of this.counts.keys()) {
      // A service that comes back later must not inherit an old count.
      if (!this.wanted.has(service)) this.counts.delete(service);
    }
    return this.serialized(() => this.reconcile());
  }

  /** Ready local endpoints per "ns/name"; services not in the map have 0 (as upstream). */
  syncEndpoints(counts: ReadonlyMap<string, number>): void {
    this.counts = new Map(counts);
  }

  /** What is served and what waits for a retry, in syncServices order. */
  status(): ServiceHealthStatus[] {
    return [...this.wanted].map(([service, port]) => ({ service, port, listening: this.active.get(service)?.port === port }));
  }

  /** Stops retrying and closes every listener; resolves once all are closed. */
  close(): Promise<void> {
    this.closed = true;
    this.clearRetry();
    return this.serialized(async () => {
      const all = [...this.active.values()].flatMap((i) => i.servers);
      this.active.clear();
      await Promise.all(all.map((s) => closeServer(s)));
    });
  }

  private serialized(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(step);
    this.queue = run.catch((err: unknown) => this.log.error({ err: errorText(err) }, 'service health server: unexpected error'));
    return this.queue;
  }

  private async reconcile(): Promise<void> {
    if (this.closed) return;
    this.clearRetry();

    const closing: Promise<void>[] = [];
    for (const [service, inst] of this.active) {
      if (this.wanted.get(service) === inst.port) continue;
      this.log.debug({ service, port: inst.port }, 'closing service health check');
      this.active.delete(service);
      closing.push(...inst.servers.map((s) => this.closeLogged(s, service)));
    }
    // Closes before opens, so a port can move between services in one sync. (Node frees the listening
    // socket as close() starts; waiting also keeps the close errors' log lines ahead of the opens'.)
    await Promise.all(closing);

    let failed = false;
    for (const [service, port] of this.wanted) {
      if (this.active.has(service)) continue;
      if (this.closed) return;
      this.log.debug({ service, port }, 'opening service health check');
      try {
        this.active.set(service, { port, servers: await this.listenAll(service, port) });
      } catch (e) {
        failed = true;
        const error = e instanceof Error ? e : new Error(String(e));
        this.log.error({ service, port, err: error.message }, 'failed to start service health check; retrying on the next sync');
        try {
          this.onListenError?.(service, port, error);
        } catch (hookErr) {
          this.log.error({ service, port, err: errorText(hookErr) }, 'service health check listen-error hook failed');
        }
      }
    }

    if (failed && this.retryIntervalMs > 0 && !this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.serialized(() => this.reconcile());
      }, this.retryIntervalMs);
      // A pending retry must not keep the process alive.
      this.retryTimer.unref();
    }
  }

  /** One listener per host; on a failure the ones already open are closed, as upstream, and it throws. */
  private async listenAll(service: string, port: number): Promise<Server[]> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`health check node port ${port} is out of range 1-65535`);
    const servers: Server[] = [];
    try {
      for (const host of this.hosts) servers.push(await this.listenOne(service, host, port));
    } catch (err) {
      await Promise.all(servers.map((s) => this.closeLogged(s, service)));
      throw err;
    }
    return servers;
  }

  private listenOne(service: string, host: string | undefined, port: number): Promise<Server> {
    const server = createServer((req, res) => this.answer(service, req, res));
    // Probes are small; a slow client must not hold a socket for minutes.
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    return new Promise<Server>((resolve, reject) => {
      server.once('error', reject);
      server.listen(host === undefined ? { port } : { host, port }, () => {
        server.off('error', reject);
        // A later error on a listening server must not crash the agent.
        server.on('error', (err) => this.log.error({ service, port, err: err.message }, 'service health check server error'));
        this.log.info({ service, address: host === undefined ? `*:${port}` : formatBindAddress({ host, port }) }, 'service health check listening');
        resolve(server);
      });
    });
  }

  private answer(service: string, req: IncomingMessage, res: ServerResponse): void {
    if (!this.active.has(service)) {
      // Only reachable in the instant between removal and the socket closing.
      res.destroy();
      return;
    }
    const count = this.counts.get(service) ?? 0;
    let healthy: boolean;
    try {
      healthy = this.proxyHealthy();
    } catch (err) {
      // A throw here would escape the request listener and take the process down.
      this.log.error({ err: errorText(err) }, 'proxy health check failed; answering unhealthy');
      healthy = false;
    }
    const body = Buffer.from(serviceHealthBody(service, count, healthy), 'utf8');
    res.writeHead(count !== 0 && healthy ? 200 : 503, {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'X-Load-Balancing-Endpoint-Weight': String(count),
      'Content-Length': String(body.length),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async closeLogged(server: Server, service: string): Promise<void> {
    try {
      await closeServer(server);
    } catch (err) {
      this.log.error({ service, err: errorText(err) }, 'error closing service health check server');
    }
  }

  private clearRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err !== undefined && (err as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING' ? reject(err) : resolve()));
    // Go's Server.Close drops open connections too; idle keep-alive sockets would otherwise hold close() open.
    server.closeAllConnections();
  });
}

/** "ns/name" -> its parts (upstream types.NamespacedName). */
function splitName(service: string): { namespace: string; name: string } {
  const slash = service.indexOf('/');
  return slash < 0 ? { namespace: '', name: service } : { namespace: service.slice(0, slash), name: service.slice(slash + 1) };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
