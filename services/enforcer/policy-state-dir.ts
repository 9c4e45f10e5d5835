/**
 * The state directory of policies added through the API (domain "grpc"), so
 * that they outlive the process: a restarted agent loads them again
 * (PolicyStore.restore). Default /var/lib/vigil/policies.
 *
 * One file per policy text added (`grpc-<name of its first policy>.json`,
 * mode 0600): the text as it was sent (the YAML), where it came from, and the
 * policies of it still present with their mode and enabled state. A policy
 * deleted through the API leaves the file's list; the file goes with the
 * last one. Files are written to a temporary name and renamed, so a crash
 * never leaves half a file; a file that does not parse is reported and left
 * alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readFileHead } from '../lib/bounded-file.js';
import type { PolicyMode } from '../lib/policy-program.js';

export interface PersistedPolicy {
  name: string;
  namespace: string;
  mode: PolicyMode;
  enabled: boolean;
}

export interface PersistedText {
  /** The file's name in the directory. */
  file: string;
  /** Order of addition (restored in this order). */
  seq: number;
  /** The policy text as it was added. */
  yaml: string;
  /** The source it was added with ('' for the API). */
  source: string;
  /** The policies of the text still present. */
  policies: PersistedPolicy[];
}

const VERSION = 1;
const FILE = /^grpc-[A-Za-z0-9._-]+\.json$/;
/** A state file holds one policy text (at most 1 MiB, some 6 MiB as escaped JSON at worst) and its policies' state. */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

export class PolicyStateDir {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** A file name for a new text whose first policy is `name` (free in the directory). */
  fileFor(name: string): string {
    const base = `grpc-${name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
    let file = `${base}.json`;
    for (let i = 2; fs.existsSync(path.join(this.dir, file)); i++) file = `${base}-${i}.json`;
    return file;
  }

  /** Writes (or replaces) one text's record atomically; an empty policy list removes it. */
  write(text: PersistedText): void {
    const target = path.join(this.dir, text.file);
    if (text.policies.length === 0) {
      fs.rmSync(target, { force: true });
      return;
    }
    const tmp = `${target}.tmp-${process.pid}`;
    const body = { version: VERSION, seq: text.seq, yaml: text.yaml, source: text.source, policies: text.policies };
    fs.writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, target);
  }

  /** Every record, in the order added; files that cannot be read are passed to `onError` and skipped. */
  read(onError: (file: string, err: unknown) => void): PersistedText[] {
    const out: PersistedText[] = [];
    for (const file of fs.readdirSync(this.dir)) {
      if (!FILE.test(file)) continue;
      try {
        const { data, size, more } = readFileHead(path.join(this.dir, file), MAX_FILE_BYTES);
        if (more) throw new Error(`${Math.max(size, MAX_FILE_BYTES + 1)} bytes, more than the limit of ${MAX_FILE_BYTES} for a policy state file`);
        const body = JSON.parse(data.toString('utf8')) as Partial<PersistedText> & { version?: number };
        if (body.version !== VERSION || typeof body.yaml !== 'string' || !Array.isArray(body.policies)) {
          throw new Error(`not a version ${VERSION} policy state file`);
        }
        out.push({ file, seq: Number(body.seq) || 0, yaml: body.yaml, source: typeof body.source === 'string' ? body.source : '', policies: body.policies });
      } catch (err) {
        onError(file, err);
      }
    }
    return out.sort((a, b) => a.seq - b.seq || a.file.localeCompare(b.file));
  }
}
