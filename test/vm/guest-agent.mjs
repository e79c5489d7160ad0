// The command agent inside the test VM (started by test/vm/guest-init.sh with the host's node). Plain JS:
// the guest runs it straight from the shared checkout, with no build step.
//
// Protocol on the virtio-serial port (argv[2]), one JSON object per line each way, so the kernel's console
// noise (on the separate serial console) can never mix with it:
//   host -> guest  {"t":"exec","id":N,"script":"...","input":"..."|null,"timeoutMs":N}
//   guest -> host  {"t":"ready","release":"...","uptimeS":N}
//                  {"t":"result","id":N,"exitCode":N,"timedOut":bool,"stdout":B64,"stderr":B64,"error":"..."|null}
// Output travels as base64 so any bytes survive the JSON framing. When the host hangs up (QEMU's stdin
// closes), the port reads EOF and the agent exits; PID 1 then powers the guest off.
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, openSync, readFileSync } from 'node:fs';
import { constants, release } from 'node:os';
import { dirname } from 'node:path';

const portPath = process.argv[2];
if (portPath === undefined) throw new Error('usage: guest-agent.mjs <virtio-serial port>');

// One open only: a virtio console port refuses a second open, so reads and writes share the descriptor.
const fd = openSync(portPath, 'r+');
const out = createWriteStream('', { fd, autoClose: false });
const input = createReadStream('', { fd, autoClose: false });

function send(message) {
  out.write(`${JSON.stringify(message)}\n`);
}

// Scripts get the node that runs this agent (the host's) first on PATH, and nothing of the boot parameters.
const childEnv = { ...process.env, TMPDIR: '/tmp' };
for (const key of Object.keys(childEnv)) if (key.startsWith('sb')) delete childEnv[key];
const nodeDir = dirname(process.execPath);
if (!(childEnv.PATH ?? '').split(':').includes(nodeDir)) childEnv.PATH = `${nodeDir}:${childEnv.PATH ?? ''}`;

/** After the script exits, background processes it started may keep its stdout open: wait only this long for it. */
const DRAIN_MS = 200;

function runScript(request) {
  const { id, script, timeoutMs } = request;
  const stdinText = typeof request.input === 'string' ? request.input : null;
  const stdout = [];
  const stderr = [];
  let timedOut = false;
  let answered = false;
  let child;
  let timer;
  const answer = (exitCode, error) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    send({
      t: 'result',
      id,
      exitCode,
      timedOut,
      stdout: Buffer.concat(stdout).toString('base64'),
      stderr: Buffer.concat(stderr).toString('base64'),
      error,
    });
  };
  try {
    // detached: the script leads its own process group, so a timeout kills everything it started.
    child = spawn('/bin/bash', ['-c', script], {
      cwd: process.cwd(),
      env: childEnv,
      detached: true,
      stdio: [stdinText === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    answer(127, `spawn failed: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }, timeoutMs);
  child.stdout.on('data', (d) => stdout.push(d));
  child.stderr.on('data', (d) => stderr.push(d));
  if (stdinText !== null) {
    // A script that never reads its input must not fail the exec with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(stdinText);
  }
  child.on('error', (e) => answer(127, `spawn failed: ${e.message}`));
  let exitCode = null;
  child.on('exit', (code, signal) => {
    exitCode = code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
    setTimeout(() => answer(exitCode, null), DRAIN_MS).unref();
  });
  child.on('close', () => {
    if (exitCode !== null) answer(exitCode, null);
  });
}

// Only the new chunk is searched for newlines: a large stdin arrives in many small chunks.
let partial = '';
input.setEncoding('utf8');
input.on('data', (chunk) => {
  let start = 0;
  let nl;
  while ((nl = chunk.indexOf('\n', start)) >= 0) {
    const line = partial + chunk.slice(start, nl);
    partial = '';
    start = nl + 1;
    if (line.trim() === '') continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch (e) {
      send({ t: 'log', message: `unparsable request: ${String(e)}: ${line.slice(0, 200)}` });
      continue;
    }
    if (request.t === 'exec') runScript(request);
    else send({ t: 'log', message: `unknown request type ${String(request.t)}` });
  }
  partial += chunk.slice(start);
});
input.on('end', () => process.exit(0));
input.on('error', (e) => {
  process.stderr.write(`guest-agent: reading ${portPath} failed: ${e.message}\n`);
  process.exit(1);
});

const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
send({ t: 'ready', release: release(), uptimeS });
