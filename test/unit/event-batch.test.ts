/** The event stream's message framing (services/lib/nats/event-batch.ts) against vigil.v1.EventBatch in proto/. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { decodeEventBatch, encodeEventBatch, MalformedBatchError } from '../../services/lib/nats/event-batch.js';
import { decodeMessage, encodeMessage } from '../../services/lib/tetragon-proto.js';

/** Events whose encodings take a 1-, 2- and 3-byte length. */
const events = [10, 1_000, 40_000].map((size, i) => ({
  node_name: `node-${i}`,
  process_exec: { process: { exec_id: `id-${i}`, binary: '/usr/bin/true', arguments: 'x'.repeat(size) } },
}));
const encoded = events.map((e) => encodeMessage('tetragon.GetEventsResponse', e));

test('encodeEventBatch writes what protobufjs reads as a vigil.v1.EventBatch of the same events', () => {
  const batch = encodeEventBatch(encoded);
  assert.deepEqual(Buffer.from(batch), Buffer.from(encodeMessage('vigil.v1.EventBatch', { events })));
  const decoded = decodeMessage<{ events: unknown[] }>('vigil.v1.EventBatch', batch);
  assert.deepEqual(decoded.events, encoded.map((b) => decodeMessage('tetragon.GetEventsResponse', b)));
});

test('decodeEventBatch gives each event\'s bytes, as views of the message; an empty message has none', () => {
  const batch = encodeMessage('vigil.v1.EventBatch', { events });
  const got = decodeEventBatch(batch);
  assert.deepEqual(got.map((b) => Buffer.from(b)), encoded.map((b) => Buffer.from(b)));
  assert.equal(got[0]!.buffer, batch.buffer);
  assert.deepEqual(decodeEventBatch(new Uint8Array(0)), []);
});

test('a malformed batch is refused naming the byte where it goes wrong', () => {
  const batch = encodeEventBatch(encoded.slice(0, 2));
  const second = 2 + encoded[0]!.byteLength;
  assert.throws(() => decodeEventBatch(new Uint8Array([0x12, 0x00])), { name: 'Error', message: /^byte 0: tag 18 where an event/ });
  assert.throws(() => decodeEventBatch(batch.subarray(0, batch.length - 1)), (e: unknown) =>
    e instanceof MalformedBatchError && e.message === `byte ${second}: an event of ${encoded[1]!.byteLength} bytes with ${encoded[1]!.byteLength - 1} left`);
  assert.throws(() => decodeEventBatch(batch.subarray(0, second + 2)), { message: `byte ${second}: the event's length is cut off or too long` });
  assert.throws(() => decodeEventBatch(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), { message: 'byte 0: the event\'s length is cut off or too long' });
});
