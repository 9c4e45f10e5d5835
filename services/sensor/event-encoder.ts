/**
 * Encodes the sensor's events once each, reusing the encoding of what does
 * not change between the events of one process image.
 *
 * Most of an event's bytes are its Process messages (binary, arguments,
 * capabilities, namespaces, credentials), and all but a few fields of a
 * process are fixed at its exec: the process cache keeps them in one object
 * per image and gives each event a shallow copy with the fields of the moment
 * (lib/process-forms.ts). The fixed object's encoding is
 * kept here (a WeakMap, gone with the image), and an event's Process is that
 * encoding followed by the changed fields: protobuf readers take the last
 * value of a scalar and merge a message field into the one before, which is
 * what the changed fields mean as long as the earlier one is absent (`pod`)
 * or is replaced whole by a non-zero value (`tid`'s wrapper). Anything else
 * that differs is encoded whole. Within a fixed form, the capabilities,
 * namespaces and credentials are values the cache shares between processes
 * (frozen): each such value's encoding is kept too and copied in after the
 * other fields, so a new process costs no encoding of its 80-odd capability
 * numbers (field order does not matter to protobuf readers).
 * test/unit/event-encoder.test.ts decodes both ways and compares.
 */
import protobuf from 'protobufjs';
import type { EventType, GetEventsResponse, Process } from '../lib/event-model.js';
import { fixedFormOf, keptBy, momentFields, SHARED_MESSAGE_TYPES } from '../lib/process-forms.js';
import { tetragonType } from '../lib/tetragon-proto.js';

const LENGTH_DELIMITED = 2;
type Fields = Record<string, unknown>;

export class EventEncoder {
  private readonly fixedBytes = keptBy((fixed: Process) => this.fixedFormBytes(fixed));
  private readonly response = tetragonType('GetEventsResponse');
  private readonly process = tetragonType('Process');
  private readonly sharedFields = this.process.fieldsArray.filter((f) => f.resolvedType !== null && SHARED_MESSAGE_TYPES.has(f.resolvedType.fullName));
  private readonly withoutShared = copierWithout(this.process, new Set(this.sharedFields.map((f) => f.name)));
  /** Each shared field's encoder of a value: a frozen (shared) value's bytes kept. */
  private readonly sharedEncoders = new Map(this.sharedFields.map((f) => {
    const type = f.resolvedType as protobuf.Type;
    const encode = (value: object): Uint8Array => type.encode(value).finish();
    const kept = keptBy(encode);
    return [f, (value: object) => (Object.isFrozen(value) ? kept(value) : encode(value))] as const;
  }));
  /** The event's own fields (node, time …) without its payload; then each payload type's fields but its processes. */
  private readonly envelopeOf = copierWithout(this.response, new Set(this.response.oneofs.event!.oneof));
  private readonly payloadCopiers = new Map<protobuf.Type, (v: Fields) => Fields>();

  encode(type: EventType, event: GetEventsResponse): Uint8Array {
    const field = this.response.fields[type]!;
    const payloadType = field.resolvedType as protobuf.Type;
    const payload = event[type] as (Fields & { process?: Process; parent?: Process }) | undefined;
    if (payload === undefined) return this.response.encode(event).finish();
    let rest = this.payloadCopiers.get(payloadType);
    if (rest === undefined) this.payloadCopiers.set(payloadType, (rest = copierWithout(payloadType, new Set(['process', 'parent']))));
    // One writer: the envelope's fields, then the payload's as a length-delimited field, its processes spliced in.
    const writer = this.response.encode(this.envelopeOf(event as unknown as Fields));
    writer.uint32(tag(field.id)).fork();
    payloadType.encode(rest(payload), writer);
    for (const key of ['process', 'parent'] as const) {
      const p = payload[key];
      if (p !== undefined) writer.uint32(tag(payloadType.fields[key]!.id)).bytes(this.processBytes(p));
    }
    return writer.ldelim().finish();
  }

  private processBytes(snapshot: Process): Uint8Array {
    const fixed = fixedFormOf(snapshot);
    if (fixed === undefined) return this.process.encode(snapshot).finish();
    const changed = momentFields(snapshot, fixed);
    if (changed === undefined) return this.process.encode(snapshot).finish();
    const bytes = this.fixedBytes(fixed);
    if (Object.keys(changed).length === 0) return bytes;
    const tail = this.process.encode(changed).finish();
    const out = new Uint8Array(bytes.length + tail.length);
    out.set(bytes);
    out.set(tail, bytes.length);
    return out;
  }

  /** A fixed form's fields, its shared values' kept encodings last. */
  private fixedFormBytes(fixed: Process): Uint8Array {
    const writer = this.process.encode(this.withoutShared(fixed as unknown as Fields));
    for (const field of this.sharedFields) {
      const value = (fixed as unknown as Fields)[field.name];
      if (value !== undefined && value !== null) writer.uint32(tag(field.id)).bytes(this.sharedEncoders.get(field)!(value as object));
    }
    return writer.finish();
  }
}

const tag = (id: number): number => ((id << 3) | LENGTH_DELIMITED) >>> 0;

/**
 * A copy of a message value with all its fields but `left`, made by
 * generated code with constant names, so every copy of a type has one shape
 * (a spread with a field set to undefined is a megamorphic clone per event).
 */
function copierWithout(type: protobuf.Type, left: ReadonlySet<string>): (v: Fields) => Fields {
  const names = type.fieldsArray.map((f) => f.name).filter((name) => !left.has(name));
  return new Function('v', `return { ${names.map((n) => `${JSON.stringify(n)}: v[${JSON.stringify(n)}]`).join(', ')} };`) as (v: Fields) => Fields;
}
