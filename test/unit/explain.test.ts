// `switchboard explain service`, one case per finding code, over manifests shaped as
// `kubectl get svc,endpointslices,pods,nodes -A -o yaml` prints them (a List, real metadata, slices with
// `ports: null` / `endpoints: null`), parsed by the same reader `compile -f` uses.
import { describe, expect, it } from 'vitest';
import { explainService, ExplainInputError } from '../../src/diagnose/explain/analyze.js';
import { manifestInput } from '../../src/diagnose/explain/manifest-input.js';
import type { PodInfo } from '../../src/diagnose/explain/objects.js';
import { explanationJson, explanationText } from '../../src/diagnose/explain/render.js';
import { editDistance, nearestMisses, similarNames } from '../../src/diagnose/explain/selector.js';
import type { Explanation, Finding, FindingCode } from '../../src/diagnose/explain/types.js';
import { parseManifestText } from '../../src/sources/manifests.js';
import { type K8sObject, kNode, kPod, kService, kSlice, kubectlYaml } from '../support/kubectl-dump.js';

const NS = 'shop';

function explain(items: readonly K8sObject[], ref = `${NS}/web`, nodeName = 'node-a', nodeIPs: string[] = []): Explanation {
  const text = kubectlYaml(items);
  const parsed = parseManifestText(text, 'dump.yaml');
  expect(parsed.errors).toEqual([]);
  const [namespace = '', name = ''] = ref.split('/');
  return explainService({ namespace, name, nodeName, nodeIPs }, manifestInput(parsed.objects, namespace, name, nodeName, 'the input (dump.yaml)'));
}

function codes(e: Explanation): FindingCode[] {
  return e.findings.map((f) => f.code);
}

function finding(e: Explanation, code: FindingCode): Finding {
  const f = e.findings.find((x) => x.code === code);
  if (f === undefined) throw new Error(`no ${code} finding; got ${codes(e).join(', ') || 'none'}:\n${explanationText(e)}`);
  return f;
}

const nodes = [kNode('node-a', '172.18.0.3', 'zone-a'), kNode('node-b', '172.18.0.4', 'zone-b')];

/** Two web Pods, one per node, declaring 8080/TCP as `http`, and the Service with its slice as the controller writes it. */
function webPod(name: string, node: string, ip: string, extra: Partial<Parameters<typeof kPod>[0]> = {}): K8sObject {
  return kPod({
    namespace: NS,
    name,
    labels: { app: 'web' },
    node,
    ip,
    containers: [{ name: 'web', ports: [{ name: 'http', containerPort: 8080 }], readiness: { path: '/healthz', port: 8080 } }],
    ...extra,
  });
}

const webService = kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
const webPods = [webPod('web-7d9c5b8f4-abcde', 'node-a', '10.244.1.5'), webPod('web-7d9c5b8f4-fghij', 'node-b', '10.244.2.6')];
const webSlice = kSlice({
  namespace: NS,
  service: 'web',
  ports: [{ name: 'http', port: 8080 }],
  endpoints: [
    { ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde' },
    { ip: '10.244.2.6', node: 'node-b', pod: 'web-7d9c5b8f4-fghij' },
  ],
});

describe('explain service: a healthy Service', () => {
  it('is served: DNAT to both endpoints, no finding, endpoints named by Pod and node', () => {
    const e = explain([webService, webSlice, ...webPods, ...nodes]);
    expect(e.served).toBe(true);
    expect(e.findings).toEqual([]);
    expect(e.ports).toEqual([
      {
        name: 'http',
        port: 80,
        protocol: 'TCP',
        targetPort: 'http',
        verdict: 'dnat',
        endpoints: [
          { ip: '10.244.1.5', port: 8080, node: 'node-a', ready: true, serving: true, terminating: false, pod: 'web-7d9c5b8f4-abcde' },
          { ip: '10.244.2.6', port: 8080, node: 'node-b', ready: true, serving: true, terminating: false, pod: 'web-7d9c5b8f4-fghij' },
        ],
      },
    ]);
  });

  it('reads the dump exactly as kubectl prints it (keys sorted, List items with kind, ports: null slices)', () => {
    const text = kubectlYaml([webService, kSlice({ namespace: NS, service: 'web', ports: null, endpoints: null })]);
    expect(text).toMatch(/^apiVersion: v1\nitems:\n- apiVersion: v1\n {2}kind: Service\n/);
    expect(text).toContain('\n  endpoints: null\n');
    expect(text).toContain('\n  ports: null\n');
    expect(text).toMatch(/\nkind: List\nmetadata:\n {2}resourceVersion: ""\n$/);
  });
});

describe('explain service: finding codes', () => {
  it('ServiceNotFound: suggests similar names in the namespace and the same name in other namespaces', () => {
    const e = explain([
      webService,
      kService({ namespace: NS, name: 'web-admin', clusterIP: '10.96.0.51', ports: [{ port: 80 }] }),
      kService({ namespace: NS, name: 'cart', clusterIP: '10.96.0.52', ports: [{ port: 80 }] }),
      kService({ namespace: 'staging', name: 'wbe', clusterIP: '10.96.0.53', ports: [{ port: 80 }] }),
    ], `${NS}/wbe`);
    expect(e.served).toBe(false);
    expect(e.ports).toEqual([]);
    const f = finding(e, 'ServiceNotFound');
    expect(f.severity).toBe('error');
    expect(f.message).toBe('Service shop/wbe not found in the input (dump.yaml); similar names in namespace shop: web; a Service named wbe exists in namespace staging');
    expect(f.fix).toContain('switchboard explain service shop/web or switchboard explain service staging/wbe');
    expect(f.message).not.toContain('cart');
  });

  it('Headless: not proxied, its endpoints still listed from the headless-labelled slice', () => {
    const e = explain([
      kService({ namespace: NS, name: 'web', clusterIP: 'None', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      kSlice({
        namespace: NS,
        service: 'web',
        labels: { 'service.kubernetes.io/headless': '' },
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde' }, { ip: '10.244.2.6', node: 'node-b', pod: 'web-7d9c5b8f4-fghij', ready: false }],
      }),
      ...webPods,
    ]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['Headless']);
    expect(finding(e, 'Headless').message).toContain('spec.clusterIP: None');
    expect(finding(e, 'Headless').fix).toContain('kubectl replace --force');
    expect(e.ports.map((p) => [p.verdict, p.endpoints.map((ep) => `${ep.ip}:${ep.port} ${ep.ready} ${ep.pod}`)])).toEqual([
      ['not-proxied', ['10.244.1.5:8080 true web-7d9c5b8f4-abcde', '10.244.2.6:8080 false web-7d9c5b8f4-fghij']],
    ]);
  });

  it('ExternalName: not proxied, naming the external name', () => {
    const e = explain([kService({ namespace: NS, name: 'web', clusterIP: '', type: 'ExternalName', externalName: 'web.example.com', ports: [] })]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['ExternalName']);
    expect(finding(e, 'ExternalName').message).toContain('(web.example.com)');
  });

  it('NotProxied: the service-proxy-name label, with the proxy it names; ports listed as not-proxied', () => {
    const e = explain([
      kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', labels: { 'service.kubernetes.io/service-proxy-name': 'istio' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
      kSlice({ namespace: NS, service: 'web', labels: { 'service.kubernetes.io/service-proxy-name': 'istio' }, ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde' }] }),
    ]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['NotProxied']);
    const f = finding(e, 'NotProxied');
    expect(f.message).toContain('service.kubernetes.io/service-proxy-name=istio');
    expect(f.message).toContain('only a proxy named "istio" programs 10.96.0.50');
    expect(f.fix).toContain('kubectl -n shop label service web service.kubernetes.io/service-proxy-name-');
    expect(e.ports[0]).toMatchObject({ verdict: 'not-proxied', targetPort: 'http', endpoints: [{ ip: '10.244.1.5', port: 8080, pod: 'web-7d9c5b8f4-abcde' }] });
  });

  it('NoSelector: no selector and no slice means REJECT on every port', () => {
    const e = explain([kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', selector: null, ports: [{ name: 'http', port: 80 }, { name: 'admin', port: 9000 }] }), ...webPods]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['NoSelector']);
    expect(e.ports.map((p) => p.verdict)).toEqual(['reject', 'reject']);
    expect(finding(e, 'NoSelector').message).toContain('no EndpointSlice names it (label kubernetes.io/service-name=web)');
  });

  it('no selector but a hand-made slice: served, no NoSelector', () => {
    const e = explain([
      kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', selector: null, ports: [{ name: 'http', port: 80 }] }),
      kSlice({ namespace: NS, service: 'web', name: 'web-external', ports: [{ name: 'http', port: 5432 }], endpoints: [{ ip: '192.0.2.10' }] }),
    ]);
    expect(e.served).toBe(true);
    expect(codes(e)).toEqual([]);
    expect(e.ports[0]?.endpoints).toEqual([{ ip: '192.0.2.10', port: 5432, node: null, ready: true, serving: true, terminating: false, pod: null }]);
  });

  it('SelectorMatchesNoPods: names the closest Pods and the label value that differs, with a patch', () => {
    const e = explain([
      kService({ namespace: NS, name: 'api', clusterIP: '10.96.0.60', selector: { app: 'api-svc', tier: 'backend' }, ports: [{ port: 80, targetPort: 8080 }] }),
      kSlice({ namespace: NS, service: 'api', ports: null, endpoints: null }),
      ...['api-service-5f7d8-aaaaa', 'api-service-5f7d8-bbbbb', 'api-service-5f7d8-ccccc'].map((name, i) =>
        kPod({ namespace: NS, name, labels: { app: 'api-service', tier: 'backend' }, node: 'node-a', ip: `10.244.1.${20 + i}` }),
      ),
      kPod({ namespace: NS, name: 'redis-0', labels: { app: 'redis' }, node: 'node-b', ip: '10.244.2.30' }),
    ], `${NS}/api`);
    expect(e.served).toBe(false);
    expect(e.ports.map((p) => p.verdict)).toEqual(['reject']);
    expect(codes(e)).toEqual(['SelectorMatchesNoPods']);
    const f = finding(e, 'SelectorMatchesNoPods');
    expect(f.severity).toBe('error');
    expect(f.message).toBe(
      'selector app=api-svc,tier=backend matches no Pod in namespace shop; closest: 3 Pods (api-service-5f7d8-aaaaa, api-service-5f7d8-bbbbb, api-service-5f7d8-ccccc) with app=api-service (selector wants api-svc)',
    );
    expect(f.fix).toContain(`kubectl -n shop patch service api --type merge -p '{"spec":{"selector":{"app":"api-service"}}}'`);
  });

  it('SelectorMatchesNoPods: a missing key, and matching Pods in another namespace', () => {
    const e = explain([
      kService({ namespace: NS, name: 'api', clusterIP: '10.96.0.60', selector: { app: 'api', version: 'v2' }, ports: [{ port: 80 }] }),
      kSlice({ namespace: NS, service: 'api', ports: null, endpoints: null }),
      kPod({ namespace: NS, name: 'api-6c9f-qqqqq', labels: { app: 'api' }, node: 'node-a', ip: '10.244.1.40' }),
      kPod({ namespace: 'shop-v2', name: 'api-77aa-zzzzz', labels: { app: 'api', version: 'v2' }, node: 'node-a', ip: '10.244.1.41' }),
    ], `${NS}/api`);
    const f = finding(e, 'SelectorMatchesNoPods');
    expect(f.message).toContain('closest: 1 Pod (api-6c9f-qqqqq) with no label version (selector wants version=v2)');
    expect(f.message).toContain('Pods matching it run in namespace shop-v2');
    expect(f.fix).toContain('{"spec":{"selector":{"version":null}}}');
  });

  it('PodsNotReady: every selected Pod unready means REJECT; names them with probe and container state', () => {
    const e = explain([
      webService,
      kSlice({
        namespace: NS,
        service: 'web',
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [
          { ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde', ready: false },
          { ip: '10.244.2.6', node: 'node-b', pod: 'web-7d9c5b8f4-fghij', ready: false },
        ],
      }),
      webPod('web-7d9c5b8f4-abcde', 'node-a', '10.244.1.5', { ready: false }),
      kPod({
        namespace: NS,
        name: 'web-7d9c5b8f4-fghij',
        labels: { app: 'web' },
        node: 'node-b',
        ip: '10.244.2.6',
        ready: false,
        containers: [{ name: 'web', ports: [{ name: 'http', containerPort: 8080 }], waiting: 'CrashLoopBackOff', restarts: 7 }],
      }),
      ...nodes,
    ]);
    expect(e.served).toBe(false);
    expect(e.ports.map((p) => p.verdict)).toEqual(['reject']);
    expect(e.ports[0]?.endpoints.map((ep) => ep.ready)).toEqual([false, false]);
    expect(codes(e)).toEqual(['PodsNotReady']);
    const f = finding(e, 'PodsNotReady');
    expect(f.severity).toBe('error');
    expect(f.message).toContain('2 Pods selected by app=web, 0 ready');
    expect(f.message).toContain('web-7d9c5b8f4-abcde on node-a: Running, container web not ready (readiness GET :8080/healthz)');
    expect(f.message).toContain('web-7d9c5b8f4-fghij on node-b: Running, container web CrashLoopBackOff, 7 restarts');
    expect(f.fix).toContain('kubectl -n shop describe pod web-7d9c5b8f4-abcde');
  });

  it('PodsNotReady: one of two unready is a warning; the Service is served; a Pending Pod has no IP yet', () => {
    const e = explain([
      webService,
      webSlice,
      ...webPods,
      kPod({ namespace: NS, name: 'web-7d9c5b8f4-klmno', labels: { app: 'web' }, node: 'node-a', containers: [{ name: 'web', ports: [{ name: 'http', containerPort: 8080 }] }] }),
    ]);
    expect(e.served).toBe(true);
    expect(codes(e)).toEqual(['PodsNotReady']);
    const f = finding(e, 'PodsNotReady');
    expect(f.severity).toBe('warning');
    expect(f.message).toContain('3 Pods selected by app=web, 2 ready; not ready: web-7d9c5b8f4-klmno on node-a: Pending, no Pod IP yet');
  });

  it('PodsNotReady from the slices alone when the dump has no Pods (and PodChecksSkipped says so)', () => {
    const e = explain([
      webService,
      kSlice({ namespace: NS, service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde', ready: false }] }),
    ]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['PodsNotReady', 'PodChecksSkipped']);
    expect(finding(e, 'PodsNotReady').message).toContain('web-7d9c5b8f4-abcde on node-a (ready: false)');
    expect(finding(e, 'PodChecksSkipped').severity).toBe('info');
    expect(finding(e, 'PodChecksSkipped').message).toContain('the input holds no Pod objects');
  });

  it('NamedTargetPortNotFound: the name resolves on no Pod; the slice has ports: null; names what the Pods declare', () => {
    const pods = ['web-7d9c5b8f4-abcde', 'web-7d9c5b8f4-fghij'].map((name, i) =>
      kPod({ namespace: NS, name, labels: { app: 'web' }, node: i === 0 ? 'node-a' : 'node-b', ip: `10.244.${i + 1}.5`, containers: [{ name: 'web', ports: [{ name: 'web-http', containerPort: 8080 }] }] }),
    );
    const e = explain([
      webService,
      kSlice({ namespace: NS, service: 'web', name: 'web-abc12', ports: null, endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde' }, { ip: '10.244.2.5', node: 'node-b', pod: 'web-7d9c5b8f4-fghij' }] }),
      ...pods,
    ]);
    expect(e.served).toBe(false);
    expect(e.ports).toEqual([{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http', verdict: 'reject', endpoints: [] }]);
    expect(codes(e)).toEqual(['NamedTargetPortNotFound']);
    const f = finding(e, 'NamedTargetPortNotFound');
    expect(f.severity).toBe('error');
    expect(f.message).toBe(
      'Service port http 80/TCP has targetPort "http": it resolves (name and protocol TCP) on 0 of 2 selected Pods (not on web-7d9c5b8f4-abcde, web-7d9c5b8f4-fghij); ' +
        'they declare web-http 8080/TCP; EndpointSlice web-abc12 (ports: <unset>, 2 endpoints) has no port "http"',
    );
    expect(f.fix).toContain(`--type json -p '[{"op":"replace","path":"/spec/ports/0/targetPort","value":"web-http"}]'`);
  });

  it('NamedTargetPortNotFound: mixed workloads are partial (a warning), the port still served by the Pods that name it', () => {
    const e = explain([
      webService,
      webSlice,
      kSlice({ namespace: NS, service: 'web', name: 'web-zz9q1', ports: null, endpoints: [{ ip: '10.244.2.9', node: 'node-b', pod: 'web-canary-6b5d-xxxxx' }] }),
      ...webPods,
      kPod({ namespace: NS, name: 'web-canary-6b5d-xxxxx', labels: { app: 'web' }, node: 'node-b', ip: '10.244.2.9', containers: [{ name: 'web', ports: [{ name: 'http-alt', containerPort: 8081 }] }] }),
    ]);
    expect(e.served).toBe(true);
    const f = finding(e, 'NamedTargetPortNotFound');
    expect(f.severity).toBe('warning');
    expect(f.message).toContain('on 2 of 3 selected Pods (not on web-canary-6b5d-xxxxx)');
    expect(e.ports[0]?.endpoints.map((ep) => ep.ip)).toEqual(['10.244.1.5', '10.244.2.6']);
  });

  it('ProtocolMismatch: the Pods declare the port only as UDP (warning; the TCP port is still served)', () => {
    const dns = (name: string, ip: string): K8sObject =>
      kPod({ namespace: 'kube-system', name, labels: { 'k8s-app': 'kube-dns' }, node: 'node-a', ip, containers: [{ name: 'coredns', ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] }] });
    const e = explain([
      kService({ namespace: 'kube-system', name: 'kube-dns', clusterIP: '10.96.0.10', selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 }] }),
      kSlice({ namespace: 'kube-system', service: 'kube-dns', ports: [{ name: 'dns-tcp', port: 53, protocol: 'TCP' }], endpoints: [{ ip: '10.244.1.2', node: 'node-a', pod: 'coredns-668d6bf9bc-a1b2c' }] }),
      dns('coredns-668d6bf9bc-a1b2c', '10.244.1.2'),
    ], 'kube-system/kube-dns');
    expect(e.served).toBe(true);
    expect(codes(e)).toEqual(['ProtocolMismatch']);
    const f = finding(e, 'ProtocolMismatch');
    expect(f.severity).toBe('warning');
    expect(f.message).toBe(
      'Service port dns-tcp 53/TCP (targetPort 53) is TCP only, but the selected Pods declare that port only as UDP (dns 53/UDP): UDP to 10.96.0.10:53 is not proxied',
    );
  });

  it('no ProtocolMismatch when the Service has the port in both protocols', () => {
    const e = explain([
      kService({ namespace: 'kube-system', name: 'kube-dns', clusterIP: '10.96.0.10', selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] }),
      kSlice({ namespace: 'kube-system', service: 'kube-dns', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }], endpoints: [{ ip: '10.244.1.2', node: 'node-a', pod: 'coredns-668d6bf9bc-a1b2c' }] }),
      kPod({ namespace: 'kube-system', name: 'coredns-668d6bf9bc-a1b2c', labels: { 'k8s-app': 'kube-dns' }, node: 'node-a', ip: '10.244.1.2', containers: [{ name: 'coredns', ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] }] }),
    ], 'kube-system/kube-dns');
    expect(e.served).toBe(true);
    expect(codes(e)).toEqual([]);
  });

  it('ProtocolMismatch with a named targetPort the Pods declare only as UDP, besides NamedTargetPortNotFound', () => {
    const e = explain([
      kService({ namespace: NS, name: 'syslog', clusterIP: '10.96.0.70', ports: [{ name: 'syslog', port: 514, targetPort: 'syslog' }] }),
      kSlice({ namespace: NS, service: 'syslog', ports: null, endpoints: [{ ip: '10.244.1.8', node: 'node-a', pod: 'syslog-0' }] }),
      kPod({ namespace: NS, name: 'syslog-0', labels: { app: 'syslog' }, node: 'node-a', ip: '10.244.1.8', containers: [{ name: 'rsyslog', ports: [{ name: 'syslog', containerPort: 514, protocol: 'UDP' }] }] }),
    ], `${NS}/syslog`);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['NamedTargetPortNotFound', 'ProtocolMismatch']);
    expect(finding(e, 'NamedTargetPortNotFound').message).toContain('they declare "syslog" as syslog 514/UDP');
  });

  it('TargetPortNotDeclared: a numeric targetPort no Pod declares (the wrong-targetPort case) is a warning', () => {
    const e = explain([
      kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, targetPort: 84 }] }),
      kSlice({ namespace: NS, service: 'web', ports: [{ name: 'http', port: 84 }], endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde' }] }),
      kPod({ namespace: NS, name: 'web-7d9c5b8f4-abcde', labels: { app: 'web' }, node: 'node-a', ip: '10.244.1.5', containers: [{ name: 'nginx', ports: [{ containerPort: 80 }] }] }),
    ]);
    expect(e.served).toBe(true);
    expect(codes(e)).toEqual(['TargetPortNotDeclared']);
    const f = finding(e, 'TargetPortNotDeclared');
    expect(f.message).toContain('targetPort 84, which no selected Pod declares; they declare 80/TCP');
    expect(f.fix).toContain('set targetPort: 80');
  });

  it('OnlyTerminatingEndpoints: no ready endpoint, serving terminating ones used as a fallback (warning)', () => {
    const e = explain([
      webService,
      kSlice({
        namespace: NS,
        service: 'web',
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [
          { ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde', ready: false, serving: true, terminating: true },
          { ip: '10.244.2.6', node: 'node-b', pod: 'web-7d9c5b8f4-fghij', ready: false, serving: false, terminating: true },
        ],
      }),
      webPod('web-7d9c5b8f4-abcde', 'node-a', '10.244.1.5', { deleting: true }),
      webPod('web-7d9c5b8f4-fghij', 'node-b', '10.244.2.6', { deleting: true, ready: false }),
    ]);
    expect(e.served).toBe(true);
    expect(codes(e)).toEqual(['OnlyTerminatingEndpoints']);
    expect(finding(e, 'OnlyTerminatingEndpoints').message).toContain('1 serving, terminating endpoint (web-7d9c5b8f4-abcde) as a fallback');
    expect(e.ports[0]?.endpoints.map((ep) => [ep.ready, ep.serving, ep.terminating])).toEqual([
      [false, true, true],
      [false, false, true],
    ]);
  });

  it('every endpoint terminating and none serving: REJECT, explained by NoEndpoints', () => {
    const e = explain([
      webService,
      kSlice({ namespace: NS, service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.5', node: 'node-a', pod: 'web-7d9c5b8f4-abcde', ready: false, serving: false, terminating: true }] }),
      webPod('web-7d9c5b8f4-abcde', 'node-a', '10.244.1.5', { deleting: true, ready: false }),
    ]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['NoEndpoints']);
    expect(finding(e, 'NoEndpoints').message).toContain('every endpoint of port http 80/TCP is terminating and none is serving');
  });

  it('NoLocalEndpoints: internalTrafficPolicy Local without an endpoint on this node is DROP; on the other node DNAT', () => {
    const items = [
      kService({ namespace: NS, name: 'cache', clusterIP: '10.96.0.77', internalTrafficPolicy: 'Local', ports: [{ name: 'redis', port: 6379 }] }),
      kSlice({ namespace: NS, service: 'cache', ports: [{ name: 'redis', port: 6379 }], endpoints: [{ ip: '10.244.2.30', node: 'node-b', pod: 'cache-0' }] }),
      kPod({ namespace: NS, name: 'cache-0', labels: { app: 'cache' }, node: 'node-b', ip: '10.244.2.30' }),
      ...nodes,
    ];
    const a = explain(items, `${NS}/cache`, 'node-a');
    expect(a.served).toBe(false);
    expect(a.ports.map((p) => p.verdict)).toEqual(['drop']);
    expect(codes(a)).toEqual(['NoLocalEndpoints']);
    expect(finding(a, 'NoLocalEndpoints').message).toBe(
      'internalTrafficPolicy: Local, and port redis 6379/TCP has no endpoint on node node-a: new connections from this node to 10.96.0.77:6379 are dropped (clients hang until they time out); the ready endpoints are on node-b',
    );
    const b = explain(items, `${NS}/cache`, 'node-b');
    expect(b.served).toBe(true);
    expect(b.ports.map((p) => p.verdict)).toEqual(['dnat']);
    expect(codes(b)).toEqual([]);
  });

  it('NoLocalEndpointsExternal: externalTrafficPolicy Local without a local endpoint warns; ClusterIP still served', () => {
    const e = explain([
      kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }] }),
      kSlice({ namespace: NS, service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.2.6', node: 'node-b', pod: 'web-7d9c5b8f4-fghij' }] }),
      webPod('web-7d9c5b8f4-fghij', 'node-b', '10.244.2.6'),
    ], `${NS}/web`, 'node-a');
    expect(e.served).toBe(true);
    expect(e.ports.map((p) => p.verdict)).toEqual(['dnat']);
    expect(codes(e)).toEqual(['NoLocalEndpointsExternal']);
    const f = finding(e, 'NoLocalEndpointsExternal');
    expect(f.severity).toBe('warning');
    expect(f.message).toContain('NodePort 30080');
    expect(f.message).toContain('ClusterIP traffic is not affected');
  });

  it('NoEndpoints: a dual-stack Service whose Pods have IPv4 addresses only is not served over IPv6', () => {
    const e = explain([
      kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50', 'fd00:10:96::50'], ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
      webSlice,
      ...webPods,
    ]);
    expect(e.served).toBe(false);
    expect(e.ports.map((p) => p.verdict)).toEqual(['reject']);
    expect(codes(e)).toEqual(['NoEndpoints']);
    expect(finding(e, 'NoEndpoints').message).toBe(
      'port http 80/TCP is served over IPv4 but not over IPv6: no ready IPv6 endpoint for fd00:10:96::50:80/TCP (no IPv6 EndpointSlice)',
    );
    expect(e.summary?.families[0]?.map((f) => `${f.family} ${f.verdict}`)).toEqual(['IPv4 dnat', 'IPv6 reject']);
  });

  it('NoEndpoints: ready Pods that resolve the port but slices that list none (the slices lag)', () => {
    const e = explain([webService, kSlice({ namespace: NS, service: 'web', ports: null, endpoints: null }), ...webPods]);
    expect(e.served).toBe(false);
    expect(codes(e)).toEqual(['NoEndpoints']);
    expect(finding(e, 'NoEndpoints').message).toContain('have no port named "http"/TCP');
  });

  it('the verdict is the model\'s topology-aware selection: hints for this zone leave the other endpoint unused', () => {
    const e = explain([
      webService,
      {
        ...webSlice,
        endpoints: [
          { addresses: ['10.244.1.5'], conditions: { ready: true, serving: true, terminating: false }, hints: { forZones: [{ name: 'zone-a' }] }, nodeName: 'node-a' },
          { addresses: ['10.244.2.6'], conditions: { ready: true, serving: true, terminating: false }, hints: { forZones: [{ name: 'zone-b' }] }, nodeName: 'node-b' },
        ],
      },
      ...webPods,
      ...nodes,
    ]);
    expect(e.served).toBe(true);
    expect(e.summary?.families[0]?.[0]?.used).toEqual(['10.244.1.5:8080']);
    expect(explanationText(e)).toContain('DNAT to 1 of 2 endpoints');
  });

  it('an invalid target Service is unreadable input, naming the field', () => {
    expect(() => explain([kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', ports: [{ port: 70000 }] })])).toThrow(ExplainInputError);
    expect(() => explain([kService({ namespace: NS, name: 'web', clusterIP: '10.96.0.50', ports: [{ port: 70000 }] })])).toThrow(
      'Service shop/web: spec.ports[0].port: 70000 is out of range 1-65535',
    );
  });
});

describe('explain service -o json: the contract', () => {
  it('has exactly the keys of issue 17, in its order, for every nested object', () => {
    const e = explain([webService, webSlice, ...webPods, webPod('web-7d9c5b8f4-klmno', 'node-a', '10.244.1.9', { ready: false })]);
    const doc = JSON.parse(explanationJson(e)) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['service', 'node', 'served', 'findings', 'ports']);
    expect(doc['service']).toBe('shop/web');
    expect(doc['node']).toBe('node-a');
    const findings = doc['findings'] as Record<string, unknown>[];
    expect(findings.length).toBeGreaterThan(0);
    for (const f of findings) expect(Object.keys(f)).toEqual(['code', 'severity', 'message', 'fix']);
    const ports = doc['ports'] as Record<string, unknown>[];
    for (const p of ports) {
      expect(Object.keys(p)).toEqual(['name', 'port', 'protocol', 'targetPort', 'verdict', 'endpoints']);
      for (const ep of p['endpoints'] as Record<string, unknown>[]) expect(Object.keys(ep)).toEqual(['ip', 'port', 'node', 'ready', 'serving', 'terminating', 'pod']);
    }
  });

  it('lists ports of a headless Service with verdict not-proxied, and unready endpoints with their conditions', () => {
    const e = explain([
      kService({ namespace: NS, name: 'db', clusterIP: 'None', selector: { app: 'db' }, ports: [{ name: 'pg', port: 5432 }] }),
      kSlice({ namespace: NS, service: 'db', labels: { 'service.kubernetes.io/headless': '' }, ports: [{ name: 'pg', port: 5432 }], endpoints: [{ ip: '10.244.1.50', node: 'node-a', pod: 'db-0', ready: false }] }),
    ], `${NS}/db`);
    const doc = JSON.parse(explanationJson(e)) as { served: boolean; ports: unknown[] };
    expect(doc.served).toBe(false);
    expect(doc.ports).toEqual([
      { name: 'pg', port: 5432, protocol: 'TCP', targetPort: 5432, verdict: 'not-proxied', endpoints: [{ ip: '10.244.1.50', port: 5432, node: 'node-a', ready: false, serving: false, terminating: false, pod: 'db-0' }] },
    ]);
  });

  it('a Service not found has served false, one finding and no ports', () => {
    const doc = JSON.parse(explanationJson(explain([], `${NS}/nothing`))) as unknown;
    expect(doc).toEqual({
      service: 'shop/nothing',
      node: 'node-a',
      served: false,
      findings: [{ code: 'ServiceNotFound', severity: 'error', message: 'Service shop/nothing not found in the input (dump.yaml)', fix: expect.stringContaining('kubectl -n shop get services') as unknown }],
      ports: [],
    });
  });

  it('every error finding comes with served false; a served Service carries none', () => {
    const cases: K8sObject[][] = [
      [webService, webSlice, ...webPods],
      [webService, webSlice, ...webPods, kPod({ namespace: NS, name: 'web-x', labels: { app: 'web' }, node: 'node-a' })],
      [webService, kSlice({ namespace: NS, service: 'web', ports: null, endpoints: null }), ...webPods],
    ];
    for (const items of cases) {
      const e = explain(items);
      expect(e.served === !e.findings.some((f) => f.severity === 'error')).toBe(true);
    }
  });
});

describe('explain helpers', () => {
  it('editDistance counts a transposition as one edit', () => {
    expect(editDistance('wbe', 'web')).toBe(1);
    expect(editDistance('api-svc', 'api-service')).toBe(4);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('similarNames: close edits, containment, a long common prefix; not unrelated short names', () => {
    expect(similarNames('web', ['wbe', 'web-admin', 'cart', 'we', 'gone'])).toEqual(['wbe', 'we', 'web-admin']);
    expect(similarNames('nope', ['gone'])).toEqual([]);
    expect(similarNames('payments-api', ['payments-worker', 'orders'])).toEqual(['payments-worker']);
  });

  it('nearestMisses keeps only the best score, ties ordered by how alike the values are, unrelated values left out', () => {
    const pod = (name: string, labels: Record<string, string>) => ({ name, labels: new Map(Object.entries(labels)) }) as unknown as PodInfo;
    const misses = nearestMisses(new Map([['app', 'checkout']]), [
      pod('a', { app: 'cart' }),
      pod('b', { app: 'checkouts' }),
      pod('c', { tier: 'web' }),
      pod('d', { app: 'check-out-v2' }),
    ]);
    expect(misses.map((m) => [m.pods.map((p) => p.name), m.differences])).toEqual([
      [['b'], [{ key: 'app', wanted: 'checkout', actual: 'checkouts' }]],
      [['d'], [{ key: 'app', wanted: 'checkout', actual: 'check-out-v2' }]],
    ]);
    // Two keys: a Pod with one right beats any with none right.
    const two = nearestMisses(new Map([['app', 'api'], ['tier', 'backend']]), [pod('x', { app: 'api', tier: 'frontend' }), pod('y', { app: 'apis', tier: 'backends' })]);
    expect(two.map((m) => m.pods.map((p) => p.name))).toEqual([['x']]);
  });
});
