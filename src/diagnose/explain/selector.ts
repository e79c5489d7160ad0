// Selector matching and the nearest miss: which Pods come closest to a Service's selector, and how they differ.
import type { PodInfo } from './objects.js';

export function selectorText(selector: ReadonlyMap<string, string>): string {
  return [...selector].map(([k, v]) => `${k}=${v}`).join(',');
}

/** A Service's selector matches a Pod when every key is there with the same value (equality only, as the API's). */
export function selects(selector: ReadonlyMap<string, string>, labels: ReadonlyMap<string, string>): boolean {
  if (selector.size === 0) return false;
  for (const [k, v] of selector) if (labels.get(k) !== v) return false;
  return true;
}

/** How one selector key fails on a Pod. */
export interface LabelDifference {
  readonly key: string;
  readonly wanted: string;
  /** The Pod's value; undefined when it lacks the key. */
  readonly actual: string | undefined;
}

export interface NearMiss {
  /** Pods that differ from the selector in exactly these keys, by name. */
  readonly pods: readonly PodInfo[];
  readonly differences: readonly LabelDifference[];
}

/**
 * The Pods closest to `selector`: most keys with the wanted value, then most keys present with another value.
 * Grouped by how they differ (a Deployment's Pods differ alike), best groups first, at most `maxGroups`.
 */
export function nearestMisses(selector: ReadonlyMap<string, string>, pods: readonly PodInfo[], maxGroups = 2): NearMiss[] {
  const groups = new Map<string, { score: number; pods: PodInfo[]; differences: LabelDifference[] }>();
  for (const pod of pods) {
    let score = 0;
    const differences: LabelDifference[] = [];
    for (const [key, wanted] of selector) {
      const actual = pod.labels.get(key);
      if (actual === wanted) score += 2;
      else {
        if (actual !== undefined) score += 1;
        differences.push({ key, wanted, actual });
      }
    }
    // A Pod that shares nothing with the selector is not "close".
    if (score === 0) continue;
    const signature = differences.map((d) => `${d.key}\u0000${d.actual ?? '\u0001'}`).join('\u0000');
    const group = groups.get(signature);
    if (group === undefined) groups.set(signature, { score, pods: [pod], differences });
    else group.pods.push(pod);
  }
  // Only the best score: a Pod further off is noise. Ties (one key, several values) go by how alike the values are.
  const best = Math.max(0, ...[...groups.values()].map((g) => g.score));
  const distance = (g: { differences: LabelDifference[] }): number =>
    g.differences.reduce((sum, d) => sum + (d.actual === undefined ? d.wanted.length : editDistance(d.wanted, d.actual)), 0);
  // After the closest group, only groups whose values look like typos of the wanted ones (not every other app).
  const alike = (g: { differences: LabelDifference[] }): boolean => g.differences.every((d) => d.actual !== undefined && similar(d.wanted, d.actual));
  return [...groups.values()]
    .filter((g) => g.score === best)
    .sort((a, b) => distance(a) - distance(b) || b.pods.length - a.pods.length)
    .filter((g, i) => i === 0 || alike(g))
    .slice(0, maxGroups)
    .map((g) => ({ pods: g.pods.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), differences: g.differences }));
}

export function differenceText(d: LabelDifference): string {
  return d.actual === undefined ? `no label ${d.key} (selector wants ${d.key}=${d.wanted})` : `${d.key}=${d.actual} (selector wants ${d.wanted})`;
}

/** Edit distance with adjacent transpositions counted as one edit (`wbe` is one typo from `web`). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((rows[i - 1]?.[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (rows[i - 1]?.[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      row[j] = d;
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

/** Names like `name`: a small edit distance, or one contains the other. Closest first, at most `max`. */
export function similarNames(name: string, candidates: readonly string[], max = 5): string[] {
  return candidates
    .filter((c) => c !== name)
    .map((c) => ({ c, d: editDistance(name, c) }))
    .filter(({ c }) => similar(name, c))
    .sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : 1))
    .slice(0, max)
    .map(({ c }) => c);
}

/** `b` looks like a typo or a variant of `a`: a small edit distance, containment, or a long common prefix. */
export function similar(a: string, b: string): boolean {
  if (a === b) return true;
  if (editDistance(a, b) <= Math.max(1, Math.floor(a.length / 3))) return true;
  if (Math.min(a.length, b.length) >= 3 && (a.includes(b) || b.includes(a))) return true;
  return commonPrefix(a, b) >= Math.max(3, Math.ceil(a.length / 2));
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
