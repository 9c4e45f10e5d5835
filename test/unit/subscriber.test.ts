/**
 * A subscriber's messages of one event-loop turn leave in one socket write:
 * checked on a real grpc-js server stream (the internals the Subscriber reaches
 * for are there in the grpc-js this repository pins) and by counting the
 * HTTP/2 stream's writes.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { corkableStreamOf, messageSinkOf, Subscriber } from '../../services/api/subscriber.js';

const METHOD = '/test.Stream/Events';
const identity = (b: Buffer): Buffer => b;

let server: grpc.Server;
let port: number;
let onCall: (call: grpc.ServerWritableStream<unknown, unknown>) => void;

before(async () => {
  server = new grpc.Server();
  server.register<Buffer, Buffer>(METHOD, (call: grpc.ServerWritableStream<Buffer, Buffer>) => onCall(call as grpc.ServerWritableStream<unknown, unknown>), identity, identity, 'serverStream');
  port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
});
after(() => server.forceShutdown());

/** Opens a stream; resolves with the server's side of it, and the messages the client received. */
async function openStream(): Promise<{ call: grpc.ServerWritableStream<unknown, unknown>; received: Buffer[]; close: () => void }> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const received: Buffer[] = [];
  const serverSide = new Promise<grpc.ServerWritableStream<unknown, unknown>>((resolve) => { onCall = resolve; });
  const stream = client.makeServerStreamRequest<Buffer, Buffer>(METHOD, identity, identity, Buffer.alloc(0));
  stream.on('data', (b: Buffer) => received.push(b));
  stream.on('error', () => { /* cancelled at close */ });
  const call = await serverSide;
  return { call, received, close: () => { stream.cancel(); client.close(); } };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (const start = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 5))) {
    if (Date.now() - start > 5000) throw new Error(`timed out waiting for ${what}`);
  }
}

it('reaches the message sink and the corkable HTTP/2 stream of a grpc-js server call', async () => {
  const { call, close } = await openStream();
  try {
    assert.ok(messageSinkOf(call), 'grpc-js call.call.sendMessage');
    assert.ok(corkableStreamOf(call), 'grpc-js call.call.stream with cork/uncork');
  } finally {
    close();
  }
});

it('sends the messages of one turn in one write of the HTTP/2 stream, in order, turn after turn', async () => {
  const { call, received, close } = await openStream();
  try {
    const stream = corkableStreamOf(call) as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
    const writes: number[] = [];
    const write = stream._write.bind(stream);
    const writev = stream._writev.bind(stream);
    stream._write = (...a: unknown[]) => { writes.push(1); write(...a); };
    stream._writev = (...a: unknown[]) => { writes.push((a[0] as unknown[]).length); writev(...a); };
    const subscriber = new Subscriber('s1', call, 10_000);
    for (let turn = 0; turn < 3; turn++) {
      for (let i = 0; i < 5; i++) subscriber.offer(Buffer.from([turn, i]));
      await new Promise((r) => setImmediate(r));
      await until(`turn ${turn}'s messages`, () => received.length === 5 * (turn + 1));
    }
    assert.deepEqual(writes, [5, 5, 5], 'one write of five messages a turn');
    assert.deepEqual(received.map((b) => [...b]), [0, 1, 2].flatMap((t) => [0, 1, 2, 3, 4].map((i) => [t, i])));
    assert.equal(subscriber.stats().sent, 15);
  } finally {
    close();
  }
});
