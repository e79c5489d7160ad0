/** Helpers that read untyped API objects (parsed YAML/JSON) field by field, collecting errors by path. */

export interface FieldError {
  /** JSON-path-like field name, e.g. `spec.ports[1].port`. */
  readonly field: string;
  readonly message: string;
}

export type Normalized<T> =
  | { readonly status: 'ok'; readonly value: T }
  | { readonly status: 'skipped'; readonly reason: string }
  | { readonly status: 'invalid'; readonly errors: readonly FieldError[] };

export type JsonObject = { readonly [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects errors while reading one object, so a single bad object reports every bad field at once. */
export class FieldReader {
  readonly errors: FieldError[] = [];

  fail(field: string, message: string): undefined {
    this.errors.push({ field, message });
    return undefined;
  }

  object(parent: JsonObject, key: string, path: string, required: boolean): JsonObject | undefined {
    const value = parent[key];
    if (value === undefined || value === null) return required ? this.fail(path, 'required') : undefined;
    return isObject(value) ? value : this.fail(path, `must be an object, got ${describe(value)}`);
  }

  array(parent: JsonObject, key: string, path: string, required: boolean): readonly unknown[] | undefined {
    const value = parent[key];
    if (value === undefined || value === null) return required ? this.fail(path, 'required') : undefined;
    return Array.isArray(value) ? value : this.fail(path, `must be a list, got ${describe(value)}`);
  }

  string(parent: JsonObject, key: string, path: string, required: boolean): string | undefined {
    const value = parent[key];
    if (value === undefined || value === null) return required ? this.fail(path, 'required') : undefined;
    if (typeof value !== 'string') return this.fail(path, `must be a string, got ${describe(value)}`);
    if (required && value === '') return this.fail(path, 'must not be empty');
    return value;
  }

  boolean(parent: JsonObject, key: string, path: string): boolean | undefined {
    const value = parent[key];
    if (value === undefined || value === null) return undefined;
    return typeof value === 'boolean' ? value : this.fail(path, `must be true or false, got ${describe(value)}`);
  }

  integer(parent: JsonObject, key: string, path: string, min: number, max: number): number | undefined {
    const value = parent[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      return this.fail(path, `must be an integer, got ${describe(value)}`);
    }
    if (value < min || value > max) return this.fail(path, `${value} is out of range ${min}-${max}`);
    return value;
  }

  oneOf<T extends string>(parent: JsonObject, key: string, path: string, allowed: readonly T[]): T | undefined {
    const value = this.string(parent, key, path, false);
    if (value === undefined) return undefined;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    return this.fail(path, `"${value}" is not one of ${allowed.join(', ')}`);
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value}"`;
  if (isObject(value)) return 'an object';
  return String(value);
}

/** Reads metadata.labels as a string map; non-string values are not labels and are ignored. */
export function labelsOf(metadata: JsonObject | undefined): ReadonlyMap<string, string> {
  const labels = metadata?.['labels'];
  const out = new Map<string, string>();
  if (!isObject(labels)) return out;
  for (const [key, value] of Object.entries(labels)) if (typeof value === 'string') out.set(key, value);
  return out;
}
