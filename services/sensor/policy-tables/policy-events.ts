/**
 * Policy records (struct vigil_policy_record) to Tetragon's process_kprobe,
 * process_tracepoint and process_uprobe payloads. Arguments are typed by the
 * hook they came from; resolved paths arrive leaf first and are turned around.
 *
 * Each declared type goes on the wire as Tetragon sends it: `string` as
 * `string_arg` (for an open, the kernel's resolved path of the returned fd is
 * its value), `fd`/`file` as `file_arg`, `path` as `path_arg`, `char_buf` as
 * `bytes_arg`, `kernel_cap_t` as `kernel_cap_t_arg` in 16 hex digits,
 * `uint64`/`size_t` as `size_arg`, `long`/`int64` as `long_arg`.
 *
 * Choice: in monitor mode
 * a Sigkill/Signal is reported with its action, the tag "not-applied" and a
 * message saying so, since Tetragon's events have no field for it.
 */
import type { Action, Hook } from '../../lib/policy-program.js';
import { ActionKind, SYSCALL64_32BIT } from '../../lib/kernel-abi.js';
import { tetragonRoot } from '../../lib/tetragon-proto.js';
import { pathFromLeafFirst, splitNulStrings, type ArgValue, type KernelCreds, type PolicyRecord } from '../kernel/records.js';
import { capabilityList } from '../identity.js';
import { BPF_MAP_TYPE_NAMES, BPF_PROG_TYPE_NAMES, PERF_TYPE_NAMES } from '../../lib/kernel-enums.js';
import { ARG_TYPE, ARG_VALUE_FLAG } from './encoding.js';
import { addressText, AF_INET, AF_INET6, type KernelSkb, type KernelSock } from '../kernel/net-records.js';

/** Tetragon's name of this machine's syscall ABI, in syscall_id arguments. */
const SYSCALL_ABI = process.arch === 'arm64' ? 'arm64' : process.arch === 'ia32' ? 'i386' : 'x64';
/** And of the 32-bit ABI its kernel also serves, whose calls the kernel marks in syscall64 values. */
const COMPAT_ABI = process.arch === 'arm64' ? 'arm32' : 'i386';

/** A syscall64 value as Tetragon reports it: the number, and the ABI that SYSCALL64_32BIT tells. */
function syscallId(value: bigint): { id: number; abi: string } {
  const id = Number(BigInt.asUintN(32, value));
  return id >= SYSCALL64_32BIT ? { id: id - SYSCALL64_32BIT, abi: COMPAT_ABI } : { id, abi: SYSCALL_ABI };
}

/** The kernel function of a syscall by its number (a hook on every syscall): __x64_sys_NAME, as Tetragon's per-syscall hooks name it. */
function syscallFunction(names: readonly string[], number: ArgValue | undefined): string {
  const n = number && number.bytes.length >= 8 ? Number(number.bytes.readBigInt64LE(0)) : -1;
  return `__${SYSCALL_ABI}_sys_${names[n] || `${n}`}`;
}

const CAPABILITY_NAMES = tetragonRoot.lookupEnum('tetragon.CapabilitiesType').valuesById;

const TETRAGON_ACTION = tetragonRoot.lookupEnum('tetragon.KprobeAction').values;
/** tetragon.KprobeAction of the kernel's vigil_action_kind values (NoPost never posts). */
const KPROBE_ACTION: Record<number, number> = {
  [ActionKind.POST]: TETRAGON_ACTION.KPROBE_ACTION_POST!, [ActionKind.SIGKILL]: TETRAGON_ACTION.KPROBE_ACTION_SIGKILL!, [ActionKind.SIGNAL]: TETRAGON_ACTION.KPROBE_ACTION_SIGNAL!,
  [ActionKind.OVERRIDE]: TETRAGON_ACTION.KPROBE_ACTION_OVERRIDE!, [ActionKind.NOTIFY_ENFORCER]: TETRAGON_ACTION.KPROBE_ACTION_NOTIFYENFORCER!,
};
/** The actions the sensor takes once the kernel posted (policy-actions.ts), as the event's action. */
const USER_SPACE_ACTION: Partial<Record<Action['action'], number>> = {
  GetUrl: TETRAGON_ACTION.KPROBE_ACTION_GETURL!, DnsLookup: TETRAGON_ACTION.KPROBE_ACTION_DNSLOOKUP!,
};

/** The DnsLookup and GetUrl actions of the selector a posted record matched (none for other records). */
function userSpaceActions(record: PolicyRecord, hook: Hook): Action[] {
  if (record.action !== ActionKind.POST) return [];
  return hook.selectors[record.selector]?.matchActions.filter((a) => USER_SPACE_ACTION[a.action] !== undefined) ?? [];
}

const AF: Record<number, string> = { 1: 'AF_UNIX', 2: 'AF_INET', 10: 'AF_INET6' };
/** Names Tetragon gives sock and skb fields (linux/net.h, linux/in.h, net/tcp_states.h). */
const SOCK_TYPES: Record<number, string> = { 1: 'SOCK_STREAM', 2: 'SOCK_DGRAM', 3: 'SOCK_RAW', 4: 'SOCK_RDM', 5: 'SOCK_SEQPACKET', 6: 'SOCK_DCCP', 10: 'SOCK_PACKET' };
const PROTOCOLS: Record<number, string> = { 0: 'IPPROTO_IP', 1: 'IPPROTO_ICMP', 6: 'IPPROTO_TCP', 17: 'IPPROTO_UDP', 58: 'IPPROTO_ICMPV6', 132: 'IPPROTO_SCTP', 255: 'IPPROTO_RAW', 262: 'IPPROTO_MPTCP' };
const TCP_STATES: Record<number, string> = {
  1: 'TCP_ESTABLISHED', 2: 'TCP_SYN_SENT', 3: 'TCP_SYN_RECV', 4: 'TCP_FIN_WAIT1', 5: 'TCP_FIN_WAIT2', 6: 'TCP_TIME_WAIT',
  7: 'TCP_CLOSE', 8: 'TCP_CLOSE_WAIT', 9: 'TCP_LAST_ACK', 10: 'TCP_LISTEN', 11: 'TCP_CLOSING', 12: 'TCP_NEW_SYN_RECV',
};

function sockaddr(bytes: Buffer): Record<string, unknown> {
  if (bytes.length < 2) return {};
  const family = bytes.readUInt16LE(0);
  if (family === AF_INET && bytes.length >= 8) {
    return { sockaddr_arg: { family: 'AF_INET', addr: [...bytes.subarray(4, 8)].join('.'), port: bytes.readUInt16BE(2) } };
  }
  if (family === AF_INET6 && bytes.length >= 24) {
    return { sockaddr_arg: { family: 'AF_INET6', addr: addressText(bytes.subarray(8, 24), AF_INET6), port: bytes.readUInt16BE(2) } };
  }
  if (family === 1) return { sockaddrun_arg: { family: 'AF_UNIX', path: bytes.subarray(2).toString('utf8').replace(/\0.*$/s, '') } };
  return { sockaddr_arg: { family: AF[family] ?? String(family) } };
}

function sockArg(k: KernelSock): Record<string, unknown> {
  return {
    sock_arg: {
      family: enumName(AF, k.family), type: enumName(SOCK_TYPES, k.type), protocol: enumName(PROTOCOLS, k.protocol), mark: k.mark, priority: k.priority,
      saddr: addressText(k.saddr, k.family), daddr: addressText(k.daddr, k.family), sport: k.sport, dport: k.dport, cookie: int64(k.cookie),
      state: enumName(TCP_STATES, k.state),
    },
  };
}

function skbArg(k: KernelSkb): Record<string, unknown> {
  return {
    skb_arg: {
      hash: k.hash, len: k.len, priority: k.priority, mark: k.mark, saddr: addressText(k.saddr, k.family), daddr: addressText(k.daddr, k.family),
      sport: k.sport, dport: k.dport, proto: k.protocol, protocol: enumName(PROTOCOLS, k.protocol), family: enumName(AF, k.family),
    },
  };
}

/** A 64-bit value as a number when exact, else its decimal string (tetragon-proto encodes both). */
const int64 = (v: bigint): number | string => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());

/** The forms of a path read for a declared type other than string (a translated hook's `file`, `linux_binprm`, …). */
const PATH_FORMS: Record<string, (path: string) => Record<string, unknown>> = {
  file: (path) => ({ file_arg: { path } }),
  fd: (path) => ({ file_arg: { path } }),
  path: (path) => ({ path_arg: { path } }),
  dentry: (path) => ({ path_arg: { path } }),
  linux_binprm: (path) => ({ linux_binprm_arg: { path } }),
};

/** A NUL-padded name of at most 16 bytes at `offset`. */
const name16 = (b: Buffer, offset: number): string => {
  const raw = b.subarray(offset, Math.min(b.length, offset + 16));
  const nul = raw.indexOf(0);
  return raw.toString('utf8', 0, nul < 0 ? raw.length : nul);
};
const u32 = (b: Buffer, offset: number): number => (b.length >= offset + 4 ? b.readUInt32LE(offset) : 0);
const u64 = (b: Buffer, offset: number): number | string => (b.length >= offset + 8 ? int64(b.readBigUInt64LE(offset)) : 0);
const enumName = (names: Readonly<Record<number, string>>, v: number): string => names[v] ?? String(v);

/** User structs a translated bpf or perf hook reads (UAPI layouts: union bpf_attr, struct perf_event_attr). */
const USER_STRUCTS: Record<string, (b: Buffer) => Record<string, unknown>> = {
  bpf_attr: (b) => ({ bpf_attr_arg: { ProgType: enumName(BPF_PROG_TYPE_NAMES, u32(b, 0)), InsnCnt: u32(b, 4), ProgName: name16(b, 48) } }),
  bpf_map: (b) => ({
    bpf_map_arg: { MapType: enumName(BPF_MAP_TYPE_NAMES, u32(b, 0)), KeySize: u32(b, 4), ValueSize: u32(b, 8), MaxEntries: u32(b, 12), MapName: name16(b, 28) },
  }),
  perf_event: (b) => ({ perf_event_arg: { Type: enumName(PERF_TYPE_NAMES, u32(b, 0)), Config: u64(b, 8), ProbeOffset: u64(b, 64) } }),
};

const readsPath = (type: number): boolean => type === ARG_TYPE.string || type === ARG_TYPE.fd || type === ARG_TYPE.file;

/** Readers of the argument values that are kernel structs, from the object's BTF. */
export interface ArgDecoders {
  creds(bytes: Buffer): KernelCreds | undefined;
  sock(bytes: Buffer): KernelSock | undefined;
  skb(bytes: Buffer): KernelSkb | undefined;
  /** The build ID of the file at `path` as process `pid` sees it (loader events). */
  buildId?(pid: number, path: string): Buffer | undefined;
}

/** The capability names of a mask, as tetragon.CapabilitiesType numbers. */
const capsOf = (creds: KernelCreds) => ({
  permitted: capabilityList(creds.capPermitted), effective: capabilityList(creds.capEffective), inheritable: capabilityList(creds.capInheritable),
});

function credentialsArg(creds: KernelCreds): Record<string, unknown> {
  const id = (value: number) => ({ value });
  return {
    uid: id(creds.uid), gid: id(creds.gid), euid: id(creds.euid), egid: id(creds.egid),
    suid: id(creds.suid), sgid: id(creds.sgid), fsuid: id(creds.fsuid), fsgid: id(creds.fsgid), caps: capsOf(creds),
  };
}

/** struct vigil_user_ns: level, owner, group, inum (u32 each), as tetragon.UserNamespace (the owner's uid and gid). */
function userNsArg(b: Buffer): Record<string, unknown> {
  const level = b.readUInt32LE(0);
  return { level: { value: level }, uid: { value: b.readUInt32LE(4) }, gid: { value: b.readUInt32LE(8) }, ns: { inum: b.readUInt32LE(12), is_host: level === 0 } };
}

/** One KprobeArgument (a oneof member set), from a value and how its hook declared it. */
export function kprobeArgument(value: ArgValue, declared: Hook['args'][number] | undefined, decoders?: ArgDecoders): Record<string, unknown> {
  const label = declared?.label ? { label: declared.label } : {};
  if (value.flags & ARG_VALUE_FLAG.error) return { ...label, error_arg: { message: 'could not be read' } };
  const b = value.bytes;
  const i64 = b.length >= 8 ? b.readBigInt64LE(0) : 0n;
  const text = (): string => (value.flags & ARG_VALUE_FLAG.leafFirst ? pathFromLeafFirst(splitNulStrings(b, 0, b.length)) : b.toString('utf8'));
  const form = declared?.wireType === undefined ? undefined : PATH_FORMS[declared.wireType];
  if (form && readsPath(value.type)) return { ...label, ...form(text()) };
  if (declared?.wireType === 'net_device') return { ...label, net_dev_arg: { name: text() } };
  if (declared?.wireType === 'syscall64') return { ...label, syscall_id: syscallId(i64) };
  const struct = declared?.wireType === undefined ? undefined : USER_STRUCTS[declared.wireType];
  if (struct && value.type === ARG_TYPE.char_buf) return { ...label, ...struct(b) };
  if (declared?.wireType === 'capability') {
    const cap = Number(BigInt.asIntN(32, i64));
    return { ...label, capability_arg: { value: { value: cap }, name: CAPABILITY_NAMES[cap] ?? `CAP_${cap}` } };
  }
  switch (value.type) {
    case ARG_TYPE.int: return { ...label, int_arg: Number(BigInt.asIntN(32, i64)) };
    case ARG_TYPE.uint32: return { ...label, uint_arg: Number(BigInt.asUintN(32, i64)) };
    case ARG_TYPE.int64: return { ...label, long_arg: int64(i64) };
    case ARG_TYPE.uint64:
    case ARG_TYPE.size_t: return { ...label, size_arg: int64(BigInt.asUintN(64, i64)) };
    case ARG_TYPE.string: return { ...label, string_arg: text() };
    case ARG_TYPE.char_buf: return { ...label, bytes_arg: Uint8Array.from(b) };
    case ARG_TYPE.fd:
    case ARG_TYPE.file:
      return declared?.type === 'path' ? { ...label, path_arg: { path: text() } } : { ...label, file_arg: { path: text() } };
    case ARG_TYPE.sockaddr: return { ...label, ...sockaddr(b) };
    case ARG_TYPE.cap_set: return { ...label, kernel_cap_t_arg: BigInt.asUintN(64, i64).toString(16).padStart(16, '0') };
    case ARG_TYPE.cred: {
      const creds = decoders?.creds(b);
      return creds ? { ...label, process_credentials_arg: credentialsArg(creds) } : { ...label, error_arg: { message: 'credentials cut short' } };
    }
    case ARG_TYPE.sock: {
      const sock = decoders?.sock(b);
      return sock ? { ...label, ...sockArg(sock) } : { ...label, error_arg: { message: 'sock cut short' } };
    }
    case ARG_TYPE.skb: {
      const skb = decoders?.skb(b);
      return skb ? { ...label, ...skbArg(skb) } : { ...label, error_arg: { message: 'skb cut short' } };
    }
    case ARG_TYPE.user_ns: return b.length >= 16 ? { ...label, user_ns_arg: userNsArg(b) } : { ...label, error_arg: { message: 'user namespace cut short' } };
    default: return { ...label, bytes_arg: Uint8Array.from(b) };
  }
}

export interface PolicyEventParts {
  type: 'process_kprobe' | 'process_tracepoint' | 'process_uprobe' | 'process_lsm' | 'process_loader' | 'process_usdt';
  payload: Record<string, unknown>;
  /** The DnsLookup and GetUrl actions the sensor is to take for this event (policy-actions.ts). */
  userActions: Action[];
}

/** The event payload of a record (process and parent are added by the caller). */
export function policyPayload(record: PolicyRecord, policyName: string, hook: Hook, decoders?: ArgDecoders): PolicyEventParts {
  const args = hook.args.flatMap((spec, i) => (spec.hidden ? [] : [record.values[i] ? kprobeArgument(record.values[i]!, spec, decoders) : {}]));
  const userActions = userSpaceActions(record, hook);
  const [userAction] = userActions;
  const action = (userAction && USER_SPACE_ACTION[userAction.action]) ?? KPROBE_ACTION[record.action] ?? TETRAGON_ACTION.KPROBE_ACTION_POST!;
  const enforcing = record.action === ActionKind.SIGKILL || record.action === ActionKind.SIGNAL || record.action === ActionKind.NOTIFY_ENFORCER || record.action === ActionKind.OVERRIDE;
  const notApplied = enforcing && !record.applied;
  const tags = [...(hook.tags ?? []), ...(notApplied ? ['not-applied'] : [])];
  const what = record.action === ActionKind.SIGKILL ? 'SIGKILL' : record.action === ActionKind.OVERRIDE ? 'Override' : `signal ${record.signal}`;
  const message = notApplied ? `${hook.message ? `${hook.message}; ` : ''}monitor mode: ${what} not applied` : hook.message;
  const common = { policy_name: policyName, action, ...(message && { message }), ...(tags.length && { tags }) };
  switch (hook.kind) {
    case 'kprobe': {
      if (hook.syscallNames) return { type: 'process_kprobe', userActions, payload: { function_name: syscallFunction(hook.syscallNames, record.values[0]), args, ...common } };
      const ret = record.hasReturn && hook.returnArg ? { return: kprobeArgument(record.values[hook.args.length] ?? { type: ARG_TYPE.int64, flags: 0, bytes: Buffer.alloc(8) }, hook.returnArg, decoders) } : {};
      return { type: 'process_kprobe', userActions, payload: { function_name: hook.name, args, ...ret, ...common } };
    }
    case 'tracepoint': {
      const target = hook.attach.kind === 'tracepoint' ? hook.attach : { subsystem: '', event: hook.name };
      return { type: 'process_tracepoint', userActions, payload: { subsys: target.subsystem, event: target.event, args, ...common } };
    }
    case 'uprobe': {
      const target = hook.attach.kind === 'uprobe' ? hook.attach : { path: '', symbol: hook.name };
      return { type: 'process_uprobe', userActions, payload: { path: target.path, symbol: target.symbol, args, ...common } };
    }
    case 'lsm':
      return { type: 'process_lsm', userActions, payload: { function_name: hook.name, args, ...common } };
    case 'usdt': {
      const path = hook.attach.kind === 'uprobe' ? hook.attach.path : '';
      return { type: 'process_usdt', userActions, payload: { path, provider: hook.subsystem ?? '', name: hook.name, args, ...common } };
    }
    case 'loader': {
      // Tetragon's loader event: the file mapped executable and its build ID; no policy fields.
      const path = (args[0]?.file_arg as { path?: string } | undefined)?.path ?? '';
      const buildId = decoders?.buildId?.(record.pid, path);
      return { type: 'process_loader', userActions, payload: { path, ...(buildId && { buildid: Uint8Array.from(buildId) }) } };
    }
  }
}
