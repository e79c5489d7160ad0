// Real-kernel sync behaviour: updates remove exactly what went away, foreign rules survive, a partial sync
// leaves the kernel as a full sync would, bad input and failed restores never cost programmed rules.
import { beforeAll, describe, expect, it } from 'vitest';
import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { parseLiveRules } from '../../src/backends/iptables/live-rules.js';
import { defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import type { JsonObject } from '../../src/model/fields.js';
import { normalizeService } from '../../src/model/service.js';
import { serviceKey } from '../../src/model/types.js';
import { parseManifestText } from '../../src/sources/manifests.js';
import { loadObjects } from '../../src/sources/objects.js';
import { endpointSlice, list, service, type EndpointSpec, type K8sObject } from '../support/objects.js';
import {
  CLUSTER_CIDR,
  NODE_NAME,
  REMOTE_NODE,
  TempFiles,
  applyObjects,
  chainsMentioning,
  chainsOf,
  compileApply,
  flushConntrack,
  mentionsChain,
  outcomes,
  podsHit,
  rawSave,
  useKernelLab,
  tally,
} from './helpers.js';
import { type Lab } from './lab/index.js';
import { parseRules } from '../support/iptables-text.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' }; // client

const ONE_IP = '10.96.2.1';
const TWO_IP = '10.96.2.2';
const THREE_IP = '10.96.2.3';
const FOUR_IP = '10.96.2.4';
const FIVE_IP = '10.96.2.5';

const local = (ip: string): EndpointSpec => ({ ip, nodeName: NODE_NAME });

function svcObj(name: string, clusterIP: string, extra: { itpLocal?: boolean; affinity?: number } = {}): K8sObject {
  return service({
    name,
    clusterIP,
    ports: [{ name: 'http', port: 80, targetPort: 'http' }],
    ...(extra.itpLocal === true ? { internalTrafficPolicy: 'Local' as const } : {}),
    ...(extra.affinity !== undefined ? { affinityTimeoutSeconds: extra.affinity } : {}),
  });
}

function sliceObj(name: string, endpoints: EndpointSpec[]): K8sObject {
  return endpointSlice({ name: `${name}-1`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints });
}

/** State A: svc-one → a, b; svc-two → b. */
const STATE_A: K8sObject[] = [
  svcObj('svc-one', ONE_IP),
  sliceObj('svc-one', [local(A.ip), local(B.ip)]),
  svcObj('svc-two', TWO_IP),
  sliceObj('svc-two', [local(B.ip)]),
];
/** State B: svc-one → a only; svc-two deleted. */
const STATE_B: K8sObject[] = [svcObj('svc-one', ONE_IP), sliceObj('svc-one', [local(A.ip)])];

const FOREIGN_NAT = [
  '-A PREROUTING -s 192.0.2.0/24 -j FOREIGN-CHAIN',
  '-A PREROUTING -d 198.51.100.7/32 -j RETURN',
  '-A FOREIGN-CHAIN -d 192.0.2.1/32 -j RETURN',
  '-A FOREIGN-CHAIN -d 192.0.2.2/32 -j ACCEPT',
];
const FOREIGN_FILTER = ['-A INPUT -s 192.0.2.9/32 -j ACCEPT', '-A INPUT -s 192.0.2.10/32 -j DROP'];
const FOREIGN_RULES = `*nat\n:FOREIGN-CHAIN - [0:0]\n${FOREIGN_NAT.join('\n')}\nCOMMIT\n*filter\n${FOREIGN_FILTER.join('\n')}\nCOMMIT\n`;

/** Lines that are not switchboard's, in dump order. */
function foreignLines(dump: string): string[] {
  return dump.split('\n').filter((l) => /FOREIGN-CHAIN|192\.0\.2\.|198\.51\.100\./.test(l));
}

/** KUBE-SERVICES rules of every table (as `table rule`, sorted), and the dump without them. */
function splitServicesChains(dump: string): { services: string[]; rest: string } {
  const services: string[] = [];
  const rest: string[] = [];
  let table = '';
  for (const line of dump.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    if (line.startsWith('-A KUBE-SERVICES ')) services.push(`${table} ${line}`);
    else rest.push(line);
  }
  return { services: services.sort(), rest: rest.join('\n') };
}

describe('syncing a real kernel', () => {
  const ctx = useKernelLab([A, B, C]);
  let lab: Lab;
  let files: TempFiles;
  beforeAll(() => {
    ({ lab, files } = ctx);
  });

  it('an update removes exactly what went away', async () => {
    await applyObjects(lab, files, STATE_A);
    const hitsA = tally(podsHit(await lab.probe('c', { proto: 'tcp', ip: ONE_IP, port: 80, count: 20 })));
    expect(Object.keys(hitsA).sort()).toEqual(['a', 'b']);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: TWO_IP, port: 80 }))).toEqual(['b']);

    const textA = await lab.iptablesSave();
    const dumpA = parseRules(textA);
    const natA = chainsOf(dumpA, 'nat');
    const twoChains = chainsMentioning(dumpA, 'nat', 'default/svc-two');
    expect(twoChains.filter((c) => c.startsWith('KUBE-SVC-'))).toHaveLength(1);
    expect(twoChains.filter((c) => c.startsWith('KUBE-SEP-'))).toHaveLength(1);
    const oneChains = chainsMentioning(dumpA, 'nat', 'default/svc-one');
    const oneSvc = oneChains.filter((c) => c.startsWith('KUBE-SVC-'));
    expect(oneSvc).toHaveLength(1);
    const goneSep = oneChains.filter((c) => natA.get(c)?.some((r) => r.includes(`--to-destination ${B.ip}:8080`)));
    expect(goneSep).toHaveLength(1);
    expect(goneSep[0]).toMatch(/^KUBE-SEP-/);

    await applyObjects(lab, files, STATE_B);
    const textB = await lab.iptablesSave();
    const dumpB = parseRules(textB);
    const removed = [...twoChains, ...goneSep];
    for (const chain of removed) expect(mentionsChain(textB, chain), chain).toBe(false);
    expect(textB).not.toContain('default/svc-two');
    expect(textB).not.toContain(TWO_IP);

    // Every other chain of A is still there with the same rules, except svc-one's policy chain (one endpoint
    // fewer) and the shared KUBE-SERVICES chains (svc-two's dispatch went).
    for (const [table, chainsA] of dumpA) {
      const chainsB = chainsOf(dumpB, table);
      for (const [name, rules] of chainsA) {
        if (removed.includes(name) || oneSvc.includes(name) || name === 'KUBE-SERVICES') continue;
        expect(chainsB.get(name), `${table} ${name}`).toEqual(rules);
      }
      const servicesA = chainsA.get('KUBE-SERVICES');
      if (servicesA === undefined) continue; // mangle has none
      expect(chainsB.get('KUBE-SERVICES'), `${table} KUBE-SERVICES`).toEqual(
        servicesA.filter((r) => !r.includes('default/svc-two')),
      );
    }
    const svcRulesB = chainsOf(dumpB, 'nat').get(oneSvc[0] ?? '') ?? [];
    expect(svcRulesB.filter((r) => r.includes('-j KUBE-SEP-'))).toHaveLength(1);
    expect(svcRulesB.join('\n')).not.toContain(goneSep[0]);
    // Nothing new appeared either.
    for (const [table, chainsB] of dumpB) {
      expect([...chainsB.keys()].filter((n) => !chainsOf(dumpA, table).has(n)), table).toEqual([]);
    }

    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: ONE_IP, port: 80, count: 20 }))).toEqual(Array(20).fill('a'));
    // svc-two is gone entirely: no DNAT and no REJECT, the packets just go nowhere.
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: TWO_IP, port: 80, count: 2, timeoutMs: 400 }))).toEqual([
      'timeout',
      'timeout',
    ]);
  });

  it('foreign chains and rules survive every apply, in their original order', async () => {
    await lab.iptablesRestore(FOREIGN_RULES);
    const before = foreignLines(await lab.iptablesSave());
    // As iptables-save prints them: the chain, its jump and rules, and the filter rules.
    expect([...before].sort()).toEqual([':FOREIGN-CHAIN - [0:0]', ...FOREIGN_NAT, ...FOREIGN_FILTER].sort());
    // Within each chain, in the order they were added.
    expect(before.filter((l) => l.startsWith('-A PREROUTING') || l.startsWith('-A FOREIGN-CHAIN'))).toEqual(FOREIGN_NAT);
    expect(before.filter((l) => l.startsWith('-A INPUT'))).toEqual(FOREIGN_FILTER);

    for (const step of [STATE_A, STATE_B, STATE_B]) {
      await applyObjects(lab, files, step);
      const dump = await lab.iptablesSave();
      expect(foreignLines(dump)).toEqual(before);
      // switchboard's own hooks were prepended, ahead of the foreign rules.
      const lines = dump.split('\n');
      const hook = lines.indexOf('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
      expect(hook).toBeGreaterThanOrEqual(0);
      expect(hook).toBeLessThan(lines.indexOf(FOREIGN_NAT[0] ?? ''));
    }
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: ONE_IP, port: 80, count: 3 }))).toEqual(['a', 'a', 'a']);
  });

  it('a partial sync leaves the kernel exactly as a full sync of the same state would', async () => {
    const remoteB: EndpointSpec = { ip: B.ip, nodeName: REMOTE_NODE };
    const objsA: K8sObject[] = [
      ...STATE_A,
      svcObj('svc-three', THREE_IP), // no endpoints yet: REJECT
    ];
    const changesB: K8sObject[] = [
      sliceObj('svc-one', [local(A.ip)]),
      sliceObj('svc-three', [local(B.ip)]),
      svcObj('svc-four', FOUR_IP, { itpLocal: true }),
      sliceObj('svc-four', [remoteB]), // remote only: DROP
      svcObj('svc-five', FIVE_IP, { affinity: 30 }),
      sliceObj('svc-five', [local(A.ip), local(B.ip)]),
    ];
    const deletedB = ['svc-two'];
    const objsB: K8sObject[] = [
      svcObj('svc-one', ONE_IP),
      svcObj('svc-three', THREE_IP),
      ...changesB,
    ];

    const beLiberal = (await lab.exec('node', 'cat', ['/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal'])).stdout;
    const compiler = new IptablesCompiler(
      defaultIptablesOptions({
        family: 'IPv4',
        clusterCidr: CLUSTER_CIDR,
        masqueradeAll: false,
        dropInvalid: beLiberal.trim() === '0',
      }),
    );
    const parsed = parseManifestText(list(objsA), 'state-a');
    expect(parsed.errors).toEqual([]);
    const { state, errors } = loadObjects(parsed.objects, NODE_NAME);
    expect(errors).toEqual([]);
    compiler.update(state, state.takeChanges());
    const full = compiler.planFull(parseLiveRules(await rawSave(lab)));
    await lab.iptablesRestore(full.payload.text);
    full.commit();
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: THREE_IP, port: 80 }))).toEqual(['refused']);

    // Step to B incrementally.
    for (const obj of changesB) {
      if (obj['kind'] === 'Service') {
        const r = normalizeService(obj as JsonObject);
        if (r.status !== 'ok') throw new Error(`bad test Service: ${JSON.stringify(r)}`);
        state.setService(r.value);
      } else {
        const r = normalizeEndpointSlice(obj as JsonObject);
        if (r.status !== 'ok') throw new Error(`bad test slice: ${JSON.stringify(r)}`);
        state.setSlice(r.value);
      }
    }
    for (const name of deletedB) {
      state.deleteService(serviceKey('default', name));
      state.deleteSlice('default', `${name}-1`);
    }
    compiler.update(state, state.takeChanges());
    const partial = compiler.planPartial();
    if (partial === undefined) throw new Error('planPartial() found nothing to do for a real change');
    expect(partial.payload.kind).toBe('partial');
    await lab.iptablesRestore(partial.payload.text);
    partial.commit();
    await flushConntrack(lab);

    // Packets see B.
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: ONE_IP, port: 80, count: 10 }))).toEqual(Array(10).fill('a'));
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: TWO_IP, port: 80, timeoutMs: 400 }))).toEqual(['timeout']);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: THREE_IP, port: 80, count: 3 }))).toEqual(['b', 'b', 'b']);
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: FOUR_IP, port: 80, timeoutMs: 400 }))).toEqual(['timeout']);
    const five = podsHit(await lab.probe('c', { proto: 'tcp', ip: FIVE_IP, port: 80, count: 8 }));
    expect(new Set(five).size).toBe(1);

    const afterPartial = await lab.iptablesSave();
    await applyObjects(lab, files, objsB);
    const afterFull = await lab.iptablesSave();
    const p = splitServicesChains(afterPartial);
    const f = splitServicesChains(afterFull);
    expect(p.rest).toBe(f.rest);
    expect(p.services).toEqual(f.services);
    // Sanity: the comparison covered the interesting rules.
    expect(f.services.some((l) => l.includes('default/svc-four:http has no local endpoints'))).toBe(true);
    expect(f.rest).toContain('-m recent --rcheck --seconds 30');
  });

  it('bad input is rejected with exit 2 and costs no programmed rule', async () => {
    await applyObjects(lab, files, STATE_A);
    const before = await lab.iptablesSave();
    const bad = service({ name: 'too-far', clusterIP: '10.96.2.9', ports: [{ name: 'http', port: 70000, targetPort: 8080 }] });
    const path = await files.write([...STATE_B, bad], 'bad-port.json');
    const r = await compileApply(lab, path);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(path);
    expect(r.stderr).toContain('default/too-far');
    expect(r.stderr).toContain('spec.ports[0].port');
    expect(await lab.iptablesSave()).toBe(before);
    // State A still carries packets: svc-two was not deleted by the rejected B.
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: TWO_IP, port: 80 }))).toEqual(['b']);
  });

  it('a failed restore reports the tool error and leaves every rule of the previous sync in place', async () => {
    await applyObjects(lab, files, STATE_A);
    const sep = chainsMentioning(parseRules(await lab.iptablesSave()), 'nat', 'default/svc-two').find((c) =>
      c.startsWith('KUBE-SEP-'),
    );
    if (sep === undefined) throw new Error('svc-two has no KUBE-SEP chain after apply A');
    await lab.iptablesRestore(`*nat\n:FOREIGN-CHAIN - [0:0]\n-A FOREIGN-CHAIN -j ${sep}\nCOMMIT\n`);
    const before = await lab.iptablesSave();

    // B deletes svc-two, so its SEP chain must go, but a foreign rule still jumps to it.
    const r = await compileApply(lab, await files.write(STATE_B));
    expect(r.exitCode, r.stderr).toBe(1);
    // The mode's own binary (iptables-nft-restore here), as the agent runs it.
    expect(r.stderr).toMatch(/iptables-(nft|legacy)-restore/);
    expect(r.stderr).toContain('offending input:');
    // The quoted input points at the deletion of the chain the foreign rule pins.
    expect(r.stderr.slice(r.stderr.indexOf('offending input:'))).toMatch(new RegExp(`^\\d+: -X ${sep}$`, 'm'));
    expect(await lab.iptablesSave()).toBe(before);
    const hits = tally(podsHit(await lab.probe('c', { proto: 'tcp', ip: ONE_IP, port: 80, count: 20 })));
    expect(Object.keys(hits).sort()).toEqual(['a', 'b']);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: TWO_IP, port: 80 }))).toEqual(['b']);
  });
});

