import { describe, expect, it } from 'vitest';
import { NftablesCompiler, type NftSyncPlan } from '../../src/backends/nftables/compiler.js';
import { nftHash } from '../../src/backends/nftables/names.js';
import { defaultNftablesOptions, ourTable } from '../../src/backends/nftables/options.js';
import { renderTransaction } from '../../src/kernel/syntax/nft.js';
import { ClusterState } from '../../src/model/state.js';
import { setObject } from '../support/compile.js';
import { type K8sObject, endpointSlice, service } from '../support/objects.js';

// The nftables compiler's transactions, step by step: a partial sync writes only changed elements and
// chains, and chains that fall out of use are emptied at once and deleted by the next transaction.

const svc = (name: string, ip: string, extra: { affinityTimeoutSeconds?: number } = {}) =>
  service({ name, clusterIP: ip, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...extra });
const slice = (name: string, ips: string[]) =>
  endpointSlice({ name: `${name}-1`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints: ips.map((ip) => ({ ip })) });


function setup(objects: K8sObject[]): { state: ClusterState; compiler: NftablesCompiler } {
  const state = new ClusterState('node-a');
  for (const o of objects) setObject(state, o);
  const compiler = new NftablesCompiler(defaultNftablesOptions({ clusterCidr: '10.244.0.0/16' }));
  compiler.update(state, state.takeChanges());
  compiler.planFull().commit();
  return { state, compiler };
}

/** A plan's transaction as nft reads it. */
const text = (plan: NftSyncPlan): string => [...renderTransaction({ table: ourTable('IPv4'), ops: plan.ops })].join('');

/** The next partial transaction's lines (committed), or undefined when there is nothing to write. */
function partial(compiler: NftablesCompiler, state: ClusterState): string[] | undefined {
  compiler.update(state, state.takeChanges());
  const plan = compiler.planPartial();
  plan?.commit();
  return plan === undefined ? undefined : text(plan).trimEnd().split('\n');
}

const Q = 'ip kube-proxy';

describe('nftables partial syncs', () => {
  it('matches upstream\'s name hashes', () => {
    expect(nftHash('ns1/svc1/tcp/p80')).toBe('ULMVA6XW');
    expect(nftHash('ns1/svc1/tcp/p80__10.180.0.1/80')).toBe('5OJB2KTY');
    expect(nftHash('testing/service/tcp/http')).toBe('P4ZYZVCF');
  });

  it('a no-op sync writes nothing', () => {
    const { state, compiler } = setup([svc('web', '10.96.0.1'), slice('web', ['10.244.1.1', '10.244.1.2'])]);
    expect(partial(compiler, state)).toBeUndefined();
  });

  it('replacing one endpoint rewrites two elements and the hairpin set, and no rule', () => {
    const { state, compiler } = setup([svc('web', '10.96.0.1'), slice('web', ['10.244.1.1', '10.244.1.2'])]);
    setObject(state, slice('web', ['10.244.1.1', '10.244.1.3']));
    expect(partial(compiler, state)).toEqual([
      `delete element ${Q} service-endpoints-tcp { 10.96.0.1 . 80 . 1 }`,
      `add element ${Q} service-endpoints-tcp { 10.96.0.1 . 80 . 1 : 10.244.1.3 . 8080 }`,
      `add element ${Q} hairpin-connections { 10.244.1.3 . 10.244.1.3 . tcp . 8080 }`,
    ]);
    // The hairpin member nothing DNATs to any more goes with the next transaction.
    setObject(state, svc('other', '10.96.0.2'));
    expect(partial(compiler, state)).toEqual([
      `add element ${Q} cluster-ips { 10.96.0.2 }`,
      `add element ${Q} no-endpoint-services { 10.96.0.2 . tcp . 80 comment "default/other:http" : goto reject-chain }`,
      `delete element ${Q} hairpin-connections { 10.244.1.2 . 10.244.1.2 . tcp . 8080 }`,
    ]);
  });

  it('a new endpoint count creates its load-balancing chain first; the unused one is deleted next time', () => {
    const { state, compiler } = setup([svc('web', '10.96.0.1'), slice('web', ['10.244.1.1', '10.244.1.2'])]);
    setObject(state, slice('web', ['10.244.1.1', '10.244.1.2', '10.244.1.3']));
    expect(partial(compiler, state)).toEqual([
      `add chain ${Q} lb-tcp-3`,
      `flush chain ${Q} lb-tcp-3`,
      `add rule ${Q} lb-tcp-3 meta l4proto tcp dnat to ip daddr . tcp dport . numgen random mod 3 map @service-endpoints-tcp`,
      `delete element ${Q} service-ips { 10.96.0.1 . tcp . 80 }`,
      `add element ${Q} service-ips { 10.96.0.1 . tcp . 80 comment "default/web:http cluster IP" : goto lb-tcp-3 }`,
      `add element ${Q} service-endpoints-tcp { 10.96.0.1 . 80 . 2 : 10.244.1.3 . 8080 }`,
      `add element ${Q} hairpin-connections { 10.244.1.3 . 10.244.1.3 . tcp . 8080 }`,
    ]);
    setObject(state, svc('other', '10.96.0.2'));
    expect(partial(compiler, state)?.[0]).toBe(`delete chain ${Q} lb-tcp-2`);
    // Deleted once: the next transaction does not try again.
    setObject(state, svc('fourth', '10.96.0.4'));
    expect(partial(compiler, state)?.filter((l) => l.startsWith('delete chain'))).toEqual([]);
    // Wanted again before it was deleted: reused, not recreated, and no longer due for deletion.
    setObject(state, slice('web', ['10.244.1.1', '10.244.1.2']));
    const back = partial(compiler, state)!;
    expect(back.filter((l) => l.includes('lb-tcp-2'))).toEqual([
      `add chain ${Q} lb-tcp-2`,
      `flush chain ${Q} lb-tcp-2`,
      `add rule ${Q} lb-tcp-2 meta l4proto tcp dnat to ip daddr . tcp dport . numgen random mod 2 map @service-endpoints-tcp`,
      `add element ${Q} service-ips { 10.96.0.1 . tcp . 80 comment "default/web:http cluster IP" : goto lb-tcp-2 }`,
    ]);
    setObject(state, svc('third', '10.96.0.3'));
    expect(partial(compiler, state)?.some((l) => l === `delete chain ${Q} lb-tcp-2`)).toBe(false);
  });

  it('losing every endpoint swaps the dispatch element for a REJECT one', () => {
    const { state, compiler } = setup([svc('web', '10.96.0.1'), slice('web', ['10.244.1.1'])]);
    setObject(state, slice('web', []));
    expect(partial(compiler, state)).toEqual([
      `delete element ${Q} service-ips { 10.96.0.1 . tcp . 80 }`,
      `delete element ${Q} service-endpoints-tcp { 10.96.0.1 . 80 . 0 }`,
      `add element ${Q} no-endpoint-services { 10.96.0.1 . tcp . 80 comment "default/web:http" : goto reject-chain }`,
    ]);
  });

  it('an affinity Service keeps its sets, rewrites its service chain, and deletes a gone endpoint\'s chain and set one sync later', () => {
    const sticky = { affinityTimeoutSeconds: 600 };
    const { state, compiler } = setup([svc('web', '10.96.0.1', sticky), slice('web', ['10.244.1.1', '10.244.1.2'])]);
    setObject(state, slice('web', ['10.244.1.1']));
    const lines = partial(compiler, state)!;
    const gone = lines.find((l) => l.startsWith(`flush chain ${Q} endpoint-`))!.split(' ').pop()!;
    expect(gone).toMatch(/^endpoint-[A-Z2-7]{8}-default\/web\/tcp\/http__10\.244\.1\.2\/8080$/);
    expect(lines.filter((l) => l.startsWith('add set') || l.includes('flush set'))).toEqual([]);
    expect(lines.some((l) => /^add rule ip kube-proxy service-[A-Z2-7]{8}-default\/web\/tcp\/http numgen random mod 1 vmap/.test(l))).toBe(true);
    setObject(state, svc('other', '10.96.0.2'));
    const next = partial(compiler, state)!;
    expect(next.slice(0, 2)).toEqual([`delete chain ${Q} ${gone}`, `delete set ${Q} ${gone.replace('endpoint-', 'affinity-')}`]);
  });

  it('a full sync empties chains and sets of ours that nothing wants, and deletes those an earlier one emptied', () => {
    const { state, compiler } = setup([svc('web', '10.96.0.1'), slice('web', ['10.244.1.1'])]);
    compiler.update(state, state.takeChanges());
    const live = { chains: ['services', 'lb-tcp-1', 'lb-tcp-7', 'service-AAAAAAAA-old/gone/tcp/http', 'someone-elses'], sets: ['affinity-BBBBBBBB-old/gone/tcp/http__10.0.0.1/80'] };
    const first = compiler.planFull(live);
    const written = text(first);
    first.commit();
    expect(written).toContain(`flush chain ${Q} lb-tcp-7\n`);
    expect(written).toContain(`flush chain ${Q} service-AAAAAAAA-old/gone/tcp/http\n`);
    expect(written).not.toContain('someone-elses');
    expect(written).not.toMatch(/^delete (chain|set) /m);
    // The one map of earlier versions is declared and deleted last, once no rule refers to it.
    expect(written.trimEnd().split('\n').slice(-2)).toEqual([
      `add map ${Q} service-endpoints { typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport ; }`,
      `delete map ${Q} service-endpoints`,
    ]);
    const second = text(compiler.planFull(live));
    expect(second).toContain(`delete chain ${Q} lb-tcp-7\n`);
    expect(second).toContain(`delete chain ${Q} service-AAAAAAAA-old/gone/tcp/http\n`);
    expect(second).toContain(`delete set ${Q} affinity-BBBBBBBB-old/gone/tcp/http__10.0.0.1/80\n`);
  });

  it('a NodePort or external IP change is a partial sync of elements, per Service (externalTrafficPolicy Cluster: shared chains)', () => {
    const np = (nodePort: number, extra: { externalIPs?: string[] } = {}) =>
      service({ name: 'web', type: 'NodePort', clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort }], ...extra });
    const { state, compiler } = setup([np(30080), slice('web', ['10.244.1.1'])]);
    setObject(state, np(30081));
    expect(partial(compiler, state)).toEqual([
      `delete element ${Q} service-nodeports { tcp . 30080 }`,
      `delete element ${Q} nodeport-endpoints-tcp { 30080 . 0 }`,
      `add element ${Q} service-nodeports { tcp . 30081 comment "default/web:http" : goto lb-nodeport-tcp-1 }`,
      `add element ${Q} nodeport-endpoints-tcp { 30081 . 0 : 10.244.1.1 . 8080 }`,
    ]);
    // A new external IP: the masquerading chain for one endpoint is created before the elements that jump to it.
    setObject(state, np(30081, { externalIPs: ['192.168.99.1'] }));
    expect(partial(compiler, state)).toEqual([
      `add chain ${Q} lb-masq-tcp-1`,
      `flush chain ${Q} lb-masq-tcp-1`,
      `add rule ${Q} lb-masq-tcp-1 meta mark set meta mark | 0x4000`,
      `add rule ${Q} lb-masq-tcp-1 meta l4proto tcp dnat to ip daddr . tcp dport . numgen random mod 1 map @service-endpoints-tcp`,
      `add element ${Q} service-ips { 192.168.99.1 . tcp . 80 comment "default/web:http external IP" : goto lb-masq-tcp-1 }`,
      `add element ${Q} service-endpoints-tcp { 192.168.99.1 . 80 . 0 : 10.244.1.1 . 8080 }`,
    ]);
    // The last endpoint goes: REJECT for every address; the shared chains fall out of use (deleted next time).
    setObject(state, slice('web', []));
    const lines = partial(compiler, state)!;
    expect(lines).toContain(`add element ${Q} no-endpoint-nodeports { tcp . 30081 comment "default/web:http" : goto reject-chain }`);
    expect(lines).toContain(
      `add element ${Q} no-endpoint-services { 10.96.0.1 . tcp . 80 comment "default/web:http" : goto reject-chain, 192.168.99.1 . tcp . 80 comment "default/web:http" : goto reject-chain }`,
    );
    expect(lines).toContain(`delete element ${Q} service-nodeports { tcp . 30081 }`);
    setObject(state, slice('web', ['10.244.1.2']));
    const next = partial(compiler, state)!;
    for (const chain of ['lb-tcp-1', 'lb-masq-tcp-1', 'lb-nodeport-tcp-1']) expect(next).not.toContain(`delete chain ${Q} ${chain}`);
    expect(next).toContain(`add element ${Q} service-nodeports { tcp . 30081 comment "default/web:http" : goto lb-nodeport-tcp-1 }`);
  });

  it('an externalTrafficPolicy Local port keeps upstream chains, emptied when its endpoints go', () => {
    const np = (nodePort: number) =>
      service({ name: 'web', type: 'NodePort', clusterIP: '10.96.0.1', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort }] });
    const { state, compiler } = setup([np(30080), slice('web', ['10.244.1.1'])]);
    setObject(state, np(30081));
    expect(partial(compiler, state)).toEqual([
      `delete element ${Q} service-nodeports { tcp . 30080 }`,
      `delete element ${Q} no-endpoint-nodeports { tcp . 30080 }`,
      `add element ${Q} service-nodeports { tcp . 30081 comment "default/web:http" : goto external-SUSTUHLJ-default/web/tcp/http }`,
      // The endpoint is not on this node: outside clients are dropped, pods and the host short-circuit.
      `add element ${Q} no-endpoint-nodeports { tcp . 30081 comment "default/web:http" : drop }`,
    ]);
    setObject(state, slice('web', []));
    const lines = partial(compiler, state)!;
    expect(lines).toContain(`add element ${Q} no-endpoint-nodeports { tcp . 30081 comment "default/web:http" : goto reject-chain }`);
    expect(lines).toContain(`flush chain ${Q} external-SUSTUHLJ-default/web/tcp/http`);
    expect(lines.indexOf(`delete element ${Q} service-nodeports { tcp . 30081 }`)).toBeLessThan(lines.indexOf(`flush chain ${Q} external-SUSTUHLJ-default/web/tcp/http`));
  });
});
