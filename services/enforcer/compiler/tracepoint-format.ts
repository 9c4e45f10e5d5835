/**
 * The format file of a tracepoint (tracefs events/<subsystem>/<event>/format):
 * its fields with offsets and sizes in the record a tracepoint program sees.
 * Fields are kept in file order, common_* fields included, because a policy's
 * tracepoint `index` counts them (as Tetragon's does).
 */

export interface TracepointField {
  /** As declared, e.g. `const char * filename` or `__data_loc char[] filename`. */
  declaration: string;
  /** The C type without the name: `const char *`, `char[16]`, `__data_loc char[]`. */
  type: string;
  name: string;
  offset: number;
  size: number;
  signed: boolean;
}

export interface TracepointFormat {
  name: string;
  id: number;
  fields: TracepointField[];
}

const FIELD = /^\s*field:([^;]+);\s*offset:(\d+);\s*size:(\d+);\s*signed:([01]);/;
const DECLARATION = /^(.*?)\s*\b([A-Za-z_]\w*)\s*(\[[^\]]*\])?$/;

export function parseTracepointFormat(text: string): TracepointFormat {
  const name = /^name: (\S+)$/m.exec(text)?.[1];
  const id = /^ID: (\d+)$/m.exec(text)?.[1];
  if (name === undefined || id === undefined) throw new Error('not a tracepoint format: no name/ID lines');
  const fields: TracepointField[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('print fmt:')) break;
    const m = FIELD.exec(line);
    if (!m) continue;
    const declaration = m[1]!.trim();
    const d = DECLARATION.exec(declaration);
    if (!d) throw new Error(`tracepoint ${name}: cannot read the field declaration "${declaration}"`);
    fields.push({
      declaration,
      type: `${d[1]!}${d[3] ?? ''}`,
      name: d[2]!,
      offset: Number(m[2]),
      size: Number(m[3]),
      signed: m[4] === '1',
    });
  }
  return { name, id: Number(id), fields };
}
