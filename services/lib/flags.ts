/**
 * A small argv parser for the `vigil` subcommands: long flags (`--name value`,
 * `--name=value`), one-letter short flags (`-o value`, `-ovalue`, `-o=value`),
 * and `--` to end the flags. Anything it does not know is a UsageError, which
 * the entry point turns into exit code 2.
 */
import { readFileHead } from './bounded-file.js';

export class UsageError extends Error {}

/** The most a PEM file named by a flag may hold: well past any certificate, key or CA bundle. */
export const PEM_MAX_BYTES = 4 * 1024 * 1024;

/**
 * string: one value, the last one given wins. list: repeatable, values
 * accumulate. bool: `--x` or `--x=true|false`. optional: `--x` alone, or with
 * a value as `--x=v` or `--x v` when the next word is not a flag.
 */
export type FlagKind = 'string' | 'list' | 'bool' | 'optional';

export interface FlagSpec {
  kind: FlagKind;
  short?: string;
  /** Other long names accepted for this flag (kept out of the help, like tetra's hidden flags). */
  aliases?: string[];
  /** list flags: split each value on commas, as tetra's slice flags do. */
  commas?: boolean;
  /** Placeholder for the value in the help text. */
  value?: string;
  help: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

export class ParsedArgs {
  constructor(private readonly values: ReadonlyMap<string, readonly string[]>, readonly positional: readonly string[]) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  string(name: string): string | undefined {
    return this.values.get(name)?.at(-1);
  }

  list(name: string): string[] {
    return [...(this.values.get(name) ?? [])];
  }

  bool(name: string): boolean {
    return this.string(name) === 'true';
  }

  /**
   * The bytes of the PEM file the flag names (a pipe too), read up to
   * PEM_MAX_BYTES; undefined when the flag is not given or empty. Throws
   * UsageError naming the flag.
   */
  pemFile(name: string): Buffer | undefined {
    const file = this.string(name);
    if (file === undefined || file === '') return undefined;
    let head;
    try {
      head = readFileHead(file, PEM_MAX_BYTES, { anyKind: true });
    } catch (err) {
      throw new UsageError(`--${name}: ${(err as Error).message}`);
    }
    if (head.more) throw new UsageError(`--${name}: ${file} holds more than ${PEM_MAX_BYTES} bytes (4 MiB), more than any PEM file`);
    return head.data;
  }
}

function parseBool(flag: string, value: string): string {
  if (value === 'true' || value === 'false') return value;
  throw new UsageError(`invalid value "${value}" for ${flag}: expected true or false`);
}

export function parseArgs(argv: readonly string[], specs: FlagSpecs): ParsedArgs {
  const byLong = new Map<string, string>();
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) {
    byLong.set(name, name);
    for (const alias of spec.aliases ?? []) byLong.set(alias, name);
    if (spec.short !== undefined) byShort.set(spec.short, name);
  }

  const values = new Map<string, string[]>();
  const positional: string[] = [];
  const record = (name: string, value: string): void => {
    const spec = specs[name]!;
    const parts = spec.kind === 'list' && spec.commas ? value.split(',').filter((v) => v !== '') : [value];
    values.set(name, spec.kind === 'list' ? [...(values.get(name) ?? []), ...parts] : parts);
  };

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let shown: string;
    let inline: string | undefined;
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      const long = eq < 0 ? word.slice(2) : word.slice(2, eq);
      if (eq >= 0) inline = word.slice(eq + 1);
      shown = `--${long}`;
      name = byLong.get(long);
    } else if (word.startsWith('-') && word.length > 1) {
      shown = word.slice(0, 2);
      name = byShort.get(word[1]!);
      if (word.length > 2) inline = word[2] === '=' ? word.slice(3) : word.slice(2);
    } else {
      positional.push(word);
      continue;
    }
    if (name === undefined) throw new UsageError(`unknown flag: ${shown}`);

    const spec = specs[name]!;
    switch (spec.kind) {
      case 'bool':
        record(name, inline === undefined ? 'true' : parseBool(shown, inline));
        break;
      case 'optional': {
        const next = argv[i + 1];
        if (inline !== undefined) record(name, inline);
        else if (next !== undefined && !next.startsWith('-')) record(name, argv[++i]!);
        else record(name, '');
        break;
      }
      default: {
        if (inline !== undefined) {
          record(name, inline);
          break;
        }
        const next = argv[++i];
        if (next === undefined) throw new UsageError(`flag needs an argument: ${shown}`);
        record(name, next);
      }
    }
  }
  return new ParsedArgs(values, positional);
}

/** The flag table of a command's help text. */
export function formatFlags(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const short = spec.short === undefined ? '    ' : `-${spec.short}, `;
    const value = spec.value === undefined ? '' : spec.kind === 'optional' ? `[=${spec.value}]` : ` ${spec.value}`;
    return [`  ${short}--${name}${value}`, spec.help] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 3;
  return rows.map(([left, help]) => left.padEnd(width) + help).join('\n');
}
