// The flat layout's KUBE-LOOP-BACK bookkeeping: shared entries, adds before the rules, deferred deletes.
import { describe, expect, it } from 'vitest';
import { LoopbackSet, loopbackEntry } from '../../src/backends/iptables/loopback-set.js';
import { hairpinKey as loopbackKey } from '../../src/backends/shared/hairpin-members.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { endpointSlice, service } from '../support/objects.js';
import { compilerFor, load } from '../support/compile.js';

const A = '10.244.1.2,tcp:8080,10.244.1.2';
const B = '10.244.1.3,tcp:8080,10.244.1.3';
const keyA = loopbackKey('10.244.1.2', 'tcp', 8080);
const keyB = loopbackKey('10.244.1.3', 'tcp', 8080);
const keyC = loopbackKey('10.244.1.4', 'udp', 53);

describe('loopbackKey', () => {
  it('packs an IPv4 member into a number and prints it back as ipset does', () => {
    expect(typeof keyA).toBe('number');
    expect(loopbackEntry(keyA)).toBe(A);
    expect(loopbackEntry(loopbackKey('255.255.255.255', 'sctp', 65535))).toBe('255.255.255.255,sctp:65535,255.255.255.255');
    expect(loopbackEntry(loopbackKey('0.0.0.1', 'udp', 1))).toBe('0.0.0.1,udp:1,0.0.0.1');
    expect(loopbackKey('10.0.0.1', 'tcp', 80)).not.toBe(loopbackKey('10.0.0.1', 'udp', 80));
    // Anything else (IPv6) stays a string.
    expect(loopbackKey('fd00::1', 'tcp', 80)).toBe('fd00::1,tcp:80,fd00::1');
  });
});

describe('LoopbackSet', () => {
  it('fills a fresh set aside and swaps it in on a full sync', () => {
    const set = new LoopbackSet('IPv4');
    set.replace([], [keyA, keyB]);
    const full = set.planFull();
    expect(full.plan.input.split('\n')).toEqual([
      'create KUBE-LOOP-BACK-NEXT hash:ip,port,ip family inet hashsize 1024 maxelem 1048576',
      'flush KUBE-LOOP-BACK-NEXT',
      `add KUBE-LOOP-BACK-NEXT ${A}`,
      `add KUBE-LOOP-BACK-NEXT ${B}`,
      'create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 1048576',
      'swap KUBE-LOOP-BACK-NEXT KUBE-LOOP-BACK',
      'destroy KUBE-LOOP-BACK-NEXT',
      '',
    ]);
    full.commit();
    expect(set.planPartial([])).toBeUndefined();
  });

  it('adds at once, deletes one sync later, and keeps an entry two Services share until both let go', () => {
    const set = new LoopbackSet('IPv4');
    set.replace([], [keyA]); // Service 1
    set.planFull().commit();

    set.replace([], [keyA, keyB]); // Service 2 shares A
    const p1 = set.planPartial([keyA, keyB])!;
    expect(p1.plan.input).toBe(`add KUBE-LOOP-BACK ${B}\n`);
    p1.commit();

    set.replace([keyA], []); // Service 1 goes; Service 2 still DNATs to A
    expect(set.planPartial([keyA])).toBeUndefined();

    set.replace([keyA, keyB], [keyB]); // Service 2 drops A: A leaves the rules now, the set next time
    const p2 = set.planPartial([keyA, keyB]);
    expect(p2).toBeUndefined();

    set.replace([keyB], [keyB, keyC]);
    const p3 = set.planPartial([keyB, keyC])!;
    expect(p3.plan.input).toBe(`add KUBE-LOOP-BACK 10.244.1.4,udp:53,10.244.1.4\ndel KUBE-LOOP-BACK ${A}\n`);
    p3.commit();
    expect(set.size).toBe(2);
  });

  it('keeps changes pending when a sync is not committed', () => {
    const set = new LoopbackSet('IPv4');
    set.planFull().commit();
    set.replace([], [keyA]);
    expect(set.planPartial([keyA])!.plan.input).toBe(`add KUBE-LOOP-BACK ${A}\n`);
    // Not committed (the restore failed): the compiler covers the Service again, and the plan carries it again.
    expect(set.planPartial([keyA])!.plan.input).toBe(`add KUBE-LOOP-BACK ${A}\n`);
  });

  it('is fed by the flat compiler only, with one entry per endpoint DNATed from a policy chain', () => {
    const objects = [
      service({ name: 'web', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.2' }, { ip: '10.244.1.3' }] }),
    ];
    const flat = compilerFor(load(objects), { layout: 'flat' }).planFull();
    expect(flat.ipset?.input).toContain(`add KUBE-LOOP-BACK-NEXT ${A}\nadd KUBE-LOOP-BACK-NEXT ${B}\n`);
    expect(flat.payload.text).toContain('-p tcp -j DNAT --to-destination 10.244.1.3:8080');
    expect(flat.payload.text).not.toContain('KUBE-SEP-');
    const classic = compilerFor(load(objects)).planFull();
    expect(classic.ipset).toBeUndefined();
    expect(classic.payload.text).not.toContain('KUBE-LOOP-BACK');
  });

  it('through the compiler, a partial sync adds the new endpoint before its rules and deletes the old one a sync later', () => {
    const objects = [
      service({ name: 'web', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.2' }, { ip: '10.244.1.3' }] }),
    ];
    const loaded = load(objects);
    const compiler = compilerFor(loaded, { layout: 'flat' });
    compiler.planFull().commit();
    const setEndpoints = (ips: string[]): void => {
      const r = normalizeEndpointSlice(endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: ips.map((ip) => ({ ip })) }));
      if (r.status !== 'ok') throw new Error('invalid slice');
      loaded.state.setSlice(r.value);
      compiler.update(loaded.state, loaded.state.takeChanges());
    };
    setEndpoints(['10.244.1.2', '10.244.1.4']);
    const p1 = compiler.planPartial()!;
    expect(p1.ipset?.input).toBe('add KUBE-LOOP-BACK 10.244.1.4,tcp:8080,10.244.1.4\n');
    p1.commit();
    setEndpoints(['10.244.1.2', '10.244.1.4', '10.244.1.5']);
    const p2 = compiler.planPartial()!;
    expect(p2.ipset?.input).toBe(`add KUBE-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5\ndel KUBE-LOOP-BACK ${B}\n`);
  });
});
