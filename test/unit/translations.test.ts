/** The hook translation table is one table: docs/architecture.md lists every hook translations.ts serves or refuses. */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';
import { RAW_TRACEPOINTS, REFUSED, TRANSLATIONS } from '../../services/enforcer/compiler/translations.js';

const docs = fs.readFileSync(path.join(repoRoot, 'docs', 'architecture.md'), 'utf8');
const table = docs.slice(docs.indexOf('### What serves each Tetragon hook on this kernel'), docs.indexOf('## Shapes'));

/** `security_inode_mkdir` may be written `_mkdir` after its family's first member, as the table groups them. */
const mentioned = (name: string): boolean =>
  table.includes(`\`${name}\``) || table.includes(`\`_${name.split('_').pop()}\``);

test('every translated kernel function and LSM hook has its row in docs/architecture.md', () => {
  const missing = Object.keys(TRANSLATIONS).map((k) => k.replace(/^lsm:/, '')).filter((name) => !mentioned(name));
  assert.deepEqual(missing, []);
});

test('every refused kernel function and every raw tracepoint served is named in the docs', () => {
  assert.deepEqual(Object.keys(REFUSED).filter((name) => !mentioned(name)), []);
  assert.deepEqual(Object.keys(RAW_TRACEPOINTS).filter((key) => !table.includes(key)), []);
});
