/**
 * The policy front end: Tetragon TracingPolicy YAML to PolicyPrograms. The
 * example policies compile to what the sensor expects, every matcher and
 * operator is read, and every file of test/fixtures/bad-policies is refused
 * with the message its first line names.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../../services/lib/paths.js';
import type { Hook, NamespaceKind, PolicyProgram } from '../../services/lib/policy-program.js';
import {
  compilePolicy, defaultCompileEnv, loadPolicyText, parsePolicyDocuments, parseTracepointFormat, PolicyError, readCompatSyscallNumbers, readSyscallNumbers, SPEC_SCHEMA_PATH, syscallNames,
  type CompileEnv, type TracepointFormat,
} from '../../services/enforcer/compiler/index.js';
import { hostFile } from '../../services/enforcer/compiler/compile.js';
import { programFromProto, programToProto } from '../../services/lib/control-api.js';
import { decodeMessage, encodeMessage } from '../../services/lib/tetragon-proto.js';
import { CAPABILITIES, capabilityNumber } from '../../services/enforcer/compiler/kernel-names.js';
import { KernelBtf } from '../../services/enforcer/compiler/kernel-btf.js';

const COMMON_FIELDS = [
  '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;',
  '\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;',
  '\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;',
  '\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;',
];

/** A sys_enter_<name> format as the kernel writes it: every parameter in an 8-byte slot from offset 16. */
function syscallFormat(name: string, params: string[]): string {
  return [
    `name: sys_enter_${name}`, 'ID: 700', 'format:', ...COMMON_FIELDS, '',
    '\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;',
    ...params.map((p, i) => `\tfield:${p};\toffset:${16 + 8 * i};\tsize:8;\tsigned:0;`),
    '', 'print fmt: "..."', '',
  ].join('\n');
}

const SYSCALLS: Record<string, string[]> = {
  openat: ['int dfd', 'const char * filename', 'int flags', 'umode_t mode'],
  open: ['const char * filename', 'int flags', 'umode_t mode'],
  read: ['unsigned int fd', 'char * buf', 'size_t count'],
  write: ['unsigned int fd', 'const char * buf', 'size_t count'],
  connect: ['int fd', 'struct sockaddr * uservaddr', 'int addrlen'],
  unlinkat: ['int dfd', 'const char * pathname', 'int flag'],
  execve: ['const char * filename', 'const char *const * argv', 'const char *const * envp'],
  kill: ['pid_t pid', 'int sig'],
  setuid: ['uid_t uid'],
  lseek: ['unsigned int fd', 'off_t offset', 'unsigned int whence'],
};

const TRACEPOINTS: Record<string, string> = {
  'sched/sched_process_exec': [
    'name: sched_process_exec', 'ID: 365', 'format:', ...COMMON_FIELDS, '',
    '\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;',
    '\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;',
    '\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;',
    '', 'print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid', '',
  ].join('\n'),
  'workqueue/workqueue_execute_start': [
    'name: workqueue_execute_start', 'ID: 90', 'format:', ...COMMON_FIELDS, '',
    '\tfield:void * work;\toffset:8;\tsize:8;\tsigned:0;',
    '\tfield:void * function;\toffset:16;\tsize:8;\tsigned:0;',
    '', 'print fmt: "..."', '',
  ].join('\n'),
  'sched/sched_process_fork': [
    'name: sched_process_fork', 'ID: 366', 'format:', ...COMMON_FIELDS, '',
    '\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;',
    '\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;',
    '\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;',
    '\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;',
    '', 'print fmt: "..."', '',
  ].join('\n'),
  'raw_syscalls/sys_enter': [
    'name: sys_enter', 'ID: 22', 'format:', ...COMMON_FIELDS, '',
    '\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;',
    '\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;',
    '', 'print fmt: "..."', '',
  ].join('\n'),
  ...Object.fromEntries(Object.entries(SYSCALLS).map(([name, params]) => [`syscalls/sys_enter_${name}`, syscallFormat(name, params)])),
};

const HOST_NS: Record<NamespaceKind, number> = {
  Uts: 4026531838, Ipc: 4026531839, Mnt: 4026531841, Pid: 4026531836, PidForChildren: 4026531836, Net: 4026531840,
  Time: 4026531834, TimeForChildren: 4026531834, Cgroup: 4026531835, User: 4026531837,
};

/** A kernel like the one here (no kprobes), with the syscalls and tracepoints above. */
function fakeEnv(overrides: Partial<CompileEnv> = {}): CompileEnv {
  return {
    hostNamespaces: HOST_NS,
    tracepointFormat(subsystem: string, event: string): TracepointFormat {
      const text = TRACEPOINTS[`${subsystem}/${event}`];
      if (text === undefined) throw new Error(`no tracepoint ${subsystem}/${event}`);
      return parseTracepointFormat(text);
    },
    syscallExists: (name) => name in SYSCALLS,
    syscallNumber: (name: string) => readSyscallNumbers().get(name),
    compatSyscallNumber: (name: string) => readCompatSyscallNumbers().get(name),
    syscallNames,
    kernelFunctionExists: () => true,
    kernelHasKprobes: false,
    kernelBtf: () => KernelBtf.vmlinux(),
    ...overrides,
  };
}

const env = fakeEnv();
const policiesDir = path.join(repoRoot, 'deploy', 'policies');
const badDir = path.join(repoRoot, 'test', 'fixtures', 'bad-policies');

function loadExample(file: string): PolicyProgram {
  const loaded = loadPolicyText(fs.readFileSync(path.join(policiesDir, file), 'utf8'), env, file);
  assert.equal(loaded.length, 1);
  return loaded[0]!.program;
}

/** One program from a spec written inline. */
function compileSpec(spec: string, e: CompileEnv = env): PolicyProgram {
  const text = `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n${spec.replace(/^/gm, '  ')}`;
  return loadPolicyText(text, e)[0]!.program;
}

const onlyHook = (p: PolicyProgram): Hook => {
  assert.equal(p.hooks.length, 1);
  return p.hooks[0]!;
};

test('deny-privileged-pod-start: fd_install, served at the exit of each fd-returning syscall, killing CAP_SYS_ADMIN outside the host pid namespace', () => {
  const program = loadExample('deny-privileged-pod-start.yaml');
  assert.equal(program.name, 'deny-privileged-pod-start');
  assert.equal(program.mode, 'enforce');
  // Of the fd-returning syscalls, this fake kernel has open and openat.
  assert.deepEqual(program.hooks.map((h) => h.attach), [{ kind: 'syscall', syscall: 'open', number: 2 }, { kind: 'syscall', syscall: 'openat', number: 257 }]);
  for (const hook of program.hooks) {
    assert.equal(hook.kind, 'kprobe');
    assert.equal(hook.name, 'fd_install', 'reported under the kernel function\'s name');
    assert.equal(hook.atExit, true);
    assert.deepEqual(hook.args, [
      { source: { kind: 'return' }, type: 'int' },
      { source: { kind: 'return' }, type: 'file' },
    ]);
    assert.deepEqual(hook.guard, { arg: { source: { kind: 'return' }, type: 'int64' }, op: 'nonNegative', value: 0 }, 'only calls that returned an fd');
    assert.equal(hook.selectors.length, 1);
    const sel = hook.selectors[0]!;
    assert.deepEqual(sel.matchNamespaces, [{ namespace: 'Pid', op: 'NotIn', values: [HOST_NS.Pid] }]);
    assert.deepEqual(sel.matchCapabilities, [{ type: 'Effective', op: 'In', mask: 1n << 21n, isNamespaceCapability: false }]);
    assert.deepEqual(sel.matchActions, [{ action: 'Sigkill' }]);
  }
});

test('exec-monitoring: sched_process_exec fields by index, common_* fields counted, the filename a __data_loc string', () => {
  const hook = onlyHook(loadExample('exec-monitoring.yaml'));
  assert.equal(hook.kind, 'tracepoint');
  assert.deepEqual(hook.attach, { kind: 'tracepoint', subsystem: 'sched', event: 'sched_process_exec' });
  assert.equal(hook.subsystem, 'sched');
  assert.equal(hook.atExit, false);
  assert.deepEqual(hook.args.map((a) => [a.source, a.type, a.label]), [
    [{ kind: 'tracepoint_field', offset: 8, size: 4, signed: false, dataLoc: true }, 'string', 'filename'],
    [{ kind: 'tracepoint_field', offset: 12, size: 4, signed: true }, 'int', 'pid'],
    [{ kind: 'tracepoint_field', offset: 16, size: 4, signed: true }, 'int', 'old_pid'],
  ]);
  assert.deepEqual(hook.selectors[0]!.matchActions, [{ action: 'Post' }]);
});

test('sensitive-files: filename matched at exit on the resolved path, two selectors', () => {
  const hook = onlyHook(loadExample('sensitive-files.yaml'));
  assert.equal(hook.atExit, true);
  assert.equal(hook.returnArg, undefined);
  assert.equal(hook.args[1]!.resolveFromReturnedFd, true);
  assert.deepEqual(hook.selectors.map((s) => s.matchArgs), [
    [{ argIndex: 1, kind: 'string', op: 'Equal', values: ['/etc/shadow', '/etc/sudoers'] }],
    [{ argIndex: 1, kind: 'string', op: 'Prefix', values: ['/etc/sudoers.d/'] }],
  ]);
  assert.equal(hook.message, 'sensitive file opened');
  assert.deepEqual(hook.tags, ['credentials']);
});

test('outbound-connect: sockaddr read at exit with the result', () => {
  const hook = onlyHook(loadExample('outbound-connect.yaml'));
  assert.deepEqual(hook.attach, { kind: 'syscall', syscall: 'connect', number: 42 });
  assert.deepEqual(hook.args.map((a) => a.type), ['int', 'sockaddr', 'int']);
  assert.equal(hook.atExit, true);
  assert.deepEqual(hook.returnArg?.source, { kind: 'return' });
});

test('the examples compile against this machine\'s kernel too', (t) => {
  if (!fs.existsSync('/sys/kernel/tracing/events') && !fs.existsSync('/sys/kernel/debug/tracing/events')) {
    t.skip('tracefs is not mounted');
    return;
  }
  const real = defaultCompileEnv();
  assert.ok(real.hostNamespaces.Pid > 0);
  for (const file of fs.readdirSync(policiesDir)) {
    const [loaded] = loadPolicyText(fs.readFileSync(path.join(policiesDir, file), 'utf8'), real, file);
    assert.ok(loaded!.program.hooks.length > 0, file);
  }
});

test('multi-document text: every policy, empty documents skipped, in order', () => {
  const doc = (name: string, call: string) => `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n  kprobes:\n    - call: ${call}\n`;
  const loaded = loadPolicyText(`# two policies\n---\n${doc('a', 'sys_kill')}---\n# nothing here\n---\n${doc('b', 'sys_setuid')}---\n`, env);
  assert.deepEqual(loaded.map((l) => [l.program.name, l.program.hooks[0]!.attach]), [
    ['a', { kind: 'syscall', syscall: 'kill', number: 62 }],
    ['b', { kind: 'syscall', syscall: 'setuid', number: 105 }],
  ]);
  assert.deepEqual(loadPolicyText('# only a comment\n', env), []);
  // All or nothing: the second document's refusal loses the first too.
  const text = fs.readFileSync(path.join(badDir, '36-multidoc-second-bad.yaml'), 'utf8');
  assert.deepEqual(parsePolicyDocuments(text).map((d) => d.name), ['good', 'bad']);
  assert.throws(() => loadPolicyText(text, env), /operator "InMap" compares numbers/);
});

test('TracingPolicyNamespaced carries its namespace; pod and container selectors stay in the document', () => {
  const [loaded] = loadPolicyText(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: ns-policy
  namespace: shop
  labels: { team: payments }
spec:
  podSelector:
    matchLabels: { app: checkout }
    matchExpressions:
      - { key: tier, operator: In, values: [web] }
  containerSelector:
    matchExpressions:
      - { key: name, operator: NotIn, values: [istio-proxy] }
  kprobes:
    - call: sys_setuid
      args: [{ index: 0, type: uint32 }]
`, env);
  assert.equal(loaded!.document.kind, 'TracingPolicyNamespaced');
  assert.equal(loaded!.document.namespace, 'shop');
  assert.equal(loaded!.program.namespace, 'shop');
  assert.deepEqual(loaded!.document.spec.podSelector, { matchLabels: { app: 'checkout' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] });
  assert.deepEqual(loaded!.document.spec.containerSelector?.matchExpressions?.[0]?.values, ['istio-proxy']);
});

test('defaults: syscall true, type auto from the syscall format, Post without selectors', () => {
  const [loaded] = loadPolicyText('apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: { name: d }\nspec:\n  kprobes:\n    - call: sys_lseek\n      args: [{ index: 0 }, { index: 1 }, { index: 2 }]\n', env);
  assert.equal(loaded!.document.spec.kprobes![0]!.syscall, true);
  assert.equal(loaded!.document.spec.kprobes![0]!.args![0]!.type, 'auto');
  assert.equal((loaded!.document.raw as { spec: { kprobes: { args: object[] }[] } }).spec.kprobes[0]!.args[0]!.hasOwnProperty('type'), false);
  const hook = onlyHook(loaded!.program);
  assert.deepEqual(hook.args.map((a) => a.type), ['uint32', 'int64', 'uint32']);
  assert.deepEqual(hook.selectors, []);
  assert.equal(hook.atExit, false);
});

test('options: policy-mode monitor; harmless Tetragon options checked and ignored', () => {
  const program = compileSpec(`options:
  - { name: disable-kprobe-multi, value: "true" }
  - { name: sleepable-preload-size, value: "64" }
  - { name: policy-mode, value: monitor }
kprobes:
  - call: sys_kill
`);
  assert.equal(program.mode, 'monitor');
});

test('every matcher and operator is read', () => {
  const program = compileSpec(`kprobes:
  - call: __x64_sys_kill
    syscall: true
    return: true
    args:
      - { index: 0, type: int, label: pid }
      - { index: 1, type: int }
    returnArg: { index: 0, type: int }
    selectors:
      - matchPIDs:
          - { operator: In, values: [1, 2], isNamespacePID: true, followForks: true }
        matchArgs:
          - { index: 0, operator: Equal, values: [1, "0x10", "010", -5] }
          - { index: 0, operator: NotEqual, values: ["0b11"] }
          - { index: 1, operator: GreaterThan, values: [0] }
          - { index: 1, operator: LT, values: [64] }
          - { args: [1], operator: Mask, values: [0x200] }
        matchReturnArgs:
          - { operator: Equal, values: [0] }
          - { operator: gt, values: [-1] }
        matchActions:
          - { action: Post, rateLimit: 1m }
      - matchBinaries:
          - { operator: In, values: [/usr/bin/kill], followChildren: true }
        matchActions:
          - { action: Post, rateLimit: "30s", rateLimitScope: process }
      - matchPIDs: [{ operator: NotIn, values: [0] }]
        matchBinaries: [{ operator: NotIn, values: [/bin/kill] }]
        matchNamespaces:
          - { namespace: Uts, operator: In, values: [host_ns, 4026531999] }
          - { namespace: Ipc, operator: NotIn, values: ["4026531998"] }
          - { namespace: Mnt, operator: In, values: [host_ns] }
          - { namespace: Pid, operator: NotIn, values: [host_ns] }
          - { namespace: PidForChildren, operator: In, values: [host_ns] }
          - { namespace: Net, operator: In, values: [host_ns] }
          - { namespace: Time, operator: In, values: [host_ns] }
          - { namespace: TimeForChildren, operator: In, values: [host_ns] }
          - { namespace: Cgroup, operator: In, values: [host_ns] }
          - { namespace: User, operator: In, values: [host_ns] }
        matchActions:
          - { action: Post, rateLimit: 100ms }
      - matchBinaries: [{ operator: Prefix, values: [/tmp/] }]
        matchNamespaceChanges:
          - { operator: In, values: [Mnt, net, USER] }
        matchCapabilities:
          - { type: Permitted, operator: NotIn, values: [CAP_KILL, cap_setuid] }
          - { operator: In, isNamespaceCapability: true, values: [CAP_SYS_ADMIN] }
        matchCapabilityChanges:
          - { type: Inheritable, operator: In, values: [CAP_CHOWN] }
        matchActions:
          - { action: Signal, argSig: 19 }
          - { action: NoPost }
      - matchBinaries: [{ operator: Postfix, values: [/kill] }]
        matchActions: [{ action: Sigkill }]
  - call: sys_openat
    args: [{ index: 1, type: string }]
    selectors:
      - matchBinaries: [{ operator: NotPrefix, values: [/usr/] }]
        matchArgs:
          - { index: 1, operator: Equal, values: [/a] }
          - { index: 1, operator: NotEqual, values: [/b] }
          - { index: 1, operator: Prefix, values: [/c/] }
          - { index: 1, operator: NotPrefix, values: [/d/] }
          - { index: 1, operator: Postfix, values: [.so, 42] }
      - matchBinaries: [{ operator: NotPostfix, values: [sh] }]
        matchArgs:
          - { index: 1, operator: NotPostfix, values: [.txt] }
`);
  const [kill, openat] = program.hooks;
  assert.deepEqual(kill!.attach, { kind: 'syscall', syscall: 'kill', number: 62 });
  assert.equal(kill!.name, '__x64_sys_kill');
  const [s0, s1, s2, s3, s4] = kill!.selectors;
  assert.deepEqual(s0!.matchPIDs, [{ op: 'In', values: [1, 2], isNamespacePID: true, followForks: true }]);
  assert.deepEqual(s2!.matchPIDs, [{ op: 'NotIn', values: [0], isNamespacePID: false, followForks: false }]);
  assert.deepEqual(s0!.matchArgs, [
    { argIndex: 0, kind: 'numeric', op: 'Equal', values: [1n, 16n, 8n, -5n] },
    { argIndex: 0, kind: 'numeric', op: 'NotEqual', values: [3n] },
    { argIndex: 1, kind: 'numeric', op: 'GreaterThan', values: [0n] },
    { argIndex: 1, kind: 'numeric', op: 'LessThan', values: [64n] },
    { argIndex: 1, kind: 'numeric', op: 'Mask', values: [512n] },
  ]);
  assert.deepEqual(s0!.matchReturnArgs, [
    { argIndex: 0, kind: 'numeric', op: 'Equal', values: [0n] },
    { argIndex: 0, kind: 'numeric', op: 'GreaterThan', values: [-1n] },
  ]);
  assert.deepEqual(s0!.matchActions, [{ action: 'Post', rateLimitMs: 60_000 }]);
  assert.deepEqual(s1!.matchBinaries, [{ op: 'In', values: ['/usr/bin/kill'], followChildren: true }]);
  assert.deepEqual(s1!.matchActions, [{ action: 'Post', rateLimitMs: 30_000 }]);
  assert.deepEqual(s2!.matchNamespaces.map((n) => [n.namespace, n.op, n.values]), [
    ['Uts', 'In', [HOST_NS.Uts, 4026531999]], ['Ipc', 'NotIn', [4026531998]], ['Mnt', 'In', [HOST_NS.Mnt]],
    ['Pid', 'NotIn', [HOST_NS.Pid]], ['PidForChildren', 'In', [HOST_NS.PidForChildren]], ['Net', 'In', [HOST_NS.Net]],
    ['Time', 'In', [HOST_NS.Time]], ['TimeForChildren', 'In', [HOST_NS.TimeForChildren]], ['Cgroup', 'In', [HOST_NS.Cgroup]],
    ['User', 'In', [HOST_NS.User]],
  ]);
  assert.deepEqual(s2!.matchActions, [{ action: 'Post', rateLimitMs: 100 }]);
  assert.deepEqual(s3!.matchBinaries, [{ op: 'Prefix', values: ['/tmp/'], followChildren: false }]);
  assert.deepEqual(s3!.matchNamespaceChanges, [{ op: 'In', namespaces: ['Mnt', 'Net', 'User'] }]);
  assert.deepEqual(s3!.matchCapabilities, [
    { type: 'Permitted', op: 'NotIn', mask: (1n << 5n) | (1n << 7n), isNamespaceCapability: false },
    { type: 'Effective', op: 'In', mask: 1n << 21n, isNamespaceCapability: true },
  ]);
  assert.deepEqual(s3!.matchCapabilityChanges, [{ type: 'Inheritable', op: 'In', mask: 1n, isNamespaceCapability: false }]);
  assert.deepEqual(s3!.matchActions, [{ action: 'Signal', signal: 19 }, { action: 'NoPost' }]);
  assert.deepEqual(s4!.matchBinaries[0]!.op, 'Postfix');
  assert.deepEqual(s4!.matchActions, [{ action: 'Sigkill' }]);

  assert.deepEqual(openat!.selectors.map((s) => s.matchBinaries[0]!.op), ['NotPrefix', 'NotPostfix']);
  assert.deepEqual(openat!.selectors[0]!.matchArgs.map((m) => [m.kind, m.op, m.kind === 'string' && m.values]), [
    ['string', 'Equal', ['/a']], ['string', 'NotEqual', ['/b']], ['string', 'Prefix', ['/c/']],
    ['string', 'NotPrefix', ['/d/']], ['string', 'Postfix', ['.so', '42']],
  ]);
  assert.deepEqual(openat!.selectors[1]!.matchArgs[0]!.op, 'NotPostfix');
});

test('decisions at entry unless a string must be read at exit', () => {
  const hooks = compileSpec(`kprobes:
  - call: sys_write
    args:
      - { index: 0, type: int }
      - { index: 1, type: char_buf, sizeArgIndex: 3 }
      - { index: 2, type: size_t }
    selectors:
      - matchArgs: [{ index: 0, operator: Equal, values: [1, 2] }]
        matchActions: [{ action: Sigkill }]
  - call: sys_write
    args:
      - { index: 1, type: char_buf, sizeArgIndex: 3 }
      - { index: 2, type: size_t }
    selectors:
      - matchArgs: [{ index: 1, operator: Prefix, values: [secret] }]
  - call: sys_unlinkat
    args: [{ index: 1, type: string }]
  - call: sys_execve
    args: [{ index: 0, type: string }, { index: 1, type: uint64 }]
  - call: sys_read
    args: [{ index: 0, type: fd }]
    selectors:
      - matchArgs: [{ index: 0, operator: Prefix, values: [/etc/] }]
`).hooks;
  const [writeByFd, writeByData, unlinkat, execve, readFd] = hooks;
  assert.equal(writeByFd!.atExit, false, 'a numeric test is decided at entry, before anything is written');
  assert.equal(writeByFd!.args[1]!.sizeArgIndex, 2, 'sizeArgIndex 3 (1-based) names args[2]');
  assert.equal(writeByData!.atExit, true);
  assert.equal(writeByData!.args[0]!.sizeArgIndex, 1);
  assert.equal(unlinkat!.atExit, true, 'path names are read at exit');
  assert.equal(unlinkat!.args[0]!.resolveFromReturnedFd, undefined, 'unlinkat returns no fd');
  assert.equal(execve!.atExit, true);
  assert.equal(readFd!.atExit, false, 'an fd resolves through the kernel\'s file table, safe at entry');
  assert.deepEqual(readFd!.selectors[0]!.matchArgs[0], { argIndex: 0, kind: 'string', op: 'Prefix', values: ['/etc/'] });
});

test('tracepoints: types derived from the format; __data_loc strings matched; inline arrays refused by name', () => {
  const exec = onlyHook(compileSpec(`tracepoints:
  - subsystem: sched
    event: sched_process_exec
    args: [{ index: 4 }]
    selectors:
      - matchArgs: [{ index: 4, operator: Prefix, values: [/tmp/] }]
        matchActions: [{ action: Sigkill }]
`));
  assert.deepEqual(exec.args, [{ source: { kind: 'tracepoint_field', offset: 8, size: 4, signed: false, dataLoc: true }, type: 'string' }]);
  assert.deepEqual(exec.selectors[0]!.matchArgs, [{ argIndex: 0, kind: 'string', op: 'Prefix', values: ['/tmp/'] }]);

  const hook = onlyHook(compileSpec(`tracepoints:
  - subsystem: sched
    event: sched_process_fork
    args: [{ index: 5 }, { index: 7, type: uint32 }]
    selectors:
      - matchArgs: [{ index: 7, operator: NotEqual, values: [1] }]
`));
  assert.deepEqual(hook.args, [
    { source: { kind: 'tracepoint_field', offset: 24, size: 4, signed: true }, type: 'int' },
    { source: { kind: 'tracepoint_field', offset: 44, size: 4, signed: true }, type: 'uint32' },
  ]);
  assert.deepEqual(hook.selectors[0]!.matchArgs[0]!.argIndex, 1);
  assert.throws(() => compileSpec('tracepoints:\n  - { subsystem: sched, event: sched_process_fork, args: [{ index: 4 }] }\n'),
    /spec\.tracepoints\[0\]\.args\[0\]\.index: field 4 of sched\/sched_process_fork is "char parent_comm\[16\]", an inline array/);
});

test('uprobes: one hook per symbol; return makes a uretprobe decided at return', () => {
  const program = compileSpec(`uprobes:
  - path: ${process.execPath}
    symbols: [main, uv_run]
    return: true
    args: [{ index: 0, type: int }, { index: 1, type: string }]
    returnArg: { index: 0, type: int64 }
    message: node entry points
`);
  assert.deepEqual(program.hooks.map((h) => [h.kind, h.name, h.attach, h.atExit, h.message]), [
    ['uprobe', 'main', { kind: 'uprobe', path: process.execPath, symbol: 'main', return: true }, true, 'node entry points'],
    ['uprobe', 'uv_run', { kind: 'uprobe', path: process.execPath, symbol: 'uv_run', return: true }, true, 'node entry points'],
  ]);
  assert.deepEqual(program.hooks[0]!.args.map((a) => a.source), [{ kind: 'function_arg', index: 0 }, { kind: 'function_arg', index: 1 }]);
  assert.deepEqual(program.hooks[0]!.returnArg, { source: { kind: 'return' }, type: 'int64' });
});

test("uprobes: a /procRoot/ path (Tetragon's mount of the host's /proc) is opened as /proc/ where the agent has no /procRoot; events keep the policy's path", () => {
  assert.equal(fs.existsSync('/procRoot'), false, 'this test machine has no /procRoot');
  const program = compileSpec(`uprobes:\n  - { path: /procRoot/self/exe, symbols: [main] }\n`);
  assert.deepEqual(program.hooks[0]!.attach, { kind: 'uprobe', path: '/procRoot/self/exe', file: '/proc/self/exe', symbol: 'main', return: false });
  assert.deepEqual(programFromProto(decodeMessage('vigil.v1.PolicyProgram', encodeMessage('vigil.v1.PolicyProgram', programToProto(program)))), program, 'the sensor control API carries the file');
  assert.throws(() => compileSpec('uprobes:\n  - { path: /procRoot/self/root/nowhere/bash, symbols: [main] }\n'),
    (err: unknown) => err instanceof PolicyError && err.path === 'spec.uprobes[0].path'
      && err.reason === '/procRoot/self/root/nowhere/bash (read as /proc/self/root/nowhere/bash: this agent has no /procRoot) does not exist');
  assert.equal(hostFile('/usr/procRoot/x'), '/usr/procRoot/x', 'only a path that begins with /procRoot/');
});

test('kprobes: ignore.callNotFound skips a missing syscall; a kernel with kprobes is still refused, differently', () => {
  const program = compileSpec('kprobes:\n  - { call: sys_nope, ignore: { callNotFound: true } }\n  - { call: sys_kill }\n');
  assert.deepEqual(program.hooks.map((h) => h.name), ['sys_kill']);
  assert.throws(() => compileSpec('kprobes:\n  - { call: ksys_read, syscall: false }\n', fakeEnv({ kernelHasKprobes: true })),
    (err: unknown) => err instanceof PolicyError && err.path === 'spec.kprobes[0].call'
      && err.reason === 'kprobes on kernel functions are not implemented by Vigil yet; hook the syscall instead: call: "sys_read" with syscall: true');
});

test('PolicyError: path, reason, line and source; the message leaves out what is unknown', () => {
  const text = 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: e\nspec:\n  kprobes:\n    - call: sys_kill\n      selectors:\n        - matchActions:\n            - action: Override\n';
  const expectError = (source: string | undefined, message: string) => assert.throws(() => loadPolicyText(text, env, source), (err: unknown) => {
    assert.ok(err instanceof PolicyError);
    assert.equal(err.path, 'spec.kprobes[0].selectors[0].matchActions[0].action');
    assert.equal(err.reason, 'action "Override" cannot make sys_kill fail here: without bpf_override_return, a call fails only where a cgroup program runs in it (at the entry of connect, bind, socket, sendto, sendmsg: sys_connect, security_socket_connect, security_socket_bind, …); use Sigkill');
    assert.equal(err.line, 10);
    assert.equal(err.message, message);
    return true;
  });
  expectError('p.yaml', 'p.yaml:10: spec.kprobes[0].selectors[0].matchActions[0].action: action "Override" cannot make sys_kill fail here: without bpf_override_return, a call fails only where a cgroup program runs in it (at the entry of connect, bind, socket, sendto, sendmsg: sys_connect, security_socket_connect, security_socket_bind, …); use Sigkill');
  expectError(undefined, 'spec.kprobes[0].selectors[0].matchActions[0].action: action "Override" cannot make sys_kill fail here: without bpf_override_return, a call fails only where a cgroup program runs in it (at the entry of connect, bind, socket, sendto, sendmsg: sys_connect, security_socket_connect, security_socket_bind, …); use Sigkill');
  // A document built without YAML has no lines to name.
  const [doc] = parsePolicyDocuments(text);
  assert.throws(() => compilePolicy({ ...doc!, spec: doc!.spec }, env), (err: unknown) => err instanceof PolicyError && err.line === undefined);
});

test('the bad-policy corpus: each file is refused with the message its first line names', async (t) => {
  const files = fs.readdirSync(badDir).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(files.length >= 30, `only ${files.length} bad policies`);
  for (const file of files) {
    await t.test(file, () => {
      const text = fs.readFileSync(path.join(badDir, file), 'utf8');
      const expected = /^# error: (.+)$/.exec(text.split('\n')[0]!)?.[1];
      assert.ok(expected, 'the first line must be "# error: <message>"');
      assert.throws(() => loadPolicyText(text, env, file), (err: unknown) => {
        assert.ok(err instanceof PolicyError, String(err));
        assert.ok(err.message.includes(expected), `got      ${err.message}\nexpected ${expected}`);
        return true;
      });
    });
  }
});

test('the CRDs embed the spec schema file, for both kinds, with Tetragon\'s names', () => {
  const schema: unknown = JSON.parse(fs.readFileSync(SPEC_SCHEMA_PATH, 'utf8'));
  const crds = [
    ['cilium.io_tracingpolicies.yaml', 'TracingPolicy', 'tracingpolicies', 'tgtp', 'Cluster'],
    ['cilium.io_tracingpoliciesnamespaced.yaml', 'TracingPolicyNamespaced', 'tracingpoliciesnamespaced', 'tgtpn', 'Namespaced'],
  ] as const;
  for (const [file, kind, plural, shortName, scope] of crds) {
    const crd = parseYaml(fs.readFileSync(path.join(repoRoot, 'deploy', 'crds', file), 'utf8')) as {
      metadata: { name: string };
      spec: { group: string; scope: string; names: { kind: string; plural: string; shortNames: string[] }; versions: { name: string; schema: { openAPIV3Schema: { properties: { spec: unknown } } } }[] };
    };
    assert.equal(crd.metadata.name, `${plural}.cilium.io`);
    assert.equal(crd.spec.group, 'cilium.io');
    assert.equal(crd.spec.scope, scope);
    assert.deepEqual([crd.spec.names.kind, crd.spec.names.plural, crd.spec.names.shortNames], [kind, plural, [shortName]]);
    assert.deepEqual(crd.spec.versions.map((v) => v.name), ['v1alpha1']);
    assert.deepEqual(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec, schema, `${file} embeds a different spec schema`);
  }
  // Kubernetes forbids $ref in CRDs, so the selector schema is written out per hook kind: keep the copies equal.
  const props = (schema as { properties: Record<string, { items: { properties: { selectors: unknown } } }> }).properties;
  assert.deepEqual(props.tracepoints!.items.properties.selectors, props.kprobes!.items.properties.selectors);
  assert.deepEqual(props.uprobes!.items.properties.selectors, props.kprobes!.items.properties.selectors);
});

test('capability numbers agree with Tetragon\'s proto, whose spellings are accepted too', () => {
  const proto = fs.readFileSync(path.join(repoRoot, 'proto', 'tetragon', 'capabilities.proto'), 'utf8');
  const enumBody = /enum CapabilitiesType \{([^}]*)\}/.exec(proto)![1]!;
  const fromProto = [...enumBody.matchAll(/^\s*(\w+) = (\d+);/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  assert.equal(fromProto.length, CAPABILITIES.length);
  for (const [name, n] of fromProto) {
    assert.equal(capabilityNumber(name), n, name);
    assert.equal(CAPABILITIES[n]!.replace(/^CAP_/, ''), name.replace(/^CAP_/, ''));
  }
});

test('tracepoint formats: fields in order with types, names, offsets and signedness', () => {
  const format = parseTracepointFormat(TRACEPOINTS['syscalls/sys_enter_openat']!);
  assert.equal(format.name, 'sys_enter_openat');
  assert.equal(format.id, 700);
  assert.deepEqual(format.fields.map((f) => [f.type, f.name, f.offset, f.size, f.signed]), [
    ['unsigned short', 'common_type', 0, 2, false], ['unsigned char', 'common_flags', 2, 1, false],
    ['unsigned char', 'common_preempt_count', 3, 1, false], ['int', 'common_pid', 4, 4, true],
    ['int', '__syscall_nr', 8, 4, true], ['int', 'dfd', 16, 8, false], ['const char *', 'filename', 24, 8, false],
    ['int', 'flags', 32, 8, false], ['umode_t', 'mode', 40, 8, false],
  ]);
  const exec = parseTracepointFormat(TRACEPOINTS['sched/sched_process_exec']!);
  assert.deepEqual(exec.fields[4], { declaration: '__data_loc char[] filename', type: '__data_loc char[]', name: 'filename', offset: 8, size: 4, signed: false });
});

test('DnsLookup and GetUrl: their argument is checked, and a foreign one refused', () => {
  const refusal = (action: string): string => {
    try {
      compileSpec(`kprobes:\n  - call: sys_kill\n    selectors:\n      - matchActions:\n          - ${action}\n`);
    } catch (err) {
      if (err instanceof PolicyError) return `${err.path}: ${err.reason}`;
      throw err;
    }
    return 'compiled';
  };
  const at = 'spec.kprobes[0].selectors[0].matchActions[0]';
  assert.equal(refusal('{ action: DnsLookup }'), `${at}.argFqdn: DnsLookup needs argFqdn, the name to resolve`);
  assert.equal(refusal('{ action: DnsLookup, argFqdn: "not a name" }'), `${at}.argFqdn: "not a name" is not a host name`);
  assert.equal(refusal('{ action: GetUrl, argUrl: "ftp://example.com/" }'), `${at}.argUrl: "ftp://example.com/" is not an http or https URL`);
  assert.equal(refusal('{ action: GetUrl, argUrl: "http://example.com/", argFqdn: example.com }'), `${at}.argFqdn: does not apply to action "GetUrl"`);
  const program = compileSpec('kprobes:\n  - call: sys_kill\n    selectors:\n      - matchActions:\n          - { action: DnsLookup, argFqdn: canary.example.com }\n          - { action: GetUrl, argUrl: "https://canary.example.com/x" }\n');
  assert.deepEqual(program.hooks[0]!.selectors[0]!.matchActions, [
    { action: 'DnsLookup', fqdn: 'canary.example.com' }, { action: 'GetUrl', url: 'https://canary.example.com/x' },
  ]);
});

/** killer.yaml's shape on this fake kernel's syscalls: kill and setuid, and the 32-bit kill. */
const killerSpec = (o: { enforced?: string; values?: string; action?: string; hook?: string } = {}): string => `lists:
  - { name: calls, type: syscalls, values: [${o.values ?? 'sys_kill, sys_setuid, __ia32_sys_kill'}] }
enforcers:
  - calls: [${o.enforced ?? '"list:calls"'}]
${o.hook ?? `tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{ index: 4, type: syscall64 }]
    selectors:
      - matchArgs: [{ index: 0, operator: InMap, values: ["list:calls"] }]
        matchActions: [${o.action ?? '{ action: NotifyEnforcer, argError: -1, argSig: 9 }'}]`}
`;

test('enforcers: NotifyEnforcer is its signal, sent at once by a hook that fires only inside the enforcer\'s calls; __ia32_ list values are syscall64 numbers with bit 31', () => {
  const hook = onlyHook(compileSpec(killerSpec()));
  const ia32Kill = BigInt(readCompatSyscallNumbers().get('kill')!);
  assert.equal(ia32Kill, 37n, 'asm/unistd_32.h numbers kill 37');
  assert.deepEqual(hook.args[0], { source: { kind: 'tracepoint_field', offset: 8, size: 8, signed: true }, type: 'int64', wireType: 'syscall64' });
  assert.deepEqual(hook.selectors[0]!.matchArgs, [{ argIndex: 0, kind: 'numeric', op: 'Equal', values: [62n, 105n, 0x8000_0000n | ia32Kill] }]);
  assert.deepEqual(hook.selectors[0]!.matchActions, [{ action: 'NotifyEnforcer', signal: 9 }]);
  // On a syscall kprobe of the enforcer's calls, and without argError, any signal serves.
  const onKill = onlyHook(compileSpec(killerSpec({ hook: 'kprobes:\n  - { call: sys_kill, syscall: true, selectors: [{ matchActions: [{ action: NotifyEnforcer, argSig: 10 }] }] }' })));
  assert.deepEqual(onKill.selectors[0]!.matchActions, [{ action: 'NotifyEnforcer', signal: 10 }]);
});

test('enforcers: what cannot be served is refused by field, naming why', () => {
  const refused = (spec: string, pattern: RegExp): void => assert.throws(() => compileSpec(spec), pattern);
  const action = /spec\.tracepoints\[0\]\.selectors\[0\]\.matchActions\[0\]\.action: /;
  refused(killerSpec({ enforced: 'sys_kill' }), new RegExp(`${action.source}this selector fires in syscall setuid, which spec.enforcers does not cover`));
  refused(killerSpec({ enforced: 'sys_kill, sys_setuid' }), new RegExp(`${action.source}this selector fires in 32-bit syscall 37`));
  refused(killerSpec().replace(/enforcers:\n.*\n/, ''), new RegExp(`${action.source}NotifyEnforcer needs spec.enforcers`));
  refused(killerSpec().replace(/ *- matchArgs: \[.*\]\n {8}/, '      - '), new RegExp(`${action.source}NotifyEnforcer is served here by its argSig, sent by this hook at once`));
  refused(killerSpec({ action: '{ action: NotifyEnforcer, argError: -1, argSig: 10 }' }),
    /matchActions\[0\]\.argError: the enforcer cannot make its call fail on this kernel \(no bpf_override_return or fmod_ret\); argError is accepted only with argSig 9/);
  refused(killerSpec({ action: '{ action: NotifyEnforcer, argError: -1 }' }), /matchActions\[0\]\.argSig: the NotifyEnforcer action needs argSig/);
  refused(killerSpec().replace('type: syscall64', 'type: int64'), new RegExp(`${action.source}NotifyEnforcer is served here by its argSig, sent by this hook at once`));
  refused(killerSpec({ enforced: '"list:nope"' }), /spec\.enforcers\[0\]\.calls\[0\]: no list "nope" in spec\.lists/);
  refused(killerSpec({ values: 'sys_kill, __ia32_sys_nope' }), /spec\.lists\[0\]\.values\[1\]: "__ia32_sys_nope" names no 32-bit syscall/);
  refused(killerSpec({ hook: 'kprobes:\n  - { call: "list:calls" }' }),
    /spec\.kprobes\[0\]\.call: list "calls" holds the 32-bit syscall __ia32_sys_kill, which syscall hooks here pass over/);
  refused('enforcers:\n  - { calls: [] }\nkprobes:\n  - { call: sys_kill, syscall: true }', /spec\.enforcers\[0\]\.calls/);
});
