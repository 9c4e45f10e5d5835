/**
 * Memory of processes learned from events, bounded so that a stream of
 * events (a shell loop, a lost exit, a hostile NATS publisher) cannot grow it
 * without end: the oldest entry goes first.
 */

/** How many processes one such memory holds. */
export const MAX_TRACKED = 65536;

/** Sets `key` in a map bounded to MAX_TRACKED entries, the oldest going first; returns the key that went. */
export function remember<V>(map: Map<string, V>, key: string, value: V): string | undefined {
  let evicted: string | undefined;
  if (!map.has(key) && map.size >= MAX_TRACKED) {
    evicted = map.keys().next().value!;
    map.delete(evicted);
  }
  map.set(key, value);
  return evicted;
}
