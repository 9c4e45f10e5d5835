/**
 * The node-wide limits of the policy tables, as the sensor meets them: a full
 * string table and a syscall that already serves VIGIL_ATTACHMENT_HOOKS
 * hooks refuse the policy naming the limit, and leave nothing behind. The
 * BPF object is read for its BTF and map shapes (no load, no root); map
 * writes go to a fake that fills up like the kernel's maps do.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicy, parsePolicyDocuments } from '../../services/enforcer/compiler/index.js';
import { ATTACHMENT_HOOKS, HookFlags } from '../../services/lib/kernel-abi.js';
import { bpfObjectPath } from '../../services/lib/paths.js';
import type { PolicyProgram } from '../../services/lib/policy-program.js';
import { PolicyLoadError } from '../../services/lib/sensor-control.js';
import { BpfObject } from '../../services/sensor/kernel/addon.js';
import { PolicyManager } from '../../services/sensor/policy-tables/manager.js';
import { StructLayout } from '../../services/sensor/kernel/layout.js';
import { fakeCompileEnv, openatArgHook, policyWithHooks } from '../support/policy-control.js';

const real = new BpfObject(bpfObjectPath('vigil'));

/** Map writes in memory; string tables hold `stringLimit` entries, then fail as the kernel does (E2BIG for hash, ENOSPC for LPM trie). */
function fakeObject(stringLimit: number): { object: BpfObject; maps: Map<string, Map<string, Buffer>>; links: Map<number, string> } {
  const maps = new Map<string, Map<string, Buffer>>();
  /** Each link: its program, and where a tracepoint link is. */
  const links = new Map<number, string>();
  let nextLink = 1;
  const table = (name: string): Map<string, Buffer> => {
    let m = maps.get(name);
    if (m === undefined) maps.set(name, (m = new Map()));
    return m;
  };
  const attach = (program: string, category?: string, name?: string): number => {
    links.set(nextLink, category === undefined ? program : `${program} ${category}/${name}`);
    return nextLink++;
  };
  const fake = {
    btfStruct: (name: string) => real.btfStruct(name),
    mapInfo: (name: string) => ({ ...real.mapInfo(name), maxEntries: name.startsWith('vigil_str_') ? stringLimit : real.mapInfo(name).maxEntries }),
    mapUpdate(name: string, key: Buffer, value: Buffer): void {
      const m = table(name);
      if (name.startsWith('vigil_str_') && !m.has(key.toString('hex')) && m.size >= stringLimit) {
        const [code, text] = name === 'vigil_str_equal' ? ['E2BIG', 'Argument list too long'] : ['ENOSPC', 'No space left on device'];
        throw Object.assign(new Error(`mapUpdate ${name}: (${text})`), { code });
      }
      m.set(key.toString('hex'), value);
    },
    mapDelete: (name: string, key: Buffer): boolean => table(name).delete(key.toString('hex')),
    mapLookup: () => null,
    attachTracepoint: attach,
    attachTarget: attach,
    detach: (link: number): void => { links.delete(link); },
  };
  return { object: fake as unknown as BpfObject, maps, links };
}

function program(name: string, operator: string, values: string[]): PolicyProgram {
  const text = policyWithHooks(name, [openatArgHook(JSON.stringify(values), operator)]);
  return compilePolicy(parsePolicyDocuments(text)[0]!, fakeCompileEnv());
}

const u32 = (n: number): string => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b.toString('hex'); };
const nonEmpty = (maps: Map<string, Map<string, Buffer>>, name: string): number => maps.get(name)?.size ?? 0;

describe('policy table limits', () => {
  for (const [operator, table, errno] of [['Prefix', 'vigil_str_prefix', 'No space left on device'], ['Equal', 'vigil_str_equal', 'Argument list too long']] as const) {
    it(`refuses ${operator} values past the node-wide ${table} naming the table and its size, leaving nothing behind`, async () => {
      const { object, maps, links } = fakeObject(10);
      const manager = new PolicyManager(object);
      await manager.loadPolicy(program('first', operator, ['/a', '/b', '/c', '/d', '/e', '/f']));
      const attached = links.size;
      const err = await manager.loadPolicy(program('second', operator, ['/g', '/h', '/i', '/j', '/k'])).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof PolicyLoadError, String(err));
      assert.match(err.message, new RegExp(`^policy second: the string table ${table} \\(.*${operator}.*\\) is full: it holds 10 entries for all policies on the node together`));
      assert.match(err.message, new RegExp(`\\(mapUpdate ${table}: \\(${errno}\\)\\)$`));
      assert.deepEqual(manager.loaded(), ['first']);
      assert.equal(nonEmpty(maps, table), 6, 'the refused policy\'s values are removed again');
      assert.equal(links.size, attached);
    });
  }

  it(`refuses a hook past ${ATTACHMENT_HOOKS} on one syscall naming the limit and what to do`, async () => {
    const { object, links } = fakeObject(16_384);
    const manager = new PolicyManager(object);
    for (let i = 0; i < ATTACHMENT_HOOKS; i++) await manager.loadPolicy(program(`p${i}`, 'Prefix', [`/p${i}`]));
    const attached = links.size;
    const err = await manager.loadPolicy(program('one-too-many', 'Prefix', ['/x'])).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PolicyLoadError, String(err));
    assert.match(err.message, new RegExp(`^policy one-too-many: vigil_sys_enter_one syscalls/sys_enter_openat already serves ${ATTACHMENT_HOOKS} hooks, `
      + 'the most one syscall, tracepoint or uprobe serves for all policies on the node together \\(VIGIL_ATTACHMENT_HOOKS\\): merge'));
    assert.equal(manager.loaded().length, ATTACHMENT_HOOKS);
    assert.equal(links.size, attached);
  });

  it('hooks on one syscall share its own tracepoints, one link per side, and each hook loaded has a serial of its own', async () => {
    const { object, maps, links } = fakeObject(16_384);
    const manager = new PolicyManager(object);
    const hookLayout = new StructLayout('vigil_hook', (name) => real.btfStruct(name));
    const serials = (): number[] => [...maps.get('vigil_hooks')?.values() ?? []].map((b) => b.readUInt32LE(hookLayout.offset('serial', 4)));
    const loadedSerials: number[] = [];
    const load = async (name: string): Promise<void> => {
      await manager.loadPolicy(program(name, 'Prefix', [`/${name}`]));
      loadedSerials.push(Math.max(...serials()));
    };
    await load('a');
    await load('b');
    assert.deepEqual([...links.values()].sort(), ['vigil_sys_enter_one syscalls/sys_enter_openat', 'vigil_sys_exit_one syscalls/sys_exit_openat']);
    const entry = maps.get('vigil_syscall_attachments')?.get(u32(257));
    assert.deepEqual([0, 4, 8, 12].map((at) => (entry?.readUInt32LE(at) ?? 0) > 0), [false, false, true, true],
      'openat found by its own programs (own_enter, own_exit), not by the raw ones (enter, exit)');
    await manager.unloadPolicy('a');
    await load('a');
    assert.equal(new Set(loadedSerials).size, 3, `serials ${loadedSerials.join(', ')}`);
    assert.ok(loadedSerials.every((x) => x > 0));
    await manager.unloadPolicy('a');
    await manager.unloadPolicy('b');
    assert.equal(links.size, 0, 'detached with the last hook on openat');
    assert.equal(maps.get('vigil_syscall_attachments')?.get(u32(257))?.equals(Buffer.alloc(16)), true, 'no route left');
  });

  it('a syscall busy processes make most is routed by number through the raw programs, one link per side for all such syscalls', async () => {
    const { object, maps, links } = fakeObject(16_384);
    const manager = new PolicyManager(object);
    const route = (nr: number): number[] => { const b = maps.get('vigil_syscall_attachments')?.get(u32(nr)); return b ? [b.readUInt32LE(0), b.readUInt32LE(4)] : [0, 0]; };
    const onFd = (name: string, call: string): PolicyProgram => compilePolicy(parsePolicyDocuments(policyWithHooks(name, [
      `  - call: ${call}\n    syscall: true\n    return: true\n    args:\n    - index: 0\n      type: int\n    returnArg:\n      index: 0\n      type: int\n`,
    ]))[0]!, fakeCompileEnv());
    await manager.loadPolicy(onFd('reads', 'sys_read'));
    await manager.loadPolicy(onFd('writes', 'sys_write'));
    assert.deepEqual([...links.values()].sort(), ['vigil_sys_enter', 'vigil_sys_exit']);
    assert.deepEqual([route(0), route(1)].map((r) => r.map((id) => id > 0)), [[true, true], [true, true]], 'read (0) and write (1), at entry and exit');
    await manager.unloadPolicy('reads');
    assert.deepEqual(route(0), [0, 0]);
    assert.equal(links.size, 2, 'write is still routed');
    await manager.unloadPolicy('writes');
    assert.equal(links.size, 0, 'detached with the last route');
    assert.deepEqual(route(1), [0, 0]);
  });

  it('a hook reading only the return value is served at the exit alone; one that reads the call\'s arguments adds the entry', async () => {
    const { object, maps, links } = fakeObject(16_384);
    const manager = new PolicyManager(object);
    const hookLayout = new StructLayout('vigil_hook', (name) => real.btfStruct(name));
    const fdInstall = compilePolicy(parsePolicyDocuments(policyWithHooks('fd', [
      '  - call: fd_install\n    syscall: false\n    args:\n    - index: 0\n      type: int\n    - index: 1\n      type: file\n',
    ]))[0]!, fakeCompileEnv());
    assert.ok(fdInstall.hooks.every((h) => h.atExit));
    const openat = (): string[] => [...links.values()].filter((l) => l.endsWith('_openat')).sort();
    await manager.loadPolicy(fdInstall);
    assert.deepEqual(openat(), ['vigil_sys_exit_one syscalls/sys_exit_openat'], 'openat served at its exit only');
    assert.ok([...links.values()].every((l) => l.startsWith('vigil_sys_exit_one syscalls/sys_exit_')), 'every fd-returning syscall the environment has, at its exit');
    const flags = [...maps.get('vigil_hooks')!.values()].map((b) => b.readUInt8(hookLayout.offset('flags', 1)));
    assert.ok(flags.every((f) => (f & HookFlags.EXIT_ALONE) !== 0 && (f & HookFlags.AT_EXIT) !== 0), `hook flags ${flags.join(', ')}`);
    const served = links.size;
    await manager.loadPolicy(program('openat-path', 'Prefix', ['/x']));
    assert.deepEqual(openat(), ['vigil_sys_enter_one syscalls/sys_enter_openat', 'vigil_sys_exit_one syscalls/sys_exit_openat'], 'the string argument is read at entry');
    assert.equal(links.size, served + 1);
    await manager.unloadPolicy('openat-path');
    assert.equal(links.size, served);
    await manager.unloadPolicy('fd');
    assert.equal(links.size, 0);
  });
});
