#!/usr/bin/env node
// Test client: N sequential probes, each on a fresh socket (so a fresh ephemeral port and a fresh
// conntrack entry). Prints one JSON array: {ok:true,reply} or {ok:false,error}.
// Usage: node probe.mjs --proto tcp|udp --ip IP --port P [--count N] [--timeout MS] [--interval MS]
// IP is an IPv4 or an IPv6 address (no brackets); the source address is the kernel's choice.
import net from 'node:net';
import dgram from 'node:dgram';

function parseArgs(argv) {
  const o = { proto: '', ip: '', port: 0, count: 1, timeout: 1000, interval: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    switch (flag) {
      case '--proto': o.proto = value; break;
      case '--ip': o.ip = value; break;
      case '--port': o.port = Number(value); break;
      case '--count': o.count = Number(value); break;
      case '--timeout': o.timeout = Number(value); break;
      case '--interval': o.interval = Number(value); break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (o.proto !== 'tcp' && o.proto !== 'udp') throw new Error('--proto must be tcp or udp');
  if (net.isIP(o.ip) === 0) throw new Error('--ip must be an IPv4 or IPv6 address');
  for (const k of ['port', 'count', 'timeout', 'interval']) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`--${k} must be a non-negative integer`);
  }
  if (o.port < 1 || o.port > 65535) throw new Error('--port out of range');
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`probe: ${err.message}\n`);
  process.exit(2);
}

function mapError(code) {
  switch (code) {
    case 'ECONNREFUSED': return 'refused';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH': return 'unreachable';
    default: return code ?? 'unknown';
  }
}

function parseReply(text) {
  try {
    return { ok: true, reply: JSON.parse(text) };
  } catch {
    return { ok: false, error: 'badreply' };
  }
}

function probeTcp() {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const sock = net.connect({ host: opts.ip, port: opts.port });
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout' }), opts.timeout);
    sock.setEncoding('utf8');
    sock.on('data', (chunk) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(parseReply(buf.slice(0, nl)));
    });
    sock.on('end', () => finish(buf ? parseReply(buf) : { ok: false, error: 'eof' }));
    sock.on('error', (err) => finish({ ok: false, error: mapError(err.code) }));
  });
}

function probeUdp() {
  return new Promise((resolve) => {
    let done = false;
    const sock = dgram.createSocket(net.isIPv6(opts.ip) ? 'udp6' : 'udp4');
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { sock.close(); } catch { /* already closed */ }
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout' }), opts.timeout);
    sock.on('message', (msg) => finish(parseReply(msg.toString('utf8').trim())));
    // A connected UDP socket gets ICMP port-unreachable back as ECONNREFUSED on the next recv.
    sock.on('error', (err) => finish({ ok: false, error: mapError(err.code) }));
    sock.connect(opts.port, opts.ip, () => {
      sock.send('x', (err) => { if (err) finish({ ok: false, error: mapError(err.code) }); });
    });
  });
}

const results = [];
let printed = false;
function print() {
  if (printed) return;
  printed = true;
  while (results.length < opts.count) results.push({ ok: false, error: 'timeout' });
  process.stdout.write(JSON.stringify(results) + '\n');
}

// Backstop: whatever happens, answer within count*(timeout+interval) plus slack.
const deadline = setTimeout(() => { print(); process.exit(0); }, opts.count * (opts.timeout + opts.interval) + 2000);

for (let i = 0; i < opts.count; i++) {
  if (i > 0 && opts.interval > 0) await new Promise((r) => setTimeout(r, opts.interval));
  results.push(await (opts.proto === 'tcp' ? probeTcp() : probeUdp()));
}
clearTimeout(deadline);
print();
