/**
 * Record and table layouts taken from the BTF of the compiled BPF object, so
 * TypeScript never restates an offset by hand: bpf/vigil.h is the one
 * statement of the ABI. A field the sensor needs that the object lacks (or
 * whose size differs) is an error at start-up, naming the field.
 *
 * Fields are addressed by paths: "proc.creds.uid" for nested structs,
 * "selectors[2].args[0].values[3]" for array elements.
 */
import type { BtfStruct } from './addon.js';

export interface FieldLayout { readonly offset: number; readonly size: number; readonly type: string }

export type BtfSource = (structName: string) => BtfStruct;

const SEGMENT = /^(\w+)((?:\[\d+\])*)$/;
const ARRAY_TYPE = /^(.*?)((?:\[\d+\])+)$/;
const dims = (suffix: string): number[] => [...suffix.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]));

export class StructLayout {
  readonly size: number;
  private readonly cache = new Map<string, FieldLayout>();

  constructor(readonly name: string, private readonly btf: BtfSource) {
    this.size = btf(name).size;
  }

  /** The field at a path; throws naming the struct and path if absent, out of range or of another size. */
  field(path: string, expectedSize?: number): FieldLayout {
    let field = this.cache.get(path);
    if (!field) {
      field = this.resolve(path);
      this.cache.set(path, field);
    }
    if (expectedSize !== undefined && field.size !== expectedSize) {
      throw new Error(`BPF ABI: ${this.name}.${path} is ${field.size} bytes, expected ${expectedSize}`);
    }
    return field;
  }

  offset(path: string, expectedSize?: number): number {
    return this.field(path, expectedSize).offset;
  }

  private resolve(path: string): FieldLayout {
    const fail = (why: string): never => { throw new Error(`BPF ABI: struct ${this.name} has no field ${path} (${why})`); };
    let struct = this.btf(this.name);
    let current: FieldLayout | undefined;
    let base = 0;
    for (const segment of path.split('.')) {
      if (current) {
        const nested = /^(?:struct|union) (\w+)$/.exec(current.type);
        if (!nested) fail(`${current.type} has no members`);
        struct = this.btf(nested![1]!);
      }
      const [, name, indexSuffix] = SEGMENT.exec(segment) ?? fail(`bad segment "${segment}"`);
      const member = struct.members.find((m) => m.name === name) ?? fail(`no member ${name}`);
      let type = member.type;
      let size = member.size;
      let offset = base + member.offset;
      for (const index of dims(indexSuffix!)) {
        const array = ARRAY_TYPE.exec(type) ?? fail(`${name} is not an array`);
        const [count, ...rest] = dims(array[2]!);
        if (index >= count!) fail(`index ${index} out of ${count}`);
        size /= count!;
        offset += index * size;
        type = array[1]! + rest.map((n) => `[${n}]`).join('');
      }
      current = { offset, size, type };
      base = offset;
    }
    return current!;
  }
}

/** A zeroed buffer of one struct, written field by field through its layout. */
export class StructWriter {
  readonly buf: Buffer;

  constructor(readonly layout: StructLayout) {
    this.buf = Buffer.alloc(layout.size);
  }

  /** Writes an unsigned (or two's-complement) integer of the field's own size. */
  set(path: string, value: number | bigint): this {
    const { offset, size } = this.layout.field(path);
    const v = BigInt.asUintN(size * 8, BigInt(value));
    switch (size) {
      case 1: this.buf.writeUInt8(Number(v), offset); break;
      case 2: this.buf.writeUInt16LE(Number(v), offset); break;
      case 4: this.buf.writeUInt32LE(Number(v), offset); break;
      case 8: this.buf.writeBigUInt64LE(v, offset); break;
      default: throw new Error(`BPF ABI: ${this.layout.name}.${path} is ${size} bytes, not an integer`);
    }
    return this;
  }

  /** Copies bytes into a char array field; throws if they do not fit. */
  setBytes(path: string, bytes: Uint8Array): this {
    const { offset, size } = this.layout.field(path);
    if (bytes.length > size) throw new Error(`${this.layout.name}.${path}: ${bytes.length} bytes do not fit in ${size}`);
    this.buf.set(bytes, offset);
    return this;
  }
}
