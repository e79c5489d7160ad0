#!/usr/bin/env node
// Test echo server run inside a pod network namespace.
// Usage: node echo-server.mjs --name NAME [--tcp P[,P]] [--udp P[,P]] [--hold-ms N]
// Every TCP connection / UDP datagram gets one JSON line naming the pod, the local port and the
// peer address the kernel delivered, so tests can see where a packet landed and whether it was NATed.
// Each port is served on both families, by two sockets: 0.0.0.0 and :: (IPv6 only), so an IPv4 peer is
// reported as a.b.c.d (never ::ffff:a.b.c.d) and an IPv6 peer in RFC 5952 form (fd00:10::10).
import net from 'node:net';
import dgram from 'node:dgram';

function parseArgs(argv) {
  const opts = { name: '', tcp: [], udp: [], holdMs: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    i++;
    switch (flag) {
      case '--name': opts.name = value; break;
      case '--tcp': opts.tcp = parsePorts(value); break;
      case '--udp': opts.udp = parsePorts(value); break;
      case '--hold-ms': opts.holdMs = Number(value); break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!opts.name) throw new Error('--name is required');
  if (!Number.isInteger(opts.holdMs) || opts.holdMs < 0) throw new Error('--hold-ms must be a non-negative integer');
  return opts;
}

function parsePorts(value) {
  if (value === '') return [];
  return value.split(',').map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`bad port ${p}`);
    return n;
  });
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`echo-server: ${err.message}\n`);
  process.exit(2);
}

const servers = [];
const sockets = new Set();
const timers = new Set();

function line(proto, port, peer, peerPort) {
  return JSON.stringify({ pod: opts.name, proto, port, peer, peerPort }) + '\n';
}

const FAMILIES = [
  { host: '0.0.0.0', ipv6Only: false, udpType: 'udp4' },
  { host: '::', ipv6Only: true, udpType: 'udp6' },
];

function listenTcp(port, family) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => {}); // peers vanish mid-test (RST, killed probe); not our problem
      sock.write(line('tcp', sock.localPort, sock.remoteAddress, sock.remotePort));
      if (opts.holdMs > 0) {
        const t = setTimeout(() => { timers.delete(t); sock.end(); }, opts.holdMs);
        timers.add(t);
      } else {
        sock.end();
      }
    });
    server.once('error', reject);
    server.listen({ port, host: family.host, ipv6Only: family.ipv6Only }, () => {
      server.off('error', reject);
      resolve(server);
    });
    servers.push({ close: () => server.close() });
  });
}

function listenUdp(port, family) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: family.udpType, ipv6Only: family.ipv6Only });
    sock.on('message', (_msg, rinfo) => {
      sock.send(line('udp', port, rinfo.address, rinfo.port), rinfo.port, rinfo.address);
    });
    sock.once('error', reject);
    sock.bind(port, family.host, () => {
      sock.off('error', reject);
      sock.on('error', () => {}); // e.g. ICMP errors from a vanished client
      resolve(sock);
    });
    servers.push({ close: () => sock.close() });
  });
}

function shutdown() {
  for (const t of timers) clearTimeout(t);
  for (const s of servers) { try { s.close(); } catch { /* already closed */ } }
  for (const sock of sockets) sock.destroy();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

try {
  await Promise.all(
    FAMILIES.flatMap((f) => [...opts.tcp.map((p) => listenTcp(p, f)), ...opts.udp.map((p) => listenUdp(p, f))]),
  );
} catch (err) {
  process.stderr.write(`echo-server ${opts.name}: listen failed: ${err.message}\n`);
  process.exit(1);
}
process.stdout.write('ready\n');
