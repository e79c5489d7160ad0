import { fileURLToPath } from 'node:url';
import { runIn } from './run.js';

export const PROBE_PATH = fileURLToPath(new URL('../bin/probe.mjs', import.meta.url));

export interface EchoReply {
  pod: string;
  proto: string;
  port: number;
  peer: string;
  peerPort: number;
}

export type ProbeResult = { ok: true; reply: EchoReply } | { ok: false; error: string };

export interface ProbeTarget {
  proto: 'tcp' | 'udp';
  ip: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  intervalMs?: number;
}

function isEchoReply(v: unknown): v is EchoReply {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r['pod'] === 'string' &&
    typeof r['proto'] === 'string' &&
    typeof r['port'] === 'number' &&
    typeof r['peer'] === 'string' &&
    typeof r['peerPort'] === 'number'
  );
}

function isProbeResult(v: unknown): v is ProbeResult {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return r['ok'] === true ? isEchoReply(r['reply']) : r['ok'] === false && typeof r['error'] === 'string';
}

/** Runs probe.mjs inside `ns` and returns its validated results, one per probe. */
export async function probeFrom(ns: string, t: ProbeTarget): Promise<ProbeResult[]> {
  const count = t.count ?? 1;
  const timeoutMs = t.timeoutMs ?? 1000;
  const intervalMs = t.intervalMs ?? 0;
  const args = [
    PROBE_PATH,
    '--proto', t.proto,
    '--ip', t.ip,
    '--port', String(t.port),
    '--count', String(count),
    '--timeout', String(timeoutMs),
    '--interval', String(intervalMs),
  ];
  // probe.mjs has its own deadline; this outer one only catches a wedged node process.
  const r = await runIn(ns, process.execPath, args, { timeout: count * (timeoutMs + intervalMs) + 10_000 });
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw new Error(`probe in ${ns} printed non-JSON: ${JSON.stringify(r.stdout)} stderr: ${r.stderr}`);
  }
  if (!Array.isArray(parsed) || !parsed.every(isProbeResult)) {
    throw new Error(`probe in ${ns} printed unexpected JSON: ${r.stdout}`);
  }
  return parsed;
}
