/**
 * The GNU build ID of an ELF file (its NT_GNU_BUILD_ID note), as Tetragon's
 * loader events carry it: read from the note segments (PT_NOTE) of a 64-bit
 * little-endian ELF, at most NOTES_MAX bytes of notes: a few small reads.
 */
import fs from 'node:fs';

const ELF_MAGIC = 0x464c457f; // "\x7fELF", little-endian
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;
const HEADER_BYTES = 64;
const PHDR_BYTES = 56;
const PHDRS_MAX = 64;
const NOTES_MAX = 4096;

const align4 = (n: number): number => (n + 3) & ~3;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = fs.readSync(fd, buf, 0, length, offset);
  return buf.subarray(0, n);
}

/** The build ID in notes, or undefined. */
function buildIdOfNotes(notes: Buffer): Buffer | undefined {
  for (let at = 0; at + 12 <= notes.length;) {
    const namesz = notes.readUInt32LE(at);
    const descsz = notes.readUInt32LE(at + 4);
    const type = notes.readUInt32LE(at + 8);
    const name = at + 12;
    const desc = name + align4(namesz);
    if (desc + descsz > notes.length) return undefined;
    if (type === NT_GNU_BUILD_ID && notes.toString('latin1', name, name + namesz) === 'GNU\0') return Buffer.from(notes.subarray(desc, desc + descsz));
    at = desc + align4(descsz);
  }
  return undefined;
}

export function readBuildId(file: string): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const h = readAt(fd, 0, HEADER_BYTES);
    if (h.length < HEADER_BYTES || h.readUInt32LE(0) !== ELF_MAGIC || h[4] !== ELFCLASS64 || h[5] !== ELFDATA2LSB) return undefined;
    const phoff = Number(h.readBigUInt64LE(0x20));
    const phnum = Math.min(h.readUInt16LE(0x38), PHDRS_MAX);
    const phdrs = readAt(fd, phoff, phnum * PHDR_BYTES);
    for (let i = 0; (i + 1) * PHDR_BYTES <= phdrs.length; i++) {
      const p = phdrs.subarray(i * PHDR_BYTES);
      if (p.readUInt32LE(0) !== PT_NOTE) continue;
      const id = buildIdOfNotes(readAt(fd, Number(p.readBigUInt64LE(8)), Math.min(Number(p.readBigUInt64LE(0x20)), NOTES_MAX)));
      if (id) return id;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}
