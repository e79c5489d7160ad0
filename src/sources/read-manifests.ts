// Reading manifest files, and the JSON fast path of parseManifestText (manifests.ts), without the YAML parser:
// JSON input (a `kubectl get -o json` List, the large case) never loads it, which saves 30-45 ms at the start of
// every compile. YAML input loads manifests.ts, and the parser with it, when it first meets some.
import { readFile } from 'node:fs/promises';
import { isObject } from '../model/fields.js';
import type { ManifestError, ManifestObject, ParsedManifests } from './manifests.js';

/**
 * Text that looks like JSON and parses as JSON: its objects into `objects` (its errors into `errors`), and true.
 * False for anything else (YAML is a superset of JSON, and reports the position of a problem).
 */
export function parseJsonText(text: string, source: string, objects: ManifestObject[], errors: ManifestError[]): boolean {
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return false;
  try {
    collect(JSON.parse(text) as unknown, 'document 1', source, objects, errors);
    return true;
  } catch {
    // Not valid JSON; YAML is a superset and reports the position of the problem.
    return false;
  }
}

/** A parsed document's API objects into `objects`, expanding Lists; anything else into `errors`. */
export function collect(value: unknown, location: string, source: string, objects: ManifestObject[], errors: ManifestError[]): void {
  if (value === null || value === undefined) return; // an empty document, e.g. a trailing `---`
  if (Array.isArray(value)) {
    value.forEach((item, i) => collect(item, `${location}, [${i}]`, source, objects, errors));
    return;
  }
  if (!isObject(value)) {
    errors.push({ source, message: `${location}: not an API object (expected a mapping with kind and metadata)` });
    return;
  }
  const kind = value['kind'];
  if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(value['items'])) {
    // Typed lists (ServiceList) may omit kind on items; List items always carry it.
    const itemKind = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
    const itemApiVersion = value['apiVersion'];
    (value['items'] as unknown[]).forEach((item, i) => {
      const itemLocation = `${location}, items[${i}]`;
      if (isObject(item) && itemKind !== undefined && item['kind'] === undefined) {
        collect({ kind: itemKind, apiVersion: itemApiVersion, ...item }, itemLocation, source, objects, errors);
      } else {
        collect(item, itemLocation, source, objects, errors);
      }
    });
    return;
  }
  objects.push({ source, location, object: value });
}

/** Reads and parses manifest files; `-` is standard input. I/O lives here, not in the model. */
export async function readManifests(paths: readonly string[], stdin: () => Promise<string>): Promise<ParsedManifests> {
  const objects: ManifestObject[] = [];
  const errors: ManifestError[] = [];
  for (const path of paths) {
    const source = path === '-' ? '<stdin>' : path;
    let text: string;
    try {
      // Read as bytes and decoded once: readFile(path, 'utf8') decodes 512 kB at a time into a string of 30-odd
      // pieces, which JSON.parse must first copy into one (40-70 ms more for a 16 MB List).
      text = path === '-' ? await stdin() : (await readFile(path)).toString('utf8');
    } catch (e) {
      errors.push({ source, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
      continue;
    }
    if (!parseJsonText(text, source, objects, errors)) (await import('./manifests.js')).parseYamlText(text, source, objects, errors);
  }
  return { objects, errors };
}
