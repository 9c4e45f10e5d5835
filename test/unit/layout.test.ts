/** Record layouts come from BTF: nested members flatten to dotted paths; mismatches are named. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { StructLayout } from '../../services/sensor/kernel/layout.js';
import type { BtfStruct } from '../../services/sensor/kernel/addon.js';
import { pathFromLeafFirst, splitNulStrings } from '../../services/sensor/kernel/records.js';
import { argumentsString, capabilityList, execId } from '../../services/sensor/identity.js';

const structs: Record<string, BtfStruct> = {
  outer: { size: 24, members: [{ name: 'kind', offset: 0, size: 4, type: 'u32' }, { name: 'inner', offset: 8, size: 16, type: 'struct inner' }] },
  inner: { size: 16, members: [{ name: 'a', offset: 0, size: 8, type: 'u64' }, { name: 'b', offset: 8, size: 4, type: 'u32' }] },
};
const btf = (name: string): BtfStruct => {
  const s = structs[name];
  if (!s) throw new Error(`no struct ${name}`);
  return s;
};

test('nested members are addressed by dotted paths with absolute offsets', () => {
  const layout = new StructLayout('outer', btf);
  assert.equal(layout.size, 24);
  assert.equal(layout.offset('inner.b', 4), 16);
  assert.equal(layout.offset('inner.a'), 8);
});

test('a missing field or a size mismatch names the struct and the field', () => {
  const layout = new StructLayout('outer', btf);
  assert.throws(() => layout.offset('inner.c'), /struct outer has no field inner\.c/);
  assert.throws(() => layout.offset('inner.b', 8), /outer\.inner\.b is 4 bytes, expected 8/);
});

test('packed strings and leaf-first paths', () => {
  const buf = Buffer.from('ls\0bin\0usr\0');
  assert.deepEqual(splitNulStrings(buf, 0, buf.length), ['ls', 'bin', 'usr']);
  assert.equal(pathFromLeafFirst(['ls', 'bin', 'usr']), '/usr/bin/ls');
  assert.equal(pathFromLeafFirst([]), '/');
});

test('identity helpers', () => {
  assert.deepEqual(capabilityList((1n << 21n) | 1n), [0, 21]);
  assert.deepEqual(capabilityList((1n << 63n) | (1n << 40n) | (1n << 32n) | (1n << 31n)), [31, 32, 40, 63]);
  assert.deepEqual(capabilityList((1n << 41n) - 1n), Array.from({ length: 41 }, (_, i) => i));
  assert.deepEqual(capabilityList(0n), []);
  assert.equal(argumentsString(['x', 'a b', 'say "hi"', 'plain']), '"a b" "say \\"hi\\"" plain');
  assert.equal(Buffer.from(execId('node', 123n, 7), 'base64').toString(), 'node:123:7');
});
