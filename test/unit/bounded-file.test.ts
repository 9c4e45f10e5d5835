/** Bounded reads of files not ours to trust (services/lib/bounded-file.ts). */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readFileHead } from '../../services/lib/bounded-file.js';

test('readFileHead: a small file whole, a large one cut at the bound, procfs read past its size 0; no regular file refused without waiting', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bounded-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const small = path.join(dir, 'small');
  fs.writeFileSync(small, 'abc');
  assert.deepEqual(readFileHead(small, 3), { data: Buffer.from('abc'), size: 3, more: false });
  const large = path.join(dir, 'large');
  fs.writeFileSync(large, 'abcdef');
  assert.deepEqual(readFileHead(large, 4), { data: Buffer.from('abcd'), size: 6, more: true });
  const status = readFileHead('/proc/self/status', 4);
  assert.deepEqual([status.data.toString(), status.size, status.more], ['Name', 0, true]);
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => readFileHead(fifo, 4), { message: 'not a regular file' }, 'a FIFO with no writer');
  assert.throws(() => readFileHead('/dev/zero', 4), { message: 'not a regular file' });
});

test('readFileHead with anyKind: a pipe is read to its end, an endless device to the bound and one more', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bounded-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // The writer is a process of its own: this one blocks in the open until it opens its end.
  const writer = spawn('sh', ['-c', 'printf "from a pipe" > "$0"', fifo]);
  // Should the writer never open its end, this one does after 10 s: the read then ends empty and the test fails instead of hanging.
  const watchdog = spawn('sh', ['-c', 'sleep 10; exec 3> "$0"', fifo], { stdio: 'ignore', detached: true });
  t.after(() => {
    writer.kill();
    process.kill(-watchdog.pid!); // its sleep too
  });
  assert.deepEqual(readFileHead(fifo, 64, { anyKind: true }), { data: Buffer.from('from a pipe'), size: 0, more: false });
  const zero = readFileHead('/dev/zero', 4, { anyKind: true });
  assert.deepEqual([zero.data, zero.more], [Buffer.alloc(4), true]);
});
