/**
 * A parsed TracingPolicy to the PolicyProgram the sensor loads: each hook
 * mapped to what this kernel can attach (syscall tracepoints for syscall
 * kprobes, tracepoints, uprobes), each argument to where its value is read,
 * and the moment of decision chosen: at syscall exit when a decision needs
 * the return value or a string the kernel has copied (KERNEL.md: never match
 * a user pointer at entry), otherwise at entry, where a kill stops the most.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OVERRIDE_SYSCALLS, type ArgMatch, type ArgSource, type ArgSpec, type ArgType, type FollowUpAction, type Hook, type PolicyMode, type PolicyProgram, type PolicyScope, type ResolvedField } from '../../lib/policy-program.js';
import { SYSCALL64_32BIT as SYSCALL64_32BIT_MASK } from '../../lib/kernel-abi.js';
import { syscallAttach, type CompileEnv } from './env.js';
import type { FieldPath } from './errors.js';
import { ARCH_PREFIX, archPrefixOf, PATH_ARGS, RETURNS_OPENED_FD } from './kernel-names.js';
import { policyErrorAt, type TracingPolicyDocument } from './parse.js';
import { compileSelectors, isSet, valueClass, type ArgInfo } from './selectors.js';
import type { EnforcerSpec, KProbeArg, KProbeSelector, KProbeSpec, ListSpec, LsmHookSpec, OptionSpec, TracepointSpec, UProbeSpec, UsdtSpec } from './spec-types.js';
import { readUsdtProbes, type UsdtProbe } from './usdt-notes.js';
import { RAW_TRACEPOINTS, REFUSED, TRANSLATIONS, type Target, type Translation } from './translations.js';
import type { TracepointField, TracepointFormat } from './tracepoint-format.js';

/** Tetragon's argument type names Vigil reads, and what they become. */
const ARG_TYPES: Record<string, ArgType> = {
  int: 'int', sint32: 'int', int32: 'int', uint32: 'uint32',
  long: 'int64', sint64: 'int64', int64: 'int64', ulong: 'uint64', uint64: 'uint64', size_t: 'size_t',
  string: 'string', char_buf: 'char_buf', fd: 'fd', file: 'file', path: 'path', sockaddr: 'sockaddr',
  kernel_cap_t: 'cap_set', syscall64: 'int64',
};

/** The declared types a resolved field can be read as. */
const RESOLVED_TYPES = new Set(['string', 'int', 'sint32', 'int32', 'uint32', 'long', 'sint64', 'int64', 'ulong', 'uint64', 'size_t']);

/** Declared types reported in a form of their own though read as another (ARG_TYPES): the event keeps the declared one. */
const WIRE_TYPES = new Set(['syscall64']);

/** Tetragon's `nop`: an argument that is neither read nor reported. */
const withoutNops = (args: KProbeArg[] | undefined): KProbeArg[] => (args ?? []).filter((a) => a.type !== 'nop');

/** C integer types of syscall parameters; their tracepoint fields are all 8-byte slots, so the type says the width. */
const C_INTEGERS: Record<string, ArgType> = {
  'int': 'int', 'pid_t': 'int', 'clockid_t': 'int', 'key_serial_t': 'int', 'mqd_t': 'int', 'timer_t': 'int', 'rwf_t': 'int',
  'unsigned int': 'uint32', 'unsigned': 'uint32', 'u32': 'uint32', '__u32': 'uint32', 'uid_t': 'uint32', 'gid_t': 'uint32',
  'qid_t': 'uint32', 'umode_t': 'uint32', 'old_uid_t': 'uint32', 'old_gid_t': 'uint32', 'unsigned short': 'uint32',
  'long': 'int64', 'loff_t': 'int64', 'off_t': 'int64', 's64': 'int64', '__s64': 'int64', 'ssize_t': 'int64',
  'unsigned long': 'uint64', 'size_t': 'size_t', 'u64': 'uint64', '__u64': 'uint64', 'aio_context_t': 'uint64',
};

/** What a format field holds, as far as reading it goes. */
type FieldShape = 'integer' | 'char_pointer' | 'sockaddr_pointer' | 'pointer' | 'array' | 'string_data_loc' | 'data_loc';

const cType = (field: TracepointField): string => field.type.replace(/\bconst\b/g, '').replace(/\s+/g, ' ').trim();

function fieldShape(field: TracepointField): FieldShape {
  const t = cType(field);
  if (t.startsWith('__data_loc')) return t === '__data_loc char[]' ? 'string_data_loc' : 'data_loc';
  if (t.includes('[')) return 'array';
  if (t.endsWith('*')) {
    if (/^(unsigned )?char \*$/.test(t)) return 'char_pointer';
    if (t === 'struct sockaddr *') return 'sockaddr_pointer';
    return 'pointer';
  }
  return 'integer';
}

/** The type `auto` stands for. Syscall fields are padded to 8 bytes, so only their C type tells the width. */
function derivedType(field: TracepointField, trustSize: boolean): ArgType | undefined {
  switch (fieldShape(field)) {
    case 'char_pointer': case 'string_data_loc': return 'string';
    case 'sockaddr_pointer': return 'sockaddr';
    case 'pointer': return 'uint64';
    case 'array': case 'data_loc': return undefined;
    case 'integer': {
      const known = C_INTEGERS[cType(field)];
      if (known !== undefined || !trustSize) return known;
      if (field.size === 8) return field.signed ? 'int64' : 'uint64';
      return field.signed ? 'int' : 'uint32';
    }
  }
}

const SHAPE_WORDS: Record<FieldShape, string> = {
  integer: 'an integer', char_pointer: 'a string pointer', sockaddr_pointer: 'a sockaddr pointer', pointer: 'a pointer',
  array: 'an inline array', string_data_loc: 'a __data_loc string', data_loc: 'a __data_loc field that is not a string',
};

const isPointer = (shape: FieldShape): boolean => shape === 'char_pointer' || shape === 'sockaddr_pointer' || shape === 'pointer';

/** Whether a value of `type` can be read from a field of this shape. */
function fits(type: ArgType, shape: FieldShape): boolean {
  switch (type) {
    case 'string': return shape === 'char_pointer' || shape === 'pointer' || shape === 'string_data_loc';
    case 'char_buf': return shape === 'char_pointer' || shape === 'pointer';
    case 'sockaddr': return shape === 'sockaddr_pointer' || shape === 'pointer';
    case 'fd': case 'file': case 'path': return shape === 'integer';
    default: return shape === 'integer' || isPointer(shape);
  }
}

/** Options of Tetragon that change nothing here: their values are checked, then ignored. */
const GO_BOOLEANS = ['1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False'];
const IGNORED_OPTIONS: Record<string, { check: (v: string) => boolean; expected: string }> = {
  'disable-kprobe-multi': { check: (v) => GO_BOOLEANS.includes(v), expected: 'a boolean' },
  'disable-uprobe-multi': { check: (v) => GO_BOOLEANS.includes(v), expected: 'a boolean' },
  'override-method': { check: (v) => v === 'fmod-ret' || v === 'override-return', expected: '"fmod-ret" or "override-return"' },
  'sleepable-preload-size': { check: (v) => /^[1-9]\d*$/.test(v), expected: 'a positive integer' },
};

/** Spec fields of Tetragon that Vigil refuses when set, and why. */
const REFUSED_SPEC_FIELDS: Record<string, string> = {
  fentries: 'fentries are not supported by Vigil (this kernel refuses fentry programs); hook syscalls with kprobes and syscall: true',
  hostSelector: 'hostSelector is not supported by Vigil yet',
  nodeSelector: 'nodeSelector is not supported by Vigil yet',
  selectorsMacros: 'selectorsMacros are not supported by Vigil yet; write the filters in each selector',
};

/** mmap(addr, len, prot, flags, fd, off): the arguments a loader event needs, and PROT_EXEC (linux/mman.h). */
const MMAP_PROT = 2;
const MMAP_FD = 4;
const PROT_EXEC = 4;

/** Most registers a function argument is passed in (x86-64: rdi, rsi, rdx, rcx, r8, r9). */
const MAX_REGISTER_ARGS = 6;

/** Tetragon's mark of a 32-bit syscall in a syscall64 value and in list numbers. */
const SYSCALL64_32BIT = BigInt(SYSCALL64_32BIT_MASK);

/** A syscall a list or an enforcer names: of this machine's ABI, or (compat) a 32-bit one on x86-64 (`__ia32_sys_NAME`). */
interface SyscallEntry { syscall: string; compat: boolean }

/**
 * Where a hook fires, for NotifyEnforcer: inside these syscalls (their syscall64
 * numbers), or inside those its selector's matchArgs on the syscall id (at
 * these positions of args) names.
 */
type FiresIn = { syscalls: bigint[] } | { idArgs: number[] };

interface HookCommonOut {
  selectors: Hook['selectors'];
  matchedArgs: Set<number>;
  /** Carried through to events. */
  report: Pick<Hook, 'message' | 'tags'>;
}

class Compiler {
  /** The policy's lists of syscalls by name (`call: "list:NAME"`, `InMap` values). */
  private lists = new Map<string, SyscallEntry[]>();
  /** The syscall64 numbers of the calls the policy's enforcers cover; undefined: it has none. */
  private enforcerCalls: Set<bigint> | undefined;
  /** The lists of type generated_syscalls: every syscall. */
  private readonly generated = new Set<string>();

  constructor(private readonly doc: TracingPolicyDocument, private readonly env: CompileEnv) {}

  /** The syscall lists, each syscall checked; generated lists refused by what they would need. */
  private readLists(lists: ListSpec[]): Map<string, SyscallEntry[]> {
    const out = new Map<string, SyscallEntry[]>();
    lists.forEach((l, i) => {
      const at: FieldPath = ['spec', 'lists', i];
      if (out.has(l.name)) this.fail([...at, 'name'], `list "${l.name}" is defined twice`);
      if (l.type === 'generated_ftrace') this.fail([...at, 'type'], 'generated_ftrace lists name kernel functions found through ftrace, which only kprobes can hook; this kernel has neither kprobes nor ftrace function hooks');
      if (l.type === 'generated_syscalls') {
        if (isSet(l.values)) this.fail([...at, 'values'], 'a generated_syscalls list is every syscall: it takes no values');
        this.generated.add(l.name);
        out.set(l.name, [...this.env.syscallNames().values()].map((syscall) => ({ syscall, compat: false })));
        return;
      }
      const values = l.values ?? [];
      if (values.length === 0) this.fail([...at, 'values'], 'a syscalls list needs values');
      out.set(l.name, values.map((v, k) => this.syscallEntry(v, [...at, 'values', k])));
    });
    return out;
  }

  /** A syscall of a list's values or an enforcer's calls. */
  private syscallEntry(value: string, at: FieldPath): SyscallEntry {
    const compat = /^__ia32_sys_(\w+)$/.exec(value)?.[1];
    if (compat === undefined || ARCH_PREFIX !== '__x64_') return { syscall: this.syscallOf({ call: value, syscall: true }, at, 'value') ?? value, compat: false };
    if (this.env.compatSyscallNumber(compat) === undefined) this.fail(at, `"${value}" names no 32-bit syscall this machine knows (asm/unistd_32.h)`);
    return { syscall: compat, compat: true };
  }

  /** Its number as a syscall64 value holds it: a 32-bit call's with SYSCALL64_32BIT. */
  private syscallEntryNumber(e: SyscallEntry, at: FieldPath): bigint {
    const n = e.compat ? this.env.compatSyscallNumber(e.syscall) : this.env.syscallNumber(e.syscall);
    if (n === undefined) this.fail(at, `the number of syscall ${e.syscall} is not known on this machine`);
    return e.compat ? BigInt(n) | SYSCALL64_32BIT : BigInt(n);
  }

  /** The numbers of a list's syscalls, or undefined when the policy has no such list. */
  private listNumbers(name: string, at: FieldPath): bigint[] | undefined {
    return this.lists.get(name)?.map((e) => this.syscallEntryNumber(e, at));
  }

  /**
   * The calls of the enforcers: without bpf_override_return or fmod_ret there
   * is no enforcer program here, only the NotifyEnforcer actions that signal
   * at once in these calls (checkNotifications).
   */
  private readEnforcers(enforcers: EnforcerSpec[]): Set<bigint> | undefined {
    if (enforcers.length === 0) return undefined;
    const out = new Set<bigint>();
    enforcers.forEach((e, i) => e.calls.forEach((call, k) => {
      const at: FieldPath = ['spec', 'enforcers', i, 'calls', k];
      const list = call.startsWith('list:') ? call.slice('list:'.length) : undefined;
      const numbers = list === undefined ? [this.syscallEntryNumber(this.syscallEntry(call, at), at)]
        : this.listNumbers(list, at) ?? this.fail(at, `no list "${list}" in spec.lists`);
      for (const n of numbers) out.add(n);
    }));
    return out;
  }

  /** A kprobe, or one per syscall of the list its call names (one for all of a generated list). */
  private kprobeOrList(k: KProbeSpec, at: FieldPath): Hook[] {
    if (!k.call.startsWith('list:')) return this.kprobe(k, at);
    const name = k.call.slice('list:'.length);
    const syscalls = this.lists.get(name) ?? this.fail([...at, 'call'], `no list "${name}" in spec.lists`);
    if (this.generated.has(name)) return [this.everySyscall(k, at)];
    const compat = syscalls.find((e) => e.compat);
    if (compat !== undefined) {
      this.fail([...at, 'call'], `list "${name}" holds the 32-bit syscall __ia32_sys_${compat.syscall}, which syscall hooks here pass over (as the syscalls:* tracepoints do); `
        + 'match it on raw_syscalls/sys_enter with a syscall64 argument instead');
    }
    return syscalls.flatMap((e) => this.kprobe({ ...k, call: `sys_${e.syscall}`, syscall: true }, at));
  }

  private fail(path: FieldPath, reason: string): never {
    throw policyErrorAt(this.doc, path, reason);
  }

  run(): PolicyProgram {
    const spec = this.doc.spec;
    for (const [field, reason] of Object.entries(REFUSED_SPEC_FIELDS)) {
      if (isSet(spec[field as keyof typeof spec])) this.fail(['spec', field], reason);
    }
    const { mode, followUp } = this.options(spec.options ?? []);
    const kprobes = spec.kprobes ?? [];
    const tracepoints = spec.tracepoints ?? [];
    const uprobes = spec.uprobes ?? [];
    const lsmhooks = spec.lsmhooks ?? [];
    const usdts = spec.usdts ?? [];
    if (kprobes.length + tracepoints.length + uprobes.length + lsmhooks.length + usdts.length === 0 && spec.loader !== true) {
      this.fail(['spec'], 'the policy hooks nothing: give kprobes, tracepoints, uprobes, lsmhooks, usdts or loader: true');
    }
    this.lists = this.readLists(spec.lists ?? []);
    this.enforcerCalls = this.readEnforcers(spec.enforcers ?? []);
    const hooks: Hook[] = [
      ...kprobes.flatMap((k, i) => this.kprobeOrList(k, ['spec', 'kprobes', i])),
      ...tracepoints.map((t, i) => this.tracepoint(t, ['spec', 'tracepoints', i])),
      ...uprobes.flatMap((u, i) => this.uprobe(u, ['spec', 'uprobes', i])),
      ...lsmhooks.flatMap((l, i) => this.lsmHook(l, ['spec', 'lsmhooks', i])),
      ...usdts.map((u, i) => this.usdt(u, ['spec', 'usdts', i])),
      ...(spec.loader === true ? [this.loader(['spec', 'loader'])] : []),
    ];
    const scope = {
      ...(this.doc.namespace !== undefined && { namespace: this.doc.namespace }),
      ...(spec.podSelector && { podSelector: spec.podSelector }),
      ...(spec.containerSelector && { containerSelector: spec.containerSelector }),
    };
    return {
      name: this.doc.name, ...(this.doc.namespace === undefined ? {} : { namespace: this.doc.namespace }), mode, hooks,
      ...(followUp && { followUp }), ...(Object.keys(scope).length > 0 && { scope: scope as PolicyScope }),
    };
  }

  /** policy-mode, Vigil's followup-action, and Tetragon's options that change nothing here. */
  private options(options: OptionSpec[]): { mode: PolicyMode; followUp?: FollowUpAction } {
    let mode: PolicyMode | undefined;
    let followUp: FollowUpAction | undefined;
    const seen = new Set<string>();
    options.forEach((o, i) => {
      const at: FieldPath = ['spec', 'options', i];
      if (seen.has(o.name)) this.fail([...at, 'name'], `option "${o.name}" is given twice`);
      seen.add(o.name);
      const value = o.value ?? '';
      if (o.name === 'policy-mode') {
        if (value !== 'enforce' && value !== 'monitor') this.fail([...at, 'value'], `policy-mode must be "enforce" or "monitor", got ${JSON.stringify(value)}`);
        mode = value;
        return;
      }
      if (o.name === 'followup-action') {
        if (value !== 'kill-process-tree') this.fail([...at, 'value'], `followup-action must be "kill-process-tree", got ${JSON.stringify(value)}`);
        followUp = value;
        return;
      }
      const ignored = IGNORED_OPTIONS[o.name] ?? this.fail([...at, 'name'], `unknown option "${o.name}" (Vigil knows policy-mode, followup-action, ${Object.keys(IGNORED_OPTIONS).join(', ')})`);
      if (!ignored.check(value)) this.fail([...at, 'value'], `${o.name} must be ${ignored.expected}, got ${JSON.stringify(value)}`);
    });
    return { mode: mode ?? 'enforce', ...(followUp && { followUp }) };
  }

  /** The syscall a kprobe's `call` names, or why it cannot be served. Undefined: skipped (ignore.callNotFound). */
  private syscallOf(k: Pick<KProbeSpec, 'call' | 'syscall' | 'ignore'>, at: FieldPath, field = 'call'): string | undefined {
    const call = k.call;
    const prefix = archPrefixOf(call);
    if (prefix !== undefined && prefix.prefix !== ARCH_PREFIX) {
      this.fail(field === 'call' ? [...at, 'call'] : at, `"${call}" is the ${prefix.arch} name of a syscall and this machine is ${process.arch}; write "${call.slice(prefix.prefix.length)}"`);
    }
    const bare = prefix === undefined ? call : call.slice(prefix.prefix.length);
    const syscall = /^sys_(\w+)$/.exec(bare)?.[1];
    if (k.syscall && syscall !== undefined) {
      if (this.env.syscallExists(syscall)) return syscall;
      if (k.ignore?.callNotFound) return undefined;
      this.fail(field === 'call' ? [...at, 'call'] : at, `syscall "${syscall}" does not exist on this kernel (no tracepoint syscalls/sys_enter_${syscall})`);
    }
    if (k.syscall && this.env.syscallExists(call)) {
      this.fail([...at, 'call'], `a syscall is named with its sys_ prefix: call: "sys_${call}"`);
    }
    if (field !== 'call') this.fail(at, `"${call}" is not a syscall (write sys_NAME)`);
    // A kernel function: only a kprobe reaches it. Point at the syscall it serves, when there is one.
    const served = /^(?:__\w+?_)?(?:__se_|__do_)?(?:k|do_)?sys_(\w+)$/.exec(call)?.[1];
    // Point at the syscall the function serves, when there is one; else at what is served here.
    const hint = served !== undefined && this.env.syscallExists(served)
      ? `hook the syscall instead: call: "sys_${served}" with syscall: true`
      : 'hook the syscalls or tracepoints that see the same moment (the kernel functions served here are listed in docs/architecture.md)';
    const refused = REFUSED[call];
    if (refused !== undefined) this.fail([...at, 'call'], `kernel function "${call}" cannot be served here: ${refused}`);
    if (!this.env.kernelHasKprobes) {
      this.fail([...at, 'call'], `kernel function "${call}" needs kprobes, which this kernel does not have (CONFIG_KPROBES), and no tracepoint here serves it (see the hook translation table); ${hint}`);
    }
    return this.fail([...at, 'call'], `kprobes on kernel functions are not implemented by Vigil yet; ${hint}`);
  }

  private kprobe(k: KProbeSpec, at: FieldPath): Hook[] {
    if (isSet(k.data)) this.fail([...at, 'data'], 'data is not supported by Vigil yet');
    if (isSet(k.returnArgAction) && k.returnArgAction !== 'TrackSock' && k.returnArgAction !== 'UntrackSock') {
      this.fail([...at, 'returnArgAction'], `returnArgAction "${k.returnArgAction}" is not supported by Vigil (TrackSock and UntrackSock are)`);
    }
    if (!k.syscall && !this.env.kernelHasKprobes && TRANSLATIONS[k.call] !== undefined) {
      const names = [k.call, ...(TRANSLATIONS[k.call]!.renamedTo ? [TRANSLATIONS[k.call]!.renamedTo!] : [])];
      if (!names.some((n) => this.env.kernelFunctionExists(n))) {
        if (k.ignore?.callNotFound) return [];
        this.fail([...at, 'call'], `kernel function "${k.call}" does not exist in this kernel (not in /proc/kallsyms)`);
      }
      return this.translated(k, 'kprobe', k.call, k.call, at);
    }
    const syscall = this.syscallOf(k, at);
    if (syscall === undefined) return [];
    const params = this.syscallParams(syscall, at);
    const pathArgs = PATH_ARGS[syscall] ?? [];
    const opensFd = RETURNS_OPENED_FD.has(syscall);

    const args = withoutNops(k.args).map((a, j): ArgInfo => {
      const where: FieldPath = [...at, 'args', j];
      this.refuseArgFields(a, where);
      if (a.index >= params.length) {
        this.fail([...where, 'index'], `sys_${syscall} has ${params.length} arguments (${params.map((p) => p.name).join(', ')}): there is no index ${a.index}`);
      }
      const param = params[a.index]!;
      const type = this.fieldType(a, param, true, where, `argument ${a.index} of sys_${syscall}`);
      const isPath = type === 'string' && pathArgs.includes(a.index);
      return {
        index: a.index,
        spec: {
          source: { kind: 'syscall_arg', index: a.index },
          type,
          ...(isPath && opensFd ? { resolveFromReturnedFd: true } : {}),
          ...(a.label ? { label: a.label } : {}),
          ...(WIRE_TYPES.has(a.type) ? { wireType: a.type } : {}),
        },
        userPointerAtEntry: false,
      };
    });
    this.sizeArgs(withoutNops(k.args), args, at);
    if (isSet(k.returnArgAction)) this.fail([...at, 'returnArgAction'], `${k.returnArgAction} needs a sock return value; sys_${syscall} returns a number`);
    const returnArg = this.returnArg(k.return ?? false, k.returnArg, at, ['int', 'uint32', 'int64', 'uint64', 'size_t', 'fd', 'file', 'path']);
    const common = this.hookCommon(k, at, args, returnArg, k.call, {
      overrides: OVERRIDE_SYSCALLS.includes(syscall) && returnArg === undefined, firesIn: { syscalls: [BigInt(syscallAttach(this.env, syscall).number)] },
    });
    // An Override decides at the call's entry, before the cgroup program that fails the call runs.
    const overrides = common.selectors.some((s) => s.matchActions.some((a) => a.action === 'Override'));

    // Decide at exit when the return value is needed, or a string only safe to read once
    // the kernel has copied it: path names always, other user memory when a selector tests it.
    // An fd resolves through the kernel's file table, safe at entry.
    const readsUserMemory = (a: ArgInfo): boolean => ['string', 'char_buf', 'sockaddr'].includes(a.spec.type);
    const atExit = !overrides && (returnArg !== undefined
      || args.some((a, pos) => (a.spec.type === 'string' && pathArgs.includes(a.index)) || (common.matchedArgs.has(pos) && readsUserMemory(a))));

    return [{
      kind: 'kprobe',
      name: k.call,
      attach: syscallAttach(this.env, syscall),
      args: args.map((a) => a.spec),
      ...(returnArg ? { returnArg: returnArg.spec } : {}),
      atExit,
      selectors: common.selectors,
      ...common.report,
    }];
  }

  /**
   * A USDT probe: a uprobe at the probe's address, found in the binary's
   * .note.stapsdt; its arguments are read from the locations the note gives
   * (registers, constants, memory at a register), by their position.
   */
  private usdt(u: UsdtSpec, at: FieldPath): Hook {
    const file = this.binaryFile(u.path, [...at, 'path']);
    let probes: UsdtProbe[];
    try {
      probes = readUsdtProbes(file);
    } catch (err) {
      return this.fail([...at, 'path'], (err as Error).message);
    }
    const probe = probes.find((p) => p.provider === u.provider && p.name === u.name);
    if (!probe) {
      const known = probes.map((p) => `${p.provider}:${p.name}`);
      this.fail([...at, 'name'], `${u.path} has no USDT probe ${u.provider}:${u.name} (${known.length ? `it has ${[...new Set(known)].join(', ')}` : 'it has none'})`);
    }
    if (probe.problem) this.fail([...at, 'name'], `USDT probe ${u.provider}:${u.name} cannot be read here: ${probe.problem}`);
    const args = withoutNops(u.args).map((a, j): ArgInfo => {
      const where: FieldPath = [...at, 'args', j];
      this.refuseArgFields(a, where);
      const loc = probe.args[a.index] ?? this.fail([...where, 'index'], `USDT probe ${u.provider}:${u.name} has ${probe.args.length} arguments: there is no index ${a.index}`);
      const type = this.declaredType(a, where, () => (loc.size === 8 ? (loc.signed ? 'int64' : 'uint64') : loc.signed ? 'int' : 'uint32'));
      let source: ArgSource;
      if (loc.location.kind === 'constant') {
        if (loc.location.value < 0 || loc.location.value > 0xffff) this.fail([...where, 'index'], `the constant ${loc.location.value} of this USDT argument is out of what Vigil reads (0 to 65535)`);
        source = { kind: 'constant', value: loc.location.value };
      } else {
        const displacement = loc.location.kind === 'memory' ? loc.location.displacement : undefined;
        if (displacement !== undefined && (displacement < -0x8000 || displacement > 0x7fff)) this.fail([...where, 'index'], `the displacement ${displacement} of this USDT argument is out of what Vigil reads (16 bits)`);
        source = { kind: 'usdt', register: loc.location.register, size: loc.size, signed: loc.signed, ...(displacement !== undefined && { displacement }) };
      }
      return { index: a.index, spec: { source, type, ...(a.label ? { label: a.label } : {}) }, userPointerAtEntry: false };
    });
    this.sizeArgs(withoutNops(u.args), args, at);
    const common = this.hookCommon(u, at, args, undefined, `${u.provider}:${u.name}`);
    return {
      kind: 'usdt', name: u.name, subsystem: u.provider,
      attach: { kind: 'uprobe', path: u.path, ...(file !== u.path && { file }), symbol: '', return: false, offset: probe.offset, ...(probe.semaphoreOffset && { refCtrOffset: probe.semaphoreOffset }) },
      args: args.map((a) => a.spec), atExit: false, selectors: common.selectors, ...common.report,
    };
  }

  /**
   * `loader: true`: every file a process maps executable, as Tetragon's loader
   * sensor reports it (process_loader, with the file's build ID). Served by the
   * exit of mmap with PROT_EXEC (checked in the kernel) of a file that
   * succeeded: what the dynamic loader does for each library.
   */
  private loader(at: FieldPath): Hook {
    if (!this.env.syscallExists('mmap')) this.fail(at, 'this kernel has no mmap syscall tracepoint to serve loader events');
    const fd: ArgSpec = { source: { kind: 'syscall_arg', index: MMAP_FD }, type: 'int', hidden: true };
    const none = { matchPIDs: [], matchArgs: [], matchBinaries: [], matchNamespaces: [], matchNamespaceChanges: [], matchCapabilities: [], matchCapabilityChanges: [] };
    return {
      kind: 'loader', name: 'loader', attach: syscallAttach(this.env, 'mmap'),
      args: [{ source: { kind: 'syscall_arg', index: MMAP_FD }, type: 'file' }, fd],
      returnArg: { source: { kind: 'return' }, type: 'int64' },
      atExit: true,
      guard: { arg: { source: { kind: 'syscall_arg', index: MMAP_PROT }, type: 'uint64' }, op: 'mask', value: PROT_EXEC },
      selectors: [{
        ...none,
        matchArgs: [{ argIndex: 1, kind: 'numeric', op: 'GreaterThan', values: [-1n] }],
        matchReturnArgs: [{ argIndex: 0, kind: 'numeric', op: 'GreaterThan', values: [-1n] }],
        matchActions: [{ action: 'Post' }],
      }],
    };
  }

  /**
   * A kprobe on a generated_syscalls list: Tetragon hooks each syscall; here one
   * hook on raw_syscalls/sys_enter serves them all, its events named after the
   * syscall by its number (`__x64_sys_NAME`). Arguments have no value here: each
   * syscall has its own.
   */
  private everySyscall(k: KProbeSpec, at: FieldPath): Hook {
    if (withoutNops(k.args).length > 0) this.fail([...at, 'args'], 'a hook on every syscall (a generated_syscalls list) has no arguments: each syscall has its own');
    if (k.return) this.fail([...at, 'return'], 'a hook on every syscall (a generated_syscalls list) is taken at entry: it has no return value');
    const id = this.env.tracepointFormat('raw_syscalls', 'sys_enter').fields.find((f) => f.name === 'id')
      ?? this.fail([...at, 'call'], 'raw_syscalls/sys_enter has no id field on this kernel');
    const numberArg: ArgInfo = { index: 0, spec: { source: { kind: 'tracepoint_field', offset: id.offset, size: id.size, signed: id.signed }, type: 'int64', hidden: true }, userPointerAtEntry: false };
    const common = this.hookCommon(k, at, [], undefined, k.call);
    const names: string[] = [];
    for (const [n, name] of this.env.syscallNames()) names[n] = name;
    return {
      kind: 'kprobe', name: k.call, attach: { kind: 'tracepoint', subsystem: 'raw_syscalls', event: 'sys_enter' },
      args: [numberArg.spec], atExit: false, selectors: common.selectors, syscallNames: Array.from(names, (n) => n ?? ''), ...common.report,
    };
  }

  /** An LSM hook: served as its translation says (this kernel has no BPF-LSM), reported as process_lsm. */
  private lsmHook(l: LsmHookSpec, at: FieldPath): Hook[] {
    const key = `lsm:${l.hook}`;
    if (TRANSLATIONS[key] === undefined) {
      const served = Object.keys(TRANSLATIONS).filter((t) => t.startsWith('lsm:')).map((t) => t.slice(4));
      this.fail([...at, 'hook'], `LSM hook "${l.hook}" needs BPF-LSM, which this kernel does not have (the bpf LSM is not active), and no tracepoint here serves it (the LSM hooks served: ${served.join(', ')})`);
    }
    return this.translated({ ...l, call: l.hook, syscall: false }, 'lsm', l.hook, key, at);
  }

  /**
   * A kernel function or LSM hook served by the syscalls or tracepoints of its
   * translation (translations.ts): one hook each, reported under the
   * function's own name with the argument types the policy declared.
   */
  private translated(k: KProbeSpec, kind: 'kprobe' | 'lsm', name: string, key: string, at: FieldPath): Hook[] {
    const t = TRANSLATIONS[key]!;
    const declared = withoutNops(k.args);
    declared.forEach((a, j) => {
      const where: FieldPath = [...at, 'args', j];
      this.refuseArgFields(a, where, ['resolve']);
      const accepted = t.args[a.index] ?? this.fail([...where, 'index'], `${name}'s argument ${a.index} has no value here (${t.differs})`);
      if (!isSet(a.resolve) && !accepted.includes(a.type)) this.fail([...where, 'type'], `${name}'s argument ${a.index} is read as ${accepted.join(' or ')} here, not ${a.type}`);
    });
    if (k.return && !t.returns) this.fail([...at, 'return'], `${name}'s return value is not seen here (${t.differs})`);
    const returnArg = t.returnTypes
      ? this.structReturn(k, t.returnTypes, name, at)
      : this.returnArg(k.return ?? false, k.returnArg, at, ['int', 'uint32', 'int64', 'uint64', 'size_t']);
    const targets = declared.some((a) => isSet(a.resolve)) ? [this.typedTarget(t, declared, name, at)] : t.targets(this.env);
    const returnOf = (target: (typeof targets)[number]): ArgSpec | undefined => returnArg && (target.ret
      ? { ...returnArg.spec, source: target.ret.source, type: target.ret.reads, ...(target.ret.sockFrom && { sockFrom: target.ret.sockFrom }) }
      : returnArg.spec);
    if (targets.length === 0) this.fail([...at, kind === 'lsm' ? 'hook' : 'call'], `nothing on this kernel serves ${name} (${t.differs})`);
    const specsOf = (target: (typeof targets)[number]): ArgSpec[] => {
      const specs: ArgSpec[] = declared.map((a) => {
        const served = target.args[a.index]!;
        return {
          source: served.source, type: served.reads, ...(served.sockFrom && { sockFrom: served.sockFrom }),
          ...(a.label ? { label: a.label } : {}), ...(served.reads === a.type ? {} : { wireType: a.type }),
        };
      });
      // A buffer's length: a declared argument read from the same place, else a hidden one.
      declared.forEach((a, j) => {
        const served = target.args[a.index]!;
        if (!('length' in served)) return;
        const same = specs.findIndex((x) => JSON.stringify(x.source) === JSON.stringify(served.length));
        if (same >= 0) specs[j]!.sizeArgIndex = same;
        else specs[j]!.sizeArgIndex = specs.push({ source: served.length, type: 'size_t', hidden: true }) - 1;
      });
      return specs;
    };
    // Selectors see the declared arguments (a hidden length comes after them, and matches nothing).
    const infos = specsOf(targets[0]!).slice(0, declared.length).map((spec, j): ArgInfo => ({ index: declared[j]!.index, spec, userPointerAtEntry: false }));
    const returnArgAction = k.returnArgAction as Hook['returnArgAction'];
    if (returnArgAction && returnArg?.spec.type !== 'sock') this.fail([...at, 'returnArgAction'], `${returnArgAction} needs return: true and a returnArg of type sock`);
    const atOverridableEntry = targets.every((x) => x.attach.kind === 'syscall' && OVERRIDE_SYSCALLS.includes(x.attach.syscall) && !x.atExit) && !returnArg;
    const inCgroupProgram = targets.some((x) => x.attach.kind === 'cgroup');
    const common = this.hookCommon(k, at, infos, returnArg, name, {
      overrides: atOverridableEntry,
      // bpf_get_stack is for tracing programs; a cgroup program, mostly in softirq, has no stack of the process to take.
      ...(inCgroupProgram && { stacksRefused: `${name} is served here by the cgroup_skb/ingress program that sk_filter_trim_cap runs for incoming packets, and a cgroup program cannot take stacks` }),
    });
    return targets.map((target): Hook => ({
      kind, name, attach: target.attach,
      args: specsOf(target),
      ...(returnArg ? { returnArg: returnOf(target)! } : {}),
      ...(returnArgAction && { returnArgAction }),
      atExit: target.atExit || (returnArg !== undefined && target.attach.kind === 'syscall'),
      ...(target.guard ? { guard: target.guard } : {}),
      selectors: common.selectors,
      ...common.report,
    }));
  }

  /**
   * The target of a hook with `resolve`: the translation's typed tracepoint,
   * where the function's arguments are the kernel objects it is given. A
   * resolved argument is the field its path names, read as its declared type;
   * one without is read as the translation reports it (`plain`), or refused.
   */
  private typedTarget(t: Translation, declared: KProbeArg[], name: string, at: FieldPath): Target {
    const typedHook = t.typed;
    if (typedHook === undefined) {
      const served = Object.entries(TRANSLATIONS).filter(([, x]) => x.typed).map(([n]) => n);
      this.fail([...at, 'args', declared.findIndex((a) => isSet(a.resolve)), 'resolve'],
        `resolve reads fields of the kernel object ${name} is given, which is not at hand where it is served here (${t.differs}); resolve is served on ${served.join(', ')}`);
    }
    const tracepoint = typedHook.attach;
    try {
      this.env.tracepointFormat(tracepoint.subsystem, tracepoint.event);
    } catch {
      this.fail([...at, 'args'], `resolve on ${name} needs the tracepoint ${tracepoint.subsystem}:${tracepoint.event}, which this kernel does not have`);
    }
    const args: Target['args'] = {};
    declared.forEach((a, j) => {
      const where: FieldPath = [...at, 'args', j];
      const typed = typedHook.args[a.index] ?? this.fail([...where, 'index'], `${name}'s argument ${a.index} is not at hand as a kernel object here, so it cannot be read beside a resolved one`);
      if (args[a.index] !== undefined) this.fail([...where, 'index'], `argument ${a.index} is declared twice; with resolve, each argument is read once`);
      const asString = isSet(a.resolve) ? a.type === 'string' : true;
      const type: ArgType = isSet(a.resolve) ? (RESOLVED_TYPES.has(a.type) ? ARG_TYPES[a.type]! : this.fail([...where, 'type'], `a resolved field is read as ${[...RESOLVED_TYPES].join(', ')}, not ${a.type}`)) : 'string';
      const fieldPath = isSet(a.resolve) ? [typed.via, a.resolve].filter(Boolean).join('.')
        : typed.plain ?? this.fail([...where, 'type'], `${name}'s argument ${a.index} (${a.type}) cannot be read beside a resolved one here; resolve it to a field instead`);
      let field: ResolvedField;
      try {
        field = this.env.kernelBtf().resolve(typed.struct, fieldPath, asString);
      } catch (err) {
        return this.fail([...where, isSet(a.resolve) ? 'resolve' : 'type'], `${(err as Error).message} (from ${name}'s argument ${a.index}, a struct ${typed.struct}${typed.via ? `'s ${typed.via}` : ''})`);
      }
      args[a.index] = { source: { kind: 'btf_arg', index: typed.position, field }, reads: type };
    });
    return { attach: tracepoint, atExit: false, args };
  }

  /** The parameters of a syscall: the fields of its sys_enter tracepoint after __syscall_nr. */
  private syscallParams(syscall: string, at: FieldPath): TracepointField[] {
    let format: TracepointFormat;
    try {
      format = this.env.tracepointFormat('syscalls', `sys_enter_${syscall}`);
    } catch (err) {
      return this.fail([...at, 'call'], `cannot read the format of syscalls/sys_enter_${syscall}: ${(err as Error).message}`);
    }
    const nr = format.fields.findIndex((f) => f.name === '__syscall_nr');
    if (nr < 0) this.fail([...at, 'call'], `syscalls/sys_enter_${syscall} has no __syscall_nr field: not a syscall tracepoint format`);
    return format.fields.slice(nr + 1);
  }

  private tracepoint(t: TracepointSpec, at: FieldPath): Hook {
    let format: TracepointFormat;
    try {
      format = this.env.tracepointFormat(t.subsystem, t.event);
    } catch {
      return this.fail([...at, 'event'], `tracepoint ${t.subsystem}/${t.event} does not exist on this kernel`);
    }
    const fields = format.fields;
    const commonFields = fields.filter((f) => f.name.startsWith('common_')).length;
    // Syscall tracepoints carry user pointers that may not be faulted in yet at entry.
    const entryOfSyscall = t.subsystem === 'syscalls' && t.event.startsWith('sys_enter_');
    const raw = t.raw ? this.rawArgs(t, format, at) : undefined;
    const args = withoutNops(t.args).map((a, j): ArgInfo => {
      const where: FieldPath = [...at, 'args', j];
      this.refuseArgFields(a, where);
      const rawField = raw?.[j];
      if (rawField !== undefined) {
        const source: ArgSource = { kind: 'tracepoint_field', offset: rawField.offset, size: rawField.size, signed: false, dataLoc: true };
        return { index: a.index, spec: { source, type: 'string', wireType: a.type, ...(a.label ? { label: a.label } : {}) }, userPointerAtEntry: false };
      }
      if (a.index >= fields.length) {
        this.fail([...where, 'index'], `tracepoint ${t.subsystem}/${t.event} has ${fields.length} fields (the first ${commonFields} are common_*): there is no index ${a.index}`);
      }
      const field = fields[a.index]!;
      const type = this.fieldType(a, field, t.subsystem === 'syscalls', where, `field ${a.index} of ${t.subsystem}/${t.event}`);
      const dataLoc = fieldShape(field) === 'string_data_loc';
      const source: ArgSource = { kind: 'tracepoint_field', offset: field.offset, size: field.size, signed: field.signed, ...(dataLoc ? { dataLoc } : {}) };
      return {
        index: a.index,
        spec: { source, type, ...(a.label ? { label: a.label } : {}), ...(WIRE_TYPES.has(a.type) ? { wireType: a.type } : {}) },
        userPointerAtEntry: entryOfSyscall && (type === 'string' || type === 'char_buf' || type === 'sockaddr'),
      };
    });
    this.sizeArgs(withoutNops(t.args), args, at);
    const common = this.hookCommon(t, at, args, undefined, t.event, { indexMayBePosition: true, firesIn: this.tracepointFiresIn(t, fields, args) });
    return {
      kind: 'tracepoint',
      name: t.event,
      attach: { kind: 'tracepoint', subsystem: t.subsystem, event: t.event },
      args: args.map((a) => a.spec),
      atExit: false,
      selectors: common.selectors,
      subsystem: t.subsystem,
      ...common.report,
    };
  }

  /**
   * The calls a tracepoint fires in, when it fires at a syscall's entry: its
   * own syscall (syscalls/sys_enter_NAME), or those of its `id` field
   * (raw_syscalls/sys_enter) read as syscall64, whose numbers tell 32-bit
   * calls apart (a bare id would take a 32-bit call for the 64-bit one of its number).
   */
  private tracepointFiresIn(t: TracepointSpec, fields: TracepointField[], args: ArgInfo[]): FiresIn | undefined {
    const own = t.subsystem === 'syscalls' ? /^sys_enter_(\w+)$/.exec(t.event)?.[1] : undefined;
    if (own !== undefined) return this.env.syscallExists(own) ? { syscalls: [BigInt(syscallAttach(this.env, own).number)] } : undefined;
    if (t.subsystem !== 'raw_syscalls' || t.event !== 'sys_enter' || t.raw) return undefined;
    const id = fields.find((f) => f.name === 'id');
    const idArgs = args.flatMap((a, position) => (a.spec.wireType === 'syscall64' && a.spec.source.kind === 'tracepoint_field' && a.spec.source.offset === id?.offset ? [position] : []));
    return { idArgs };
  }

  /**
   * A raw tracepoint's arguments are the kernel's C arguments of the event,
   * not its format's fields: Vigil serves those RAW_TRACEPOINTS maps to a
   * field carrying the same (by declared arg position), and refuses the rest.
   */
  private rawArgs(t: TracepointSpec, format: TracepointFormat, at: FieldPath): TracepointField[] {
    const key = `${t.subsystem}/${t.event}`;
    const raw = RAW_TRACEPOINTS[key]
      ?? this.fail([...at, 'raw'], `raw tracepoint ${key}: raw_tp programs read the event's C arguments, which Vigil maps to its format only for ${Object.keys(RAW_TRACEPOINTS).join(', ')}; drop raw: true to read the format's fields`);
    return withoutNops(t.args).map((a, j) => {
      const where: FieldPath = [...at, 'args', j];
      const mapped = raw.args[a.index] ?? this.fail([...where, 'index'], `raw argument ${a.index} of ${key} has no value here (${raw.differs})`);
      if (!mapped.types.includes(a.type)) this.fail([...where, 'type'], `raw argument ${a.index} of ${key} is read as ${mapped.types.join(' or ')} here, not ${a.type}`);
      return format.fields.find((f) => f.name === mapped.field) ?? this.fail(where, `${key} has no field ${mapped.field} on this kernel`);
    });
  }

  /**
   * A uprobe's or USDT probe's binary: an absolute path to a regular file.
   * Returns the path to open (hostFile: /procRoot/… where this agent has no /procRoot).
   */
  private binaryFile(file: string, at: FieldPath): string {
    if (!path.isAbsolute(file)) this.fail(at, `"${file}" is not an absolute path`);
    const opened = hostFile(file);
    const named = opened === file ? file : `${file} (read as ${opened}: this agent has no /procRoot)`;
    let stat: fs.Stats;
    try {
      stat = fs.statSync(opened);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return this.fail(at, code === 'ENOENT' ? `${named} does not exist` : `${named} cannot be read here (${code})`);
    }
    if (!stat.isFile()) this.fail(at, `${named} is not a regular file`);
    return opened;
  }

  private uprobe(u: UProbeSpec, at: FieldPath): Hook[] {
    for (const field of ['btfPath', 'offsets', 'addrs', 'refCtrOffsets', 'data', 'binaryDigests'] as const) {
      if (isSet(u[field])) this.fail([...at, field], `${field} is not supported by Vigil yet`);
    }
    if (u.ignore !== undefined && Object.keys(u.ignore).length > 0) this.fail([...at, 'ignore'], 'ignore is not supported by Vigil yet');
    const file = this.binaryFile(u.path, [...at, 'path']);
    const symbols = u.symbols ?? this.fail([...at, 'symbols'], 'required field is missing (Vigil hooks uprobes by symbol)');
    symbols.forEach((s, k) => {
      if (s.trim() === '') this.fail([...at, 'symbols', k], 'empty symbol name');
    });

    const args = withoutNops(u.args).map((a, j): ArgInfo => {
      const where: FieldPath = [...at, 'args', j];
      this.refuseArgFields(a, where);
      if (a.index >= MAX_REGISTER_ARGS) {
        this.fail([...where, 'index'], `only the first ${MAX_REGISTER_ARGS} arguments (passed in registers) can be read, not index ${a.index}`);
      }
      return {
        index: a.index,
        spec: {
          source: { kind: 'function_arg', index: a.index },
          type: this.declaredType(a, where, () => this.fail([...where, 'type'], 'give a type: a uprobe argument has no format to derive one from')),
          ...(a.label ? { label: a.label } : {}),
        },
        userPointerAtEntry: false,
      };
    });
    this.sizeArgs(withoutNops(u.args), args, at);
    const isReturn = u.return ?? false;
    const returnArg = this.returnArg(isReturn, u.returnArg, at, ['int', 'uint32', 'int64', 'uint64', 'size_t', 'string']);
    const common = this.hookCommon(u, at, args, returnArg, u.path);
    return symbols.map((symbol): Hook => ({
      kind: 'uprobe',
      name: symbol,
      attach: { kind: 'uprobe', path: u.path, ...(file !== u.path && { file }), symbol, return: isReturn },
      args: args.map((a) => a.spec),
      ...(returnArg ? { returnArg: returnArg.spec } : {}),
      atExit: isReturn,
      selectors: common.selectors,
      ...common.report,
    }));
  }

  /** Refuses the argument fields Vigil does not read (but those of `allowed`, which the caller serves). */
  private refuseArgFields(a: KProbeArg, at: FieldPath, allowed: readonly 'resolve'[] = []): void {
    // maxData asks Tetragon for more than its default buffer; Vigil reads up to its record's size either way.
    for (const field of ['resolve', 'returnCopy', 'source', 'btfType', 'btfTypeModule'] as const) {
      if (field === 'resolve' && allowed.includes(field)) continue;
      if (isSet(a[field])) {
        this.fail([...at, field], field === 'resolve'
          ? 'resolve reads fields of the kernel object a function is given; here it is served only on the kernel functions and LSM hooks whose translation has that object at hand'
          : `${field} is not supported by Vigil yet`);
      }
    }
  }

  /** The type Vigil reads for `a`; `auto` asks `derive`, which fails where nothing tells the type. */
  private declaredType(a: KProbeArg, at: FieldPath, derive: () => ArgType): ArgType {
    if (a.type === 'auto') return derive();
    const type = ARG_TYPES[a.type];
    if (type !== undefined) return type;
    const narrow = /^(s?int|uint)(8|16)$/.test(a.type) ? ' (use int or uint32)' : '';
    return this.fail([...at, 'type'], `argument type "${a.type}" is not supported by Vigil yet${narrow}`);
  }

  /**
   * The type of an argument read from a format field, checked against what the field holds.
   * Pointers are followed into user memory, so only syscall fields (`userPointers`) can be read through.
   */
  private fieldType(a: KProbeArg, field: TracepointField, userPointers: boolean, at: FieldPath, what: string): ArgType {
    const shape = fieldShape(field);
    if (shape === 'array' || shape === 'data_loc') {
      this.fail([...at, 'index'], `${what} is "${field.declaration}", ${SHAPE_WORDS[shape]}, which Vigil cannot read from a tracepoint yet`);
    }
    const type = this.declaredType(a, at, () => derivedType(field, !userPointers)
      ?? this.fail([...at, 'type'], `cannot tell the type of ${what} ("${field.declaration}"); give one`));
    if (!fits(type, shape)) this.fail([...at, 'type'], `${what} is "${field.declaration}", ${SHAPE_WORDS[shape]}: it cannot be read as ${type}`);
    if (!userPointers && isPointer(shape) && ['string', 'char_buf', 'sockaddr'].includes(type)) {
      this.fail([...at, 'type'], `${what} is "${field.declaration}", a kernel pointer: outside syscalls, Vigil reads tracepoint strings only from __data_loc fields`);
    }
    return type;
  }

  /** char_buf lengths: sizeArgIndex is 1-based over the function's arguments (or the tracepoint's fields), as in Tetragon. */
  private sizeArgs(defs: KProbeArg[], args: ArgInfo[], at: FieldPath): void {
    defs.forEach((a, j) => {
      const where: FieldPath = [...at, 'args', j, 'sizeArgIndex'];
      const size = a.sizeArgIndex ?? 0;
      if (args[j]!.spec.type !== 'char_buf') {
        if (size !== 0) this.fail(where, `sizeArgIndex applies to char_buf arguments only, not ${args[j]!.spec.type}`);
        return;
      }
      if (size === 0) this.fail(where, 'a char_buf argument needs sizeArgIndex: the 1-based index of the argument holding its length');
      const position = args.findIndex((x) => x.index === size - 1);
      if (position < 0) this.fail(where, `sizeArgIndex ${size} names index ${size - 1}, which is not among args: declare it (e.g. type size_t)`);
      if (valueClass(args[position]!.spec.type) !== 'numeric') this.fail(where, `sizeArgIndex ${size} names index ${size - 1}, which is ${args[position]!.spec.type}, not a number`);
      args[j]!.spec.sizeArgIndex = position;
    });
  }

  private returnArg(isReturn: boolean, def: KProbeArg | undefined, at: FieldPath, allowed: ArgType[]): ArgInfo | undefined {
    // Without return: true a returnArg is ignored, as Tetragon ignores it (its own examples give one so).
    if (!isReturn) return undefined;
    if (def === undefined) return this.fail([...at, 'returnArg'], 'return: true needs a returnArg (how to read the return value)');
    const where: FieldPath = [...at, 'returnArg'];
    this.refuseArgFields(def, where);
    // A return value is a register (sys_exit's `long ret`, or rax), so `auto` is its full width.
    const type = this.declaredType(def, where, () => 'int64');
    if (!allowed.includes(type)) this.fail([...where, 'type'], `a return value cannot be read as ${type} (one of ${allowed.join(', ')})`);
    if (def.sizeArgIndex) this.fail([...where, 'sizeArgIndex'], 'sizeArgIndex applies to char_buf arguments only');
    const spec: ArgSpec = { source: { kind: 'return' }, type, ...(def.label ? { label: def.label } : {}) };
    return { index: 0, spec, userPointerAtEntry: false };
  }

  /** The returnArg of a function returning a struct (a sock): declared as one of `types`, read as its translation's targets say. */
  private structReturn(k: KProbeSpec, types: readonly string[], name: string, at: FieldPath): ArgInfo | undefined {
    if (!k.return) return undefined;
    const def = k.returnArg ?? this.fail([...at, 'returnArg'], 'return: true needs a returnArg (how to read the return value)');
    this.refuseArgFields(def, [...at, 'returnArg']);
    if (!types.includes(def.type)) this.fail([...at, 'returnArg', 'type'], `${name} returns a ${types.join(' or ')}, not ${def.type}`);
    const spec: ArgSpec = { source: { kind: 'return' }, type: ARG_TYPES[def.type] ?? (def.type as ArgType), ...(def.label ? { label: def.label } : {}) };
    return { index: 0, spec, userPointerAtEntry: false };
  }

  /**
   * NotifyEnforcer: Tetragon's enforcer fails the next call of its list (and may
   * signal). Without bpf_override_return or fmod_ret no call can be made to
   * fail here, so the action is served by its signal, sent by the notifying
   * hook at once: the enforcer's moment when the hook fires inside a call the
   * enforcer covers, as each selector with the action must be seen to.
   */
  private checkNotifications(selectors: HookCommonOut['selectors'], at: FieldPath, firesIn: FiresIn | undefined): void {
    selectors.forEach((s, i) => {
      const j = s.matchActions.findIndex((a) => a.action === 'NotifyEnforcer');
      if (j < 0) return;
      const where: FieldPath = [...at, i, 'matchActions', j, 'action'];
      const calls = this.enforcerCalls ?? this.fail(where, 'NotifyEnforcer needs spec.enforcers, the calls its enforcer acts in');
      const fires = firesIn === undefined ? undefined : 'syscalls' in firesIn ? firesIn.syscalls : idValues(s.matchArgs, firesIn.idArgs);
      if (fires === undefined) {
        this.fail(where, 'NotifyEnforcer is served here by its argSig, sent by this hook at once (no enforcer program can run: that needs bpf_override_return or fmod_ret), '
          + 'which is the enforcer\'s moment only inside a call it covers: put it on a syscall of spec.enforcers, or on raw_syscalls/sys_enter with matchArgs InMap on the syscall id limited to them');
      }
      const outside = fires.find((n) => !calls.has(n));
      if (outside !== undefined) {
        const name = (outside & SYSCALL64_32BIT) ? `32-bit syscall ${outside & ~SYSCALL64_32BIT}` : `syscall ${this.env.syscallNames().get(Number(outside)) ?? outside}`;
        this.fail(where, `this selector fires in ${name}, which spec.enforcers does not cover: NotifyEnforcer signals at once, so it must fire only inside the enforcer's calls`);
      }
    });
  }

  private hookCommon(h: { selectors?: KProbeSelector[]; message?: string; tags?: string[] }, at: FieldPath, args: ArgInfo[], returnArg: ArgInfo | undefined, name: string,
    opts: { indexMayBePosition?: boolean; overrides?: boolean; stacksRefused?: string; firesIn?: FiresIn } = {}): HookCommonOut {
    const compiled = compileSelectors(h.selectors ?? [], [...at, 'selectors'], {
      indexMayBePosition: opts.indexMayBePosition ?? false,
      ...(!opts.overrides && {
        overrideRefused: `cannot make ${name} fail here: without bpf_override_return, a call fails only where a cgroup program runs in it `
          + `(at the entry of ${OVERRIDE_SYSCALLS.join(', ')}: sys_connect, security_socket_connect, security_socket_bind, …); use Sigkill`,
      }),
      ...(opts.stacksRefused !== undefined && { stacksRefused: opts.stacksRefused }),
      fail: (p, r) => this.fail(p, r),
      hostNamespaces: this.env.hostNamespaces,
      args,
      listNumbers: (name) => this.listNumbers(name, at),
      ...(returnArg ? { returnArg } : {}),
    });
    this.checkNotifications(compiled.selectors, [...at, 'selectors'], opts.firesIn);
    return {
      ...compiled,
      report: { ...(h.message ? { message: h.message } : {}), ...(h.tags && h.tags.length > 0 ? { tags: [...h.tags] } : {}) },
    };
  }
}

/** The syscall numbers a selector's matchArgs on the syscall id limits it to (InMap, Equal), if it does. */
function idValues(matchArgs: ArgMatch[], idArgs: number[]): bigint[] | undefined {
  const m = matchArgs.find((a) => a.kind === 'numeric' && a.op === 'Equal' && idArgs.includes(a.argIndex));
  return m?.kind === 'numeric' ? m.values : undefined;
}

export function compilePolicy(doc: TracingPolicyDocument, env: CompileEnv): PolicyProgram {
  return new Compiler(doc, env).run();
}

/** Compiles every document of one text; a name given twice, or the first problem, refuses them all. */
export function compileDocuments(documents: TracingPolicyDocument[], env: CompileEnv): { document: TracingPolicyDocument; program: PolicyProgram }[] {
  const seen = new Set<string>();
  return documents.map((document) => {
    const key = `${document.namespace ?? ''}/${document.name}`;
    if (seen.has(key)) throw policyErrorAt(document, ['metadata', 'name'], `policy "${document.name}" is defined twice in this text`);
    seen.add(key);
    return { document, program: compilePolicy(document, env) };
  });
}

/**
 * The file a policy's binary path names, as this agent opens it. Tetragon's
 * DaemonSet mounts the host's /proc at /procRoot, and its policies name host
 * files through it (`/procRoot/1/root/usr/bin/bash`). An agent with no
 * /procRoot sees the host's processes in its own /proc (a host agent, or
 * Vigil's DaemonSet, which shares the host's pid namespace), so it reads
 * /procRoot/… as /proc/…. Events still carry the policy's path.
 */
export function hostFile(file: string): string {
  return file.startsWith('/procRoot/') && !fs.existsSync('/procRoot') ? `/proc/${file.slice('/procRoot/'.length)}` : file;
}
