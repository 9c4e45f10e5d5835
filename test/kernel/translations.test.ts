/**
 * Kernel functions, LSM hooks, lists and raw tracepoints served by this
 * kernel's syscalls and tracepoints (services/enforcer/compiler/translations.ts),
 * on real BPF and real processes. Each policy is scoped to a private copy of
 * busybox (or this machine's python) so nothing else is touched.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { BUSYBOX, copyOf, exitsSeen, policyEvents, policyYaml, PROBE, run, scratch, scratchFile, withPolicy, type PolicyEvent } from '../support/policy.js';

let h: SensorHarness;
test.before(() => { h = startSensor('translations'); });
test.after(() => { h.stop(); fs.rmSync(scratch, { recursive: true, force: true }); });

const PYTHON = execFileSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' }).trim();
const only = (bin: string) => ({ matchBinaries: [{ operator: 'In', values: [bin] }] });


/** This process's BPF links, from their fds' fdinfo: the tracepoint of each and its program's name. */
function linkedPrograms(): { tracepoint: string; program: string }[] {
  const names = new Map((JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as { id: number; name: string }[]).map((p) => [p.id, p.name]));
  const links: { tracepoint: string; program: string }[] = [];
  for (const fd of fs.readdirSync('/proc/self/fdinfo')) {
    let info: string;
    try { info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    const field = (name: string): string | undefined => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(info)?.[1];
    const progId = field('prog_id');
    if (field('link_type') !== undefined && progId !== undefined) links.push({ tracepoint: field('tp_name') ?? '', program: names.get(Number(progId)) ?? '?' });
  }
  return links;
}

test('fd_install: every open and dup that installs an fd, with the fd and its file; failed opens are not', async () => {
  const cat = copyOf(BUSYBOX, 'cat');
  const file = scratchFile('fd-install');
  const yaml = policyYaml('fd-install', { kprobes: [{ call: 'fd_install', syscall: false, args: [{ index: 0, type: 'int' }, { index: 1, type: 'file' }], selectors: [only(cat)] }] });
  await withPolicy(h, yaml, async () => {
    const linked = linkedPrograms();
    const own = linked.filter((l) => l.program === 'vigil_sys_exit_one').map((l) => l.tracepoint);
    assert.ok(['sys_exit_openat', 'sys_exit_dup', 'sys_exit_socket'].every((tp) => own.includes(tp)), `each fd-returning syscall at its own sys_exit tracepoint: ${own.join(' ')}`);
    assert.deepEqual(linked.filter((l) => l.tracepoint === 'sys_exit' || l.tracepoint === 'sys_enter'), [], 'no raw program, which every syscall of the node would run');
    const ok = await run(cat, ['cat', file]);
    const missing = await run(cat, ['cat', `${file}.missing`]);
    assert.equal(ok.stdout, 'x\n');
    const events = await policyEvents(h, 'fd-install', [ok.pid, missing.pid]);
    const opened = events.find((e) => e.process.pid.value === ok.pid && e.args[1]?.file_arg?.path === file);
    assert.ok(opened, `fd_install of ${file}: ${JSON.stringify(events.map((e) => e.args))}`);
    assert.equal(opened.function_name, 'fd_install');
    assert.ok(opened.args[0].int_arg >= 3, 'the installed fd');
    assert.equal(events.filter((e) => e.process.pid.value === missing.pid && JSON.stringify(e.args).includes('.missing')).length, 0, 'a failed open installs nothing');
  });
});

test("fd_install with Sigkill, as the seed's policy: the process dies before it uses the fd", async () => {
  const cat = copyOf(BUSYBOX, 'cat');
  const file = scratchFile('fd-kill', 'secret\n');
  const yaml = policyYaml('fd-kill', { kprobes: [{
    call: 'fd_install', syscall: false, args: [{ index: 0, type: 'int' }, { index: 1, type: 'file' }],
    selectors: [{ ...only(cat), matchArgs: [{ index: 1, operator: 'Equal', values: [file] }], matchActions: [{ action: 'Sigkill' }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(cat, ['cat', file]);
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.stdout, '', 'nothing was read');
    const [event] = await policyEvents(h, 'fd-kill', [r.pid]);
    assert.equal(event?.action, 3, 'KPROBE_ACTION_SIGKILL');
    assert.equal(event?.args[1].file_arg.path, file);
  });
});

test('security_file_permission: reads with MAY_READ, writes with MAY_WRITE, the return value when asked; served by the raw programs', async () => {
  const dd = copyOf(BUSYBOX, 'dd');
  const src = scratchFile('perm-src', 'abc\n');
  const dst = `${scratch}/perm-dst`;
  const yaml = policyYaml('file-perm', { kprobes: [{
    call: 'security_file_permission', syscall: false, return: true,
    args: [{ index: 0, type: 'file' }, { index: 1, type: 'int' }], returnArg: { index: 0, type: 'int' },
    selectors: [{ ...only(dd), matchArgs: [{ index: 0, operator: 'Prefix', values: [`${scratch}/perm-`] }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const raw = linkedPrograms().filter((l) => l.program.startsWith('vigil_sys_')).map((l) => `${l.program} ${l.tracepoint}`).sort();
    assert.deepEqual(raw, ['vigil_sys_enter sys_enter', 'vigil_sys_exit sys_exit'], 'read and write, routed through the raw programs');
    const r = await run(dd, ['dd', `if=${src}`, `of=${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'file-perm', [r.pid]);
    const read = events.find((e) => e.args[0].file_arg?.path === src && e.args[1].int_arg === 4);
    const write = events.find((e) => e.args[0].file_arg?.path === dst && e.args[1].int_arg === 2);
    assert.ok(read && write, JSON.stringify(events.map((e) => e.args)));
    assert.equal(read.return.int_arg, 4, 'the read returned its 4 bytes');
  });
});

test('security_mmap_file: a file mapped, with its prot; an anonymous mapping is not', async () => {
  const file = scratchFile('mapped', 'm'.repeat(4096));
  const yaml = policyYaml('mmap-file', { kprobes: [{
    call: 'security_mmap_file', syscall: false, args: [{ index: 0, type: 'file' }, { index: 1, type: 'uint32' }, { index: 2, type: 'nop' }],
    selectors: [{ ...only(PYTHON), matchArgs: [{ index: 0, operator: 'Equal', values: [file] }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(PYTHON, ['-c', `import mmap; f = open("${file}", "rb"); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); a = mmap.mmap(-1, 4096)`]);
    assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'mmap-file', [r.pid]);
    assert.equal(events.length, 1, JSON.stringify(events.map((e) => e.args)));
    assert.deepEqual(events[0]!.args, [{ file_arg: { path: file } }, { uint_arg: 1 }]);
  });
});

test('lsm file_open: reported as process_lsm with the file', async () => {
  const cat = copyOf(BUSYBOX, 'cat');
  const file = scratchFile('lsm-open');
  const yaml = policyYaml('lsm-open', { lsmhooks: [{ hook: 'file_open', args: [{ index: 0, type: 'file' }], selectors: [{ ...only(cat), matchArgs: [{ index: 0, operator: 'Equal', values: [file] }] }] }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(cat, ['cat', file]);
    await exitsSeen(h, [r.pid]);
    const lsm = h.events.map((e) => e.event.process_lsm as PolicyEvent | undefined).filter((e) => e?.policy_name === 'lsm-open' && e.process.pid.value === r.pid);
    assert.equal(lsm.length, 1);
    assert.equal(lsm[0]!.function_name, 'file_open');
    assert.deepEqual(lsm[0]!.args, [{ file_arg: { path: file } }]);
  });
});

test('security_bprm_check: the program about to run, judged by the binary that execs it; Sigkill there runs none of it', async () => {
  const sh = copyOf(BUSYBOX, 'sh');
  const victim = copyOf(BUSYBOX, 'echo');
  const yaml = policyYaml('bprm', { kprobes: [{
    call: 'security_bprm_check', syscall: false, args: [{ index: 0, type: 'linux_binprm' }],
    selectors: [{ ...only(sh), matchArgs: [{ index: 0, operator: 'Equal', values: [victim] }], matchActions: [{ action: 'Sigkill' }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    // The shell forks a child to exec the victim: the child, still the shell's image, is killed before it runs any of it.
    const r = await run(sh, ['sh', '-c', `${victim} echo ran; echo "survived $?"`]);
    assert.equal(r.stdout, 'survived 137\n', 'the program printed nothing; its shell saw it die of SIGKILL');
    await exitsSeen(h, [r.pid]);
    const events = h.events.map((e) => e.event.process_kprobe as PolicyEvent | undefined).filter((e) => e?.policy_name === 'bprm');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.function_name, 'security_bprm_check');
    assert.equal(events[0]!.process.binary, sh, 'judged while the shell image still runs');
    assert.equal(events[0]!.parent.pid.value, r.pid);
    assert.deepEqual(events[0]!.args, [{ linux_binprm_arg: { path: victim } }]);
  });
});

test('create_user_ns: unshare of a user namespace is seen and, with Sigkill, killed; other unshares pass', async () => {
  const unshare = copyOf(BUSYBOX, 'unshare');
  const yaml = policyYaml('userns', { kprobes: [{
    call: 'create_user_ns', syscall: false, args: [{ index: 0, type: 'nop' }], selectors: [{ ...only(unshare), matchActions: [{ action: 'Sigkill' }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const userns = await run(unshare, ['unshare', '-U', 'true']);
    const uts = await run(unshare, ['unshare', '-u', 'true']);
    assert.equal(userns.signal, 'SIGKILL');
    assert.equal(uts.code, 0, uts.stderr);
    const [event] = await policyEvents(h, 'userns', [userns.pid]);
    assert.equal(event?.function_name, 'create_user_ns');
    assert.deepEqual(await policyEvents(h, 'userns', [uts.pid]), []);
  });
});

test('lists: a kprobe on list:NAME hooks each syscall; a tracepoint matches syscall ids InMap the list (syscall64)', async () => {
  const yaml = policyYaml('dups', {
    lists: [{ name: 'dups', type: 'syscalls', values: ['sys_dup', 'sys_dup2'] }],
    kprobes: [{ call: 'list:dups', selectors: [only(PYTHON)] }],
    tracepoints: [{ subsystem: 'raw_syscalls', event: 'sys_enter', args: [{ index: 4, type: 'syscall64' }], selectors: [{ ...only(PYTHON), matchArgs: [{ index: 0, operator: 'InMap', values: ['list:dups'] }] }] }],
  });
  await withPolicy(h, yaml, async () => {
    // Python's os.dup uses fcntl(F_DUPFD_CLOEXEC): call libc's dup for the dup syscall.
    const r = await run(PYTHON, ['-c', 'import ctypes, os; ctypes.CDLL(None).dup(1); os.dup2(1, 7)']);
    assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'dups', [r.pid]);
    const calls = events.filter((e) => e.function_name).map((e) => e.function_name).sort();
    assert.deepEqual(calls, ['sys_dup', 'sys_dup2']);
    const ids = events.filter((e) => e.subsys === 'raw_syscalls').map((e) => e.args[0].syscall_id);
    assert.deepEqual(ids.sort((a, b) => a.id - b.id), [{ id: 32, abi: 'x64' }, { id: 33, abi: 'x64' }]);
  });
});

test('enforcers: NotifyEnforcer on raw_syscalls/sys_enter kills in the enforcer\'s calls, 64-bit and 32-bit (int $0x80) dup alike (killer.yaml)', async () => {
  const probe = copyOf(PROBE, 'killer-probe');
  const yaml = policyYaml('killer', {
    lists: [{ name: 'dups', type: 'syscalls', values: ['sys_dup', 'sys_dup2', '__ia32_sys_dup'] }],
    enforcers: [{ calls: ['list:dups'] }],
    tracepoints: [{ subsystem: 'raw_syscalls', event: 'sys_enter', args: [{ index: 4, type: 'syscall64' }], selectors: [{
      ...only(probe), matchArgs: [{ index: 0, operator: 'InMap', values: ['list:dups'] }], matchActions: [{ action: 'NotifyEnforcer', argError: -1, argSig: 9 }],
    }] }],
  });
  await withPolicy(h, yaml, async () => {
    const x64 = await run(probe, ['dup']);
    const ia32 = await run(probe, ['dup', 'ia32']);
    const opened = await run(probe, ['open', '/dev/null']);
    for (const r of [x64, ia32]) {
      assert.equal(r.signal, 'SIGKILL', r.stdout);
      assert.equal(r.stdout, '', 'killed before the call returned to it');
    }
    assert.equal(opened.code, 0, 'a call outside the list goes on');
    const idOf = async (pid: number): Promise<unknown> => {
      const [event] = await policyEvents(h, 'killer', [pid]);
      assert.equal(event?.action, 13, 'KPROBE_ACTION_NOTIFYENFORCER');
      return event?.args[0].syscall_id;
    };
    assert.deepEqual(await idOf(x64.pid), { id: 32, abi: 'x64' });
    assert.deepEqual(await idOf(ia32.pid), { id: 41, abi: 'i386' });
  });
});

test('raw tracepoint sched_process_exec: linux_binprm is the program exec\'d', async () => {
  const echo = copyOf(BUSYBOX, 'echo');
  const yaml = policyYaml('rawtp', { tracepoints: [{ subsystem: 'sched', event: 'sched_process_exec', raw: true, args: [{ index: 2, type: 'linux_binprm' }], selectors: [only(echo)] }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(echo, ['echo', 'hi']);
    const [event] = await policyEvents(h, 'rawtp', [r.pid]);
    assert.deepEqual(event?.args, [{ linux_binprm_arg: { path: echo } }]);
  });
});

test('commit_creds: the credentials a setuid installed; cap_capable: the capability checked, its user namespace and the result', async () => {
  const yaml = policyYaml('creds', { kprobes: [
    { call: 'commit_creds', syscall: false, args: [{ index: 0, type: 'cred' }], selectors: [only(PYTHON)] },
    { call: 'cap_capable', syscall: false, return: true, args: [{ index: 1, type: 'user_namespace' }, { index: 2, type: 'capability' }], returnArg: { index: 0, type: 'int' }, selectors: [only(PYTHON)] },
  ] });
  await withPolicy(h, yaml, async () => {
    const r = await run(PYTHON, ['-c', 'import os; os.setgid(65534); os.setuid(65534)']);
    assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'creds', [r.pid]);
    const commits = events.filter((e) => e.function_name === 'commit_creds').map((e) => e.args[0].process_credentials_arg);
    assert.ok(commits.some((c) => c.uid.value === 65534 && c.euid.value === 65534 && c.caps.effective.length === 0), JSON.stringify(commits));
    assert.ok(commits.some((c) => c.gid.value === 65534 && c.uid.value === 0 && c.caps.effective.includes(21)), 'after setgid, still root');
    const setuidCheck = events.find((e) => e.function_name === 'cap_capable' && e.args[1].capability_arg.name === 'CAP_SETUID');
    assert.ok(setuidCheck, JSON.stringify(events.filter((e) => e.function_name === 'cap_capable').map((e) => e.args)));
    assert.deepEqual(setuidCheck.args[1].capability_arg, { value: { value: 7 }, name: 'CAP_SETUID' });
    assert.equal(setuidCheck.args[0].user_ns_arg.level.value, 0);
    assert.equal(setuidCheck.args[0].user_ns_arg.ns.is_host, true);
    assert.equal(setuidCheck.return.int_arg, 0, 'granted');
  });
});

test('tty_write: writes to a tty (a pty here), with the bytes; writes to files are not', async () => {
  const file = scratchFile('not-a-tty');
  const yaml = policyYaml('tty', { kprobes: [{
    call: 'tty_write', syscall: false, args: [{ index: 0, type: 'file' }, { index: 1, type: 'char_buf', sizeArgIndex: 3 }, { index: 2, type: 'size_t' }], selectors: [only(PYTHON)],
  }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(PYTHON, ['-c', `import os; m, s = os.openpty(); print(os.ttyname(s), flush=True); os.write(s, b"typed on a tty"); os.write(os.open("${file}", os.O_WRONLY), b"to a file")`]);
    assert.equal(r.code, 0, r.stderr);
    const pts = r.stdout.trim();
    const events = await policyEvents(h, 'tty', [r.pid]);
    assert.equal(events.length, 1, JSON.stringify(events.map((e) => e.args)));
    assert.equal(events[0]!.function_name, 'tty_write');
    assert.deepEqual(events[0]!.args[0], { file_arg: { path: pts } });
    assert.equal(Buffer.from(events[0]!.args[1].bytes_arg).toString(), 'typed on a tty');
    assert.deepEqual(events[0]!.args[2], { size_arg: 14 });
  });
});

test('bpf_check, security_bpf_map_create, security_perf_event_alloc: programs loaded, maps created, perf events opened, with their attributes', async () => {
  const bpftool = fs.realpathSync(execFileSync('sh', ['-c', 'command -v bpftool'], { encoding: 'utf8' }).trim());
  const pin = `/sys/fs/bpf/vigil-test-${process.pid}`;
  const yaml = policyYaml('bpf', { kprobes: [
    { call: 'bpf_check', syscall: false, args: [{ index: 1, type: 'bpf_attr' }], selectors: [only(bpftool)] },
    { call: 'security_bpf_map_create', syscall: false, args: [{ index: 0, type: 'bpf_map' }], selectors: [only(bpftool)] },
    { call: 'security_perf_event_alloc', syscall: false, args: [{ index: 0, type: 'perf_event' }], selectors: [only(PYTHON)] },
  ] });
  await withPolicy(h, yaml, async () => {
    const map = await run(bpftool, ['map', 'create', `${pin}-map`, 'type', 'hash', 'key', '4', 'value', '8', 'entries', '16', 'name', 'vigil_test_map']);
    const prog = await run(bpftool, ['prog', 'load', 'build/bench/hookcost.bpf.o', `${pin}-prog`]);
    // PERF_TYPE_SOFTWARE (1), PERF_COUNT_SW_CPU_CLOCK (0), on this process.
    const perf = await run(PYTHON, ['-c', 'import ctypes, struct; a = ctypes.create_string_buffer(struct.pack("IIQ", 1, 128, 0) + bytes(112)); ctypes.CDLL(None).syscall(298, a, 0, -1, -1, 0)']);
    fs.rmSync(`${pin}-map`, { force: true });
    fs.rmSync(`${pin}-prog`, { force: true });
    assert.equal(map.code, 0, map.stderr);
    assert.equal(prog.code, 0, prog.stderr);
    const maps = (await policyEvents(h, 'bpf', [map.pid])).filter((e) => e.function_name === 'security_bpf_map_create');
    assert.ok(maps.some((e) => JSON.stringify(e.args[0].bpf_map_arg) === JSON.stringify({ MapType: 'BPF_MAP_TYPE_HASH', KeySize: 4, ValueSize: 8, MaxEntries: 16, MapName: 'vigil_test_map' })), JSON.stringify(maps.map((e) => e.args)));
    const progs = (await policyEvents(h, 'bpf', [prog.pid])).filter((e) => e.function_name === 'bpf_check');
    assert.ok(progs.some((e) => e.args[0].bpf_attr_arg.ProgType === 'BPF_PROG_TYPE_TRACEPOINT' && e.args[0].bpf_attr_arg.InsnCnt > 0), JSON.stringify(progs.map((e) => e.args)));
    const perfs = await policyEvents(h, 'bpf', [perf.pid]);
    assert.deepEqual(perfs.map((e) => e.args[0].perf_event_arg), [{ Type: 'PERF_TYPE_SOFTWARE', Config: 0, ProbeOffset: 0 }]);
  });
});

test('loader: true reports each file a program maps executable, with its build ID, as process_loader', async () => {
  const yaml = policyYaml('loader', { loader: true });
  await withPolicy(h, yaml, async () => {
    // bash maps its libraries; it lives on a moment, so that its root can be read for the build ID.
    const r = await run('/bin/bash', ['-c', 'sleep 2']);
    await exitsSeen(h, [r.pid]);
    const loads = h.events.map((e) => e.event.process_loader as PolicyEvent | undefined).filter((e) => e?.process?.pid?.value === r.pid);
    const libc = loads.find((e) => e!.path.endsWith('/libc.so.6'));
    assert.ok(libc, JSON.stringify(loads.map((e) => e!.path)));
    const readelf = execFileSync('readelf', ['-n', libc.path], { encoding: 'utf8' });
    assert.equal(Buffer.from(libc.buildid).toString('hex'), /Build ID: ([0-9a-f]+)/.exec(readelf)![1]);
    assert.equal(libc.policy_name, undefined, 'Tetragon\'s loader events carry no policy');
  });
});

test('a generated_syscalls list: every syscall of the program, from one raw_syscalls hook, each event named after its syscall', async () => {
  const probe = copyOf(PROBE, 'every-syscall');
  const yaml = policyYaml('every-syscall', {
    lists: [{ name: 'all', type: 'generated_syscalls' }],
    kprobes: [{ call: 'list:all', selectors: [only(probe)] }],
  });
  await withPolicy(h, yaml, async () => {
    const r = await run(probe, ['getpid', '3']);
    const names = (await policyEvents(h, 'every-syscall', [r.pid])).map((e) => e.function_name);
    assert.equal(names.filter((n) => n === '__x64_sys_getpid').length, 3, names.join(' '));
    assert.ok(names.includes('__x64_sys_exit_group'), names.join(' '));
  });
});

test('usdts: a USDT probe found in the binary\'s notes, its arguments from their registers; a Sigkill there kills', async () => {
  const probe = copyOf(PROBE, 'usdt');
  const yaml = policyYaml('usdt', { usdts: [{
    path: probe, provider: 'vigil', name: 'tick', args: [{ index: 0, type: 'int32' }, { index: 1, type: 'int64' }],
    selectors: [
      { matchArgs: [{ index: 0, operator: 'Equal', values: ['2'] }] },
      { matchArgs: [{ index: 0, operator: 'Equal', values: ['3'] }], matchActions: [{ action: 'Sigkill' }] },
    ],
  }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(probe, ['usdt', '10']);
    assert.equal(r.signal, 'SIGKILL', 'killed at the fourth tick');
    await exitsSeen(h, [r.pid]);
    const events = h.events.map((e) => e.event.process_usdt as PolicyEvent | undefined).filter((e) => e?.process?.pid?.value === r.pid);
    assert.deepEqual(events.map((e) => [e!.provider, e!.name, e!.path, e!.args[0].int_arg, e!.args[1].long_arg, e!.action]),
      [['vigil', 'tick', probe, 2, -2000, 1], ['vigil', 'tick', probe, 3, -3000, 3]]);
  });
});

test('a syscall hook sees 64-bit calls only: an ia32 call (int $0x80) whose number is another syscall\'s is not taken for it', async () => {
  // ia32 syscall 20 is getpid; 64-bit 20 is writev. The process makes the first, then a real writev.
  const script = `import ctypes, mmap, os
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20; int $0x80; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
assert ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))() == os.getpid()
fd = os.open(os.devnull, os.O_WRONLY)
os.writev(fd, [b"x"])
print(fd)`;
  const yaml = policyYaml('writev64', { kprobes: [{ call: 'sys_writev', syscall: true, args: [{ index: 0, type: 'int' }], selectors: [only(PYTHON)] }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(PYTHON, ['-c', script]);
    assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'writev64', [r.pid]);
    assert.deepEqual(events.map((e) => e.args[0].int_arg), [Number(r.stdout.trim())], 'the writev, and not the ia32 getpid');
  });
});
