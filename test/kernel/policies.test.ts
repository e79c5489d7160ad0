// Real packets for endpoint selection and policies: internalTrafficPolicy Local, ClientIP session affinity,
// terminating endpoints as a fallback, and Services the proxy must leave alone.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type EndpointSpec, type K8sObject } from '../support/objects.js';
import {
  NODE_NAME,
  REMOTE_NODE,
  TempFiles,
  FLAVOURS,
  ipvsState,
  nftTable,
  applyObjects,
  outcomes,
  podsHit,
  useKernelLab,
  tally,
} from './helpers.js';
import { type Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] }; // on this node (node-a)
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] }; // "on node-b" as far as slices say
const C = { name: 'c', ip: '10.244.2.2' }; // clients
const D = { name: 'd', ip: '10.244.2.3' };

const local = (ip: string, extra: Partial<EndpointSpec> = {}): EndpointSpec => ({ ip, nodeName: NODE_NAME, ...extra });
const remote = (ip: string, extra: Partial<EndpointSpec> = {}): EndpointSpec => ({ ip, nodeName: REMOTE_NODE, ...extra });

function svc(name: string, clusterIP: string, endpoints: EndpointSpec[], extra: { itpLocal?: boolean; affinity?: number } = {}): K8sObject[] {
  return [
    service({
      name,
      clusterIP,
      ports: [{ port: 80, targetPort: 8080 }],
      ...(extra.itpLocal === true ? { internalTrafficPolicy: 'Local' as const } : {}),
      ...(extra.affinity !== undefined ? { affinityTimeoutSeconds: extra.affinity } : {}),
    }),
    endpointSlice({ name: `${name}-1`, service: name, ports: [{ port: 8080 }], endpoints }),
  ];
}

describe.each(FLAVOURS)('traffic policies and endpoint conditions on a real kernel ($name)', ({ backend, flags }) => {
  const ctx = useKernelLab([A, B, C, D]);
  let lab: Lab;
  let files: TempFiles;
  beforeAll(() => {
    ({ lab, files } = ctx);
  });

  describe('internalTrafficPolicy: Local', () => {
    it('with only remote endpoints, traffic is dropped (timeout), not rejected and not sent to the remote pod', async () => {
      const ip = '10.96.1.10';
      await applyObjects(lab, files, svc('itp-remote', ip, [remote(B.ip)], { itpLocal: true }), flags);
      const t0 = Date.now();
      expect(outcomes(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 2, timeoutMs: 400 }))).toEqual([
        'timeout',
        'timeout',
      ]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(800);
      expect(outcomes(await lab.probe('node', { proto: 'tcp', ip, port: 80, timeoutMs: 400 }))).toEqual(['timeout']);
      // The silence is a deliberate DROP for this Service, not the absence of rules.
      if (backend === 'nftables') {
        expect(await nftTable(lab)).toContain(`${ip} . tcp . 80 comment "default/itp-remote" : drop`);
      } else {
        const filter = await lab.iptablesSave('filter');
        const drops = filter
          .split('\n')
          .filter((l) => l.includes('"default/itp-remote has no local endpoints"') && l.includes(`-d ${ip}/32`));
        expect(drops).toHaveLength(1);
        expect(drops[0]).toMatch(/^-A KUBE-SERVICES .*-j DROP$/);
      }
      // Control: the same endpoint under the Cluster policy answers.
      await lab.resetNetfilter();
      await applyObjects(lab, files, svc('itp-remote', ip, [remote(B.ip)]), flags);
      expect(podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80 }))).toEqual(['b']);
    });

    it('with one local and one remote endpoint, only the local one is used', async () => {
      const ip = '10.96.1.11';
      await applyObjects(lab, files, svc('itp-mixed', ip, [local(A.ip), remote(B.ip)], { itpLocal: true }), flags);
      expect(podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 20 }))).toEqual(Array(20).fill('a'));
      expect(podsHit(await lab.probe('node', { proto: 'tcp', ip, port: 80, count: 4 }))).toEqual(Array(4).fill('a'));
    });
  });

  it('ClientIP session affinity: every client sticks to one endpoint', async () => {
    const ip = '10.96.1.20';
    await applyObjects(lab, files, svc('sticky', ip, [local(A.ip), local(B.ip)], { affinity: 60 }), flags);
    const fromC = podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 20 }));
    expect(new Set(fromC).size).toBe(1);
    expect(['a', 'b']).toContain(fromC[0]);
    const fromD = podsHit(await lab.probe('d', { proto: 'tcp', ip, port: 80, count: 20 }));
    expect(new Set(fromD).size).toBe(1);
    // C's binding survives D's traffic.
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 5 }))).toEqual(Array(5).fill(fromC[0]));

    // Control: without affinity the same two endpoints both get traffic from one client.
    await lab.resetNetfilter();
    await applyObjects(lab, files, svc('sticky', ip, [local(A.ip), local(B.ip)]), flags);
    const spread = tally(podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 20 })));
    expect(Object.keys(spread).sort()).toEqual(['a', 'b']);
  });

  it('terminating endpoints are used only when nothing ready is left, and never when not serving', async () => {
    const ip = '10.96.1.30';
    const terminatingB = local(B.ip, { ready: false, serving: true, terminating: true });

    await applyObjects(lab, files, svc('term', ip, [local(A.ip), terminatingB]), flags);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 20 }))).toEqual(Array(20).fill('a'));

    // A is gone; only the serving, terminating B remains: it is the fallback.
    await applyObjects(lab, files, svc('term', ip, [terminatingB]), flags);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 10 }))).toEqual(Array(10).fill('b'));

    // B stops serving too: nothing left, so the Service rejects.
    await applyObjects(lab, files, svc('term', ip, [local(B.ip, { ready: false, serving: false, terminating: true })]), flags);
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip, port: 80, count: 3 }))).toEqual(Array(3).fill('refused'));
  });

  it('headless, ExternalName and other-proxy Services are not programmed', async () => {
    const OTHER_IP = '10.96.1.41';
    const PLAIN_IP = '10.96.1.42';
    const headless = [
      service({ name: 'headless', clusterIP: 'None', ports: [{ port: 80, targetPort: 8080 }] }),
      endpointSlice({
        name: 'headless-1',
        service: 'headless',
        ports: [{ port: 8080 }],
        endpoints: [local(A.ip)],
        labels: { 'service.kubernetes.io/headless': '' },
      }),
    ];
    const externalName: K8sObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'extname', namespace: 'default' },
      spec: { type: 'ExternalName', externalName: 'example.com', ports: [{ port: 80, protocol: 'TCP' }] },
    };
    const otherProxy = [
      service({
        name: 'otherproxy',
        clusterIP: OTHER_IP,
        ports: [{ port: 80, targetPort: 8080 }],
        labels: { 'service.kubernetes.io/service-proxy-name': 'other' },
      }),
      endpointSlice({ name: 'otherproxy-1', service: 'otherproxy', ports: [{ port: 8080 }], endpoints: [local(A.ip)] }),
    ];
    const plain = svc('plain', PLAIN_IP, [local(A.ip)]);
    await applyObjects(lab, files, [...headless, externalName, ...otherProxy, ...plain], flags);

    const dump = (await lab.iptablesSave()) + (backend === 'ipvs' ? await ipvsState(lab) : '') + (backend === 'nftables' ? await nftTable(lab) : '');
    // The Service applied alongside them is there, so the absence below means something.
    expect(dump).toContain(PLAIN_IP);
    for (const name of ['default/headless', 'default/extname', 'default/otherproxy']) expect(dump).not.toContain(name);
    expect(dump).not.toContain(OTHER_IP);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: PLAIN_IP, port: 80 }))).toEqual(['a']);
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: OTHER_IP, port: 80, timeoutMs: 400 }))).toEqual(['timeout']);
  });
});
