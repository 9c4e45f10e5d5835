/**
 * Record layouts taken from the BTF of the compiled BPF object, so the
 * TypeScript decoder never restates an offset by hand: bpf/vigil.h is the one
 * statement of the ABI. A field the decoder needs that the object lacks (or
 * whose size differs) is an error at start-up, naming the field.
 */
import type { BtfStruct } from './addon.js';

export interface FieldLayout { readonly offset: number; readonly size: number; readonly type: string }

export type BtfSource = (structName: string) => BtfStruct;

/** Flattened view of one struct: every member, nested ones as dotted paths ("proc.creds.uid"). */
export class StructLayout {
  readonly size: number;
  private readonly fields = new Map<string, FieldLayout>();

  constructor(readonly name: string, btf: BtfSource) {
    const root = btf(name);
    this.size = root.size;
    this.flatten(btf, root, '', 0);
  }

  private flatten(btf: BtfSource, struct: BtfStruct, prefix: string, base: number): void {
    for (const member of struct.members) {
      const path = prefix + member.name;
      const offset = base + member.offset;
      this.fields.set(path, { offset, size: member.size, type: member.type });
      const nested = /^struct (\w+)$/.exec(member.type);
      if (nested) this.flatten(btf, btf(nested[1]!), `${path}.`, offset);
    }
  }

  /** The field at a dotted path; throws naming the struct and path if absent or of another size. */
  field(path: string, expectedSize?: number): FieldLayout {
    const field = this.fields.get(path);
    if (!field) throw new Error(`BPF ABI: struct ${this.name} has no field ${path}`);
    if (expectedSize !== undefined && field.size !== expectedSize) {
      throw new Error(`BPF ABI: ${this.name}.${path} is ${field.size} bytes, expected ${expectedSize}`);
    }
    return field;
  }

  offset(path: string, expectedSize?: number): number {
    return this.field(path, expectedSize).offset;
  }
}
