// Random but reproducible sequences of Service, EndpointSlice and node changes, for property tests: a small
// universe (a few Services sharing endpoint addresses) so that changes collide, ports are renamed, endpoints
// move between slices, conditions flip, policies and affinity change, and objects come and go. Services are
// sometimes NodePort or LoadBalancer, with external IPs, load-balancer IPs (some of them Proxy-mode or
// hostname-only), source ranges and externalTrafficPolicy Local, and the node's IPs change now and then.
import type { ClusterState } from '../../src/model/state.js';
import { serviceKey } from '../../src/model/types.js';
import { setObject } from './compile.js';
import { type EndpointSpec, type IngressSpec, type PortSpec, endpointSlice, service } from './objects.js';

/** mulberry32: a small seeded PRNG, so a failing seed can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const NODE = 'node-a';
const SERVICES = ['web', 'db', 'dns', 'api'];
const PORT_SETS: readonly (readonly PortSpec[])[] = [
  [{ name: 'http', port: 80, protocol: 'TCP' }],
  [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'metrics', port: 9100, protocol: 'TCP' }],
  [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }],
  [{ port: 443, protocol: 'TCP' }],
  [{ name: 'sctp', port: 3868, protocol: 'SCTP' }],
];
const ADDRESSES = ['10.244.1.1', '10.244.1.2', '10.244.1.3', '10.244.2.1', '10.244.2.2', '10.244.3.1'];
const NODES = [NODE, 'node-b', undefined];
const ZONES = [undefined, 'z1', 'z2'];
const NODE_IPS: readonly (readonly string[])[] = [[], ['192.168.0.2'], ['192.168.0.3', '192.168.0.2'], ['192.168.0.3']];

/** The port set each Service was last given, so that most slices match it (and endpoints are used). */
const lastPorts = new WeakMap<ClusterState, Map<string, readonly PortSpec[]>>();

/** One random change to `state`, described for failure messages. */
export function randomChange(state: ClusterState, random: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const index = Math.floor(random() * SERVICES.length);
  const name = SERVICES[index]!;
  let known = lastPorts.get(state);
  if (known === undefined) lastPorts.set(state, (known = new Map()));
  const roll = random();
  if (roll < 0.3) {
    const ports = pick(PORT_SETS);
    known.set(name, ports);
    const local = random() < 0.25;
    const affinity = random() < 0.25 ? pick([60, 10800]) : undefined;
    // External traffic: addresses unique to the Service (two Services on one address and port conflict).
    const type = random() < 0.5 ? ('ClusterIP' as const) : pick(['NodePort', 'LoadBalancer'] as const);
    const nodePorts = type !== 'ClusterIP' && random() < 0.8;
    const externalIPs = random() < 0.3 ? [`192.168.99.${index + 1}`] : undefined;
    const ingress: readonly IngressSpec[] | undefined =
      type === 'LoadBalancer' && random() < 0.8
        ? pick<readonly IngressSpec[]>([
            [{ ip: `1.2.3.${index + 1}` }],
            [{ ip: `1.2.3.${index + 1}` }, { ip: `5.6.7.${index + 1}` }],
            [{ ip: `1.2.3.${index + 1}`, ipMode: 'Proxy' }],
            [{ hostname: 'lb.example' }],
          ])
        : undefined;
    const ranges = type === 'LoadBalancer' && random() < 0.5 ? pick([['203.0.113.0/25'], ['192.168.0.0/24', ' 203.0.113.0/25']]) : undefined;
    const eTPLocal = (type !== 'ClusterIP' || externalIPs !== undefined) && random() < 0.5;
    const servicePorts = nodePorts ? ports.map((p, i) => ({ ...p, nodePort: 30000 + index * 10 + i })) : ports;
    setObject(
      state,
      service({
        namespace: 'p',
        name,
        clusterIP: `10.96.0.${index + 1}`,
        ports: servicePorts,
        type,
        ...(local ? { internalTrafficPolicy: 'Local' as const } : {}),
        ...(affinity === undefined ? {} : { affinityTimeoutSeconds: affinity }),
        ...(externalIPs === undefined ? {} : { externalIPs }),
        ...(ingress === undefined ? {} : { loadBalancerIngress: ingress }),
        ...(ranges === undefined ? {} : { loadBalancerSourceRanges: ranges }),
        ...(eTPLocal ? { externalTrafficPolicy: 'Local' as const } : {}),
        ...(eTPLocal && type === 'LoadBalancer' ? { healthCheckNodePort: 32000 + index } : {}),
      }),
    );
    const external = [
      type,
      nodePorts ? 'nodePorts' : '',
      externalIPs === undefined ? '' : `externalIPs ${externalIPs.join(',')}`,
      ingress === undefined ? '' : `ingress ${ingress.map((i) => `${i.ip ?? i.hostname ?? ''}${i.ipMode === 'Proxy' ? '(Proxy)' : ''}`).join(',')}`,
      ranges === undefined ? '' : `ranges ${ranges.join(',')}`,
      eTPLocal ? 'eTP Local' : '',
    ].filter((x) => x !== '');
    return `service ${name}: ports ${ports.map((p) => p.name ?? p.port).join(',')}${local ? ', iTP Local' : ''}${affinity === undefined ? '' : `, affinity ${affinity}s`}, ${external.join(', ')}`;
  }
  if (roll < 0.75) {
    const slice = `${name}-${Math.floor(random() * 2)}`;
    // Mostly the Service's own port names (so its endpoints are used), sometimes any (so they are not).
    const ports = (random() < 0.8 ? (known.get(name) ?? pick(PORT_SETS)) : pick(PORT_SETS)).map((p) => ({ ...(p.name === undefined ? {} : { name: p.name }), port: pick([8080, 9090]), protocol: p.protocol ?? 'TCP' }));
    const count = Math.floor(random() * 5);
    const endpoints: EndpointSpec[] = [];
    for (let i = 0; i < count; i++) {
      const ready = random() < 0.75;
      const nodeName = pick(NODES);
      const zone = pick(ZONES);
      endpoints.push({
        ip: pick(ADDRESSES),
        ready,
        serving: ready || random() < 0.5,
        terminating: !ready && random() < 0.7,
        ...(nodeName === undefined ? {} : { nodeName }),
        ...(zone === undefined ? {} : { zoneHints: [zone] }),
      });
    }
    setObject(state, endpointSlice({ namespace: 'p', name: slice, service: name, ports, endpoints }));
    return `slice ${slice}: ${endpoints.map((e) => `${e.ip}${e.ready === false ? (e.terminating ? '(term)' : '(unready)') : ''}@${e.nodeName ?? '-'}`).join(' ')}`;
  }
  if (roll < 0.85) {
    const slice = `${name}-${Math.floor(random() * 2)}`;
    state.deleteSlice('p', slice);
    return `delete slice ${slice}`;
  }
  if (roll < 0.95) {
    state.deleteService(serviceKey('p', name));
    return `delete service ${name}`;
  }
  if (roll < 0.975) {
    const zone = pick(ZONES);
    state.setNodeZone(zone);
    return `node zone ${zone ?? 'none'}`;
  }
  const ips = pick(NODE_IPS);
  state.setNodeIPs(ips);
  return `node IPs ${ips.join(',') || 'none'}`;
}
