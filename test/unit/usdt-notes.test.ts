/** USDT argument locations as <sys/sdt.h> writes them, read for x86-64 (services/enforcer/compiler/usdt-notes.ts). */
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseUsdtArgument } from '../../services/enforcer/compiler/usdt-notes.js';

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
