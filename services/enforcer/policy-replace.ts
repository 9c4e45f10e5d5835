/**
 * Replacing the policies of one source (a file of the policy directory, a
 * TracingPolicy object of the Kubernetes API) by a new version of its text,
 * so that a bad edit never leaves the node less protected than before:
 *
 * 1. the new text is parsed and compiled first; a text that does not is
 *    refused before anything is unloaded (the previous version keeps
 *    enforcing, without a gap);
 * 2. the previous version's policies are unloaded and the new ones loaded;
 * 3. when the sensor refuses the new ones (or a name is taken), the previous
 *    version is loaded again.
 */
import { GRPC_DOMAIN, PolicyInvalidError, type PolicyRef, type PolicyStore } from './policy-store.js';

/** A text whose policies are loaded, and those policies. */
export interface LoadedText {
  text: string;
  policies: PolicyRef[];
}

export interface Replacement {
  /** What is loaded now: the new text, the previous one kept, or nothing. */
  loaded: LoadedText | undefined;
  /** Why the new text is not loaded; undefined when it is. */
  error?: Error;
  /** The new text was refused for its content (it fails the same way until it changes). */
  invalid: boolean;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** Unloads a loaded text's policies; those already gone (deleted through the API) are skipped, other failures logged. */
export async function unloadPolicies(store: PolicyStore, loaded: LoadedText | undefined, source: string, log: (line: string) => void): Promise<void> {
  for (const p of loaded?.policies ?? []) {
    await store.delete(p.name, p.namespace, p.domain).catch((err: unknown) => log(`${source}: ${asError(err).message}`));
  }
}

export async function replacePolicies(
  store: PolicyStore,
  previous: LoadedText | undefined,
  text: string,
  where: { source: string; domain?: string; log: (line: string) => void },
): Promise<Replacement> {
  const { source, log } = where;
  const domain = where.domain ?? GRPC_DOMAIN;
  try {
    await store.validate(text, source, domain);
  } catch (err) {
    return { loaded: previous, error: asError(err), invalid: err instanceof PolicyInvalidError };
  }
  await unloadPolicies(store, previous, source, log);
  try {
    const policies = await store.add(text, source, domain);
    return { loaded: { text, policies }, invalid: false };
  } catch (err) {
    if (previous === undefined) return { loaded: undefined, error: asError(err), invalid: err instanceof PolicyInvalidError };
    try {
      const policies = await store.add(previous.text, source, domain);
      log(`${source}: kept the previous version (${policies.map((p) => p.name).join(', ')})`);
      return { loaded: { text: previous.text, policies }, error: asError(err), invalid: err instanceof PolicyInvalidError };
    } catch (again) {
      log(`${source}: the previous version could not be loaded again: ${asError(again).message}`);
      return { loaded: undefined, error: asError(err), invalid: err instanceof PolicyInvalidError };
    }
  }
}
