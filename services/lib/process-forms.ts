/**
 * Process snapshots and their fixed form. The sensor's process cache keeps,
 * per process image, one Process object fixed since its exec, and gives each
 * event a shallow copy of it with the fields of the moment (`refcnt`, a
 * non-zero `tid`, a `pod` that came late). What an encoder makes of the fixed
 * object can then be kept and only the moment's fields written anew: the
 * protobuf bytes (services/sensor/event-encoder.ts) and the JSON text
 * (tetragon-proto.ts) do so. The pairing lives in this process only: a
 * Process decoded from the bus is no copy of a fixed form and is encoded whole.
 */
import type { Process } from './event-model.js';

type Fields = Record<string, unknown>;

/**
 * The messages whose values the process cache shares between processes,
 * frozen (services/sensor/identity.ts): an encoder may keep what it makes of
 * a frozen value of these types by the value.
 */
export const SHARED_MESSAGE_TYPES: ReadonlySet<string> = new Set(['.tetragon.Capabilities', '.tetragon.Namespaces', '.tetragon.ProcessCredentials']);

/**
 * What `make` gives for each key object, made once per object (kept as long
 * as the object lives): an encoder's output for a fixed form or for a
 * frozen shared value.
 */
export function keptBy<K extends object, V>(make: (key: K) => V): (key: K) => V {
  const kept = new WeakMap<K, V>();
  return (key) => {
    let value = kept.get(key);
    if (value === undefined) kept.set(key, (value = make(key)));
    return value;
  };
}

/** The Process fields a snapshot may differ in from its fixed form. */
export const MOMENT_FIELDS: ReadonlySet<string> = new Set(['pod', 'refcnt', 'tid']);

/**
 * Where fixed forms are found by exec_id: the index of each open process
 * cache. A snapshot finds its fixed form by its exec_id, and `momentFields`
 * then confirms that it was copied from that very object (every other field
 * is the same value), so a Process that merely shares an exec_id (decoded
 * from the bus, another cache's) is encoded whole.
 *
 * By exec_id, not by snapshot: a WeakMap entry for every snapshot (two an
 * event) cost ~450 ns each, where the copy itself costs ~30 ns. And from the
 * cache's own index, not a map of its own: a second map of every cached
 * process cost 1.75 MiB at 50,000 processes.
 */
type FixedFormIndex = (execId: string) => Process | undefined;
let fixedFormIndexes: readonly FixedFormIndex[] = [];

/**
 * Makes the fixed forms `index` gives known to the encoders, until the
 * returned function is called. A form must not change while `index` gives it.
 */
export function addFixedForms(index: FixedFormIndex): () => void {
  fixedFormIndexes = [...fixedFormIndexes, index];
  return () => { fixedFormIndexes = fixedFormIndexes.filter((i) => i !== index); };
}

/** The fixed form known for the snapshot's exec_id; a copy of it only if momentFields says so. */
export function fixedFormOf(snapshot: Process): Process | undefined {
  for (const index of fixedFormIndexes) {
    const fixed = index(snapshot.exec_id);
    if (fixed !== undefined) return fixed;
  }
  return undefined;
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
