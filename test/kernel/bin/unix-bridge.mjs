#!/usr/bin/env node
// TCP → Unix socket bridge, run inside a lab namespace: the agent there reaches the test API server (which
// listens on a Unix socket in the test process) at 127.0.0.1:PORT, without any link to the root namespace.
// Usage: unix-bridge.mjs --listen 127.0.0.1:6443 --to /tmp/x/api.sock   (prints "ready" once listening)
import net from 'node:net';

const arg = (name) => {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`missing ${name}`);
  return process.argv[i + 1];
};
const [host, port] = arg('--listen').split(':');
const target = arg('--to');

const server = net.createServer((client) => {
  const upstream = net.connect(target);
  client.pipe(upstream);
  upstream.pipe(client);
  // A reset on either side resets the other, so the agent sees exactly what the server did.
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});
server.listen(Number(port), host, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
