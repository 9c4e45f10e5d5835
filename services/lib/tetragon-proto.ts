/**
 * Tetragon's public API types (proto/tetragon/*.proto) at run time: binary
 * encode/decode of the event-model objects, Tetragon's JSON (protojson with
 * proto field names) in both directions, and the gRPC service definition of
 * tetragon.FineGuidanceSensors.
 *
 * Objects are in the event-model shape (see event-model.ts): proto field
 * names, well-known types in message form ({value}, {seconds, nanos}), enums
 * as numbers, 64-bit integers as numbers, bytes as Uint8Array, maps as
 * plain objects, unset fields absent. A 64-bit value past 2^53 decodes
 * rounded; fromProtoJson returns such a value as its exact decimal string,
 * which encodeMessage also takes.
 */
import fs from 'node:fs';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { protoDir } from './paths.js';
import { fixedFormOf, keptBy, momentFields, MOMENT_FIELDS, SHARED_MESSAGE_TYPES } from './process-forms.js';

/** The files of proto/tetragon, as import paths relative to proto/ (e.g. 'tetragon/events.proto'). */
export const tetragonProtoFiles: readonly string[] = fs.readdirSync(path.join(protoDir, 'tetragon'))
  .filter((name) => name.endsWith('.proto'))
  .sort()
  .map((name) => `tetragon/${name}`);

/** Vigil's own versioned API (proto/vigil/v1), loaded into the same root. */
export const vigilProtoFiles: readonly string[] = fs.readdirSync(path.join(protoDir, 'vigil', 'v1'))
  .filter((name) => name.endsWith('.proto'))
  .sort()
  .map((name) => `vigil/v1/${name}`);

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports are relative to proto/; google/protobuf/* come bundled with protobufjs.
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(protoDir, target));
  root.loadSync([...tetragonProtoFiles, ...vigilProtoFiles], { keepCase: true });
  root.resolveAll();
  return root;
}

export const tetragonRoot: protobuf.Root = loadRoot();

const typeCache = new Map<string, protobuf.Type>();

/** A message type by its name in package tetragon ('GetEventsResponse') or its full name. */
export function tetragonType(name: string): protobuf.Type {
  let type = typeCache.get(name);
  if (type === undefined) {
    const full = name.startsWith('.') ? name.slice(1) : name.includes('.') ? name : `tetragon.${name}`;
    type = tetragonRoot.lookupType(full);
    typeCache.set(name, type);
  }
  return type;
}

/**
 * Encodes an event-model object. The object goes straight to protobufjs's
 * generated encoder (no fromObject pass), so it must already be in the
 * event-model shape: numeric enums, {seconds, nanos} timestamps, Uint8Array
 * bytes. Convert JSON input with fromProtoJson first.
 */
export function encodeMessage(typeName: string, obj: object): Uint8Array {
  return tetragonType(typeName).encode(obj).finish();
}

const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: Number, defaults: false, arrays: false, objects: false, oneofs: false };

/** Bytes that are not an encoding of the message asked for (protobufjs's reason is the message). */
export class MalformedMessageError extends Error {}

/** Decodes protobuf bytes to an event-model object; throws MalformedMessageError for bytes that are not one. */
export function decodeMessage<T = Record<string, unknown>>(typeName: string, bytes: Uint8Array): T {
  const type = tetragonType(typeName);
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (err) {
    throw new MalformedMessageError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  return type.toObject(message, DECODE_OPTIONS) as T;
}

// ---------------------------------------------------------------------------
// Shared reflection helpers

const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32_RANGE: Record<string, [number, number]> = {
  int32: [-0x80000000, 0x7fffffff], sint32: [-0x80000000, 0x7fffffff], sfixed32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff], fixed32: [0, 0xffffffff],
};
const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value', 'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue']
  .map((name) => `.google.protobuf.${name}`));

/** protoc's default JSON name: underscores dropped, the letter after each one upper-cased. */
function jsonName(protoName: string): string {
  let out = '';
  let upper = false;
  for (const c of protoName) {
    if (c === '_') upper = true;
    else { out += upper ? c.toUpperCase() : c; upper = false; }
  }
  return out;
}

/** A field with explicit presence (oneof member or proto3 `optional`) is emitted even when it holds its zero value. */
function hasPresence(field: protobuf.Field): boolean {
  return field.partOf !== null && field.partOf !== undefined;
}

function isLong(v: unknown): v is protobuf.Long {
  return typeof v === 'object' && v !== null && 'low' in v && 'high' in v;
}

function isLongZero(v: unknown): boolean {
  if (typeof v === 'number') return v === 0;
  if (isLong(v)) return v.low === 0 && v.high === 0;
  return String(v) === '0';
}

/** A 64-bit value (number, Long or decimal string) as a number. */
function longToNumber(v: unknown): number {
  return isLong(v) ? protobuf.util.LongBits.from(v).toNumber(v.unsigned) : Number(v);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------
// Event model -> Tetragon JSON

/** Carries the field path outwards while a conversion error unwinds. */
class JsonPathError extends Error {
  readonly segments: string[] = [];
  constructor(readonly reason: string) { super(reason); }
}

function prependSegment(err: unknown, segment: string): JsonPathError {
  const e = err instanceof JsonPathError ? err : new JsonPathError(err instanceof Error ? err.message : String(err));
  e.segments.unshift(segment);
  return e;
}

function joinPath(segments: readonly string[]): string {
  let out = '';
  for (const s of segments) out += s.startsWith('[') || out === '' ? s : `.${s}`;
  return out;
}

type ToJson = (v: any) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any

const TIMESTAMP_MIN = -62135596800; // 0001-01-01T00:00:00Z
const TIMESTAMP_MAX = 253402300799; // 9999-12-31T23:59:59Z
const DURATION_MAX = 315576000000; // 10,000 years, protojson's limit

/** 0, 3, 6 or 9 fractional digits, as protojson writes them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  if (nanos % 1_000_000 === 0) return `.${String(nanos / 1_000_000).padStart(3, '0')}`;
  if (nanos % 1_000 === 0) return `.${String(nanos / 1_000).padStart(6, '0')}`;
  return `.${String(nanos).padStart(9, '0')}`;
}

// Events arrive in time order, so consecutive timestamps mostly share their second.
let cachedSecond = NaN;
let cachedSecondText = '';

function timestampToJson(v: { seconds?: unknown; nanos?: number }): string {
  const seconds = longToNumber(v.seconds ?? 0);
  const nanos = v.nanos ?? 0;
  if (!Number.isInteger(seconds) || seconds < TIMESTAMP_MIN || seconds > TIMESTAMP_MAX) throw new JsonPathError(`timestamp seconds out of range: ${String(v.seconds)}`);
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) throw new JsonPathError(`timestamp nanos out of range: ${nanos}`);
  if (seconds !== cachedSecond) {
    cachedSecondText = new Date(seconds * 1000).toISOString().slice(0, 19);
    cachedSecond = seconds;
  }
  return `${cachedSecondText}${fraction(nanos)}Z`;
}

function durationToJson(v: { seconds?: unknown; nanos?: number }): string {
  const seconds = longToNumber(v.seconds ?? 0);
  const nanos = v.nanos ?? 0;
  if (!Number.isInteger(seconds) || Math.abs(seconds) > DURATION_MAX) throw new JsonPathError(`duration seconds out of range: ${String(v.seconds)}`);
  if (!Number.isInteger(nanos) || Math.abs(nanos) > 999_999_999 || (seconds !== 0 && nanos !== 0 && Math.sign(seconds) !== Math.sign(nanos))) {
    throw new JsonPathError(`duration nanos out of range: ${nanos}`);
  }
  const negative = seconds < 0 || nanos < 0;
  return `${negative ? '-' : ''}${Math.abs(seconds)}${fraction(Math.abs(nanos))}s`;
}

function fieldMaskToJson(v: { paths?: string[] }): string {
  return (v.paths ?? []).map((p) => {
    if (/[A-Z]|_(?![a-z])/.test(p)) throw new JsonPathError(`field mask path ${JSON.stringify(p)} has no JSON form`);
    return jsonName(p);
  }).join(',');
}

function typeFromUrl(url: string): protobuf.Type {
  const name = url.slice(url.lastIndexOf('/') + 1);
  const found = name === '' ? null : tetragonRoot.lookup(name);
  if (!(found instanceof protobuf.Type)) throw new JsonPathError(`cannot resolve Any type ${JSON.stringify(url)}`);
  return found;
}

/** Well-known types whose JSON form is not an object: inside an Any they sit under "value". */
function hasScalarJson(type: protobuf.Type): boolean {
  return WRAPPERS.has(type.fullName) || (SPECIAL_TO_JSON.has(type.fullName) && type.fullName !== '.google.protobuf.Any');
}

function anyToJson(v: { type_url?: string; value?: Uint8Array }): Record<string, unknown> {
  const url = v.type_url ?? '';
  const type = typeFromUrl(url);
  const inner = messageToJson(type)(type.toObject(type.decode(v.value ?? new Uint8Array()), DECODE_OPTIONS));
  return hasScalarJson(type) ? { '@type': url, value: inner } : { '@type': url, ...(inner as Record<string, unknown>) };
}

const SPECIAL_TO_JSON = new Map<string, ToJson>([
  ['.google.protobuf.Timestamp', timestampToJson],
  ['.google.protobuf.Duration', durationToJson],
  ['.google.protobuf.FieldMask', fieldMaskToJson],
  ['.google.protobuf.Any', anyToJson],
]);

function scalarToJson(type: string): ToJson {
  if (LONG_TYPES.has(type)) return (v) => (typeof v === 'string' ? v : String(v));
  if (type === 'double' || type === 'float') return (v: number) => (Number.isFinite(v) ? v : String(v));
  if (type === 'bytes') return (v: Uint8Array | number[] | string) => (typeof v === 'string' ? v : (v instanceof Uint8Array ? toBuffer(v) : Buffer.from(v)).toString('base64'));
  return (v) => v;
}

function scalarIsDefault(type: string): (v: any) => boolean { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (LONG_TYPES.has(type)) return isLongZero;
  if (type === 'string') return (v) => v === '';
  if (type === 'bool') return (v) => v === false;
  if (type === 'bytes') return (v) => v.length === 0;
  return (v) => v === 0;
}

function enumToJson(e: protobuf.Enum): ToJson {
  const names = e.valuesById;
  return (v) => (typeof v === 'number' ? (names[v] ?? v) : v);
}

/** Converter of one value of the field's element type (no default check). */
function valueToJson(field: protobuf.Field): ToJson {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) return enumToJson(resolved);
  if (resolved instanceof protobuf.Type) return messageToJson(resolved);
  return scalarToJson(field.type);
}

/** Converts a whole repeated or map field; undefined when it is empty (left out of the JSON). */
function collectionToJson(field: protobuf.Field): ToJson {
  const conv = valueToJson(field);
  if (field instanceof protobuf.MapField) {
    return (v: Record<string, unknown>) => {
      const keys = Object.keys(v);
      if (keys.length === 0) return undefined;
      const o: Record<string, unknown> = {};
      for (const k of keys) {
        try { o[k] = conv(v[k]); } catch (err) { throw prependSegment(err, `[${JSON.stringify(k)}]`); }
      }
      return o;
    };
  }
  return (v: unknown[]) => {
    const n = v.length;
    if (n === 0) return undefined;
    const a = new Array<unknown>(n);
    for (let i = 0; i < n; i++) {
      try { a[i] = conv(v[i]); } catch (err) { throw prependSegment(err, `[${i}]`); }
    }
    return a;
  };
}

/** The literal zero of the scalar types whose JSON is the value itself, or undefined for the others. */
function plainScalarZero(type: string): string | undefined {
  if (type === 'string') return '""';
  if (type === 'bool') return 'false';
  return INT32_RANGE[type] !== undefined ? '0' : undefined;
}

function wrapperToJson(type: protobuf.Type): ToJson {
  const valueField = type.fields.value;
  const conv = scalarToJson(valueField.type);
  const zero = valueField.defaultValue as unknown;
  return (v: { value?: unknown }) => conv(v.value ?? zero);
}

/**
 * Generates the converter of a message type as straight-line code, one
 * statement per field with constant property names, so that V8 sees fixed
 * shapes instead of a keyed loop over reflection. Helpers (nested converters,
 * enum name tables, zero tests) are passed in as arrays indexed by field.
 */
function compileMessageToJson(type: protobuf.Type): ToJson {
  const special = SPECIAL_TO_JSON.get(type.fullName);
  if (special !== undefined) return special;
  if (WRAPPERS.has(type.fullName)) return wrapperToJson(type);
  const fields = type.fieldsArray;
  const conv: (ToJson | undefined)[] = [];
  const isDefault: (((v: unknown) => boolean) | undefined)[] = [];
  const enumNames: (Record<number, string> | undefined)[] = [];
  const enumZero: (string | undefined)[] = [];
  const code = fields.map((field, i) => {
    const k = JSON.stringify(field.name);
    const presence = hasPresence(field);
    const resolved = field.resolvedType;
    let emit: string;
    if (field.repeated || field instanceof protobuf.MapField) {
      conv[i] = collectionToJson(field);
      emit = `v = conv[${i}](v); if (v !== undefined) out[${k}] = v;`;
    } else if (resolved instanceof protobuf.Type) {
      const valueType = WRAPPERS.has(resolved.fullName) ? resolved.fields.value.type : '';
      const zero = plainScalarZero(valueType);
      if (zero !== undefined) {
        // Wrappers of plain scalars (UInt32Value, BoolValue, ...) are inlined: the JSON is the bare value.
        emit = `v = v.value; out[${k}] = v === undefined || v === null ? ${zero} : v;`;
      } else {
        conv[i] = SPECIAL_TO_JSON.get(resolved.fullName) ?? messageToJson(resolved);
        emit = `out[${k}] = conv[${i}](v);`;
      }
    } else if (resolved instanceof protobuf.Enum) {
      enumNames[i] = resolved.valuesById;
      enumZero[i] = resolved.valuesById[0];
      const set = `out[${k}] = typeof v === "number" ? (enumNames[${i}][v] ?? v) : v;`;
      emit = presence ? set : `if (v !== 0 && v !== enumZero[${i}]) ${set}`;
    } else {
      const zero = plainScalarZero(field.type);
      if (zero !== undefined) {
        emit = presence ? `out[${k}] = v;` : `if (v !== ${zero}) out[${k}] = v;`;
      } else {
        conv[i] = scalarToJson(field.type);
        isDefault[i] = scalarIsDefault(field.type);
        emit = presence ? `out[${k}] = conv[${i}](v);` : `if (!isDefault[${i}](v)) out[${k}] = conv[${i}](v);`;
      }
    }
    return `f = ${i}; v = obj[${k}]; if (v !== undefined && v !== null) { ${emit} }`;
  });
  return compileFieldWalk(fields, code, 'out', '{}', { conv, isDefault, enumNames, enumZero });
}

/**
 * A function of a message value that runs one generated statement per field
 * on `obj`, with `result` (starting at `start`) and the helpers in scope, and
 * returns `result`; an error names the field it came from.
 */
function compileFieldWalk<T>(fields: readonly protobuf.Field[], statements: string[], result: string, start: string, helpers: Record<string, unknown>): (obj: any) => T { // eslint-disable-line @typescript-eslint/no-explicit-any
  const body = `return function (obj) {
  let ${result} = ${start}, f = -1, v;
  try {
    ${statements.join('\n    ')}
  } catch (err) {
    throw prependSegment(err, names[f]);
  }
  return ${result};
};`;
  const names = Object.keys(helpers);
  const factory = new Function(...names, 'names', 'prependSegment', body) as (...args: unknown[]) => (obj: unknown) => T;
  return factory(...names.map((n) => helpers[n]), fields.map((field) => field.name), prependSegment);
}

const toJsonCache = new Map<protobuf.Type, ToJson>();

/** The cached converter of a message type, compiled on first use (the indirection also lets types refer to themselves). */
function messageToJson(type: protobuf.Type): ToJson {
  let conv = toJsonCache.get(type);
  if (conv === undefined) {
    let compiled: ToJson | undefined;
    conv = (v) => (compiled ??= compileMessageToJson(type))(v);
    toJsonCache.set(type, conv);
  }
  return conv;
}

/**
 * Tetragon's JSON for an event-model object: protojson with proto field
 * names, zero values left out (fields with explicit presence, such as oneof
 * members, are kept), enums by name, 64-bit integers as strings, bytes in
 * base64, timestamps in RFC 3339 with 0/3/6/9 fractional digits, wrappers as
 * bare values. Fields appear in declaration order, as protojson writes them.
 */
export function toProtoJson(typeName: string, obj: object): Record<string, unknown> {
  const type = tetragonType(typeName);
  // A decoded protobufjs message keeps defaults on its prototype, which would read as set fields.
  const plain = obj instanceof protobuf.Message ? type.toObject(obj, DECODE_OPTIONS) : obj;
  try {
    return messageToJson(type)(plain) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof JsonPathError) throw new Error(`${joinPath(err.segments) || type.name}: ${err.reason}`);
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Event model -> Tetragon JSON text

type ToJsonText = (v: any) => string; // eslint-disable-line @typescript-eslint/no-explicit-any
/** The members of an object's text, comma-joined without braces ('' for none). */
type ToMembersText = ToJsonText;

/** JSON.stringify of a value of a plain type (string, bool, 32-bit number), with numbers written without the generic walk. */
function plainText(v: unknown): string {
  if (typeof v === 'number') return Number.isFinite(v) ? `${v}` : 'null';
  return JSON.stringify(v) ?? 'null';
}

/** The text of one value of the field's element type (no default check). */
function valueToJsonText(field: protobuf.Field): ToJsonText {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageToJsonText(resolved);
  if (resolved instanceof protobuf.Enum) {
    const names = resolved.valuesById;
    return (v) => plainText(typeof v === 'number' ? (names[v] ?? v) : v);
  }
  const conv = scalarToJson(field.type);
  return (v) => plainText(conv(v));
}

/** The text of a whole repeated or map field; undefined when it is empty (left out). */
function collectionToJsonText(field: protobuf.Field): (v: any) => string | undefined { // eslint-disable-line @typescript-eslint/no-explicit-any
  const text = valueToJsonText(field);
  if (field instanceof protobuf.MapField) {
    return (v: Record<string, unknown>) => {
      const keys = Object.keys(v);
      if (keys.length === 0) return undefined;
      let out = '';
      for (const k of keys) {
        if (v[k] === undefined) continue;
        try { out = joinMembers(out, `${JSON.stringify(k)}:${text(v[k])}`); } catch (err) { throw prependSegment(err, `[${JSON.stringify(k)}]`); }
      }
      return `{${out}}`;
    };
  }
  return (v: unknown[]) => {
    const n = v.length;
    if (n === 0) return undefined;
    let out = '';
    for (let i = 0; i < n; i++) {
      try { out += `${i === 0 ? '' : ','}${v[i] === undefined || v[i] === null ? 'null' : text(v[i])}`; } catch (err) { throw prependSegment(err, `[${i}]`); }
    }
    return `[${out}]`;
  };
}

/**
 * Generates the writer of some fields of a message type as straight-line
 * code: one statement per field, appending `"name":value` to the text
 * directly, without the object form messageToJson builds. Its text is the
 * members of JSON.stringify(messageToJson(type)(v)) for those fields, in
 * the same order (test/unit/tetragon-proto.test.ts compares them).
 */
function compileMembersText(fields: readonly protobuf.Field[]): ToMembersText {
  const text: ((v: any) => string | undefined)[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  const isDefault: (((v: unknown) => boolean) | undefined)[] = [];
  const enumTexts: (Record<number, string> | undefined)[] = [];
  const enumZero: (string | undefined)[] = [];
  const code = fields.map((field, i) => {
    const key = JSON.stringify(`${JSON.stringify(field.name)}:`);
    const append = (value: string): string => `s += (s === "" ? "" : ",") + ${key} + ${value};`;
    const presence = hasPresence(field);
    const resolved = field.resolvedType;
    let emit: string;
    if (field.repeated || field instanceof protobuf.MapField) {
      text[i] = collectionToJsonText(field);
      emit = `v = text[${i}](v); if (v !== undefined) ${append('v')}`;
    } else if (resolved instanceof protobuf.Type) {
      const valueType = WRAPPERS.has(resolved.fullName) ? resolved.fields.value.type : '';
      const zero = plainScalarZero(valueType);
      if (zero !== undefined) {
        // Wrappers of plain scalars (UInt32Value, BoolValue, ...) are written as the bare value.
        emit = `v = v.value; ${append(`(v === undefined || v === null ? ${JSON.stringify(zero)} : plainText(v))`)}`;
      } else {
        text[i] = messageToJsonText(resolved);
        emit = append(`text[${i}](v)`);
      }
    } else if (resolved instanceof protobuf.Enum) {
      enumTexts[i] = Object.fromEntries(Object.entries(resolved.valuesById).map(([n, name]) => [n, JSON.stringify(name)]));
      enumZero[i] = resolved.valuesById[0];
      const set = append(`((typeof v === "number" ? enumTexts[${i}][v] : undefined) ?? plainText(v))`);
      emit = presence ? set : `if (v !== 0 && v !== enumZero[${i}]) ${set}`;
    } else {
      const zero = plainScalarZero(field.type);
      if (zero !== undefined) {
        emit = presence ? append('plainText(v)') : `if (v !== ${zero}) ${append('plainText(v)')}`;
      } else {
        const conv = scalarToJson(field.type);
        text[i] = (v) => plainText(conv(v));
        isDefault[i] = scalarIsDefault(field.type);
        emit = presence ? append(`text[${i}](v)`) : `if (!isDefault[${i}](v)) ${append(`text[${i}](v)`)}`;
      }
    }
    return `f = ${i}; v = obj[${JSON.stringify(field.name)}]; if (v !== undefined && v !== null) { ${emit} }`;
  });
  return compileFieldWalk(fields, code, 's', '""', { text, isDefault, enumTexts, enumZero, plainText });
}

const toJsonTextCache = new Map<protobuf.Type, ToJsonText>();

/**
 * Makes a text that is kept and written into many lines flat, in place, and
 * returns it. Text made with `+` is a rope of its small pieces, and V8 walks
 * all of a rope each time a string that holds it is made flat (the JSON
 * exporter's join of its lines): a kept process text cost each line that
 * held it ~1.7 µs so. Reading a character of a rope makes V8 flatten it where
 * it is (once, ~1.5 µs). That is the engine's behaviour, not the language's:
 * were it to change, only the speed would.
 */
export function flatText(text: string): string {
  void text.charCodeAt(0);
  return text;
}

/**
 * The cached text writer of a message type, compiled on first use (the
 * indirection lets types refer to themselves): the text JSON.stringify gives
 * of messageToJson(type)(v). A frozen shared value's text is kept by the
 * value; a Process snapshot reuses its fixed form's text (withFixedForm).
 */
function messageToJsonText(type: protobuf.Type): ToJsonText {
  let conv = toJsonTextCache.get(type);
  if (conv !== undefined) return conv;
  let compiled: ToJsonText | undefined;
  const compile = (): ToJsonText => {
    const special = SPECIAL_TO_JSON.get(type.fullName) ?? (WRAPPERS.has(type.fullName) ? wrapperToJson(type) : undefined);
    if (special !== undefined) return (v) => JSON.stringify(special(v));
    const members = compileMembersText(type.fieldsArray);
    const whole: ToJsonText = (v) => `{${members(v)}}`;
    if (type.fullName === '.tetragon.Process') return withFixedForm(type, whole);
    if (!SHARED_MESSAGE_TYPES.has(type.fullName)) return whole;
    const kept = keptBy((v: object) => flatText(whole(v)));
    return (v) => (Object.isFrozen(v) ? kept(v) : whole(v));
  };
  conv = (v) => (compiled ??= compile())(v);
  toJsonTextCache.set(type, conv);
  return conv;
}

/** The members of a JSON object's text, without its braces: what is joined with others into one object. */
export const jsonObjectMembers = (text: string): string => text.slice(1, -1);

/** Two runs of members as one ('' stands for none). */
const joinMembers = (a: string, b: string): string => (a === '' ? b : b === '' ? a : `${a},${b}`);

/**
 * Process text for snapshots of the process cache (process-forms.ts): the
 * text of the runs of fixed fields between the moment fields is made once
 * per fixed object, and each snapshot's moment fields are written between
 * them, so the text is the one `whole` gives the snapshot. Anything else is
 * `whole`'s.
 */
function withFixedForm(type: protobuf.Type, whole: ToJsonText): ToJsonText {
  const runs: protobuf.Field[][] = [[]];
  const moments: ToMembersText[] = [];
  for (const f of type.fieldsArray) {
    if (MOMENT_FIELDS.has(f.name)) {
      moments.push(compileMembersText([f]));
      runs.push([]);
    } else {
      runs[runs.length - 1]!.push(f);
    }
  }
  const runTexts = runs.map((fields) => compileMembersText(fields));
  const kept = keptBy((fixed: object) => runTexts.map((run) => flatText(run(fixed))));
  return (v) => {
    const fixed = fixedFormOf(v);
    if (fixed === undefined || momentFields(v, fixed) === undefined) return whole(v);
    const texts = kept(fixed);
    let out = '';
    for (let i = 0; i < texts.length; i++) {
      out = joinMembers(out, texts[i]!);
      if (i < moments.length) out = joinMembers(out, moments[i]!(v));
    }
    return `{${out}}`;
  };
}

/**
 * JSON.stringify(toProtoJson(typeName, obj)), written as text directly, with
 * the text of the values the process cache shares made once (a JSON line is
 * the exporters' hottest work). A value that cannot be converted throws as
 * toProtoJson does, naming its field.
 */
export function toProtoJsonText(typeName: string, obj: object): string {
  if (obj instanceof protobuf.Message) return JSON.stringify(toProtoJson(typeName, obj));
  try {
    return messageToJsonText(tetragonType(typeName))(obj);
  } catch {
    return JSON.stringify(toProtoJson(typeName, obj)); // throws, naming the field
  }
}

// ---------------------------------------------------------------------------
// Tetragon JSON -> event model

type FromJson = (json: unknown, path: string) => unknown;

function fail(path: string, reason: string): never {
  throw new Error(`${path}: ${reason}`);
}

function describe(json: unknown): string {
  if (json === null) return 'null';
  if (Array.isArray(json)) return 'an array';
  return typeof json === 'object' ? 'an object' : JSON.stringify(json);
}

const NUMBER_TEXT = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** A JSON number, or a string holding one (protojson accepts both for numeric fields). */
function jsonNumber(json: unknown, path: string): number {
  if (typeof json === 'number') return json;
  if (typeof json === 'string' && NUMBER_TEXT.test(json)) return Number(json);
  return fail(path, `expected a number, got ${describe(json)}`);
}

function int32FromJson(range: [number, number]): FromJson {
  return (json, path) => {
    const n = jsonNumber(json, path);
    if (!Number.isInteger(n)) fail(path, `expected an integer, got ${describe(json)}`);
    if (n < range[0] || n > range[1]) fail(path, `${n} is out of range`);
    return n;
  };
}

function longFromJson(unsigned: boolean): FromJson {
  const min = unsigned ? 0n : -(2n ** 63n);
  const max = unsigned ? 2n ** 64n - 1n : 2n ** 63n - 1n;
  return (json, path) => {
    const n = jsonNumber(json, path);
    if (!Number.isInteger(n)) fail(path, `expected an integer, got ${describe(json)}`);
    // The text keeps digits a double would round away, for the range check.
    const big = typeof json === 'string' && /^-?\d+$/.test(json) ? BigInt(json) : BigInt(n);
    if (big < min || big > max) fail(path, `${String(json)} is out of range`);
    // Past 2^53 a number would round (2^64-1 even to 2^64, which wraps to 0 on the wire);
    // the decimal text encodes exactly, so keep it.
    return Number.isSafeInteger(n) ? n : big.toString();
  };
}

function floatFromJson(json: unknown, path: string): number {
  if (json === 'NaN') return NaN;
  if (json === 'Infinity') return Infinity;
  if (json === '-Infinity') return -Infinity;
  return jsonNumber(json, path);
}

function bytesFromJson(json: unknown, path: string): Uint8Array {
  if (typeof json !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(json)) return fail(path, `expected base64 bytes, got ${describe(json)}`);
  return Buffer.from(json, 'base64');
}

function scalarFromJson(type: string): FromJson {
  const range = INT32_RANGE[type];
  if (range !== undefined) return int32FromJson(range);
  if (LONG_TYPES.has(type)) return longFromJson(type === 'uint64' || type === 'fixed64');
  switch (type) {
    case 'double': case 'float': return floatFromJson;
    case 'bytes': return bytesFromJson;
    case 'bool': return (json, path) => (typeof json === 'boolean' ? json : fail(path, `expected a boolean, got ${describe(json)}`));
    default: return (json, path) => (typeof json === 'string' ? json : fail(path, `expected a string, got ${describe(json)}`));
  }
}

function enumFromJson(e: protobuf.Enum): FromJson {
  return (json, path) => {
    if (typeof json === 'string') {
      const id = e.values[json];
      return id !== undefined ? id : fail(path, `unknown ${e.name} value ${JSON.stringify(json)}`);
    }
    if (typeof json === 'number' && Number.isInteger(json) && json >= -0x80000000 && json <= 0x7fffffff) return json;
    return fail(path, `expected a ${e.name} name or number, got ${describe(json)}`);
  };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

function timestampFromJson(json: unknown, path: string): { seconds: number; nanos: number } {
  const m = typeof json === 'string' ? RFC3339.exec(json) : null;
  if (m === null) return fail(path, `expected an RFC 3339 timestamp, got ${describe(json)}`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    fail(path, `invalid timestamp ${JSON.stringify(json)}`);
  }
  const offset = m[8] === undefined ? 0 : (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10]) * 60);
  const seconds = date.getTime() / 1000 - offset;
  if (seconds < TIMESTAMP_MIN || seconds > TIMESTAMP_MAX) fail(path, `timestamp out of range ${JSON.stringify(json)}`);
  return { seconds, nanos: m[7] === undefined ? 0 : Number(m[7].padEnd(9, '0')) };
}

function durationFromJson(json: unknown, path: string): { seconds: number; nanos: number } {
  const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (m === null) return fail(path, `expected a duration such as "1.5s", got ${describe(json)}`);
  const sign = m[1] === '-' ? -1 : 1;
  const seconds = Number(m[2]);
  if (seconds > DURATION_MAX) fail(path, `duration out of range ${JSON.stringify(json)}`);
  const nanos = m[3] === undefined ? 0 : Number(m[3].padEnd(9, '0'));
  // `-0` is not an integer the wire knows: write plain 0 for a zero part.
  return { seconds: seconds === 0 ? 0 : sign * seconds, nanos: nanos === 0 ? 0 : sign * nanos };
}

function fieldMaskFromJson(json: unknown, path: string): { paths: string[] } {
  if (typeof json !== 'string') return fail(path, `expected a comma-separated field mask, got ${describe(json)}`);
  if (json === '') return { paths: [] };
  return {
    paths: json.split(',').map((p) => {
      if (p.includes('_')) fail(path, `field mask path ${JSON.stringify(p)} must be lowerCamelCase in JSON`);
      return p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    }),
  };
}

function anyFromJson(json: unknown, path: string): { type_url: string; value: Uint8Array } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail(path, `expected an object, got ${describe(json)}`);
  const { '@type': url, ...rest } = json as Record<string, unknown>;
  if (typeof url !== 'string') return fail(path, 'an Any needs a string "@type"');
  let type: protobuf.Type;
  try { type = typeFromUrl(url); } catch (err) { return fail(`${path}["@type"]`, (err as Error).message); }
  const inner = messageFromJson(type)(hasScalarJson(type) ? rest.value : rest, path);
  return { type_url: url, value: type.encode(inner as object).finish() };
}

const SPECIAL_FROM_JSON = new Map<string, FromJson>([
  ['.google.protobuf.Timestamp', timestampFromJson],
  ['.google.protobuf.Duration', durationFromJson],
  ['.google.protobuf.FieldMask', fieldMaskFromJson],
  ['.google.protobuf.Any', anyFromJson],
]);

function valueFromJson(field: protobuf.Field): FromJson {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) return enumFromJson(resolved);
  if (resolved instanceof protobuf.Type) return messageFromJson(resolved);
  return scalarFromJson(field.type);
}

function mapKeyFromJson(keyType: string): (key: string, path: string) => string | number | boolean {
  if (keyType === 'string') return (key) => key;
  if (keyType === 'bool') return (key, path) => (key === 'true' ? true : key === 'false' ? false : fail(path, `invalid bool map key ${JSON.stringify(key)}`));
  const conv = scalarFromJson(keyType);
  return (key, path) => conv(key, path) as number;
}

interface FieldParser { name: string; oneof: string | undefined; parse: FromJson }

function compileFieldFromJson(field: protobuf.Field): FromJson {
  const conv = valueFromJson(field);
  if (field instanceof protobuf.MapField) {
    const keyConv = mapKeyFromJson(field.keyType);
    return (json, path) => {
      if (typeof json !== 'object' || Array.isArray(json)) return fail(path, `expected an object, got ${describe(json)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(json as object)) {
        const p = `${path}[${JSON.stringify(k)}]`;
        out[String(keyConv(k, p))] = conv(v, p);
      }
      return out;
    };
  }
  if (field.repeated) {
    return (json, path) => {
      if (!Array.isArray(json)) return fail(path, `expected an array, got ${describe(json)}`);
      return json.map((v, i) => (v === null ? fail(`${path}[${i}]`, 'null is not allowed in a list') : conv(v, `${path}[${i}]`)));
    };
  }
  return conv;
}

function wrapperFromJson(type: protobuf.Type): FromJson {
  const conv = scalarFromJson(type.fields.value.type);
  return (json, path) => ({ value: conv(json, path) });
}

function compileMessageFromJson(type: protobuf.Type): FromJson {
  const special = SPECIAL_FROM_JSON.get(type.fullName);
  if (special !== undefined) return special;
  if (WRAPPERS.has(type.fullName)) return wrapperFromJson(type);
  const byName = new Map<string, FieldParser>();
  for (const field of type.fieldsArray) {
    const parser: FieldParser = { name: field.name, oneof: field.partOf?.name, parse: compileFieldFromJson(field) };
    byName.set(field.name, parser);
    byName.set(jsonName(field.name), parser);
  }
  return (json, path) => {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail(path || type.name, `expected an object, got ${describe(json)}`);
    const out: Record<string, unknown> = {};
    const oneofs = new Map<string, string>();
    for (const [key, value] of Object.entries(json)) {
      const parser = byName.get(key);
      const fieldPath = path === '' ? (parser?.name ?? key) : `${path}.${parser?.name ?? key}`;
      if (parser === undefined) fail(path || type.name, `unknown field ${JSON.stringify(key)}`);
      if (parser.name in out) fail(fieldPath, 'field given twice');
      if (value === null) continue;
      if (parser.oneof !== undefined) {
        const other = oneofs.get(parser.oneof);
        if (other !== undefined) fail(fieldPath, `oneof ${parser.oneof} already set by ${other}`);
        oneofs.set(parser.oneof, parser.name);
      }
      out[parser.name] = parser.parse(value, fieldPath);
    }
    return out;
  };
}

const fromJsonCache = new Map<protobuf.Type, FromJson>();

function messageFromJson(type: protobuf.Type): FromJson {
  let conv = fromJsonCache.get(type);
  if (conv === undefined) {
    let compiled: FromJson | undefined;
    conv = (json, path) => (compiled ??= compileMessageFromJson(type))(json, path);
    fromJsonCache.set(type, conv);
  }
  return conv;
}

/**
 * Parses Tetragon's JSON (proto or lowerCamelCase field names, as protojson
 * accepts) into an event-model object. Unknown fields and bad values throw an
 * Error whose message starts with the field path, e.g.
 * `process_exec.process.pid: expected a number, got "x"`.
 */
export function fromProtoJson<T = Record<string, unknown>>(typeName: string, json: unknown): T {
  return messageFromJson(tetragonType(typeName))(json, '') as T;
}

// ---------------------------------------------------------------------------
// gRPC

const serviceDefinitions = new Map<string, grpc.ServiceDefinition>();

function serializer(typeName: string): (value: unknown) => Buffer {
  const type = tetragonType(typeName);
  // Bytes are taken as an already-encoded message: that is how one encoding serves every subscriber.
  return (value) => toBuffer(value instanceof Uint8Array ? value : type.encode(value as object).finish());
}

function deserializer(typeName: string): (bytes: Buffer) => unknown {
  return (bytes) => decodeMessage(typeName, bytes);
}

/**
 * tetragon.FineGuidanceSensors for @grpc/grpc-js, one entry per rpc (keyed by
 * its proto name, originalName in lowerCamelCase). Messages travel in the
 * event-model shape; any serializer also accepts a Uint8Array/Buffer holding
 * the encoded message and sends it unchanged.
 */
export function fineGuidanceSensorsDefinition(): grpc.ServiceDefinition {
  return grpcServiceDefinition('tetragon.FineGuidanceSensors');
}

/** The gRPC definition of any service of proto/ (e.g. 'vigil.v1.SensorControlService'), built once. */
export function grpcServiceDefinition(serviceName: string): grpc.ServiceDefinition {
  let cached = serviceDefinitions.get(serviceName);
  if (cached === undefined) {
    const service = tetragonRoot.lookupService(serviceName);
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const method of service.methodsArray) {
      method.resolve();
      const request = method.resolvedRequestType!.fullName;
      const response = method.resolvedResponseType!.fullName;
      definition[method.name] = {
        path: `/${serviceName}/${method.name}`,
        requestStream: method.requestStream === true,
        responseStream: method.responseStream === true,
        requestSerialize: serializer(request),
        requestDeserialize: deserializer(request),
        responseSerialize: serializer(response),
        responseDeserialize: deserializer(response),
        originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
      };
    }
    cached = definition;
    serviceDefinitions.set(serviceName, cached);
  }
  return cached;
}
