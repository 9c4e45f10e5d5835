/**
 * Unit-test doubles for the policy store: an in-memory SensorPolicyControl
 * that records its calls and refuses on demand, a CompileEnv that knows a
 * few syscalls without reading tracefs, and policy YAML texts.
 */
import type { PolicyMode, PolicyProgram } from '../../services/lib/policy-program.js';
import { PolicyLoadError, type PolicyKernelStats, type SensorPolicyControl } from '../../services/lib/sensor-control.js';
import { parseTracepointFormat, readCompatSyscallNumbers, readSyscallNumbers, syscallNames, type CompileEnv } from '../../services/enforcer/index.js';
import { KernelBtf } from '../../services/enforcer/compiler/kernel-btf.js';

interface Loaded { program: PolicyProgram; mode: PolicyMode; enabled: boolean }

export class FakeControl implements SensorPolicyControl {
  /** Every call, as "load NAME", "unload NAME", "mode NAME enforce", "enable NAME true". */
  readonly calls: string[] = [];
  readonly loaded = new Map<string, Loaded>();
  /** loadPolicy of these names throws PolicyLoadError with the reason. */
  readonly refuse = new Map<string, string>();
  /** unloadPolicy of these names throws. */
  readonly failUnload = new Set<string>();
  /** Each load waits for this before finishing (to observe the loading state). */
  loadGate: Promise<void> = Promise.resolve();

  async loadPolicy(program: PolicyProgram): Promise<void> {
    this.calls.push(`load ${program.name}`);
    await this.loadGate;
    const reason = this.refuse.get(program.name);
    if (reason !== undefined) throw new PolicyLoadError(program.name, reason);
    if (this.loaded.has(program.name)) throw new Error(`policy ${program.name} is already loaded`);
    this.loaded.set(program.name, { program, mode: program.mode, enabled: true });
  }

  async unloadPolicy(name: string): Promise<void> {
    this.calls.push(`unload ${name}`);
    this.get(name);
    if (this.failUnload.has(name)) throw new Error(`cannot detach ${name}`);
    this.loaded.delete(name);
  }

  async setPolicyMode(name: string, mode: PolicyMode): Promise<void> {
    this.calls.push(`mode ${name} ${mode}`);
    this.get(name).mode = mode;
  }

  async setPolicyEnabled(name: string, enabled: boolean): Promise<void> {
    this.calls.push(`enable ${name} ${enabled}`);
    this.get(name).enabled = enabled;
  }

  policyStats(name: string): PolicyKernelStats {
    this.get(name);
    return { matched: 7, actionsApplied: 2, actionsMonitored: 3, rateLimited: 1 };
  }

  private get(name: string): Loaded {
    const policy = this.loaded.get(name);
    if (policy === undefined) throw new Error(`unknown policy ${name}`);
    return policy;
  }
}

/** The formats of syscalls/sys_enter_<name>, enough for the compiler to type their arguments. */
const SYSCALL_PARAMS: Record<string, string[]> = {
  openat: ['int dfd', 'const char * filename', 'int flags', 'umode_t mode'],
  unlinkat: ['int dfd', 'const char * pathname', 'int flag'],
  kill: ['pid_t pid', 'int sig'],
  connect: ['int fd', 'struct sockaddr * uservaddr', 'int addrlen'],
  read: ['unsigned int fd', 'char * buf', 'size_t count'],
  write: ['unsigned int fd', 'const char * buf', 'size_t count'],
};

function syscallFormat(name: string): string {
  const fields = SYSCALL_PARAMS[name]!.map((decl, i) => `\tfield:${decl};\toffset:${16 + 8 * i};\tsize:8;\tsigned:0;`);
  return `name: sys_enter_${name}\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n`
    + `\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n${fields.join('\n')}\n\nprint fmt: ""\n`;
}

/** sched:sched_prepare_exec as this machine's tracefs gives it (6.18). */
const PREPARE_EXEC_FORMAT = ['name: sched_prepare_exec', 'ID: 364', 'format:',
  '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;', '\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;',
  '\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;', '\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;', '',
  '\tfield:__data_loc char[] interp;\toffset:8;\tsize:4;\tsigned:0;', '\tfield:__data_loc char[] filename;\toffset:12;\tsize:4;\tsigned:0;',
  '\tfield:pid_t pid;\toffset:16;\tsize:4;\tsigned:1;', '\tfield:__data_loc char[] comm;\toffset:20;\tsize:4;\tsigned:0;', '',
  'print fmt: "interp=%s filename=%s pid=%d comm=%s"'].join('\n');

/** A CompileEnv that knows the syscalls of SYSCALL_PARAMS and nothing else. */
export function fakeCompileEnv(): CompileEnv {
  return {
    hostNamespaces: { Uts: 1, Ipc: 2, Mnt: 3, Pid: 4, PidForChildren: 5, Net: 6, Time: 7, TimeForChildren: 8, Cgroup: 9, User: 10 },
    tracepointFormat(subsystem, event) {
      if (subsystem === 'sched' && event === 'sched_prepare_exec') return parseTracepointFormat(PREPARE_EXEC_FORMAT);
      const syscall = /^sys_(?:enter|exit)_(\w+)$/.exec(event)?.[1];
      if (subsystem !== 'syscalls' || syscall === undefined || !(syscall in SYSCALL_PARAMS)) throw new Error(`no tracepoint ${subsystem}/${event}`);
      return parseTracepointFormat(syscallFormat(syscall));
    },
    syscallExists: (name) => name in SYSCALL_PARAMS,
    syscallNumber: (name: string) => readSyscallNumbers().get(name),
    compatSyscallNumber: (name: string) => readCompatSyscallNumbers().get(name),
    syscallNames,
    kernelFunctionExists: () => true,
    kernelHasKprobes: false,
    kernelBtf: () => KernelBtf.vmlinux(),
  };
}

/** One sys_openat hook whose string argument 1 must match `values` (YAML flow text) by `operator`. */
export function openatArgHook(values: string, operator = 'Prefix'): string {
  return `  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: ${operator}
        values: ${values}
`;
}

/** A TracingPolicy named `name` made of the given kprobe hooks. */
export function policyWithHooks(name: string, hooks: string[]): string {
  return `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n  kprobes:\n${hooks.join('')}`;
}

/** A TracingPolicy hooking sys_<syscall> (a kprobe with syscall: true), reading its argument 1 (a string by default). */
export function policyText(name: string, opts: { syscall?: string; argType?: string; mode?: PolicyMode; namespace?: string } = {}): string {
  const kind = opts.namespace === undefined ? 'TracingPolicy' : 'TracingPolicyNamespaced';
  const namespace = opts.namespace === undefined ? '' : `\n  namespace: ${opts.namespace}`;
  const options = opts.mode === undefined ? '' : `\n  options:\n  - name: policy-mode\n    value: ${opts.mode}`;
  return `apiVersion: cilium.io/v1alpha1
kind: ${kind}
metadata:
  name: ${name}${namespace}
spec:${options}
  kprobes:
  - call: sys_${opts.syscall ?? 'openat'}
    syscall: true
    args:
    - index: 1
      type: ${opts.argType ?? 'string'}
`;
}

/** A two-document text; the second document's kprobe names a call the compiler refuses (line 19: spec.kprobes[0].call). */
export function twoDocuments(first: string, second: string, opts: { badSecond?: boolean } = {}): string {
  const text = `${policyText(first)}---\n${policyText(second, { syscall: 'unlinkat' })}`;
  return opts.badSecond ? text.replace('call: sys_unlinkat', 'call: sys_no_such_call') : text;
}
