/** USDT argument locations as <sys/sdt.h> writes them, read for x86-64 (services/enforcer/compiler/usdt-notes.ts). */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseUsdtArgument, readUsdtProbes } from '../../services/enforcer/compiler/usdt-notes.js';
import { PROBE } from '../support/policy.js';

test('USDT argument locations: registers of every width, constants, memory at a register; the rest refused by name', () => {
  assert.deepEqual(parseUsdtArgument('-4@%edi'), { size: 4, signed: true, location: { kind: 'register', register: 14 } });
  assert.deepEqual(parseUsdtArgument('8@%rax'), { size: 8, signed: false, location: { kind: 'register', register: 10 } });
  assert.deepEqual(parseUsdtArgument('1@%r9b'), { size: 1, signed: false, location: { kind: 'register', register: 8 } });
  assert.deepEqual(parseUsdtArgument('4@$42'), { size: 4, signed: false, location: { kind: 'constant', value: 42 } });
  assert.deepEqual(parseUsdtArgument('-8@-16(%rbp)'), { size: 8, signed: true, location: { kind: 'memory', register: 4, displacement: -16 } });
  assert.deepEqual(parseUsdtArgument('8@(%rsp)'), { size: 8, signed: false, location: { kind: 'memory', register: 19, displacement: 0 } });
  assert.equal(parseUsdtArgument('8@%xmm0'), 'argument "8@%xmm0": unknown register %xmm0');
  assert.equal(parseUsdtArgument('3@%rax'), 'argument "3@%rax" is not SIZE@LOCATION');
  assert.equal(parseUsdtArgument('8@8(%rax,%rbx,2)'), 'argument "8@8(%rax,%rbx,2)": the location "8(%rax,%rbx,2)" is not a register, a constant or a register plus displacement');
});

test('USDT notes are read at offsets, never the whole file: a 3 GiB binary reads as its first part does; a truncated or non-regular file is refused by name', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-usdt-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const probes = readUsdtProbes(PROBE);
  assert.deepEqual(probes.map((p) => `${p.provider}:${p.name}/${p.args.length}`), ['vigil:tick/2'], 'the probe fixture\'s one USDT probe');
  assert.ok(probes[0]!.offset > 0);
  // Past what one Buffer holds (readFileSync refuses a file over 2 GiB); sparse, so it takes no disk.
  const huge = path.join(dir, 'huge');
  fs.copyFileSync(PROBE, huge);
  fs.truncateSync(huge, 3 * 2 ** 30);
  assert.deepEqual(readUsdtProbes(huge), probes);
  const truncated = path.join(dir, 'truncated');
  fs.writeFileSync(truncated, fs.readFileSync(PROBE).subarray(0, 64));
  assert.throws(() => readUsdtProbes(truncated), { message: new RegExp(`^${truncated} is a truncated ELF file \\(\\d+ bytes at offset \\d+ are past its end\\)$`) });
  assert.throws(() => readUsdtProbes('/dev/zero'), { message: '/dev/zero is not a regular file' });
  const text = path.join(dir, 'text');
  fs.writeFileSync(text, '#!/bin/sh\n'.repeat(10));
  assert.throws(() => readUsdtProbes(text), { message: `${text} is not a 64-bit little-endian ELF file` });
});
