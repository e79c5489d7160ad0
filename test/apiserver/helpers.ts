import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { delimiter, join } from 'node:path';
import type { TestApiServer } from './server.js';

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RawResponse {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
}

/** One plain request to the server (TCP or Unix socket), trusting its CA; for wire-level assertions. */
export function rawRequest(
  server: TestApiServer,
  path: string,
  opts: { method?: string; token?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers['Authorization'] = `Bearer ${opts.token}`;
  const method = opts.method ?? 'GET';
  const target =
    server.socketPath !== undefined
      ? { socketPath: server.socketPath }
      : { host: new URL(server.url).hostname, port: server.port };
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
      res.on('error', reject);
    };
    const req = server.caPem !== undefined
      ? https.request({ ...target, path, method, headers, ca: server.caPem, servername: 'localhost' }, onResponse)
      : http.request({ ...target, path, method, headers }, onResponse);
    req.on('error', (e) => reject(new Error(`${method} ${path} to ${server.url}: ${e.message}`, { cause: e })));
    req.end(opts.body);
  });
}

function onPath(tool: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '')) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** kubectl's path, or a clear failure (Debian's `kubernetes-client` package provides it). */
export function requireKubectl(): string {
  const p = onPath('kubectl');
  if (p === undefined) {
    throw new Error(`kubectl not found on PATH (${process.env['PATH'] ?? ''}); install it (Debian package "kubernetes-client")`);
  }
  return p;
}

export interface KubectlRun {
  /** Resolves with everything printed so far once a stdout line satisfies `test`. */
  waitForLine(test: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves when the process exits; rejects on a non-zero exit unless killed by us. */
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  kill(): void;
}

/** Spawns kubectl with `args` (add `--kubeconfig`, `--cache-dir` yourself) and collects its output. */
export function runKubectl(args: readonly string[]): KubectlRun {
  const child = spawn(requireKubectl(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
    for (const w of waiters) w();
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`kubectl ${args.join(' ')}: ${e.message}`, { cause: e })));
    child.on('close', (code) => {
      for (const w of waiters) w();
      resolve({ code, stdout, stderr });
    });
  });
  return {
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
    waitForLine: (test, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (stdout.split('\n').some(test)) {
            done();
            resolve(stdout);
          } else if (child.exitCode !== null) {
            done();
            reject(new Error(`kubectl ${args.join(' ')} exited ${child.exitCode} before the expected line; stdout: ${stdout}; stderr: ${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`kubectl ${args.join(' ')}: expected line not seen in ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}
