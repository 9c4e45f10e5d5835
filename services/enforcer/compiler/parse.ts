/**
 * YAML text to TracingPolicy documents: syntax, the Kubernetes envelope
 * (apiVersion, kind, metadata) and the spec's schema. Every refusal names the
 * field and, from the YAML node ranges, its line. Meaning (kernel, arguments,
 * selectors) is the compiler's.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import { formatPath, PolicyError, type FieldPath } from './errors.js';
import { didYouMean, validateSpec } from './schema.js';
import type { TracingPolicySpec } from './spec-types.js';

export const API_VERSION = 'cilium.io/v1alpha1';

export interface TracingPolicyDocument {
  kind: 'TracingPolicy' | 'TracingPolicyNamespaced';
  name: string;
  /** TracingPolicyNamespaced only. */
  namespace?: string;
  /** Validated, with the schema's defaults filled in. */
  spec: TracingPolicySpec;
  /** The whole document as written. */
  raw: unknown;
}

interface Origin {
  doc: Document;
  lines: LineCounter;
  source?: string;
}

/** Where each parsed document came from, so that the compiler's errors can name lines too. */
const origins = new WeakMap<TracingPolicyDocument, Origin>();

/** The YAML node at `path`, or the deepest one on the way there; the key's node when `atKey`. */
function nodeAt(doc: Document, path: FieldPath, atKey: boolean): Node | undefined {
  let node: unknown = doc.contents;
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = path[i];
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair && atKey && i === path.length - 1) return pair.key as Node;
      next = pair?.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
    }
    if (next === undefined || next === null) break;
    node = next;
  }
  return node as Node | undefined;
}

function lineOf(origin: Origin, path: FieldPath, atKey: boolean): number | undefined {
  const offset = nodeAt(origin.doc, path, atKey)?.range?.[0];
  return offset === undefined ? undefined : origin.lines.linePos(offset).line;
}

function errorAt(origin: Origin | undefined, path: FieldPath, reason: string, atKey = false): PolicyError {
  return new PolicyError(formatPath(path), reason, {
    ...(origin ? { line: lineOf(origin, path, atKey) } : {}),
    ...(origin?.source === undefined ? {} : { source: origin.source }),
  });
}

/** A PolicyError at `path` of `document`, with the line when the document was parsed from YAML. */
export function policyErrorAt(document: TracingPolicyDocument, path: FieldPath, reason: string): PolicyError {
  return errorAt(origins.get(document), path, reason);
}

/** YAML integers are read as bigints so that 64-bit values survive; those a number holds exactly become numbers. */
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// Kubernetes object names (RFC 1123 subdomain) and namespaces (RFC 1123 label).
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** ObjectMeta fields a policy read back from a cluster may carry. */
const METADATA_FIELDS = new Set([
  'name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName', 'ownerReferences', 'finalizers', 'managedFields', 'selfLink',
]);

function checkMetadata(origin: Origin, kind: TracingPolicyDocument['kind'], metadata: unknown): { name: string; namespace?: string } {
  if (metadata === undefined) throw errorAt(origin, ['metadata'], 'required field is missing');
  if (!isRecord(metadata)) throw errorAt(origin, ['metadata'], 'expected a mapping');
  for (const key of Object.keys(metadata)) {
    if (!METADATA_FIELDS.has(key)) throw errorAt(origin, ['metadata', key], `unknown field${didYouMean(key, [...METADATA_FIELDS])}`, true);
  }
  for (const key of ['labels', 'annotations']) {
    const map = metadata[key];
    if (map === undefined || map === null) continue;
    if (!isRecord(map)) throw errorAt(origin, ['metadata', key], 'expected a mapping of strings');
    for (const [k, v] of Object.entries(map)) {
      if (typeof v !== 'string') throw errorAt(origin, ['metadata', key, k], `expected a string, got ${Array.isArray(v) ? 'a list' : typeof v}`);
    }
  }
  const { name, namespace } = metadata;
  if (name === undefined || name === null || name === '') throw errorAt(origin, ['metadata', 'name'], 'required field is missing');
  if (typeof name !== 'string') throw errorAt(origin, ['metadata', 'name'], `expected a string, got ${typeof name}`);
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw errorAt(origin, ['metadata', 'name'], `"${name}" is not a valid name (lower-case letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253)`);
  }
  if (kind === 'TracingPolicy') {
    if (namespace !== undefined && namespace !== null) {
      throw errorAt(origin, ['metadata', 'namespace'], 'a TracingPolicy is cluster-wide and has no namespace; use kind TracingPolicyNamespaced');
    }
    return { name };
  }
  if (namespace === undefined || namespace === null || namespace === '') {
    throw errorAt(origin, ['metadata', 'namespace'], 'required field is missing (a TracingPolicyNamespaced needs one)');
  }
  if (typeof namespace !== 'string' || namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw errorAt(origin, ['metadata', 'namespace'], `${JSON.stringify(namespace)} is not a valid namespace (lower-case letters, digits and "-", at most 63)`);
  }
  return { name, namespace };
}

function readDocument(origin: Origin): TracingPolicyDocument {
  const raw = plain(origin.doc.toJS());
  if (!isRecord(raw)) throw errorAt(origin, [], 'a policy document must be a mapping (apiVersion, kind, metadata, spec)');
  const top = ['apiVersion', 'kind', 'metadata', 'spec'];
  for (const key of Object.keys(raw)) {
    if (!top.includes(key)) throw errorAt(origin, [key], `unknown field${didYouMean(key, top)}`, true);
  }
  if (raw.apiVersion !== API_VERSION) {
    throw errorAt(origin, ['apiVersion'], raw.apiVersion === undefined ? `required field is missing (${API_VERSION})` : `expected "${API_VERSION}", got ${JSON.stringify(raw.apiVersion)}`);
  }
  const kind = raw.kind;
  if (kind !== 'TracingPolicy' && kind !== 'TracingPolicyNamespaced') {
    throw errorAt(origin, ['kind'], kind === undefined ? 'required field is missing' : `expected TracingPolicy or TracingPolicyNamespaced, got ${JSON.stringify(kind)}`);
  }
  const meta = checkMetadata(origin, kind, raw.metadata);
  if (raw.spec === undefined || raw.spec === null) throw errorAt(origin, ['spec'], 'required field is missing');
  if (!isRecord(raw.spec)) throw errorAt(origin, ['spec'], 'expected a mapping');
  const checked = validateSpec(structuredClone(raw.spec), ['spec']);
  if ('problem' in checked) throw errorAt(origin, checked.problem.path, checked.problem.reason, checked.problem.atKey);
  const document: TracingPolicyDocument = { kind, name: meta.name, ...(meta.namespace === undefined ? {} : { namespace: meta.namespace }), spec: checked.spec, raw };
  origins.set(document, origin);
  return document;
}

/** All documents of a YAML text (`---`-separated); empty documents are skipped. Throws PolicyError at the first problem. */
export function parsePolicyDocuments(text: string, source?: string): TracingPolicyDocument[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, intAsBigInt: true, prettyErrors: false, uniqueKeys: true });
  const out: TracingPolicyDocument[] = [];
  for (const doc of docs) {
    const origin: Origin = { doc, lines, ...(source === undefined ? {} : { source }) };
    const syntax = doc.errors[0];
    if (syntax) {
      throw new PolicyError('', `invalid YAML: ${syntax.message}`, { line: lines.linePos(syntax.pos[0]).line, ...(source === undefined ? {} : { source }) });
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) continue;
    out.push(readDocument(origin));
  }
  return out;
}
