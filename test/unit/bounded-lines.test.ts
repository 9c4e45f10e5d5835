/** Lines of a stream bounded in length (services/cli/bounded-lines.ts), as `vigil events` reads stdin. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { boundedLines } from '../../services/cli/bounded-lines.js';

async function collect(chunks: string[], max: number): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for await (const line of boundedLines((async function* () { yield* chunks; })(), max)) out.push(line);
  return out;
}

test('lines split across chunks join; CRLF ends a line; the last line needs no newline', async () => {
  assert.deepEqual(await collect(['ab', 'c\nde\r', '\n\nfg'], 10), ['abc', 'de', '', 'fg']);
  assert.deepEqual(await collect(['x\n'], 10), ['x']);
  assert.deepEqual(await collect([], 10), []);
});

test('a line past the bound is null, counted in its place, and the lines after it are whole', async () => {
  assert.deepEqual(await collect(['12345\n123456\nok\n'], 5), ['12345', null, 'ok']);
  // Skipped as it streams: chunks of a long line are not kept.
  assert.deepEqual(await collect(['1234', '5678', '9'.repeat(100), '\nafter'], 5), [null, 'after']);
  assert.deepEqual(await collect(['123', '456'], 5), [null], 'a long last line without newline');
});
