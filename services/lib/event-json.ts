/**
 * Tetragon's JSON text of an event from its protobuf bytes, as the exporters
 * write events that come from the bus. Most of an event's bytes are its
 * process and parent (Process messages), and they recur from event to event
 * of the same process: their text is kept by their bytes (a bounded table),
 * so each different encoding of a process is decoded and written once. The
 * rest of the event is decoded and written as before, and the pieces are put
 * together in declaration order: the text is toProtoJsonText's of the whole
 * decoded event (test/unit/event-json.test.ts).
 */
import protobuf from 'protobufjs';
import type { EventType, GetEventsResponse } from './event-model.js';
import { decodeMessage, flatText, jsonObjectMembers, tetragonType, toProtoJsonText } from './tetragon-proto.js';

/** Process texts kept, by the bytes they were written from; the oldest goes first. */
const KEPT_PROCESSES = 4096;
const LENGTH_DELIMITED = 2;

const processTexts = new Map<string, string>();

function processText(bytes: Uint8Array): string {
  const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let text = processTexts.get(key);
  if (text === undefined) {
    text = flatText(toProtoJsonText('tetragon.Process', decodeMessage('tetragon.Process', bytes)));
    if (processTexts.size >= KEPT_PROCESSES) processTexts.delete(processTexts.keys().next().value!);
    processTexts.set(key, text);
  }
  return text;
}

interface Field { id: number; wireType: number; start: number; end: number; dataStart: number }

/** The fields of a message's bytes, in wire order. */
function fieldsOf(bytes: Uint8Array): Field[] {
  const r = protobuf.Reader.create(bytes);
  const out: Field[] = [];
  while (r.pos < r.len) {
    const start = r.pos;
    const tag = r.uint32();
    const wireType = tag & 7;
    let dataStart = r.pos;
    if (wireType === LENGTH_DELIMITED) {
      const len = r.uint32();
      dataStart = r.pos;
      r.skip(len);
    } else {
      r.skipType(wireType);
    }
    out.push({ id: tag >>> 3, wireType, start, end: r.pos, dataStart });
  }
  return out;
}

/** fieldsOf, or undefined for bytes whose wire structure is broken. */
function fieldsOrNone(bytes: Uint8Array): Field[] | undefined {
  try {
    return fieldsOf(bytes);
  } catch {
    return undefined;
  }
}

const joined = (bytes: Uint8Array, fields: Field[]): Uint8Array => Buffer.concat(fields.map((f) => bytes.subarray(f.start, f.end)));

interface Layout { field: protobuf.Field; payload: protobuf.Type }
const layouts = new Map<EventType, Layout | null>();

/**
 * Where an event type's pieces go: its field of GetEventsResponse, preceded in
 * declaration order only by other members of its oneof (absent when it is
 * present), and a payload type that declares process and parent first; null
 * when the type is not laid out so (its events are written whole).
 */
function layoutOf(type: EventType): Layout | null {
  let layout = layouts.get(type);
  if (layout === undefined) {
    const response = tetragonType('GetEventsResponse');
    const field = response.fields[type];
    const payload = field?.resolvedType;
    const before = field ? response.fieldsArray.slice(0, response.fieldsArray.indexOf(field)) : [];
    layout = field && payload instanceof protobuf.Type && field.partOf !== null && before.every((f) => f.partOf === field.partOf)
      && payload.fieldsArray[0]?.name === 'process' && payload.fieldsArray[1]?.name === 'parent'
      && payload.fieldsArray[0].type === 'Process' && payload.fieldsArray[1].type === 'Process'
      ? { field, payload } : null;
    layouts.set(type, layout);
  }
  return layout;
}

/** The JSON text of the event of `type` encoded in `bytes` (a GetEventsResponse); MalformedMessageError for bytes that are not one. */
export function eventJsonText(type: EventType, bytes: Uint8Array): string {
  const layout = layoutOf(type);
  const whole = (): string => toProtoJsonText('tetragon.GetEventsResponse', decodeMessage<GetEventsResponse>('tetragon.GetEventsResponse', bytes));
  if (layout === null) return whole();
  const top = fieldsOrNone(bytes);
  if (top === undefined) return whole(); // which throws, naming what is wrong
  const events = top.filter((f) => f.id === layout.field.id);
  if (events.length !== 1 || events[0]!.wireType !== LENGTH_DELIMITED) return whole();
  const payloadBytes = bytes.subarray(events[0]!.dataStart, events[0]!.end);
  const payloadFields = fieldsOrNone(payloadBytes);
  if (payloadFields === undefined) return whole();
  const [processId, parentId] = [layout.payload.fieldsArray[0]!.id, layout.payload.fieldsArray[1]!.id];
  const processes = payloadFields.filter((f) => f.id === processId);
  const parents = payloadFields.filter((f) => f.id === parentId);
  // A message field given twice is merged by decoders: leave that to the whole decode.
  if (processes.length > 1 || parents.length > 1 || [...processes, ...parents].some((f) => f.wireType !== LENGTH_DELIMITED)) return whole();
  const parts: string[] = [];
  for (const [name, f] of [['process', processes[0]], ['parent', parents[0]]] as const) {
    if (f !== undefined) parts.push(`"${name}":${processText(payloadBytes.subarray(f.dataStart, f.end))}`);
  }
  const payloadName = layout.payload.fullName.slice(1);
  const rest = jsonObjectMembers(toProtoJsonText(payloadName, decodeMessage(payloadName, joined(payloadBytes, payloadFields.filter((f) => f.id !== processId && f.id !== parentId)))));
  if (rest) parts.push(rest);
  const others = jsonObjectMembers(toProtoJsonText('tetragon.GetEventsResponse', decodeMessage('tetragon.GetEventsResponse', joined(bytes, top.filter((f) => f !== events[0])))));
  return `{"${layout.field.name}":{${parts.join(',')}}${others ? `,${others}` : ''}}`;
}
