/**
 * The running kernel's types, read from its BTF (/sys/kernel/btf/vmlinux),
 * for what Tetragon's `resolve` asks: a path of fields (`mm.owner.comm`)
 * through the structs an argument points to, turned into the byte offsets
 * the kernel follows (bpf/vigil.h struct vigil_resolve_path). Only what that
 * needs is decoded: structs and unions with their members, and the types
 * that lead to them (pointers, arrays, typedefs and qualifiers).
 */
import fs from 'node:fs';
import { RESOLVE_DEPTH } from '../../lib/kernel-abi.js';
import type { ResolvedField } from '../../lib/policy-program.js';

/** The file the kernel exposes its own BTF in. */
export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

const BTF_MAGIC = 0xeb9f;
const enum Kind { Int = 1, Ptr = 2, Array = 3, Struct = 4, Union = 5, Enum = 6, Fwd = 7, Typedef = 8, Volatile = 9, Const = 10, Restrict = 11,
  Func = 12, FuncProto = 13, Var = 14, Datasec = 15, Float = 16, DeclTag = 17, TypeTag = 18, Enum64 = 19 }

/** Bytes each kind carries after the 12-byte common header, given its vlen. */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case Kind.Int: case Kind.Var: case Kind.DeclTag: return 4;
    case Kind.Array: return 12;
    case Kind.Struct: case Kind.Union: case Kind.Datasec: case Kind.Enum64: return 12 * vlen;
    case Kind.Enum: case Kind.FuncProto: return 8 * vlen;
    default: return 0;
  }
}

export class KernelBtf {
  private readonly types: number[] = [0]; // byte offset of each type id's header; id 0 is void
  private readonly structsByName = new Map<string, number>();
  private readonly strOff: number;

  constructor(private readonly buf: Buffer) {
    if (buf.length < 24 || buf.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not little-endian BTF');
    const hdrLen = buf.readUInt32LE(4);
    const typeOff = hdrLen + buf.readUInt32LE(8);
    const typeEnd = typeOff + buf.readUInt32LE(12);
    this.strOff = hdrLen + buf.readUInt32LE(16);
    for (let at = typeOff; at < typeEnd;) {
      const info = buf.readUInt32LE(at + 4);
      const kind = (info >>> 24) & 0x1f;
      this.types.push(at);
      if ((kind === Kind.Struct || kind === Kind.Union) && buf.readUInt32LE(at) !== 0) {
        const name = this.str(buf.readUInt32LE(at));
        if (!this.structsByName.has(name)) this.structsByName.set(name, this.types.length - 1);
      }
      at += 12 + extraBytes(kind, info & 0xffff);
    }
  }

  static #vmlinux: KernelBtf | undefined;

  /** The running kernel's BTF, read once. */
  static vmlinux(): KernelBtf {
    return (KernelBtf.#vmlinux ??= new KernelBtf(fs.readFileSync(VMLINUX_BTF)));
  }

  private str(off: number): string {
    const start = this.strOff + off;
    return this.buf.toString('latin1', start, this.buf.indexOf(0, start));
  }

  private kind(id: number): number { return (this.buf.readUInt32LE(this.types[id]! + 4) >>> 24) & 0x1f; }
  private vlen(id: number): number { return this.buf.readUInt32LE(this.types[id]! + 4) & 0xffff; }
  private sizeOrType(id: number): number { return this.buf.readUInt32LE(this.types[id]! + 8); }
  private name(id: number): string { return this.str(this.buf.readUInt32LE(this.types[id]!)); }

  /** The type behind typedefs and qualifiers. */
  private strip(id: number): number {
    for (let k = this.kind(id); id !== 0 && [Kind.Typedef, Kind.Volatile, Kind.Const, Kind.Restrict, Kind.TypeTag].includes(k); k = this.kind(id)) id = this.sizeOrType(id);
    return id;
  }

  /** The member `name` of struct/union `id`, looking into anonymous members: its byte offset and type; undefined when absent. */
  private member(id: number, name: string): { offset: number; type: number; bitfield: boolean } | undefined {
    const bitfields = (this.buf.readUInt32LE(this.types[id]! + 4) >>> 31) === 1;
    for (let i = 0, at = this.types[id]! + 12; i < this.vlen(id); i++, at += 12) {
      const raw = this.buf.readUInt32LE(at + 8);
      const bits = bitfields ? raw & 0xffffff : raw;
      const bitfield = bitfields && raw >>> 24 !== 0;
      const type = this.buf.readUInt32LE(at + 4);
      const memberName = this.str(this.buf.readUInt32LE(at));
      if (memberName === name) return { offset: bits / 8, type, bitfield: bitfield || bits % 8 !== 0 };
      const inner = this.strip(type);
      if (memberName === '' && (this.kind(inner) === Kind.Struct || this.kind(inner) === Kind.Union)) {
        const found = this.member(inner, name);
        if (found) return { ...found, offset: found.offset + bits / 8 };
      }
    }
    return undefined;
  }

  private isChar(id: number): boolean {
    const t = this.strip(id);
    return this.kind(t) === Kind.Int && this.sizeOrType(t) === 1;
  }

  /**
   * The fields `path` (dot-separated member names) names from a pointer to
   * struct `structName`, read as a string (`asString`) or as a number. Throws
   * naming the component that cannot be followed.
   */
  resolve(structName: string, path: string, asString: boolean): ResolvedField {
    let id = this.structsByName.get(structName);
    if (id === undefined) throw new Error(`this kernel's BTF has no struct ${structName}`);
    const names = path.split('.');
    const derefs: number[] = [];
    let offset = 0;
    let where = structName;
    for (const [i, name] of names.entries()) {
      if (!/^[A-Za-z_]\w*$/.test(name)) throw new Error(`"${name}" is not a field name (resolve follows struct fields by name, separated by dots)`);
      const m = this.member(id!, name) ?? fail(`struct ${where} has no field ${name}`);
      if (m.bitfield) fail(`${where}.${name} is a bit field, which resolve cannot read`);
      offset += m.offset;
      where = `${where}.${name}`;
      const t = this.strip(m.type);
      const last = i === names.length - 1;
      if (!last) {
        const kind = this.kind(t);
        if (kind === Kind.Struct || kind === Kind.Union) {
          id = t;
        } else if (kind === Kind.Ptr && [Kind.Struct, Kind.Union].includes(this.kind(this.strip(this.sizeOrType(t))))) {
          derefs.push(offset);
          offset = 0;
          id = this.strip(this.sizeOrType(t));
        } else {
          fail(`${where} is neither a struct nor a pointer to one, so ${names[i + 1]} cannot be read through it`);
        }
        continue;
      }
      if (asString) {
        if (this.kind(t) === Kind.Array && this.isChar(this.buf.readUInt32LE(this.types[t]! + 12))) return done(0, false);
        if (this.kind(t) === Kind.Ptr && this.isChar(this.sizeOrType(t))) {
          derefs.push(offset);
          offset = 0;
          return done(0, false);
        }
        fail(`${where} is not a char array or a char pointer, so it cannot be read as a string`);
      }
      const kind = this.kind(t);
      if (kind === Kind.Ptr) return done(8, false);
      if (kind === Kind.Int || kind === Kind.Enum || kind === Kind.Enum64) {
        const size = this.sizeOrType(t);
        const signed = kind === Kind.Int ? ((this.buf.readUInt32LE(this.types[t]! + 12) >>> 24) & 1) === 1 : false;
        if ([1, 2, 4, 8].includes(size)) return done(size, signed);
      }
      fail(`${where} is not a number of 1, 2, 4 or 8 bytes (${this.name(t) || 'an aggregate'})`);
    }
    return fail('resolve is empty');

    function done(size: number, signed: boolean): ResolvedField {
      if (derefs.length > RESOLVE_DEPTH) fail(`${path} loads ${derefs.length} pointers; at most ${RESOLVE_DEPTH} are followed`);
      return { derefs, offset, size, signed };
    }
    function fail(why: string): never {
      throw new Error(why);
    }
  }
}
