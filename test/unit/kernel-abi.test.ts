/**
 * bpf/vigil.h is the one statement of the kernel ABI: the TypeScript constants
 * are generated from it at build time, and the policy schema's list limits are
 * the header's. These fail when either drifts from the header.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';
import * as abi from '../../services/lib/kernel-abi.js';
import { SPEC_SCHEMA_PATH } from '../../services/enforcer/compiler/schema.js';
import { bpfObjectPath } from '../../services/lib/paths.js';
import { BpfObject } from '../../services/sensor/kernel/addon.js';
import { NAMESPACE_NAMES } from '../../services/sensor/kernel/records.js';
import { NAMESPACE_INDEX } from '../../services/sensor/policy-tables/encoding.js';

test('services/lib/kernel-abi.ts is what bpf/vigil.h generates now (the build is not stale)', () => {
  const fresh = execFileSync(process.execPath, [path.join(repoRoot, 'scripts', 'gen-kernel-abi.mjs'), '--print'], { encoding: 'utf8' });
  assert.equal(fs.readFileSync(path.join(repoRoot, 'services', 'lib', 'kernel-abi.ts'), 'utf8'), fresh);
  assert.equal(abi.RecordKind.POLICY, 4);
  assert.ok(fresh.includes('export const MAX_HOOKS ='), 'numeric #defines are there');
});

type Schema = { properties?: Record<string, Schema>; items?: Schema; maxItems?: number };

/** maxItems of the list at a path of property names through the spec schema (`[]` steps into list items). */
function maxItems(...at: string[]): number | undefined {
  let node: Schema = JSON.parse(fs.readFileSync(SPEC_SCHEMA_PATH, 'utf8')) as Schema;
  for (const step of at) node = (step === '[]' ? node.items : node.properties?.[step]) ?? assert.fail(`schema has no ${at.join('.')}`);
  return node.maxItems;
}

test("the policy schema's list limits are the kernel's (bpf/vigil.h)", () => {
  const selector = ['kprobes', '[]', 'selectors', '[]'];
  assert.equal(maxItems('kprobes', '[]', 'selectors'), abi.MAX_SELECTORS);
  assert.equal(maxItems('kprobes', '[]', 'args'), abi.MAX_HOOK_ARGS);
  assert.equal(maxItems(...selector, 'matchArgs'), abi.MAX_MATCH_ARGS);
  assert.equal(maxItems(...selector, 'matchReturnArgs'), abi.MAX_MATCH_RETURN_ARGS);
  assert.equal(maxItems(...selector, 'matchActions'), abi.MAX_ACTIONS);
  assert.equal(maxItems(...selector, 'matchCapabilities'), abi.MAX_MATCH_CAPS);
  assert.equal(maxItems(...selector, 'matchCapabilityChanges'), abi.MAX_MATCH_CAPS);
  assert.equal(maxItems(...selector, 'matchNamespaces'), abi.MAX_MATCH_NS);
  assert.equal(maxItems(...selector, 'matchPIDs', '[]', 'values'), abi.MAX_MATCH_VALUES);
});

test('the namespaces, in the order TypeScript indexes them, are struct vigil_namespaces\' fields in the object\'s BTF', () => {
  const object = new BpfObject(bpfObjectPath('vigil'));
  assert.deepEqual(object.btfStruct('vigil_namespaces').members.map((m) => m.name), [...NAMESPACE_NAMES]);
  assert.deepEqual(Object.entries(NAMESPACE_INDEX).map(([kind, i]) => [kind, NAMESPACE_NAMES[i]]).slice(0, 5),
    [['Uts', 'uts'], ['Ipc', 'ipc'], ['Mnt', 'mnt'], ['Pid', 'pid'], ['PidForChildren', 'pid_for_children']]);
});
