#!/usr/bin/env node
// Persistent prober for the agent benchmark, run inside the client pod's namespace. Spawning a probe per poll
// costs tens of ms, which would swamp a ~100 ms measurement, so this process stays up and connects in a loop.
// Usage: flip-prober.mjs --ip IP --port P [--timeout-ms 100] [--gap-ms 1]
// Protocol: JSON lines. In: {"cmd":"flip","id":N,"expect":"b","giveUpMs":30000} or {"cmd":"quit"}.
// Out: "ready"; then per flip {"id":N,"armed":true,"baseline":"a"} once another pod answers (the old state
// works), then {"id":N,"at":ms,"sentAt":ms,"attempts":k,"others":{...}} when `expect` first answers, or
// {"id":N,"error":"..."}. Times are Date.now(), the same machine clock the benchmark uses.
import net from 'node:net';
import readline from 'node:readline';

function flag(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`flip-prober: missing ${name}`);
  return fallback;
}

const ip = flag('--ip');
const port = Number(flag('--port'));
const timeoutMs = Number(flag('--timeout-ms', '100'));
const gapMs = Number(flag('--gap-ms', '1'));
const BASELINE_MS = 10_000;

const send = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One TCP connection on a fresh socket (fresh source port, fresh conntrack entry, fresh NAT decision). */
function attempt() {
  return new Promise((resolve) => {
    const sentAt = Date.now();
    let result;
    let buf = '';
    const sock = net.connect({ host: ip, port });
    const finish = (r) => {
      if (result !== undefined) return;
      result = r;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      finish({ ok: false, error: 'timeout', sentAt, at: Date.now() });
      sock.destroy();
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (chunk) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let pod = '';
      try {
        pod = String(JSON.parse(buf.slice(0, nl)).pod);
      } catch {
        finish({ ok: false, error: 'badreply', sentAt, at: Date.now() });
        return;
      }
      finish({ ok: true, pod, sentAt, at: Date.now() });
      // No destroy(): the server closes first, so the TIME_WAIT stays on its side and this loop cannot
      // run out of ephemeral ports; the socket ends itself when the server's FIN arrives.
    });
    sock.on('error', (err) => {
      finish({ ok: false, error: err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? 'error'), sentAt, at: Date.now() });
      sock.destroy();
    });
    sock.on('close', () => finish({ ok: false, error: buf === '' ? 'eof' : 'badreply', sentAt, at: Date.now() }));
  });
}

const key = (r) => (r.ok ? `ok:${r.pod}` : r.error);

async function flip({ id, expect, giveUpMs }) {
  // Baseline: the previous state must answer (from another pod) before the change is made.
  const baseDeadline = Date.now() + BASELINE_MS;
  let base;
  for (;;) {
    base = await attempt();
    if (base.ok && base.pod === expect) return send({ id, error: `baseline already answered by ${expect} before the change` });
    if (base.ok) break;
    if (Date.now() > baseDeadline) return send({ id, error: `baseline: no pod answered within ${BASELINE_MS} ms (last: ${key(base)})` });
    await sleep(20);
  }
  send({ id, armed: true, baseline: base.pod });
  const others = {};
  let attempts = 0;
  const deadline = Date.now() + giveUpMs;
  for (;;) {
    const r = await attempt();
    attempts++;
    if (r.ok && r.pod === expect) return send({ id, at: r.at, sentAt: r.sentAt, attempts, others });
    others[key(r)] = (others[key(r)] ?? 0) + 1;
    if (Date.now() > deadline) return send({ id, error: `${expect} did not answer within ${giveUpMs} ms`, attempts, others });
    if (gapMs > 0) await sleep(gapMs);
  }
}

// Commands run one at a time, in order.
let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    send({ error: `flip-prober: not JSON: ${line}` });
    return;
  }
  if (msg.cmd === 'quit') process.exit(0);
  if (msg.cmd === 'flip') queue = queue.then(() => flip(msg)).catch((e) => send({ id: msg.id, error: String(e) }));
  else send({ id: msg.id, error: `flip-prober: unknown command ${String(msg.cmd)}` });
});
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
send('ready');
