/**
 * User stack frames from /proc/PID/maps (services/sensor/stack-symbols.ts),
 * read from a procfs laid out in a temporary directory: the read is bounded
 * and shared by the events of one pid in one turn.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAPS_MAX_BYTES, StackSymbols } from '../../services/sensor/stack-symbols.js';

const line = (start: number, file: string): string =>
  `${start.toString(16).padStart(12, '0')}-${(start + 0x1000).toString(16).padStart(12, '0')} r-xp 00002000 08:01 1234   ${file}\n`;
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('user frames: the file and offset of each address; past MAPS_MAX_BYTES of maps, bare addresses; one read per pid and turn', async (t) => {
  const procRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-proc-'));
  t.after(() => fs.rmSync(procRoot, { recursive: true, force: true }));
  fs.mkdirSync(path.join(procRoot, '42'));
  const maps = path.join(procRoot, '42', 'maps');
  // More mappings than the bound holds (vm.max_map_count allows 65,530): the last ones lie past it.
  const count = Math.ceil((2 * MAPS_MAX_BYTES) / line(0, '/usr/lib/libx.so').length);
  fs.writeFileSync(maps, Array.from({ length: count }, (_v, i) => line(0x10000 + i * 0x1000, `/usr/lib/lib${i}.so`)).join(''));
  const symbols = new StackSymbols(procRoot);
  const early = 0x10000 + 5 * 0x1000 + 0x10;
  const late = 0x10000 + (count - 1) * 0x1000 + 0x10;
  assert.deepEqual(symbols.userFrames(42, [BigInt(early), BigInt(late)]), [
    { address: early, offset: 0x2010, module: '/usr/lib/lib5.so' },
    { address: late, offset: 0 },
  ]);
  // Within the turn the maps read first serve again; the next turn reads them anew.
  fs.writeFileSync(maps, line(0x10000, '/usr/bin/changed'));
  assert.equal(symbols.userFrames(42, [0x10010n])[0]!.module, '/usr/lib/lib0.so');
  await turn();
  assert.equal(symbols.userFrames(42, [0x10010n])[0]!.module, '/usr/bin/changed');
  assert.deepEqual(symbols.userFrames(43, [0x10010n]), [{ address: 0x10010, offset: 0 }], 'a process gone');
});
