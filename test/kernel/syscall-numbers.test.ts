/**
 * The syscall numbers Vigil knows beyond the UAPI header (env.ts
 * X86_64_UNNAMED_SYSCALLS) against this kernel: each number, called, must
 * reach the syscalls:sys_enter_<name> tracepoint, which the kernel routes by
 * its own table (Vigil's tracepoint hooks attach there, not by number).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { X86_64_UNNAMED_SYSCALLS } from '../../services/enforcer/index.js';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { policyEvents, policyYaml, run, scratch, withPolicy } from '../support/policy.js';

let h: SensorHarness;
test.before(() => { h = startSensor('syscall-numbers'); });
test.after(() => { h.stop(); fs.rmSync(scratch, { recursive: true, force: true }); });

const PYTHON = execFileSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' }).trim();

test('each number Vigil adds to the header\'s reaches the tracepoint of its name', async () => {
  const names = Object.keys(X86_64_UNNAMED_SYSCALLS).filter((n) => fs.existsSync(`/sys/kernel/tracing/events/syscalls/sys_enter_${n}`));
  assert.ok(names.length >= 20, `tracepoints found: ${names.join(', ')}`);
  const yaml = policyYaml('syscall-numbers', {
    tracepoints: names.map((n) => ({ subsystem: 'syscalls', event: `sys_enter_${n}`, args: [], selectors: [{ matchBinaries: [{ operator: 'In', values: [PYTHON] }] }] })),
  });
  // Bad arguments throughout (-1): each call fails at once, and none changes anything.
  const numbers = names.map((n) => X86_64_UNNAMED_SYSCALLS[n]);
  const script = `import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfor nr in ${JSON.stringify(numbers)}: libc.syscall(nr, -1, -1, -1, -1, -1, -1)`;
  await withPolicy(h, yaml, async () => {
    const r = await run(PYTHON, ['-c', script]);
    assert.equal(r.code, 0, r.stderr);
    const seen = (await policyEvents(h, 'syscall-numbers', [r.pid])).map((e) => (e.event as string).replace(/^sys_enter_/, ''));
    assert.deepEqual([...new Set(seen)].sort(), [...names].sort());
  });
});
