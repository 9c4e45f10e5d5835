/**
 * The USDT probes of an ELF file (systemtap's .note.stapsdt notes, as
 * <sys/sdt.h> writes them): each probe's provider, name, where to place a
 * uprobe (its file offset, adjusted for prelinking by .stapsdt.base), the
 * file offset of its semaphore (0: none), and its arguments' locations
 * ("-4@%edi", "8@$5", "-8@-16(%rbp)"), parsed for x86-64. 64-bit
 * little-endian ELF only. The file is read at offsets (its headers, section
 * names and at most NOTES_MAX bytes of notes), never whole.
 */
import fs from 'node:fs';

export type UsdtLocation =
  | { kind: 'register'; register: number }
  | { kind: 'memory'; register: number; displacement: number }
  | { kind: 'constant'; value: number };

export interface UsdtArgument { size: 1 | 2 | 4 | 8; signed: boolean; location: UsdtLocation }

export interface UsdtProbe {
  provider: string; name: string; offset: number; semaphoreOffset: number; args: UsdtArgument[];
  /** Why the probe cannot be served here (an argument location this parser cannot read, an address no segment maps). */
  problem?: string;
}

const NT_STAPSDT = 3;
const SHT_NOBITS = 8;
const PT_LOAD = 1;
const NOTES_MAX = 1 << 20;

/** x86-64 register names (every width) → their slot in struct pt_regs (8 bytes each). */
const PT_REGS_SLOT: Record<string, number> = {};
const REGISTERS: [number, string[]][] = [
  [0, ['r15', 'r15d', 'r15w', 'r15b']], [1, ['r14', 'r14d', 'r14w', 'r14b']], [2, ['r13', 'r13d', 'r13w', 'r13b']],
  [3, ['r12', 'r12d', 'r12w', 'r12b']], [4, ['rbp', 'ebp', 'bp', 'bpl']], [5, ['rbx', 'ebx', 'bx', 'bl', 'bh']],
  [6, ['r11', 'r11d', 'r11w', 'r11b']], [7, ['r10', 'r10d', 'r10w', 'r10b']], [8, ['r9', 'r9d', 'r9w', 'r9b']],
  [9, ['r8', 'r8d', 'r8w', 'r8b']], [10, ['rax', 'eax', 'ax', 'al', 'ah']], [11, ['rcx', 'ecx', 'cx', 'cl', 'ch']],
  [12, ['rdx', 'edx', 'dx', 'dl', 'dh']], [13, ['rsi', 'esi', 'si', 'sil']], [14, ['rdi', 'edi', 'di', 'dil']],
  [16, ['rip']], [19, ['rsp', 'esp', 'sp', 'spl']],
];
for (const [slot, names] of REGISTERS) for (const n of names) PT_REGS_SLOT[n] = slot;

/** One argument's location, or why it cannot be read here. */
export function parseUsdtArgument(text: string): UsdtArgument | string {
  const m = /^(-?)(1|2|4|8)@(.+)$/.exec(text);
  if (!m) return `argument "${text}" is not SIZE@LOCATION`;
  const size = Number(m[2]) as UsdtArgument['size'];
  const signed = m[1] === '-';
  const where = m[3]!;
  let r: RegExpExecArray | null;
  if ((r = /^%(\w+)$/.exec(where))) {
    const register = PT_REGS_SLOT[r[1]!];
    return register === undefined ? `argument "${text}": unknown register %${r[1]}` : { size, signed, location: { kind: 'register', register } };
  }
  if ((r = /^\$(-?\d+)$/.exec(where))) return { size, signed, location: { kind: 'constant', value: Number(r[1]) } };
  if ((r = /^(-?\d+)?\(%(\w+)\)$/.exec(where))) {
    const register = PT_REGS_SLOT[r[2]!];
    if (register === undefined) return `argument "${text}": unknown register %${r[2]}`;
    return { size, signed, location: { kind: 'memory', register, displacement: Number(r[1] ?? 0) } };
  }
  return `argument "${text}": the location "${where}" is not a register, a constant or a register plus displacement`;
}

interface Section { name: string; addr: bigint; offset: bigint; size: bigint; type: number }

/** ELF64 section and program header sizes: a file that says otherwise is refused, which bounds each table's read. */
const SHDR_SIZE = 64;
const PHDR_SIZE = 56;
/** Bytes of section names read (.shstrtab): a few hundred in real binaries. */
const SECTION_NAMES_MAX = 1 << 20;

/**
 * Reads of an ELF file at offsets, each bounded: only the headers, the
 * section names and the notes are read, never the whole file (a binary may
 * be hundreds of MiB, and this runs on the event loop).
 */
class ElfReader {
  constructor(private readonly fd: number, private readonly file: string) {}

  read(offset: number | bigint, length: number): Buffer {
    const buf = Buffer.alloc(length);
    const got = length === 0 ? 0 : fs.readSync(this.fd, buf, 0, length, Number(offset));
    if (got < length) throw new Error(`${this.file} is a truncated ELF file (${length} bytes at offset ${offset} are past its end)`);
    return buf;
  }

  /** A header table whose entry size the file gives: `entry` bytes each, or the file is refused. */
  table(offset: bigint, entsize: number, count: number, entry: number, what: string): Buffer {
    if (count > 0 && entsize !== entry) throw new Error(`${this.file}: ${what} entries of ${entsize} bytes, not ELF64's ${entry}`);
    return this.read(offset, count * entry);
  }
}

function readSections(elf: ElfReader, header: Buffer): Section[] {
  const shnum = header.readUInt16LE(0x3c);
  const shstrndx = header.readUInt16LE(0x3e);
  const table = elf.table(header.readBigUInt64LE(0x28), header.readUInt16LE(0x3a), shnum, SHDR_SIZE, 'section header');
  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = i * SHDR_SIZE;
    return { nameOff: table.readUInt32LE(at), type: table.readUInt32LE(at + 4), addr: table.readBigUInt64LE(at + 0x10), offset: table.readBigUInt64LE(at + 0x18), size: table.readBigUInt64LE(at + 0x20) };
  });
  const strtab = raw[shstrndx];
  const names = strtab === undefined ? Buffer.alloc(0) : elf.read(strtab.offset, Math.min(Number(strtab.size), SECTION_NAMES_MAX));
  const nameAt = (off: number): string => {
    const end = names.indexOf(0, off);
    return off < names.length && end > 0 ? names.toString('latin1', off, end) : '';
  };
  return raw.map((s) => ({ name: nameAt(s.nameOff), addr: s.addr, offset: s.offset, size: s.size, type: s.type }));
}

/** A virtual address's offset in the file, through the PT_LOAD segment that maps it. */
function fileOffset(segments: Buffer, vaddr: bigint): number | undefined {
  for (let at = 0; at < segments.length; at += PHDR_SIZE) {
    if (segments.readUInt32LE(at) !== PT_LOAD) continue;
    const offset = segments.readBigUInt64LE(at + 8);
    const start = segments.readBigUInt64LE(at + 0x10);
    const memsz = segments.readBigUInt64LE(at + 0x28);
    if (vaddr >= start && vaddr < start + memsz) return Number(vaddr - start + offset);
  }
  return undefined;
}

/** The USDT probes of `file`; throws when it is no regular 64-bit little-endian ELF file. */
export function readUsdtProbes(file: string): UsdtProbe[] {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // a FIFO put in its place would block the open
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${file} is not a regular file`);
    return probesOf(new ElfReader(fd, file), file);
  } finally {
    fs.closeSync(fd);
  }
}

function probesOf(elf: ElfReader, file: string): UsdtProbe[] {
  const notElf = new Error(`${file} is not a 64-bit little-endian ELF file`);
  let header: Buffer;
  try {
    header = elf.read(0, 64);
  } catch {
    throw notElf;
  }
  if (header.readUInt32LE(0) !== 0x464c457f || header[4] !== 2 || header[5] !== 1) throw notElf;
  const sections = readSections(elf, header);
  const notes = sections.find((s) => s.name === '.note.stapsdt' && s.type !== SHT_NOBITS);
  if (!notes) return [];
  const base = sections.find((s) => s.name === '.stapsdt.base');
  const buf = elf.read(notes.offset, Math.min(Number(notes.size), NOTES_MAX));
  const segments = elf.table(header.readBigUInt64LE(0x20), header.readUInt16LE(0x36), header.readUInt16LE(0x38), PHDR_SIZE, 'program header');
  const probes: UsdtProbe[] = [];
  for (let at = 0; at + 12 <= buf.length;) {
    const namesz = buf.readUInt32LE(at);
    const descsz = buf.readUInt32LE(at + 4);
    const type = buf.readUInt32LE(at + 8);
    const desc = at + 12 + ((namesz + 3) & ~3);
    if (desc + descsz > buf.length) break;
    if (type === NT_STAPSDT && buf.toString('latin1', at + 12, at + 12 + namesz) === 'stapsdt\0' && descsz >= 24) {
      let pc = buf.readBigUInt64LE(desc);
      const linkBase = buf.readBigUInt64LE(desc + 8);
      let semaphore = buf.readBigUInt64LE(desc + 16);
      // Prelinking moves .stapsdt.base; the note holds its address at link time.
      if (base && linkBase !== 0n) {
        pc += base.addr - linkBase;
        if (semaphore !== 0n) semaphore += base.addr - linkBase;
      }
      const [provider = '', name = '', args = ''] = buf.toString('latin1', desc + 24, desc + descsz).split('\0');
      const parsed = args.trim() === '' ? [] : args.trim().split(/\s+/).map(parseUsdtArgument);
      const offset = fileOffset(segments, pc);
      if (offset !== undefined && parsed.every((a): a is UsdtArgument => typeof a !== 'string')) {
        probes.push({ provider, name, offset, semaphoreOffset: semaphore === 0n ? 0 : fileOffset(segments, semaphore) ?? 0, args: parsed });
      } else {
        const problem = parsed.find((a): a is string => typeof a === 'string') ?? 'its address is in no loaded segment';
        probes.push({ provider, name, offset: -1, semaphoreOffset: 0, args: [], problem });
      }
    }
    at = desc + ((descsz + 3) & ~3);
  }
  return probes;
}
