/** Label and field selectors as the API server parses them (the subset the agent and kubectl send). */

type Labels = Readonly<Record<string, string>> | undefined;

interface LabelRequirement {
  readonly key: string;
  readonly op: 'exists' | 'notexists' | 'eq' | 'ne';
  readonly value: string;
}

export type LabelSelector = readonly LabelRequirement[];

export class SelectorError extends Error {}

// Keys are qualified names with an optional DNS prefix; values may be empty. Anything else is a 400 upstream.
const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string, selector: string): string {
  if (!KEY.test(key)) throw new SelectorError(`unable to parse requirement: invalid label key "${key}" in "${selector}"`);
  return key;
}

function checkValue(value: string, selector: string): string {
  if (!VALUE.test(value)) throw new SelectorError(`unable to parse requirement: invalid label value "${value}" in "${selector}"`);
  return value;
}

/** Parses `key`, `!key`, `key=value`, `key==value`, `key!=value`, comma-separated (AND). Empty matches everything. */
export function parseLabelSelector(selector: string): LabelSelector {
  const out: LabelRequirement[] = [];
  for (const raw of selector.split(',')) {
    const term = raw.trim();
    if (term === '') {
      if (selector.trim() === '') continue;
      throw new SelectorError(`found ',', expected: identifier in "${selector}"`);
    }
    let m: RegExpExecArray | null;
    if ((m = /^!\s*(\S+)$/.exec(term)) && m[1] !== undefined) {
      out.push({ key: checkKey(m[1], selector), op: 'notexists', value: '' });
    } else if ((m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(term)) && m[1] !== undefined && m[2] !== undefined) {
      out.push({ key: checkKey(m[1], selector), op: 'ne', value: checkValue(m[2], selector) });
    } else if ((m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(term)) && m[1] !== undefined && m[2] !== undefined) {
      out.push({ key: checkKey(m[1], selector), op: 'eq', value: checkValue(m[2], selector) });
    } else {
      out.push({ key: checkKey(term, selector), op: 'exists', value: '' });
    }
  }
  return out;
}

export function matchesLabels(sel: LabelSelector, labels: Labels): boolean {
  for (const r of sel) {
    const v = labels?.[r.key];
    switch (r.op) {
      case 'exists':
        if (v === undefined) return false;
        break;
      case 'notexists':
        if (v !== undefined) return false;
        break;
      case 'eq':
        if (v !== r.value) return false;
        break;
      case 'ne':
        // Upstream: `key!=value` also matches objects without the label.
        if (v === r.value) return false;
        break;
    }
  }
  return true;
}

interface FieldRequirement {
  readonly field: 'metadata.name' | 'metadata.namespace';
  readonly negate: boolean;
  readonly value: string;
}

export type FieldSelector = readonly FieldRequirement[];

/** Parses `metadata.name=X`, `metadata.namespace=X` (also `==`, `!=`), comma = AND; other fields are a 400 as upstream. */
export function parseFieldSelector(selector: string): FieldSelector {
  const out: FieldRequirement[] = [];
  for (const raw of selector.split(',')) {
    const term = raw.trim();
    if (term === '') continue;
    const m = /^([^=!]+)(!=|==|=)(.*)$/.exec(term);
    const field = m?.[1]?.trim();
    if (!m || field === undefined) throw new SelectorError(`invalid selector: '${selector}'; can't understand '${term}'`);
    if (field !== 'metadata.name' && field !== 'metadata.namespace') {
      throw new SelectorError(`field label not supported: ${field}`);
    }
    out.push({ field, negate: m[2] === '!=', value: (m[3] ?? '').trim() });
  }
  return out;
}

export function matchesFields(sel: FieldSelector, namespace: string, name: string): boolean {
  for (const r of sel) {
    const v = r.field === 'metadata.name' ? name : namespace;
    if ((v === r.value) === r.negate) return false;
  }
  return true;
}
