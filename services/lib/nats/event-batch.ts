/**
 * vigil.v1.EventBatch (proto/vigil/v1/bus.proto), the payload of one message
 * on the event stream, framed by hand: field 1, wire type 2, then each
 * event's length and its bytes, so the sensor's bytes are copied once into
 * the message and a reader gets views of them without a decode. A unit test
 * holds this framing against the proto.
 */

const EVENTS_TAG = (1 << 3) | 2;
/** Bytes of a varint holding a uint32, at most. */
const MAX_VARINT32 = 5;

export class MalformedBatchError extends Error {}

/** The EventBatch holding `events` in order. */
export function encodeEventBatch(events: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const e of events) size += e.byteLength + 1 + MAX_VARINT32;
  const out = new Uint8Array(size);
  let at = 0;
  for (const e of events) {
    out[at++] = EVENTS_TAG;
    let n = e.byteLength;
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[at++] = n;
    out.set(e, at);
    at += e.byteLength;
  }
  return out.subarray(0, at);
}

/** The events of an EventBatch, as views into `bytes`; throws MalformedBatchError naming the offset of what is wrong. */
export function decodeEventBatch(bytes: Uint8Array): Uint8Array[] {
  const events: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes[at] !== EVENTS_TAG) throw new MalformedBatchError(`byte ${at}: tag ${bytes[at]} where an event (field 1, length-delimited) was expected`);
    const start = at++;
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= bytes.length || shift > 28) throw new MalformedBatchError(`byte ${start}: the event's length is cut off or too long`);
      const b = bytes[at++]!;
      length += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    if (at + length > bytes.length) throw new MalformedBatchError(`byte ${start}: an event of ${length} bytes with ${bytes.length - at} left`);
    events.push(bytes.subarray(at, at + length));
    at += length;
  }
  return events;
}
