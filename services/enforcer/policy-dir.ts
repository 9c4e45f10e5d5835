/**
 * The policy directory (`vigil agent --policy-dir`): every *.yaml/*.yml file
 * in it is loaded at start (domain "static", as Tetragon's
 * --tracing-policy-dir), and changes are followed.
 *
 * A change anywhere in the directory triggers, after a short quiet period, a
 * rescan that compares each file's text with the one last seen: a removed
 * file's policies are deleted; a changed file's policies are replaced
 * (policy-replace.ts). A file that fails (bad text, sensor refusal, a name
 * another file holds) is logged, and its previous version, if any, stays or
 * is loaded again, so an edit with a typo does not leave the node unprotected; policies
 * of other files are never touched. A file that failed for a reason other
 * than its text is tried again on every rescan, so that a name freed by
 * another file's change can load.
 *
 * Names starting with '.' are skipped (editor swap files, and Kubernetes'
 * ConfigMap volumes, whose `..data` switch the rescan follows through the
 * file symlinks). A file is read only when it is a regular file, and only
 * up to the policy text limit (1 MiB) and one byte more: anything else is
 * logged like a file that cannot be read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PolicyInvalidError, STATIC_DOMAIN, type PolicyStore } from './policy-store.js';
import { replacePolicies, unloadPolicies, type LoadedText } from './policy-replace.js';
import { checkPolicyBytes, POLICY_LIMITS } from './compiler/parse.js';
import { readFileHead } from '../lib/bounded-file.js';

/** Quiet period after the last change before rescanning: editors and ConfigMap updates touch several files at once. */
const DEBOUNCE_MS = 150;

export interface PolicyDirWatch {
  /** Settles when the initial load is done. */
  ready: Promise<void>;
  close(): void;
}

interface FileState {
  /** The text last read. */
  text: string;
  /** The text whose policies are loaded (the last one that loaded), and those policies. */
  loaded: LoadedText | undefined;
  /** The text failed for a reason that may go away (a name clash, a sensor refusal): try again on the next rescan. */
  retry: boolean;
}

const isPolicyFile = (name: string): boolean => !name.startsWith('.') && /\.ya?ml$/.test(name);
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A policy file's text; throws, without reading past the limit, for what is no regular file or is past POLICY_LIMITS.maxBytes. */
function readPolicyFile(file: string): string {
  const { data, size, more } = readFileHead(file, POLICY_LIMITS.maxBytes);
  checkPolicyBytes(more ? Math.max(size, POLICY_LIMITS.maxBytes + 1) : data.length);
  return data.toString('utf8');
}

export function watchPolicyDir(dir: string, store: PolicyStore, log: (line: string) => void): PolicyDirWatch {
  const files = new Map<string, FileState>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  /** The text of the policy files present now; a file that cannot be read keeps its last text. */
  async function readDir(): Promise<Map<string, string>> {
    const texts = new Map<string, string>();
    for (const name of (await fs.promises.readdir(dir)).filter(isPolicyFile).sort()) {
      try {
        texts.set(name, readPolicyFile(path.join(dir, name)));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EISDIR') continue;
        log(`${path.join(dir, name)}: ${message(err)}`);
        const last = files.get(name);
        if (last !== undefined) texts.set(name, last.text);
      }
    }
    return texts;
  }

  async function load(name: string, text: string, previous: FileState | undefined): Promise<void> {
    const file = path.join(dir, name);
    const { loaded, error, invalid } = await replacePolicies(store, previous?.loaded, text, { source: file, domain: STATIC_DOMAIN, log });
    if (error === undefined) log(`${file}: loaded ${loaded!.policies.map((p) => p.name).join(', ')}`);
    // PolicyInvalidError's message already starts with file:line.
    else log(error instanceof PolicyInvalidError ? error.message : `${file}: ${error.message}`);
    files.set(name, { text, loaded, retry: error !== undefined && !invalid });
  }

  async function rescan(): Promise<void> {
    const texts = await readDir();
    // Removed files first, so that a policy moved to another file can load under its name.
    for (const [name, state] of files) {
      if (texts.has(name)) continue;
      await unloadPolicies(store, state.loaded, path.join(dir, name), log);
      files.delete(name);
      log(`${path.join(dir, name)}: removed`);
    }
    for (const [name, text] of texts) {
      if (closed) return;
      const state = files.get(name);
      if (state === undefined || state.text !== text || state.retry) await load(name, text, state);
    }
  }

  /** Runs rescans one at a time; a change during a rescan makes another. */
  function run(): Promise<void> {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await rescan().catch((err: unknown) => log(`policy directory ${dir}: ${message(err)}`));
      } while (again && !closed);
      running = undefined;
    })();
    return running;
  }

  // Watch before the first scan, so that no change falls between the two.
  const watcher = fs.watch(dir, () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void run(), DEBOUNCE_MS);
  });
  watcher.on('error', (err) => log(`policy directory ${dir}: watch failed: ${message(err)}`));

  return {
    ready: run(),
    close(): void {
      closed = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}
