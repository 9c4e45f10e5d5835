/**
 * Structural validation of a spec against deploy/crds/tracingpolicy-spec.schema.json,
 * the same schema the CRDs carry. The file is written for Kubernetes (structural,
 * x-kubernetes-* keywords); it is read here with Kubernetes' meaning:
 * - an object with `properties` has no other fields. The API server prunes unknown
 *   fields; a policy file has no server, so they are refused instead;
 * - `x-kubernetes-int-or-string` is an integer or a string;
 * - a null value of a known field is the field left out (the API server drops them);
 * - `default`s are filled in.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { repoRoot } from '../../lib/paths.js';
import type { FieldPath } from './errors.js';
import type { TracingPolicySpec } from './spec-types.js';

export const SPEC_SCHEMA_PATH = path.join(repoRoot, 'deploy', 'crds', 'tracingpolicy-spec.schema.json');

type Schema = Record<string, unknown>;

export interface SchemaProblem {
  path: FieldPath;
  reason: string;
  /** The problem is the key itself (an unknown field), not its value. */
  atKey: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The schema with Kubernetes' meaning spelled out in plain JSON Schema, for ajv. */
function forAjv(node: Schema): Schema {
  if (node['x-kubernetes-int-or-string'] === true) {
    return { ...(node.description === undefined ? {} : { description: node.description }), type: ['integer', 'string'] };
  }
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-kubernetes-')) continue;
    if (key === 'properties' && isObject(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, forAjv(v as Schema)]));
    } else if ((key === 'items' || key === 'additionalProperties') && isObject(value)) {
      out[key] = forAjv(value);
    } else {
      out[key] = value;
    }
  }
  if (out.properties !== undefined && out.additionalProperties === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

function dropNulls(data: unknown, schema: Schema): void {
  if (Array.isArray(data)) {
    if (isObject(schema.items)) for (const item of data) dropNulls(item, schema.items);
    return;
  }
  if (!isObject(data)) return;
  const props = isObject(schema.properties) ? schema.properties : undefined;
  for (const [key, value] of Object.entries(data)) {
    const sub = props?.[key] ?? schema.additionalProperties;
    if (value === null && props !== undefined && key in props) delete data[key];
    else if (isObject(sub)) dropNulls(value, sub);
  }
}

let compiled: { schema: Schema; validate: ValidateFunction } | undefined;

function validator(): { schema: Schema; validate: ValidateFunction } {
  if (!compiled) {
    const schema = forAjv(JSON.parse(fs.readFileSync(SPEC_SCHEMA_PATH, 'utf8')) as Schema);
    const ajv = new Ajv({ allErrors: false, useDefaults: true, verbose: true, strict: true, allowUnionTypes: true });
    compiled = { schema, validate: ajv.compile(schema) };
  }
  return compiled;
}

/**
 * Checks `spec` (modified in place: nulls dropped, defaults filled) and returns
 * it typed, or the first problem found. `base` is the spec's own path.
 */
export function validateSpec(spec: unknown, base: FieldPath): { spec: TracingPolicySpec } | { problem: SchemaProblem } {
  const { schema, validate } = validator();
  dropNulls(spec, schema);
  if (validate(spec)) return { spec: spec as TracingPolicySpec };
  return { problem: describe(validate.errors![0]!, spec, base) };
}

/** JSON pointer into `root` as keys and list indexes. */
function pointerPath(pointer: string, root: unknown): (string | number)[] {
  const out: (string | number)[] = [];
  let node = root;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      out.push(Number(seg));
      node = node[Number(seg)];
    } else {
      out.push(seg);
      node = isObject(node) ? node[seg] : undefined;
    }
  }
  return out;
}

const YAML_TYPE: Record<string, string> = { array: 'list', object: 'mapping', integer: 'integer', string: 'string', boolean: 'boolean (true/false)', number: 'number' };

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'object') return 'mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return Number.isInteger(value) ? `integer ${value}` : `number ${value}`;
  return `${typeof value} ${String(value)}`;
}

/** What a field holding an enum is called in messages. */
function enumNoun(path: FieldPath): string {
  const last = String(path[path.length - 1]);
  if (last === 'type') return path.some((s) => s === 'matchCapabilities' || s === 'matchCapabilityChanges') ? 'capability set' : 'argument type';
  return last;
}

/** Edit distance, to suggest the field a misspelt key meant. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** ` (did you mean "x"?)` when a known field is close to a misspelt `key`, else empty. */
export function didYouMean(key: string, known: readonly string[]): string {
  const best = known
    .map((k) => ({ k, d: k.toLowerCase() === key.toLowerCase() ? 0 : distance(k, key) }))
    .sort((x, y) => x.d - y.d)[0];
  return best !== undefined && best.d <= 2 ? ` (did you mean "${best.k}"?)` : '';
}

function describe(err: ErrorObject, root: unknown, base: FieldPath): SchemaProblem {
  const at = [...base, ...pointerPath(err.instancePath, root)];
  const params = err.params as Record<string, unknown>;
  const parent = (err.parentSchema ?? {}) as Schema;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = isObject(parent.properties) ? Object.keys(parent.properties) : [];
      return { path: [...at, key], reason: `unknown field${didYouMean(key, known)}`, atKey: true };
    }
    case 'required':
      return { path: [...at, String(params.missingProperty)], reason: 'required field is missing', atKey: false };
    case 'type': {
      const want = String(params.type).split(',').map((t) => YAML_TYPE[t] ?? t).join(' or ');
      return { path: at, reason: `expected ${want}, got ${kindOf(err.data)}`, atKey: false };
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const listed = allowed.length <= 12 ? ` (one of ${allowed.join(', ')})` : '';
      return { path: at, reason: `unknown ${enumNoun(at)} ${JSON.stringify(err.data)}${listed}`, atKey: false };
    }
    case 'maxItems':
      return { path: at, reason: `too many ${String(at[at.length - 1])}: ${(err.data as unknown[]).length} (at most ${String(params.limit)})`, atKey: false };
    case 'minItems':
      return { path: at, reason: `needs at least ${String(params.limit)} item(s)`, atKey: false };
    case 'maxLength':
      return { path: at, reason: `too long: ${(err.data as string).length} characters (at most ${String(params.limit)})`, atKey: false };
    case 'minimum':
    case 'maximum':
      return { path: at, reason: `${kindOf(err.data)} is out of range (${err.keyword} ${String(params.limit)})`, atKey: false };
    default:
      return { path: at, reason: err.message ?? err.keyword, atKey: false };
  }
}
