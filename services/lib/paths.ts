/** Where the repository's built artefacts live, resolved from this file's location. */
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';

/** The repository root (dist/services/lib/ is three levels below it). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const protoDir = path.join(repoRoot, 'proto');
export const bpfObjectPath = (name: string): string => path.join(repoRoot, 'build', 'bpf', `${name}.bpf.o`);
export const benchObjectPath = (name: string): string => path.join(repoRoot, 'build', 'bench', `${name}.bpf.o`);
export const benchBinaryPath = (name: string): string => path.join(repoRoot, 'build', 'bench', name);
export const addonPath = path.join(repoRoot, 'native', 'build', 'Release', 'vigil_bpf.node');

/** Where tracefs is mounted; throws naming how to mount it when it is not. */
export function tracefsRoot(): string {
  for (const dir of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    if (fs.existsSync(path.join(dir, 'events'))) return dir;
  }
  throw new Error('tracefs is not mounted (mount -t tracefs none /sys/kernel/tracing)');
}

/** Whether the kernel has the tracepoint (`subsystem/event`); true when tracefs cannot tell (an attach then says). */
export function tracepointExists(tracepoint: string): boolean {
  try {
    return fs.existsSync(path.join(tracefsRoot(), 'events', tracepoint));
  } catch {
    return true;
  }
}
