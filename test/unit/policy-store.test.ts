import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { watchPolicyDir } from '../../services/enforcer/policy-dir.js';
import { PolicyInvalidError, PolicyStore, PolicyStoreError, STATIC_DOMAIN, type PolicyStatus } from '../../services/enforcer/policy-store.js';
import { FakeControl, fakeCompileEnv, policyText, twoDocuments } from '../support/policy-control.js';
import { waitFor } from '../support/wait.js';

function setup(): { control: FakeControl; store: PolicyStore; logs: string[] } {
  const control = new FakeControl();
  const logs: string[] = [];
  return { control, store: new PolicyStore(control, fakeCompileEnv(), (line) => logs.push(line)), logs };
}

const names = (store: PolicyStore): string[] => store.list().map((p) => p.name);
const byName = (store: PolicyStore, name: string): PolicyStatus | undefined => store.list().find((p) => p.name === name);

describe('PolicyStore', () => {
  it('adds a policy and lists it with its hooks, mode and the sensor\'s counters', async () => {
    const { control, store } = setup();
    assert.deepEqual(await store.add(policyText('watch-open'), 'watch-open.yaml'), [{ name: 'watch-open', namespace: '', domain: 'grpc' }]);
    assert.deepEqual(await store.add(policyText('quiet', { mode: 'monitor', syscall: 'kill', argType: 'int' })), [{ name: 'quiet', namespace: '', domain: 'grpc' }]);
    assert.deepEqual(control.calls, ['load watch-open', 'load quiet']);
    assert.deepEqual(store.list(), [
      {
        id: 1, name: 'watch-open', namespace: '', domain: 'grpc', info: 'watch-open.yaml', sensors: ['generic_kprobe'],
        hooks: [{ section: 'kprobes', index: 0, description: 'sys_openat' }], enabled: true, state: 'enabled', error: '', mode: 'enforce',
        stats: { matched: 7, actionsApplied: 2, actionsMonitored: 3, rateLimited: 1 },
      },
      {
        id: 2, name: 'quiet', namespace: '', domain: 'grpc', info: '', sensors: ['generic_kprobe'],
        hooks: [{ section: 'kprobes', index: 0, description: 'sys_kill' }], enabled: true, state: 'enabled', error: '', mode: 'monitor',
        stats: { matched: 7, actionsApplied: 2, actionsMonitored: 3, rateLimited: 1 },
      },
    ]);
  });

  it('refuses a text with a bad document as a whole, naming the field and line', async () => {
    const { control, store } = setup();
    const err = await store.add(twoDocuments('first', 'second', { badSecond: true }), 'pair.yaml').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PolicyInvalidError, String(err));
    assert.equal(err.kind, 'invalid');
    assert.equal(err.path, 'spec.kprobes[0].call');
    assert.equal(err.line, 19);
    assert.equal(err.source, 'pair.yaml');
    assert.match(err.message, /^pair\.yaml:19: spec\.kprobes\[0\]\.call: /);
    assert.deepEqual(control.calls, []);
    assert.deepEqual(store.list(), []);

    const syntax = await store.add('kind: [unclosed').then(() => undefined, (e: unknown) => e);
    assert.ok(syntax instanceof PolicyInvalidError);
    assert.match(syntax.message, /^line 1: /);
    await assert.rejects(store.add(''), (e: unknown) => e instanceof PolicyInvalidError);
  });

  it('unloads the documents already loaded, last first, when the sensor refuses a later one', async () => {
    const { control, store } = setup();
    control.refuse.set('third', 'kernel lacks bpf_send_signal');
    const text = `${twoDocuments('first', 'second')}---\n${policyText('third', { syscall: 'kill', argType: 'int' })}`;
    const err = await store.add(text).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PolicyStoreError);
    assert.equal(err.kind, 'refused');
    assert.equal(err.message, 'policy third: kernel lacks bpf_send_signal');
    assert.deepEqual(control.calls, ['load first', 'load second', 'load third', 'unload second', 'unload first']);
    assert.deepEqual(store.list(), []);
    assert.equal(control.loaded.size, 0);

    // The names are free again.
    control.refuse.clear();
    await store.add(text);
    assert.deepEqual(names(store), ['first', 'second', 'third']);
  });

  it('keeps a policy it could not roll back visible, in the error state, until deleted', async () => {
    const { control, store, logs } = setup();
    control.refuse.set('second', 'no such tracepoint');
    control.failUnload.add('first');
    await assert.rejects(store.add(twoDocuments('first', 'second')), { kind: 'refused' });
    const first = byName(store, 'first');
    assert.equal(first?.state, 'error');
    assert.equal(first?.enabled, false);
    assert.match(first?.error ?? '', /left loaded when grpc:second failed: unloading it failed: cannot detach first/);
    assert.ok(logs.some((line) => line.includes('cannot detach first')));

    control.failUnload.clear();
    await store.delete('first');
    assert.deepEqual(store.list(), []);
  });

  it('refuses a name that is taken, in the same namespace or anywhere on the node', async () => {
    const { store } = setup();
    await store.add(policyText('web', { namespace: 'shop' }));
    await assert.rejects(store.add(policyText('web', { namespace: 'shop' })), { kind: 'exists', message: 'tracing policy grpc:shop/web already exists' });
    await assert.rejects(store.add(policyText('web')), { kind: 'exists', message: /the name web is taken by grpc:shop\/web/ });
    await assert.rejects(store.add(policyText('web', { namespace: 'other' }), 'x.yaml', STATIC_DOMAIN), { kind: 'exists' });
    await assert.rejects(store.add(twoDocuments('same', 'same')), PolicyInvalidError);
    assert.deepEqual(names(store), ['web']);
  });

  it('deletes by domain, namespace and name, and says where a policy of that name is', async () => {
    const { control, store } = setup();
    await store.add(policyText('web', { namespace: 'shop' }));
    await store.add(policyText('fixed'), 'fixed.yaml', STATIC_DOMAIN);
    await assert.rejects(store.delete('web'), { kind: 'not_found', message: 'tracing policy grpc:web does not exist (there is grpc:shop/web)' });
    await assert.rejects(store.delete('fixed'), { kind: 'not_found', message: 'tracing policy grpc:fixed does not exist (there is static:fixed)' });
    await assert.rejects(store.delete('nothing'), { kind: 'not_found', message: 'tracing policy grpc:nothing does not exist' });
    await store.delete('web', 'shop');
    await store.delete('fixed', '', STATIC_DOMAIN);
    assert.deepEqual(store.list(), []);
    assert.deepEqual(control.calls.filter((c) => c.startsWith('unload')), ['unload web', 'unload fixed']);
  });

  it('leaves a policy as it was when the sensor fails to unload it', async () => {
    const { control, store } = setup();
    await store.add(policyText('sticky'));
    await store.disable('sticky');
    control.failUnload.add('sticky');
    await assert.rejects(store.delete('sticky'), /cannot detach sticky/);
    assert.equal(byName(store, 'sticky')?.state, 'disabled');
  });

  it('disables, enables and switches the mode through the sensor', async () => {
    const { control, store } = setup();
    await store.add(policyText('toggle'));
    await store.disable('toggle');
    assert.deepEqual([byName(store, 'toggle')?.enabled, byName(store, 'toggle')?.state], [false, 'disabled']);
    await assert.rejects(store.disable('toggle'), { kind: 'state', message: 'tracing policy grpc:toggle is not enabled' });
    await store.enable('toggle');
    await assert.rejects(store.enable('toggle'), { kind: 'state', message: 'tracing policy grpc:toggle is not disabled' });
    await store.setMode('toggle', 'monitor');
    assert.equal(byName(store, 'toggle')?.mode, 'monitor');
    await store.configure({ name: 'toggle', namespace: '', domain: 'grpc' }, { mode: 'enforce', enabled: false });
    assert.deepEqual([byName(store, 'toggle')?.mode, byName(store, 'toggle')?.state], ['enforce', 'disabled']);
    assert.deepEqual(control.calls, ['load toggle', 'enable toggle false', 'enable toggle true', 'mode toggle monitor', 'mode toggle enforce', 'enable toggle false']);
    assert.deepEqual(control.loaded.get('toggle')?.enabled, false);
    await assert.rejects(store.setMode('nothing', 'monitor'), { kind: 'not_found' });
  });

  it('shows a policy as loading while the sensor loads it, and runs operations one at a time', async () => {
    const { control, store } = setup();
    let open!: () => void;
    control.loadGate = new Promise((resolve) => { open = resolve; });
    const adding = store.add(policyText('slow'));
    // Queued behind the add: it must find the policy, not fail with not_found.
    const disabling = store.disable('slow');
    await waitFor('the load to start', () => (control.calls.length > 0 ? true : undefined));
    assert.deepEqual(store.list().map((p) => [p.name, p.state, p.enabled, p.stats]), [['slow', 'loading', false, undefined]]);
    open();
    await adding;
    await disabling;
    assert.equal(byName(store, 'slow')?.state, 'disabled');
    assert.deepEqual(control.calls, ['load slow', 'enable slow false']);
  });
});

describe('watchPolicyDir', () => {
  const write = (dir: string, name: string, text: string): void => fs.writeFileSync(path.join(dir, name), text);
  const policies = (store: PolicyStore): string[] => store.list().map((p) => `${p.name}@${path.basename(p.info)}`).sort();
  async function until(store: PolicyStore, expected: string[]): Promise<void> {
    await waitFor(`policies ${expected.join(' ')}`, () => (JSON.stringify(policies(store)) === JSON.stringify(expected) ? true : undefined))
      .catch((err: Error) => assert.fail(`${err.message}; have ${policies(store).join(' ')}`));
  }

  it('loads the directory, follows changes, and keeps a file\'s last good version when its new text is bad', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-policy-dir-'));
    const { store, logs } = setup();
    write(dir, 'a.yaml', policyText('alpha'));
    write(dir, 'b.yml', policyText('beta', { syscall: 'kill', argType: 'int' }));
    write(dir, 'bad.yaml', twoDocuments('gamma', 'delta', { badSecond: true }));
    write(dir, 'notes.txt', 'not a policy');
    write(dir, '.a.yaml.swp', 'not a policy either');
    const watch = watchPolicyDir(dir, store, (line) => logs.push(line));
    try {
      await watch.ready;
      assert.deepEqual(policies(store), ['alpha@a.yaml', 'beta@b.yml']);
      assert.ok(store.list().every((p) => p.domain === 'static' && p.info.startsWith(dir)));
      assert.ok(logs.some((l) => l.startsWith(`${path.join(dir, 'bad.yaml')}:19: spec.kprobes[0].call: `)), logs.join('\n'));

      // Changed: the old policy goes, the new one comes.
      write(dir, 'a.yaml', policyText('alpha2', { mode: 'monitor' }));
      await until(store, ['alpha2@a.yaml', 'beta@b.yml']);
      assert.equal(byName(store, 'alpha2')?.mode, 'monitor');

      // Broken: logged, and refused before the previous version is unloaded (it keeps its id: never unloaded); other files untouched.
      const alpha2Id = byName(store, 'alpha2')?.id;
      write(dir, 'a.yaml', 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: [oops\n');
      await waitFor('the refusal', () => (logs.some((l) => l.startsWith(`${path.join(dir, 'a.yaml')}:`) && / invalid YAML: /.test(l)) ? true : undefined));
      assert.deepEqual(policies(store), ['alpha2@a.yaml', 'beta@b.yml']);
      assert.equal(byName(store, 'alpha2')?.id, alpha2Id);

      // Fixed: loaded.
      write(dir, 'bad.yaml', twoDocuments('gamma', 'delta'));
      await until(store, ['alpha2@a.yaml', 'beta@b.yml', 'delta@bad.yaml', 'gamma@bad.yaml']);

      // A name another file holds fails, and loads once that file lets it go.
      write(dir, 'c.yaml', policyText('beta'));
      await waitFor('the clash', () => (logs.some((l) => l.includes('c.yaml: tracing policy static:beta already exists')) ? true : undefined));
      fs.rmSync(path.join(dir, 'b.yml'));
      await until(store, ['alpha2@a.yaml', 'beta@c.yaml', 'delta@bad.yaml', 'gamma@bad.yaml']);

      // Removed: its policies go.
      fs.rmSync(path.join(dir, 'bad.yaml'));
      await until(store, ['alpha2@a.yaml', 'beta@c.yaml']);

      // Past the text limit, or no regular file: logged before a byte is read, and what was loaded stays.
      fs.truncateSync(path.join(dir, 'a.yaml'), 3 * 2 ** 30); // sparse: no disk
      fs.symlinkSync('/dev/zero', path.join(dir, 'zero.yaml'));
      await waitFor('both refusals', () => (logs.some((l) => l === `${path.join(dir, 'a.yaml')}: policy text is ${3 * 2 ** 30} bytes, more than the limit of 1048576 (1 MiB)`)
        && logs.some((l) => l === `${path.join(dir, 'zero.yaml')}: not a regular file`) ? true : undefined));
      assert.deepEqual(policies(store), ['alpha2@a.yaml', 'beta@c.yaml']);
    } finally {
      watch.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
