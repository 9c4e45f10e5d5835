/**
 * YAML text to TracingPolicy documents: syntax, the Kubernetes envelope
 * (apiVersion, kind, metadata) and the spec's schema. Every refusal names the
 * field and, from the YAML node ranges, its line. Meaning (kernel, arguments,
 * selectors) is the compiler's.
 */
import { Composer, CST, isAlias, isCollection, isMap, isPair, isScalar, isSeq, Lexer, LineCounter, Parser, type Document, type Node } from 'yaml';
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

/**
 * Bounds on a policy text, checked before and while the tree is built (a
 * text past them is refused with a PolicyError naming the line, never
 * expanded): its size in UTF-8 bytes, how deep collections nest, how many
 * nodes it holds once aliases are expanded, and yaml's alias budget
 * (maxAliasCount). Real policies are a few KiB, nest about 10 deep and hold
 * hundreds to a few thousand nodes.
 */
export const POLICY_LIMITS = {
  /** Bytes of one policy text (all of its documents). */
  maxBytes: 1024 * 1024,
  /** Nesting of collections (yaml's parser stack). */
  maxDepth: 64,
  /** Nodes (scalars, collections, aliases counted as what they refer to) in one text. */
  maxNodes: 100_000,
  /** yaml's maxAliasCount: resolved aliases, weighted by the aliases inside what they refer to. */
  maxAliasCount: 100,
} as const;

/** Where each node of a document is: the line of the node at a path, and of the key of the pair at a path. */
export interface LineIndex {
  values: Map<string, number>;
  keys: Map<string, number>;
}

interface Origin {
  /** The 1-based line of the node at `path` (or the deepest one on the way there); the key's line when `atKey`. */
  locate(path: FieldPath, atKey: boolean): number | undefined;
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

function docOrigin(doc: Document, lines: LineCounter, source: string | undefined): Origin {
  return {
    locate(path, atKey) {
      const offset = nodeAt(doc, path, atKey)?.range?.[0];
      return offset === undefined ? undefined : lines.linePos(offset).line;
    },
    ...(source === undefined ? {} : { source }),
  };
}

const pathKey = (path: FieldPath): string => path.map(String).join('\u0000');

/**
 * The line of every node nodeAt can reach (aliases resolved on the way
 * down), for a document whose YAML tree stays behind (parsed in a worker).
 */
function buildLineIndex(doc: Document, lines: LineCounter): LineIndex {
  const index: LineIndex = { values: new Map(), keys: new Map() };
  const lineAt = (node: unknown): number | undefined => {
    const offset = (node as Node | null | undefined)?.range?.[0];
    return offset === undefined ? undefined : lines.linePos(offset).line;
  };
  const walk = (node: unknown, path: (string | number)[]): void => {
    const line = lineAt(node);
    if (line === undefined) return;
    index.values.set(pathKey(path), line);
    const target = isAlias(node) ? node.resolve(doc) : node;
    if (isMap(target)) {
      for (const pair of target.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const child = [...path, String(pair.key.value)];
        const keyLine = lineAt(pair.key);
        if (keyLine !== undefined) index.keys.set(pathKey(child), keyLine);
        if (pair.value !== null && pair.value !== undefined) walk(pair.value, child);
      }
    } else if (isSeq(target)) {
      target.items.forEach((item, i) => {
        if (item !== null && item !== undefined) walk(item, [...path, i]);
      });
    }
  };
  walk(doc.contents, []);
  return index;
}

function indexOrigin(index: LineIndex, source: string | undefined): Origin {
  return {
    locate(path, atKey) {
      if (atKey) {
        const line = index.keys.get(pathKey(path));
        if (line !== undefined) return line;
      }
      for (let n = path.length; n >= 0; n--) {
        const line = index.values.get(pathKey(path.slice(0, n)));
        if (line !== undefined) return line;
      }
      return undefined;
    },
    ...(source === undefined ? {} : { source }),
  };
}

function errorAt(origin: Origin | undefined, path: FieldPath, reason: string, atKey = false): PolicyError {
  return new PolicyError(formatPath(path), reason, {
    ...(origin ? { line: origin.locate(path, atKey) } : {}),
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

function readDocument(doc: Document, origin: Origin): TracingPolicyDocument {
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: POLICY_LIMITS.maxAliasCount });
  } catch (err) {
    // yaml's alias budget (ReferenceError) and the like: the text's fault, not ours.
    throw errorAt(origin, [], `invalid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const raw = plain(js);
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

/** A YAML text past POLICY_LIMITS, refused before its tree is built. */
function tooBig(reason: string, line: number | undefined, source: string | undefined): PolicyError {
  return new PolicyError('', reason, { ...(line === undefined ? {} : { line }), ...(source === undefined ? {} : { source }) });
}

/** Throws PolicyError when a policy text is larger than POLICY_LIMITS.maxBytes (UTF-8). */
export function checkPolicyTextSize(text: string, source?: string): void {
  checkPolicyBytes(Buffer.byteLength(text, 'utf8'), source);
}

/** Throws PolicyError when a policy text of `bytes` (UTF-8) is larger than POLICY_LIMITS.maxBytes: a file is checked by its size before it is read. */
export function checkPolicyBytes(bytes: number, source?: string): void {
  if (bytes > POLICY_LIMITS.maxBytes) {
    throw tooBig(`policy text is ${bytes} bytes, more than the limit of ${POLICY_LIMITS.maxBytes} (1 MiB)`, undefined, source);
  }
}

/** Lexemes that start a node (scalars, aliases, collections); their count bounds the nodes before any is built. */
function startsNode(lexeme: string): boolean {
  if (lexeme === CST.SCALAR || lexeme === '-' || lexeme === '[' || lexeme === '{') return true;
  const first = lexeme[0];
  return first === '"' || first === "'" || first === '*';
}

/**
 * yaml's parseAllDocuments, fed one lexeme at a time so that depth and node
 * count are checked as the text is read: a text nested past maxDepth or
 * holding more than maxNodes nodes is refused at the line it crosses the
 * bound, before the tree is composed.
 */
function parseBounded(text: string, lines: LineCounter, source: string | undefined): Document[] {
  checkPolicyTextSize(text, source);
  const parser = new Parser(lines.addNewLine);
  const composer = new Composer({ intAsBigInt: true, uniqueKeys: true });
  const docs: Document[] = [];
  let nodes = 0;
  lines.addNewLine(0); // as Parser.parse() does before its first lexeme
  for (const lexeme of new Lexer().lex(text)) {
    if (startsNode(lexeme) && ++nodes > POLICY_LIMITS.maxNodes) {
      throw tooBig(`more than ${POLICY_LIMITS.maxNodes} YAML nodes`, lines.linePos(parser.offset).line, source);
    }
    for (const token of parser.next(lexeme)) docs.push(...composer.next(token));
    if (parser.stack.length > POLICY_LIMITS.maxDepth) {
      throw tooBig(`YAML nested more than ${POLICY_LIMITS.maxDepth} levels deep`, lines.linePos(parser.offset).line, source);
    }
  }
  for (const token of parser.end()) docs.push(...composer.next(token));
  docs.push(...composer.end());
  return docs;
}

/** The nodes of a document with every alias counted as what it refers to; refuses past maxNodes. */
function checkExpandedSize(doc: Document, lines: LineCounter, source: string | undefined, budget: { left: number }): void {
  const sizes = new Map<unknown, number>();
  const pending = new Set<unknown>();
  const size = (node: unknown): number => {
    if (node === null || node === undefined) return 0;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    if (pending.has(node)) throw tooBig('an alias refers to a node that contains it', lines.linePos((node as Node).range?.[0] ?? 0).line, source);
    pending.add(node);
    let n = 1;
    if (isAlias(node)) n = size(node.resolve(doc));
    else if (isPair(node)) n = size(node.key) + size(node.value);
    else if (isCollection(node)) for (const item of node.items) n += size(item);
    pending.delete(node);
    if (n > budget.left) {
      throw tooBig(`more than ${POLICY_LIMITS.maxNodes} YAML nodes once aliases are expanded`, lines.linePos((node as Node).range?.[0] ?? 0).line, source);
    }
    sizes.set(node, n);
    return n;
  };
  budget.left -= size(doc.contents);
}

/** The documents of a text, bounded and syntax-checked; empty documents are skipped. */
function parseDocs(text: string, source: string | undefined): { docs: Document[]; lines: LineCounter } {
  const lines = new LineCounter();
  const docs = parseBounded(text, lines, source);
  const budget = { left: POLICY_LIMITS.maxNodes };
  const out: Document[] = [];
  for (const doc of docs) {
    const syntax = doc.errors[0];
    if (syntax) {
      throw new PolicyError('', `invalid YAML: ${syntax.message}`, { line: lines.linePos(syntax.pos[0]).line, ...(source === undefined ? {} : { source }) });
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) continue;
    checkExpandedSize(doc, lines, source, budget);
    out.push(doc);
  }
  return { docs: out, lines };
}

/**
 * All documents of a YAML text (`---`-separated); empty documents are
 * skipped. Throws PolicyError at the first problem, including a text past
 * POLICY_LIMITS. Runs on the calling thread: parsePolicyDocumentsOffThread
 * (parse-pool.ts) runs it in a worker.
 */
export function parsePolicyDocuments(text: string, source?: string): TracingPolicyDocument[] {
  const { docs, lines } = parseDocs(text, source);
  return docs.map((doc) => readDocument(doc, docOrigin(doc, lines, source)));
}

/** A parsed document as it crosses threads (structured clone): the document and its line index. */
export interface TransferableDocument {
  document: TracingPolicyDocument;
  lines: LineIndex;
}

/** parsePolicyDocuments, with each document's line index instead of its YAML tree (for a worker to send back). */
export function parsePolicyDocumentsTransferable(text: string, source?: string): TransferableDocument[] {
  const { docs, lines } = parseDocs(text, source);
  return docs.map((doc) => ({ document: readDocument(doc, docOrigin(doc, lines, source)), lines: buildLineIndex(doc, lines) }));
}

/** A document received from a worker, with its lines known again to policyErrorAt. */
export function adoptDocument(parsed: TransferableDocument, source?: string): TracingPolicyDocument {
  origins.set(parsed.document, indexOrigin(parsed.lines, source));
  return parsed.document;
}
