// Proves the QEMU test VM (test/vm/vm.ts) that the IPVS tests run in: the host kernel has no IPVS, the guest's
// Debian 6.1 kernel does. Everything network-related happens inside the guest; the host's namespaces are
// untouched.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useVm } from '../vm/use-vm.js';
import { REPO_ROOT, type Vm, VmExecTimeoutError, runVitestInVm } from '../vm/vm.js';

const VIP = '10.96.0.10';
const NODE_VETH_IP = '10.0.0.1';
const POD_IP = '10.0.0.2';

/** Runs a guest script and insists on exit 0, showing its output otherwise. */
async function ok(vm: Vm, script: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await vm.exec(script, opts);
  if (r.exitCode !== 0) {
    throw new Error(`guest script exited ${r.exitCode}\nscript:\n${script}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return r.stdout;
}

// A one-connection-at-a-time TCP server: answers each request with what it got and who it came from, so the
// test sees both that the reply came back and which source address the pod saw (masqueraded or not).
const SERVER_JS = `
import net from 'node:net';
const [host, port] = [process.argv[2], Number(process.argv[3])];
net.createServer((s) => s.once('data', (d) => s.end(\`pong \${d} from \${s.remoteAddress}\`)))
  .listen(port, host, () => console.log('listening'));
`;
const CLIENT_JS = `
import net from 'node:net';
const [host, port] = [process.argv[2], Number(process.argv[3])];
const s = net.connect(port, host, () => s.write('ping'));
let reply = '';
s.setTimeout(10_000, () => { console.error('timed out'); process.exit(2); });
s.on('data', (d) => (reply += d));
s.on('end', () => console.log(reply));
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

/**
 * Inside the guest: namespaces "node" and "pod" joined by a veth pair, kube-proxy's dummy kube-ipvs0 holding
 * the VIP in "node", a TCP server in "pod" and an IPVS virtual server VIP:80 -> POD:8080 (masquerading).
 * Built once per VM, whichever test asks first, so each test can also run alone (vitest -t).
 */
let built: Promise<void> | undefined;
function topology(vm: Vm): Promise<void> {
  built ??= build(vm);
  return built;
}
async function build(vm: Vm): Promise<void> {
  await ok(
    vm,
    `set -euo pipefail
    ip netns add node
    ip netns add pod
    ip link add veth-node netns node type veth peer name veth-pod netns pod
    ip -n node link set lo up
    ip -n pod link set lo up
    ip -n node addr add ${NODE_VETH_IP}/24 dev veth-node
    ip -n node link set veth-node up
    ip -n pod addr add ${POD_IP}/24 dev veth-pod
    ip -n pod link set veth-pod up
    ip -n pod route add default via ${NODE_VETH_IP}
    # kube-proxy's IPVS layout: every service IP on a dummy kube-ipvs0 in the node's namespace.
    ip -n node link add kube-ipvs0 type dummy
    ip -n node addr add ${VIP}/32 dev kube-ipvs0
    ip -n node link set kube-ipvs0 up
    cat > /tmp/server.mjs <<'EOF'
${SERVER_JS}
EOF
    cat > /tmp/client.mjs <<'EOF'
${CLIENT_JS}
EOF
    ip netns exec pod node /tmp/server.mjs ${POD_IP} 8080 > /tmp/server.log 2>&1 &
    for _ in $(seq 300); do grep -q listening /tmp/server.log && exit 0; sleep 0.1; done
    echo "server did not start: $(cat /tmp/server.log)" >&2; exit 1`,
  );
  await ok(vm, 'ip netns exec node ipvsadm-restore', {
    input: `-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${POD_IP}:8080 -m -w 1\n`,
  });
}

describe('test VM harness', () => {
  const theVm = useVm();

  it('runs the cached 6.1 kernel with no network device but loopback', async () => {
    const vm = theVm();
    console.info(`test VM: kernel ${vm.kernelRelease} booted in ${vm.bootMs} ms`);
    expect(vm.kernelRelease).toMatch(/^6\.1\./);
    expect((await ok(vm, 'uname -r')).trim()).toBe(vm.kernelRelease);
    // Nothing connects the guest to the host's network.
    expect((await ok(vm, 'ls /sys/class/net')).trim()).toBe('lo');
    // The checkout is at the same path, writable in the guest, and the guest's writes stay in the guest.
    expect((await ok(vm, 'pwd')).trim()).toBe(REPO_ROOT);
    const probe = `.vm-write-probe-${process.pid}`;
    expect(await ok(vm, `test -f package.json && echo here > ${probe} && cat ${probe}`)).toBe('here\n');
    expect(existsSync(join(REPO_ROOT, probe))).toBe(false);
  });

  it('returns stdout, stderr, stdin and the real exit code', async () => {
    const vm = theVm();
    const r = await vm.exec('echo out; echo err >&2; exit 3');
    expect(r).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(await vm.exec('tr a-z A-Z', { input: 'hello\nvm\n' })).toEqual({ exitCode: 0, stdout: 'HELLO\nVM\n', stderr: '' });
    // A signal death reads as 128 + the signal number, as in a shell.
    expect((await vm.exec('kill -TERM $$')).exitCode).toBe(143);
  });

  it('kills a script at its timeout, reports it, and keeps serving sequential execs', async () => {
    const vm = theVm();
    const started = performance.now();
    const err = await vm.exec('echo started; exec sleep 60', { timeoutMs: 2_000 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmExecTimeoutError);
    expect(String(err)).toMatch(/timed out after 2000 ms/);
    expect((err as VmExecTimeoutError).stdout).toBe('started\n');
    expect(performance.now() - started).toBeLessThan(20_000);
    // The killed process group is gone.
    expect((await vm.exec('pgrep -x sleep')).exitCode).toBe(1);

    const n = 20;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) expect(await ok(vm, `echo ${i}`)).toBe(`${i}\n`);
    console.info(`test VM: exec round trip ${Math.round((performance.now() - t0) / n)} ms on average over ${n} sequential calls`);
  });

  it('carries a TCP request through an IPVS masquerading virtual server to a pod and back', async () => {
    const vm = theVm();
    await topology(vm);
    expect(await ok(vm, 'ip netns exec node ipvsadm -Ln')).toMatch(
      new RegExp(`TCP  ${VIP}:80 rr\\s*\\n\\s*-> ${POD_IP}:8080\\s+Masq\\s+1`),
    );

    // Nothing listens on the VIP itself: only IPVS can answer this. The node's own connection to a local
    // address leaves from that address, so the pod sees the VIP as the client.
    const reply = await ok(vm, `ip netns exec node node /tmp/client.mjs ${VIP} 80`);
    expect(reply).toBe(`pong ping from ${VIP}\n`);
    // IPVS's connection table holds the finished connection (its --stats counters lag up to 2 s: not those).
    const conns = await ok(vm, 'ip netns exec node ipvsadm -Lnc');
    expect(conns).toMatch(new RegExp(`^TCP\\s+\\S+\\s+\\S+\\s+${VIP}:\\d+\\s+${VIP}:80\\s+${POD_IP}:8080\\s*$`, 'm'));

    // Module autoloading: nothing preloads the dh scheduler, so only the kernel's request_module can load it.
    await ok(vm, `! grep -q '^ip_vs_dh ' /proc/modules && ip netns exec node ipvsadm -A -t ${VIP}:81 -s dh`);
    expect(await ok(vm, 'cut -d" " -f1 /proc/modules')).toMatch(/^ip_vs_dh$/m);
  });

  it('restores a hash:ip,port,ip ipset and an iptables-nft MASQUERADE rule matching it, which masquerades hairpin traffic', async () => {
    const vm = theVm();
    await topology(vm);
    expect(await ok(vm, 'iptables --version')).toMatch(/nf_tables/);
    await ok(vm, 'ip netns exec node ipset restore', {
      input:
        'create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536\n' +
        `add KUBE-LOOP-BACK ${POD_IP},tcp:8080,${POD_IP}\n`,
    });
    await ok(vm, 'ip netns exec node iptables-restore -w 5', {
      input:
        '*nat\n' +
        ':POSTROUTING ACCEPT [0:0]\n' +
        ':KUBE-POSTROUTING - [0:0]\n' +
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING\n' +
        '-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE\n' +
        'COMMIT\n',
    });
    expect(await ok(vm, 'ip netns exec node iptables-save -t nat')).toContain(
      '-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE',
    );

    // Hairpin: the pod reaches itself through the VIP. IPVS-forwarded packets only pass iptables' NAT with
    // vs.conntrack on (kube-proxy sets it too); the pod then sees the node's address, not its own.
    await ok(vm, 'ip netns exec node sysctl -qw net.ipv4.vs.conntrack=1');
    const reply = await ok(vm, `ip netns exec pod node /tmp/client.mjs ${VIP} 80`);
    expect(reply).toBe(`pong ping from ${NODE_VETH_IP}\n`);
    expect(await ok(vm, 'ip netns exec node iptables -t nat -L KUBE-POSTROUTING -v -n -x')).toMatch(
      /^\s*[1-9]\d*\s+\d+\s+MASQUERADE/m,
    );
  });

  it('runs vitest inside the guest and returns its JSON report', async () => {
    const vm = theVm();
    const t0 = performance.now();
    const report = await runVitestInVm(vm, {
      config: 'test/vm/vitest.guest.config.ts',
      files: ['test/guest/harness.guest.test.ts'],
      // The guest file also builds a dual-stack lab (namespaces, echo servers, probes): slow under TCG.
      timeoutMs: 300_000,
    });
    console.info(`test VM: vitest run of one guest file took ${Math.round(performance.now() - t0)} ms`);
    expect(report.testResults.map((f) => f.name)).toEqual([`${REPO_ROOT}/test/guest/harness.guest.test.ts`]);
    const [file] = report.testResults;
    expect(file?.status).toBe('passed');
    expect(file?.assertionResults.length).toBeGreaterThanOrEqual(3);
    for (const t of file?.assertionResults ?? []) {
      expect({ test: t.fullName, status: t.status, failures: t.failureMessages }).toEqual({
        test: t.fullName,
        status: 'passed',
        failures: [],
      });
    }
    expect(report.success).toBe(true);
  }, 320_000);
});
