/**
 * Stack traces of policy records as Tetragon's StackTraceEntry: kernel
 * addresses to the symbol they fall in, from /proc/kallsyms (read once, on
 * the first kernel stack), and user addresses to the file mapped there and
 * the offset in it, from /proc/PID/maps when the record is decoded (a
 * process gone by then leaves its frames as bare addresses). User frames
 * carry no symbol: that would need each binary's symbol table.
 *
 * Reading a process's maps is work on the event loop for each event, which
 * the process itself can make large (up to vm.max_map_count mappings), so
 * it is bounded: at most MAPS_MAX_BYTES are read (frames in mappings past
 * them stay bare addresses), and the events of one pid in one turn of the
 * event loop share one read.
 */
import fs from 'node:fs';
import { readFileHead } from '../lib/bounded-file.js';

/** Some 10,000 mappings, where processes have tens to a few thousand. */
export const MAPS_MAX_BYTES = 1 << 20;

interface Mapping { start: bigint; end: bigint; fileOffset: bigint; path: string }

export interface StackTraceEntry { address: number | string; offset: number | string; symbol?: string; module?: string }

/** A 64-bit value as a number when exact, else its decimal string (tetragon-proto encodes both). */
const u64 = (v: bigint): number | string => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());

interface KernelSymbols { addresses: bigint[]; names: string[]; modules: (string | undefined)[] }

/** The last index whose address is at most `a` (sorted ascending), or -1. */
function floorIndex(sorted: readonly bigint[], a: bigint): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= a) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

export class StackSymbols {
  private kernel?: KernelSymbols;
  /** Mappings read in this turn of the event loop, by pid. */
  private readonly turnMappings = new Map<number, Mapping[]>();

  constructor(private readonly procRoot = '/proc') {}

  kernelFrames(addresses: readonly bigint[]): StackTraceEntry[] {
    const k = this.kernelSymbols();
    return addresses.map((address) => {
      const i = floorIndex(k.addresses, address);
      if (i < 0) return { address: u64(address), offset: 0 };
      return { address: u64(address), offset: u64(address - k.addresses[i]!), symbol: k.names[i]!, ...(k.modules[i] && { module: k.modules[i] }) };
    });
  }

  userFrames(pid: number, addresses: readonly bigint[]): StackTraceEntry[] {
    const maps = this.mappings(pid);
    return addresses.map((address) => {
      const m = maps.find((x) => address >= x.start && address < x.end);
      return m ? { address: u64(address), offset: u64(address - m.start + m.fileOffset), module: m.path } : { address: u64(address), offset: 0 };
    });
  }

  private kernelSymbols(): KernelSymbols {
    if (this.kernel) return this.kernel;
    const entries: [bigint, string, string | undefined][] = [];
    let text = '';
    try {
      text = fs.readFileSync(`${this.procRoot}/kallsyms`, 'utf8');
    } catch {
      // No symbols: frames stay bare addresses.
    }
    for (const line of text.split('\n')) {
      const m = /^([0-9a-f]+) [tTwW] (\S+)(?:\s+\[(\S+)\])?$/.exec(line);
      if (m && m[1] !== '0000000000000000') entries.push([BigInt(`0x${m[1]}`), m[2]!, m[3]]);
    }
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.kernel = { addresses: entries.map((e) => e[0]), names: entries.map((e) => e[1]), modules: entries.map((e) => e[2]) };
    return this.kernel;
  }

  private mappings(pid: number): Mapping[] {
    let maps = this.turnMappings.get(pid);
    if (maps === undefined) {
      if (this.turnMappings.size === 0) setImmediate(() => this.turnMappings.clear());
      this.turnMappings.set(pid, (maps = this.readMappings(pid)));
    }
    return maps;
  }

  private readMappings(pid: number): Mapping[] {
    let text: string;
    try {
      const { data, more } = readFileHead(`${this.procRoot}/${pid}/maps`, MAPS_MAX_BYTES);
      // Past the bound, the last line read may be cut: it is left out.
      text = data.toString('utf8', 0, more ? data.lastIndexOf(0x0a) + 1 : data.length);
    } catch {
      return [];
    }
    return text.split('\n').flatMap((line) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \d+\s+(\S.*)$/.exec(line);
      return m ? [{ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), fileOffset: BigInt(`0x${m[3]}`), path: m[4]! }] : [];
    });
  }
}
