/** A refused policy: where (the field's path, and the YAML line when known) and why. */

/** A field's position in a document: keys and list indexes from the document root. */
export type FieldPath = readonly (string | number)[];

/** `spec.kprobes[0].selectors[1]` from ['spec', 'kprobes', 0, 'selectors', 1]. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

export class PolicyError extends Error {
  /** The offending field, e.g. `spec.kprobes[0].call`; empty for whole-document problems (YAML syntax). */
  readonly path: string;
  readonly reason: string;
  /** 1-based line in the source text, when the policy came from YAML. */
  readonly line?: number;
  /** Where the text came from (a file name), as the caller named it. */
  readonly source?: string;

  constructor(path: string, reason: string, where: { line?: number; source?: string } = {}) {
    const at = where.source === undefined ? '' : where.line === undefined ? `${where.source}: ` : `${where.source}:${where.line}: `;
    super(`${at}${path === '' ? '' : `${path}: `}${reason}`);
    this.name = 'PolicyError';
    this.path = path;
    this.reason = reason;
    if (where.line !== undefined) this.line = where.line;
    if (where.source !== undefined) this.source = where.source;
  }
}
