import { parseAllDocuments } from 'yaml';
import type { JsonObject } from '../model/fields.js';
import { collect, parseJsonText } from './read-manifests.js';

// Reading files and the JSON fast path live in read-manifests.ts, which does not load the YAML parser.

/** One API object read from a manifest, with where it came from (for error messages). */
export interface ManifestObject {
  readonly source: string;
  /** e.g. `document 2` or `document 1, items[3]` */
  readonly location: string;
  readonly object: JsonObject;
}

export interface ManifestError {
  readonly source: string;
  readonly message: string;
}

export interface ParsedManifests {
  readonly objects: ManifestObject[];
  readonly errors: ManifestError[];
}

/**
 * Parses YAML (single or multi-document) or JSON text into API objects, expanding `List` kinds
 * (`kubectl get -o yaml`) and typed lists such as `ServiceList`. JSON takes a fast path: a 10,000-Service
 * dump is tens of megabytes.
 */
export function parseManifestText(text: string, source: string): ParsedManifests {
  const objects: ManifestObject[] = [];
  const errors: ManifestError[] = [];
  if (!parseJsonText(text, source, objects, errors)) parseYamlText(text, source, objects, errors);
  return { objects, errors };
}

/** The YAML path of parseManifestText: every document's objects into `objects`, its errors into `errors`. */
export function parseYamlText(text: string, source: string, objects: ManifestObject[], errors: ManifestError[]): void {
  const docs = parseAllDocuments(text);
  // parseAllDocuments returns an empty-collection marker for an empty stream.
  if (!Array.isArray(docs)) return;
  docs.forEach((doc, i) => {
    const location = `document ${i + 1}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const line = e.linePos?.[0];
        errors.push({ source, message: `${location}: YAML error${line ? ` at line ${line.line}, column ${line.col}` : ''}: ${e.message.split('\n')[0]}` });
      }
      return;
    }
    collect(doc.toJS() as unknown, location, source, objects, errors);
  });
}
