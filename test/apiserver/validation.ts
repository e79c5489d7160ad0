import type { KubeObject } from './store.js';

/**
 * What the real API server checks when an events.k8s.io/v1 Event is created or patched (upstream
 * pkg/apis/core/validation/events.go: ValidateEventCreate and ValidateEventUpdate for the v1 group), so a
 * client that writes a malformed Event fails here as it would against a cluster. Errors are `field: problem`.
 */

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
// metav1.MicroTime parses with RFC3339Micro: exactly six fractional digits.
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

function rec(v: unknown): KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as KubeObject) : {};
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function isSubdomain(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

function isQualifiedName(s: string): boolean {
  const slash = s.indexOf('/');
  const prefix = slash < 0 ? undefined : s.slice(0, slash);
  const name = slash < 0 ? s : s.slice(slash + 1);
  if (prefix !== undefined && !isSubdomain(prefix)) return false;
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

function timeErrors(obj: KubeObject, key: string, path: string, required: boolean): string[] {
  const v = obj[key];
  if (v === undefined || v === null) return required ? [`${path}: Required value`] : [];
  return typeof v === 'string' && MICRO_TIME.test(v) ? [] : [`${path}: Invalid value: ${JSON.stringify(v)}: not a MicroTime (RFC 3339, 6 fractional digits)`];
}

function seriesErrors(event: KubeObject): string[] {
  if (event['series'] === undefined || event['series'] === null) return [];
  const series = rec(event['series']);
  const errs: string[] = [];
  if (typeof series['count'] !== 'number' || series['count'] < 2) errs.push('series.count: Invalid value: should be at least 2');
  errs.push(...timeErrors(series, 'lastObservedTime', 'series.lastObservedTime', true));
  return errs;
}

/** Errors of a new Event in `namespace` (empty: valid). */
export function validateEventCreate(event: KubeObject, namespace: string): string[] {
  const errs: string[] = [];
  const name = str(rec(event['metadata'])['name']);
  if (name === '') errs.push('metadata.name: Required value: name or generateName is required');
  else if (!isSubdomain(name)) errs.push(`metadata.name: Invalid value: ${JSON.stringify(name)}: must be a lowercase RFC 1123 subdomain`);
  if (!isSubdomain(namespace)) errs.push(`namespace: Invalid value: ${JSON.stringify(namespace)}`);
  errs.push(...timeErrors(event, 'eventTime', 'eventTime', true));
  errs.push(...seriesErrors(event));
  const type = event['type'];
  if (type !== 'Normal' && type !== 'Warning') errs.push(`type: Invalid value: has invalid value: ${String(type)}`);
  for (const deprecated of ['deprecatedFirstTimestamp', 'deprecatedLastTimestamp', 'deprecatedCount', 'deprecatedSource']) {
    if (event[deprecated] !== undefined && event[deprecated] !== null) errs.push(`${deprecated}: Invalid value: needs to be unset`);
  }
  const regardingNs = str(rec(event['regarding'])['namespace']);
  if (regardingNs === '' && namespace !== 'default' && namespace !== 'kube-system') {
    errs.push('regarding.namespace: Invalid value: "": does not match event.namespace');
  }
  const controller = str(event['reportingController']);
  if (controller === '') errs.push('reportingController: Required value');
  else if (!isQualifiedName(controller)) errs.push(`reportingController: Invalid value: ${JSON.stringify(controller)}: not a qualified name`);
  const instance = str(event['reportingInstance']);
  if (instance === '') errs.push('reportingInstance: Required value');
  if (instance.length > 128) errs.push('reportingInstance: Invalid value: can have at most 128 characters');
  for (const [key, limit] of [['action', 128], ['reason', 128]] as const) {
    const v = str(event[key]);
    if (v === '') errs.push(`${key}: Required value`);
    if (v.length > limit) errs.push(`${key}: Invalid value: can have at most ${limit} characters`);
  }
  // Go's len() counts bytes.
  if (Buffer.byteLength(str(event['note']), 'utf8') > 1024) errs.push('note: Invalid value: can have at most 1024 characters');
  return errs;
}

const IMMUTABLE = ['regarding', 'related', 'reason', 'note', 'type', 'eventTime', 'action', 'reportingController', 'reportingInstance'] as const;

/** Errors of a patched Event against its stored version (empty: valid). */
export function validateEventUpdate(next: KubeObject, prev: KubeObject): string[] {
  const errs: string[] = [];
  if (JSON.stringify(next['series']) !== JSON.stringify(prev['series'])) errs.push(...seriesErrors(next));
  for (const key of IMMUTABLE) {
    if (JSON.stringify(next[key]) !== JSON.stringify(prev[key])) errs.push(`${key}: Invalid value: field is immutable`);
  }
  return errs;
}

/** RFC 7386 JSON merge patch; a strategic merge patch of plain fields (no lists) means the same. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: KubeObject = { ...rec(target) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
