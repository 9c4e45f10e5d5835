/**
 * API-added policies kept in a state directory (services/enforcer/policy-state-dir.ts)
 * and restored by a new PolicyStore, with their mode and enabled state. No root.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { PolicyStore, STATIC_DOMAIN } from '../../services/enforcer/policy-store.js';
import { FakeControl, fakeCompileEnv, policyText, twoDocuments } from '../support/policy-control.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-state-unit-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;

function store(stateDir: string): { control: FakeControl; store: PolicyStore; logs: string[] } {
  const control = new FakeControl();
  const logs: string[] = [];
  return { control, logs, store: new PolicyStore(control, fakeCompileEnv(), (line) => logs.push(line), { stateDir }) };
}

const files = (dir: string): string[] => fs.readdirSync(dir).sort();

describe('PolicyStore with a state directory', () => {
  it('restores API-added policies in order, with mode and enabled state; deleted ones stay gone', async () => {
    const dir = path.join(root, `s${++n}`);
    const first = store(dir);
    await first.store.add(policyText('one'));
    await first.store.add(twoDocuments('two', 'three'));
    await first.store.add(policyText('static-one'), 'static-one.yaml', STATIC_DOMAIN);
    await first.store.setMode('one', 'monitor');
    await first.store.disable('two');
    await first.store.delete('three');
    assert.deepEqual(files(dir), ['grpc-one.json', 'grpc-two.json'], 'one file per API text; the policy directory\'s are not kept');
    assert.equal(fs.statSync(path.join(dir, 'grpc-one.json')).mode & 0o777, 0o600);

    const second = store(dir);
    const { restored, failed } = await second.store.restore();
    assert.deepEqual(failed, []);
    assert.deepEqual(restored.map((r) => r.name), ['one', 'two']);
    assert.deepEqual(second.store.list().map((p) => [p.name, p.domain, p.mode, p.state]), [['one', 'grpc', 'monitor', 'enabled'], ['two', 'grpc', 'enforce', 'disabled']]);
    assert.deepEqual(second.control.calls, ['load one', 'mode one monitor', 'load two', 'load three', 'enable two false', 'unload three']);

    await second.store.delete('one');
    await second.store.delete('two');
    assert.deepEqual(files(dir), [], 'the last policy of a text takes its file along');
    const third = store(dir);
    assert.deepEqual((await third.store.restore()).restored, []);
  });

  it('reports a state file that does not load and keeps it', async () => {
    const dir = path.join(root, `s${++n}`);
    const first = store(dir);
    await first.store.add(policyText('kept'));
    fs.writeFileSync(path.join(dir, 'grpc-broken.json'), '{not json');
    // Checked before a byte is read: a huge file (sparse here) and one that is no regular file.
    fs.writeFileSync(path.join(dir, 'grpc-huge.json'), '');
    fs.truncateSync(path.join(dir, 'grpc-huge.json'), 3 * 2 ** 30);
    fs.symlinkSync('/dev/zero', path.join(dir, 'grpc-zero.json'));
    const second = store(dir);
    second.control.refuse.set('kept', 'kernel says no');
    const { restored, failed } = await second.store.restore();
    assert.deepEqual(restored, []);
    assert.deepEqual(failed.sort(), ['grpc-broken.json', 'grpc-huge.json', 'grpc-kept.json', 'grpc-zero.json']);
    assert.deepEqual(files(dir), ['grpc-broken.json', 'grpc-huge.json', 'grpc-kept.json', 'grpc-zero.json']);
    assert.ok(second.logs.some((l) => /grpc-kept\.json: could not be loaded again: .*kernel says no/.test(l)), second.logs.join('\n'));
    assert.ok(second.logs.some((l) => l.includes(`grpc-huge.json`) && l.includes(`${3 * 2 ** 30} bytes, more than the limit of 8388608 for a policy state file`)), second.logs.join('\n'));
    assert.ok(second.logs.some((l) => l.includes('grpc-zero.json') && l.includes('not a regular file')), second.logs.join('\n'));
  });

  it('refuses an add whose state cannot be written, and leaves nothing loaded', async () => {
    const dir = path.join(root, `s${++n}`);
    const s = store(dir);
    fs.rmSync(dir, { recursive: true });
    fs.writeFileSync(dir, 'a file where the directory was');
    await assert.rejects(s.store.add(policyText('lost')), (e: unknown) => (e as { kind?: string }).kind === 'refused');
    assert.deepEqual(s.store.list(), []);
    assert.deepEqual(s.control.calls, ['load lost', 'unload lost']);
  });
});
