// Runs the real agent (`switchboard run`, the built CLI) inside a lab's node namespace against the in-process
// test API server. The server listens on a Unix socket; a bridge inside the node namespace exposes it as
// 127.0.0.1:BRIDGE_PORT there, so nothing links the lab to the root namespace.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { TestApiServer } from '../apiserver/server.js';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { CLI, CLUSTER_CIDR, NODE_NAME, TempFiles, requireBuiltCli } from './helpers.js';
import { type Lab, type PodSpec, createLab, requireKernelTestPrereqs } from './lab/index.js';

const BRIDGE = fileURLToPath(new URL('./bin/unix-bridge.mjs', import.meta.url));
export const BRIDGE_PORT = 16443;
export const HEALTHZ_PORT = 10256;
export const METRICS_PORT = 10249;


function launch(ns: string, args: readonly string[]) {
  return execa('ip', ['netns', 'exec', ns, process.execPath, ...args], { buffer: false, reject: false, stdin: 'ignore', cleanup: true });
}

/** A long-running process (`node` with `args`) in a namespace with its output captured. */
export class NsProcess {
  readonly lines: string[] = [];
  private readonly sub: ReturnType<typeof launch>;
  private readonly exited: Promise<number | undefined>;
  private buffered = '';

  constructor(ns: string, args: readonly string[]) {
    this.sub = launch(ns, args);
    const collect = (c: string): void => {
      this.buffered += c;
      const parts = this.buffered.split('\n');
      this.buffered = parts.pop() ?? '';
      this.lines.push(...parts);
    };
    this.sub.stdout.setEncoding('utf8');
    this.sub.stderr.setEncoding('utf8');
    this.sub.stdout.on('data', collect);
    this.sub.stderr.on('data', collect);
    this.exited = this.sub.then((r) => r.exitCode);
  }

  get pid(): number | undefined {
    return this.sub.pid;
  }

  async waitFor(test: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let from = 0;
    while (Date.now() < deadline) {
      for (; from < this.lines.length; from++) if (test(this.lines[from]!)) return this.lines[from]!;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output:\n${this.lines.slice(-40).join('\n')}`);
  }

  /** Sends `signal` and waits for the exit code; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | undefined> {
    this.sub.kill(signal);
    const timer = setTimeout(() => {
      // Shown with the failing assertion's output: what the process was doing when it would not stop.
      console.error(`${signal} ignored for ${graceMs} ms; killing. Last output:\n${this.lines.slice(-20).join('\n')}`);
      this.sub.kill('SIGKILL');
    }, graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  get exitCode(): Promise<number | undefined> {
    return this.exited;
  }
}

export interface AgentOptions {
  readonly minSyncPeriod?: string;
  readonly syncPeriod?: string;
  readonly extraArgs?: readonly string[];
}

export class Agent extends NsProcess {
  /** Resolves after the first full sync was applied. */
  async ready(timeoutMs = 20_000): Promise<void> {
    await this.waitFor((l) => l.includes('"full sync applied"'), timeoutMs, 'the first full sync');
  }

  /** Structured log records (the agent logs JSON lines on stderr). */
  records(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.lines) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
    return out;
  }
}

/** The test API server, its bridge into the lab, and a kubeconfig the agent in the lab can use. */
export class ApiFixture {
  private bridge: NsProcess | undefined;
  private readonly agents: Agent[] = [];

  private constructor(
    readonly server: TestApiServer,
    readonly kubeconfigPath: string,
    private readonly lab: Lab,
    readonly socketPath: string,
  ) {}

  static async start(lab: Lab, files: TempFiles): Promise<ApiFixture> {
    const socketPath = join(files.dir, 'apiserver.sock');
    const server = await TestApiServer.start({ token: 'agent-token', listen: { path: socketPath } });
    const kubeconfigPath = join(files.dir, 'kubeconfig');
    await server.writeKubeconfig(kubeconfigPath, { server: `http://127.0.0.1:${BRIDGE_PORT}` });
    const fixture = new ApiFixture(server, kubeconfigPath, lab, socketPath);
    await fixture.startBridge();
    return fixture;
  }

  async startBridge(): Promise<void> {
    const bridge = new NsProcess(this.lab.nodeNs, [BRIDGE, '--listen', `127.0.0.1:${BRIDGE_PORT}`, '--to', this.socketPath]);
    await bridge.waitFor((l) => l === 'ready', 10_000, 'the API bridge');
    this.bridge = bridge;
  }

  /** Kills the bridge: every connection to the API server breaks and new ones are refused. */
  async stopBridge(): Promise<void> {
    await this.bridge?.stop('SIGKILL');
    this.bridge = undefined;
  }

  /** Kills every agent started since the last call (after each test). */
  async killAgents(): Promise<void> {
    const agents = this.agents.splice(0);
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
  }

  startAgent(opts: AgentOptions = {}): Agent {
    const agent = new Agent(this.lab.nodeNs, [
      CLI,
      'run',
      '--kubeconfig',
      this.kubeconfigPath,
      '--node-name',
      NODE_NAME,
      '--cluster-cidr',
      CLUSTER_CIDR,
      '--min-sync-period',
      opts.minSyncPeriod ?? '0',
      '--sync-period',
      opts.syncPeriod ?? '30s',
      '--log-level',
      'debug',
      ...(opts.extraArgs ?? []),
    ]);
    this.agents.push(agent);
    return agent;
  }

  async close(): Promise<void> {
    await this.stopBridge();
    await this.server.stop();
  }
}

/** The lab, temp files and API fixture of an agent test file; valid inside tests, after the suite's beforeAll. */
export interface AgentLab {
  readonly lab: Lab;
  readonly files: TempFiles;
  readonly api: ApiFixture;
}

/**
 * Registers the lifecycle agent test files share: prerequisites checked loudly, a lab with these pods, the API
 * server (holding `objects`) bridged into it; every agent a test started killed after it; all of it removed
 * after the file, even on failure.
 */
export function useAgentLab(pods: readonly PodSpec[], objects: readonly K8sObject[] = []): AgentLab {
  const ctx = {} as { lab: Lab; files: TempFiles; api: ApiFixture };
  beforeAll(async () => {
    requireKernelTestPrereqs();
    requireBuiltCli();
    ctx.files = await TempFiles.create();
    ctx.lab = await createLab();
    await Promise.all(pods.map((p) => ctx.lab.addPod(p)));
    ctx.api = await ApiFixture.start(ctx.lab, ctx.files);
    for (const o of objects) ctx.api.server.apply(o);
  });
  afterEach(async () => {
    await ctx.api?.killAgents();
  });
  afterAll(async () => {
    try {
      await ctx.api?.close();
      await ctx.lab?.destroy();
    } finally {
      await ctx.files?.cleanup();
    }
  });
  return ctx;
}

/** Polls `check` until it returns true; throws with the last observation after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean | string>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  let last: boolean | string = false;
  while (Date.now() - start < timeoutMs) {
    last = await check();
    if (last === true) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not true within ${timeoutMs} ms (last: ${String(last)})`);
}

/** The health-check node port the eTP Local LoadBalancer below serves (kube-proxy's per-service health server). */
export const HEALTH_CHECK_NODE_PORT = 32111;

/** An eTP Local LoadBalancer with a health-check node port, and its one-endpoint slice on `nodeName`. */
export const healthCheckedLoadBalancer = {
  service: service({
    name: 'lb',
    type: 'LoadBalancer',
    clusterIP: '10.96.5.20',
    ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 31080 }],
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: HEALTH_CHECK_NODE_PORT,
    loadBalancerIngress: [{ ip: '203.0.113.40' }],
  }),
  slice: (ip: string, nodeName: string): K8sObject =>
    endpointSlice({ name: 'lb-1', service: 'lb', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip, nodeName }] }),
};
