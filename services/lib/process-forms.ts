/**
 * Process snapshots and their fixed form. The sensor's process cache keeps,
 * per process image, one Process object fixed since its exec, and gives each
 * event a shallow copy of it with the fields of the moment (`refcnt`, a
 * non-zero `tid`, a `pod` that came late). What an encoder makes of the fixed
 * object can then be kept and only the moment's fields written anew: the
 * protobuf bytes (services/sensor/event-encoder.ts) and the JSON text
 * (tetragon-proto.ts) do so. The pairing lives in this process only: a
 * Process decoded from the bus has no fixed form and is encoded whole.
 */
import type { Process } from './event-model.js';

type Fields = Record<string, unknown>;

/**
 * The messages whose values the process cache shares between processes,
 * frozen (services/sensor/identity.ts): an encoder may keep what it makes of
 * a frozen value of these types by the value.
 */
export const SHARED_MESSAGE_TYPES: ReadonlySet<string> = new Set(['.tetragon.Capabilities', '.tetragon.Namespaces', '.tetragon.ProcessCredentials']);

/** The Process fields a snapshot may differ in from its fixed form. */
export const MOMENT_FIELDS: ReadonlySet<string> = new Set(['pod', 'refcnt', 'tid']);

const fixedForms = new WeakMap<Process, Process>();

/** Records that `snapshot` is a copy of `fixed` (which does not change after its exec) with the moment's fields. */
export function markSnapshot(snapshot: Process, fixed: Process): void {
  fixedForms.set(snapshot, fixed);
}

/** The fixed object a snapshot was copied from, when the process cache made it. */
export function fixedFormOf(snapshot: Process): Process | undefined {
  return fixedForms.get(snapshot);
}

/**
 * The fields of `snapshot` that differ from `fixed`, when they are moment
 * fields that an encoding of `fixed` followed by them means: a non-zero
 * refcnt, a non-zero tid, a pod `fixed` lacks. Undefined when anything else
 * differs (such a snapshot is encoded whole).
 */
export function momentFields(snapshot: Process, fixed: Process): Fields | undefined {
  const s = snapshot as unknown as Fields;
  const f = fixed as unknown as Fields;
  const changed: Fields = {};
  // for-in walks the shapes' cached key lists; Object.keys would allocate an array per call, four calls per event.
  for (const key in f) if (!(key in s)) return undefined;
  for (const key in s) {
    const value = s[key];
    if (value === f[key]) continue;
    if (key === 'refcnt' && typeof value === 'number' && value !== 0) changed.refcnt = value;
    else if (key === 'tid' && ((value as { value?: number } | undefined)?.value ?? 0) !== 0) changed.tid = value;
    else if (key === 'pod' && f.pod === undefined && value !== undefined) changed.pod = value;
    else return undefined;
  }
  return changed;
}
