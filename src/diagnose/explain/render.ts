// The two forms of an Explanation: JSON (the contract of issue 17, keys in its order) and text for people.
import type { EndpointReport, Explanation, FamilyVerdict, PortReport } from './types.js';

/** `-o json`: exactly `{service, node, served, findings, ports}`, one document and a newline. */
export function explanationJson(e: Explanation): string {
  const doc = {
    service: e.service,
    node: e.node,
    served: e.served,
    findings: e.findings.map((f) => ({ code: f.code, severity: f.severity, message: f.message, fix: f.fix })),
    ports: e.ports.map((p) => ({
      name: p.name,
      port: p.port,
      protocol: p.protocol,
      targetPort: p.targetPort,
      verdict: p.verdict,
      endpoints: p.endpoints.map((ep) => ({
        ip: ep.ip,
        port: ep.port,
        node: ep.node,
        ready: ep.ready,
        serving: ep.serving,
        terminating: ep.terminating,
        pod: ep.pod,
      })),
    })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

const VERDICT_TEXT = {
  dnat: 'DNAT',
  reject: 'REJECT (connection refused: no endpoints)',
  drop: 'DROP (no local endpoint: clients time out)',
  'not-proxied': 'not proxied',
} as const;

function endpointState(ep: EndpointReport): string {
  if (ep.terminating) return ep.serving ? 'terminating, serving' : 'terminating';
  return ep.ready ? 'ready' : 'not ready';
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function familyLine(f: FamilyVerdict, port: PortReport, several: boolean): string {
  const head = several ? `${f.family} ${f.clusterIP}:${port.port}  ` : '';
  if (f.verdict !== 'dnat') return `${head}${VERDICT_TEXT[f.verdict]}`;
  const total = port.endpoints.filter((ep) => ep.ip.includes(':') === f.family.endsWith('6')).length;
  return `${head}DNAT to ${f.used.length} of ${total} endpoint${total === 1 ? '' : 's'}`;
}

/** Text: a header, a block per port (verdict, endpoints with `*` on those this node uses), findings, the result. */
export function explanationText(e: Explanation): string {
  const lines: string[] = [];
  const s = e.summary;
  if (s === undefined) {
    lines.push(`Service ${e.service}  (seen from node ${e.node})`);
  } else {
    const ips = s.clusterIPs.join(',');
    const facts = [ips === 'None' ? 'headless (clusterIP None)' : s.type, ...(ips !== 'None' && ips !== '' ? [ips] : []), `selector ${s.selector === '' ? '<none>' : s.selector}`];
    if (s.internalTrafficPolicy === 'Local') facts.push('internalTrafficPolicy Local');
    if (s.externalTrafficPolicy === 'Local') facts.push('externalTrafficPolicy Local');
    if (s.affinity !== undefined) facts.push(`sessionAffinity ${s.affinity}`);
    lines.push(`Service ${e.service}  ${facts.join('  ')}  (seen from node ${e.node})`);
  }
  e.ports.forEach((p, i) => {
    const families = s?.families[i] ?? [];
    const name = p.name === '' ? '' : `${p.name} `;
    const target = typeof p.targetPort === 'number' ? String(p.targetPort) : `"${p.targetPort}"`;
    const head = `port ${name}${p.port}/${p.protocol} -> targetPort ${target}`;
    if (families.length <= 1) {
      const f = families[0];
      lines.push(`${head}: ${f === undefined ? VERDICT_TEXT[p.verdict] : familyLine(f, p, false)}`);
    } else {
      lines.push(`${head}:`);
      for (const f of families) lines.push(`    ${familyLine(f, p, true)}`);
    }
    const used = new Set(families.flatMap((f) => f.used));
    if (p.endpoints.length === 0) lines.push('    no endpoints');
    for (const ep of p.endpoints) {
      const addr = hostPort(ep.ip, ep.port);
      const mark = used.has(addr) ? '*' : ' ';
      lines.push(`  ${mark} ${addr.padEnd(21)} ${endpointState(ep).padEnd(20)} ${(ep.node ?? '-').padEnd(12)} ${ep.pod ?? '-'}`);
    }
  });
  if (s !== undefined && s.families.some((f) => f.some((v) => v.used.length > 0))) {
    lines.push('  (* = endpoints this node sends new ClusterIP connections to)');
  }
  if (e.findings.length > 0) lines.push('');
  for (const f of e.findings) {
    lines.push(`${f.severity.padEnd(7)} ${f.code}: ${f.message}`);
    lines.push(`        fix: ${f.fix}`);
  }
  lines.push('');
  lines.push(
    e.served
      ? `served: node ${e.node} sends new connections to every port of ${e.service} to an endpoint`
      : `not served: ${e.summary === undefined ? 'no such Service' : e.ports.some((p) => p.verdict === 'not-proxied') || e.ports.length === 0 ? 'Switchboard programs nothing for this Service' : `some ClusterIP traffic of ${e.service} is refused or dropped on node ${e.node}`}`,
  );
  return `${lines.join('\n')}\n`;
}
