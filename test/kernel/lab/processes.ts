import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const ECHO_SERVER_PATH = fileURLToPath(new URL('../bin/echo-server.mjs', import.meta.url));

export interface EchoServerSpec {
  ns: string;
  name: string;
  tcpPorts: readonly number[];
  udpPorts: readonly number[];
  holdMs: number;
}

export interface EchoServer {
  readonly pid: number | undefined;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;

/**
 * Starts echo-server.mjs inside `ns` and resolves once it printed `ready` (all ports bound).
 * `ip netns exec` execs the command in place, so the pid we hold is node's own pid.
 */
export async function startEchoServer(spec: EchoServerSpec): Promise<EchoServer> {
  const args = ['netns', 'exec', spec.ns, process.execPath, ECHO_SERVER_PATH, '--name', spec.name];
  if (spec.tcpPorts.length > 0) args.push('--tcp', spec.tcpPorts.join(','));
  if (spec.udpPorts.length > 0) args.push('--udp', spec.udpPorts.join(','));
  if (spec.holdMs > 0) args.push('--hold-ms', String(spec.holdMs));

  // buffer:false + our own listeners: the server runs for the whole suite, we only need `ready`
  // and a tail of stderr for error messages. reject:false so a kill never becomes an unhandled rejection.
  const sub = execa('ip', args, { buffer: false, reject: false, stdin: 'ignore', cleanup: true });
  let stderr = '';
  sub.stderr.setEncoding('utf8');
  sub.stderr.on('data', (c: string) => {
    stderr = (stderr + c).slice(-4000);
  });
  let exited = false;
  const done = sub.then(() => {
    exited = true;
  });

  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      fail(new Error(`echo server for ${spec.name} in ${spec.ns} not ready after ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, READY_TIMEOUT_MS);
    const onData = (c: string): void => {
      out += c;
      if (out.split('\n').includes('ready')) {
        cleanup();
        resolve();
      }
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      sub.stdout.off('data', onData);
    };
    const fail = (err: Error): void => {
      cleanup();
      sub.kill('SIGKILL');
      reject(err);
    };
    sub.stdout.setEncoding('utf8');
    sub.stdout.on('data', onData);
    void done.then(() => fail(new Error(`echo server for ${spec.name} in ${spec.ns} exited before ready; stderr: ${stderr}`)));
  });
  // Keep draining stdout so the pipe can never fill and block the server.
  sub.stdout.resume();

  return {
    pid: sub.pid,
    async stop(graceMs = 2000): Promise<void> {
      if (exited) return;
      sub.kill('SIGTERM');
      const timer = setTimeout(() => sub.kill('SIGKILL'), graceMs);
      await done;
      clearTimeout(timer);
    },
  };
}
