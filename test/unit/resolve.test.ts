/**
 * Tetragon's `resolve`: paths of struct fields read off the running kernel's
 * BTF (/sys/kernel/btf/vmlinux, readable without root), and how the compiler
 * serves them (a typed tracepoint) or refuses them naming the field.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadPolicyText } from '../../services/enforcer/index.js';
import { KernelBtf } from '../../services/enforcer/compiler/kernel-btf.js';
import { fakeCompileEnv, policyWithHooks } from '../support/policy-control.js';

const btf = KernelBtf.vmlinux();

test('a path through pointers loads each pointer and ends at the field', () => {
  const comm = btf.resolve('linux_binprm', 'mm.owner.real_parent.real_parent.comm', true);
  assert.equal(comm.derefs.length, 4, 'mm, owner, real_parent, real_parent');
  assert.equal(comm.size, 0, 'a char array: its address is the string');
  const parent = btf.resolve('linux_binprm', 'mm.owner.real_parent.comm', true);
  assert.deepEqual(parent.derefs, comm.derefs.slice(0, 3), 'the same first three pointers');
  assert.equal(parent.derefs[2], comm.derefs[3], 'real_parent is at the same offset in each task');
  assert.equal(parent.offset, comm.offset);
  const filename = btf.resolve('linux_binprm', 'filename', true);
  assert.equal(filename.derefs.length, 1, 'a char pointer is loaded, then read as the string');
  assert.equal(filename.offset, 0);
  const pid = btf.resolve('linux_binprm', 'mm.owner.pid', false);
  assert.deepEqual([pid.size, pid.signed], [4, true], 'pid_t');
});

test('a path that cannot be followed is refused naming the component', () => {
  assert.throws(() => btf.resolve('linux_binprm', 'mm.nosuch', true), /^Error: struct linux_binprm\.mm has no field nosuch$/);
  assert.throws(() => btf.resolve('linux_binprm', 'argc.x', false), /linux_binprm\.argc is neither a struct nor a pointer to one/);
  assert.throws(() => btf.resolve('linux_binprm', 'argc', true), /linux_binprm\.argc is not a char array or a char pointer/);
  assert.throws(() => btf.resolve('linux_binprm', 'mm[0]', true), /"mm\[0\]" is not a field name/);
  assert.throws(() => btf.resolve('no_such_struct', 'x', true), /has no struct no_such_struct/);
});

test("the library's lsm_track_grandparent compiles to the typed sched_prepare_exec program", () => {
  const text = fs.readFileSync(path.resolve('..', 'shared', 'tetragon-library', 'lsm_track_grandparent.yml'), 'utf8');
  const [hook] = loadPolicyText(text, fakeCompileEnv())[0]!.program.hooks;
  assert.deepEqual(hook!.attach, { kind: 'tracepoint', subsystem: 'sched', event: 'sched_prepare_exec', btf: true });
  assert.equal(hook!.kind, 'lsm');
  assert.equal(hook!.args[0]!.type, 'string');
  const source = hook!.args[0]!.source;
  assert.ok(source.kind === 'btf_arg' && source.index === 1 && source.field?.derefs.length === 4, JSON.stringify(source));
});

test('resolve where the kernel object is not at hand, or on a missing field, is refused at its field', () => {
  const hook = (args: string): string => policyWithHooks('r', [`  - call: fd_install\n    syscall: false\n    args:\n${args}`]);
  assert.throws(() => loadPolicyText(hook('    - index: 1\n      type: string\n      resolve: f_path.dentry.d_name.name\n'), fakeCompileEnv()),
    /spec\.kprobes\[0\]\.args\[0\]\.resolve: resolve reads fields of the kernel object fd_install is given, .*resolve is served on .*security_bprm_check/);
  const lsm = (args: string): string => `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: l\nspec:\n  lsmhooks:\n  - hook: bprm_check_security\n    args:\n${args}`;
  assert.throws(() => loadPolicyText(lsm('    - index: 0\n      type: string\n      resolve: mm.nosuch\n'), fakeCompileEnv()),
    /spec\.lsmhooks\[0\]\.args\[0\]\.resolve: struct linux_binprm\.mm has no field nosuch \(from bprm_check_security's argument 0, a struct linux_binprm\)/);
  assert.throws(() => loadPolicyText(lsm('    - index: 0\n      type: file\n      resolve: file\n'), fakeCompileEnv()),
    /spec\.lsmhooks\[0\]\.args\[0\]\.type: a resolved field is read as string, int/);
  const older = { ...fakeCompileEnv(), tracepointFormat: (): never => { throw new Error('no such tracepoint'); } };
  assert.throws(() => loadPolicyText(lsm('    - index: 0\n      type: string\n      resolve: mm.owner.comm\n'), older),
    /spec\.lsmhooks\[0\]\.args: resolve on bprm_check_security needs the tracepoint sched:sched_prepare_exec, which this kernel does not have/);
});
