/**
 * How the sensor names processes and times.
 *
 * exec_id is base64("<node>:<ns since boot>:<pid>"), Tetragon's scheme: unique
 * across nodes (node name), across sensor restarts and pid reuse (boot-relative
 * time of the exec or fork that made the process image). Processes found by
 * the /proc walk use their start time, which /proc gives in clock ticks.
 */
import type { Capabilities, Namespaces, ProcessCredentials, Timestamp, UInt32Value } from '../lib/event-model.js';
import { NAMESPACE_NAMES, type KernelProcess, type NamespaceName } from './kernel/records.js';

export function execId(nodeName: string, bootNs: bigint, pid: number): string {
  return Buffer.from(`${nodeName}:${bootNs}:${pid}`).toString('base64');
}

/**
 * Converts CLOCK_BOOTTIME nanoseconds (what bpf_ktime_get_boot_ns and
 * task->start_boottime give) to wall-clock Timestamps. The offset is taken
 * once, from Node's monotonic clock, which equals BOOTTIME unless the machine
 * has been suspended since boot.
 */
export class BootClock {
  private readonly bootWallNs: bigint;

  constructor(now: () => bigint = () => BigInt(Date.now()) * 1_000_000n, monotonic: () => bigint = () => process.hrtime.bigint()) {
    this.bootWallNs = now() - monotonic();
  }

  timestamp(bootNs: bigint): Timestamp {
    const wall = this.bootWallNs + bootNs;
    return { seconds: Number(wall / 1_000_000_000n), nanos: Number(wall % 1_000_000_000n) };
  }

  /** Boot-relative ns now. */
  nowBootNs(): bigint {
    return process.hrtime.bigint();
  }
}

/**
 * The bit numbers set in a capability mask (tetragon.CapabilitiesType values
 * are bit numbers). Every exec carries three masks: the mask's two 32-bit
 * halves are walked as Numbers, which costs a fraction of BigInt shifts.
 */
export function capabilityList(mask: bigint): number[] {
  const out: number[] = [];
  const halves = [Number(mask & 0xffff_ffffn), Number((mask >> 32n) & 0xffff_ffffn)];
  for (let half = 0; half < 2; half++) {
    for (let bit = 0, rest = halves[half]!; rest !== 0; bit++, rest = Math.floor(rest / 2)) {
      if (rest % 2 === 1) out.push(half * 32 + bit);
    }
  }
  return out;
}

/**
 * One frozen object for equal values: a node's processes mostly share their
 * capabilities, namespaces and credentials, and the process cache then holds
 * one copy of each, not one per process (50,000 processes: ~1.5 KB each
 * saved). Emptied when it holds `max` values.
 */
class Interned<T extends object> {
  private readonly values = new Map<string, T>();
  /** The last value asked for: consecutive processes mostly share it, and then no key is written. */
  private lastParts: readonly Part[] = [];
  private last: T | undefined;

  constructor(private readonly max = 4096) {}

  /** The value for these parts, made by `make` the first time; `parts` may be the caller's scratch (it is not kept). */
  get(parts: readonly Part[], make: () => T): T {
    if (this.last !== undefined && sameParts(parts, this.lastParts)) return this.last;
    const key = parts.join(':');
    let value = this.values.get(key);
    if (value === undefined) {
      if (this.values.size >= this.max) this.values.clear();
      value = deepFreeze(make());
      this.values.set(key, value);
    }
    this.lastParts = [...parts];
    this.last = value;
    return value;
  }
}

type Part = number | bigint;

function sameParts(a: readonly Part[], b: readonly Part[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null) deepFreeze(v as object);
  return Object.freeze(value);
}

const internedCapabilities = new Interned<Capabilities>();
const internedNamespaces = new Interned<Namespaces>();
const internedCredentials = new Interned<ProcessCredentials>();
// One table per field: processes in a row mostly share each, and each table's last-value shortcut then hits.
const internedUserIds = { uid: new Interned<UInt32Value>(), auid: new Interned<UInt32Value>() };

// Each call's parts are written into its scratch array: most calls find the last value, and then allocate nothing.
const capabilityParts: bigint[] = [0n, 0n, 0n];
const namespaceParts: number[] = new Array<number>(2 * NAMESPACE_NAMES.length).fill(0);
const CREDENTIAL_IDS = ['uid', 'gid', 'euid', 'egid', 'suid', 'sgid', 'fsuid', 'fsgid'] as const;
const credentialParts: number[] = new Array<number>(CREDENTIAL_IDS.length).fill(0);
const idParts: number[] = [0];

export function capabilities(proc: KernelProcess): Capabilities {
  const { capPermitted, capEffective, capInheritable } = proc.creds;
  capabilityParts[0] = capPermitted;
  capabilityParts[1] = capEffective;
  capabilityParts[2] = capInheritable;
  return internedCapabilities.get(capabilityParts, () => ({
    permitted: capabilityList(capPermitted),
    effective: capabilityList(capEffective),
    inheritable: capabilityList(capInheritable),
  }));
}

export function namespaces(ns: Record<NamespaceName, number>, host: Record<NamespaceName, number>): Namespaces {
  for (let i = 0; i < NAMESPACE_NAMES.length; i++) {
    namespaceParts[2 * i] = ns[NAMESPACE_NAMES[i]!];
    namespaceParts[2 * i + 1] = host[NAMESPACE_NAMES[i]!];
  }
  return internedNamespaces.get(namespaceParts, () => {
    const out: Namespaces = {};
    for (const name of NAMESPACE_NAMES) out[name] = { inum: ns[name], is_host: ns[name] === host[name] };
    return out;
  });
}

export function credentials(proc: KernelProcess): ProcessCredentials {
  const c = proc.creds;
  for (let i = 0; i < CREDENTIAL_IDS.length; i++) credentialParts[i] = c[CREDENTIAL_IDS[i]!];
  return internedCredentials.get(credentialParts, () => ({
    uid: { value: c.uid }, gid: { value: c.gid },
    euid: { value: c.euid }, egid: { value: c.egid },
    suid: { value: c.suid }, sgid: { value: c.sgid },
    fsuid: { value: c.fsuid }, fsgid: { value: c.fsgid },
  }));
}

/**
 * A user id as a UInt32Value shared (frozen) by every process with that
 * value: a process's uid and auid repeat across the node's processes, and
 * two objects of their own cost ~84 bytes a cached process (the auid, past
 * 2^31, is a heap number besides).
 */
export function sharedUserId(field: 'uid' | 'auid', id: number): UInt32Value {
  idParts[0] = id;
  return internedUserIds[field].get(idParts, () => ({ value: id }));
}

/**
 * argv[1..] as Tetragon's `arguments` string: space separated, an argument
 * holding whitespace or quotes (or empty) double-quoted with \ escapes,
 * so `nginx -g "daemon off;"` reads back unambiguously.
 */
export function argumentsString(argv: readonly string[]): string {
  return argv.slice(1).map((arg) => (arg === '' || /[\s"\\]/.test(arg) ? `"${arg.replace(/["\\]/g, '\\$&')}"` : arg)).join(' ');
}
