import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { policyMethods } from '../../services/enforcer/policy-api.js';
import { PolicyStore, STATIC_DOMAIN } from '../../services/enforcer/policy-store.js';
import { LocalBus } from '../../services/lib/bus.js';
import { repoRoot } from '../../services/lib/paths.js';
import { fineGuidanceSensorsDefinition } from '../../services/lib/tetragon-proto.js';
import { PublicApiServer } from '../../services/api/server.js';
import { FakeControl, fakeCompileEnv, policyText, twoDocuments } from '../support/policy-control.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type Client = grpc.Client & Record<string, (request: object, callback: (err: grpc.ServiceError | null, res: Json) => void) => void>;

const FineGuidanceSensors = grpc.makeGenericClientConstructor(fineGuidanceSensorsDefinition(), 'FineGuidanceSensors');

// tetragon.TracingPolicyState / TracingPolicyMode / HookState
const TP_STATE_ENABLED = 1;
const TP_STATE_DISABLED = 2;
const TP_MODE_ENFORCE = 1;
const TP_MODE_MONITOR = 2;
const TP_MODE_MONITOR_ONLY = 3;
const STATUS_LOADED = 1;

interface Fixture { control: FakeControl; store: PolicyStore; server: PublicApiServer; address: string; client: Client }

async function start(): Promise<Fixture> {
  const control = new FakeControl();
  const store = new PolicyStore(control, fakeCompileEnv(), () => {});
  const server = new PublicApiServer(new LocalBus(), { tcpAddress: 'localhost:0', unixSocket: '', version: 'test', nodeName: 'node-1' });
  server.addMethods(policyMethods(store));
  const { tcpPort } = await server.start();
  const address = `localhost:${tcpPort}`;
  const client = new FineGuidanceSensors(address, grpc.credentials.createInsecure()) as unknown as Client;
  return { control, store, server, address, client };
}

function rpc(client: Client, method: string, request: object): Promise<Json> {
  return new Promise((resolve, reject) => client[method]!(request, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Asserts that the call fails with `code` and details matching `details`. */
async function fails(call: Promise<Json>, code: grpc.status, details: RegExp | string): Promise<void> {
  await assert.rejects(call, (err: grpc.ServiceError) => {
    assert.equal(grpc.status[err.code], grpc.status[code], err.details);
    if (typeof details === 'string') assert.equal(err.details, details);
    else assert.match(err.details, details);
    return true;
  });
}

describe('policy rpcs', () => {
  let f: Fixture;
  before(async () => { f = await start(); });
  after(async () => {
    f.client.close();
    await f.server.stop();
  });
  const list = async (domain = ''): Promise<Json[]> => ((await rpc(f.client, 'ListTracingPolicies', { domain })).policies ?? []) as Json[];

  it('adds a policy and lists it as Tetragon does', async () => {
    assert.deepEqual(await rpc(f.client, 'AddTracingPolicy', { yaml: policyText('watch-open') }), {});
    // Zero values travel explicitly (protobufjs writes what is set); a decoder reads them as absent ones.
    assert.deepEqual(await list(), [{
      id: 1, name: 'watch-open', namespace: '', info: '', sensors: ['generic_kprobe'], enabled: true, error: '', state: TP_STATE_ENABLED, mode: TP_MODE_ENFORCE,
      stats: { action_counters: { post: 7, signal: 2, monitor_signal: 3 } }, domain: 'grpc',
      hook_statuses: [{ section: 'kprobes', state: STATUS_LOADED, hook_description: 'sys_openat', hook_idx: 0 }],
    }]);
    assert.deepEqual(f.control.calls, ['load watch-open']);
  });

  it('refuses a duplicate with ALREADY_EXISTS and leaves the first in place', async () => {
    await fails(rpc(f.client, 'AddTracingPolicy', { yaml: policyText('watch-open') }), grpc.status.ALREADY_EXISTS, 'tracing policy grpc:watch-open already exists');
    assert.deepEqual((await list()).map((p) => p.name), ['watch-open']);
  });

  it('refuses a bad policy with INVALID_ARGUMENT naming the line and path, all documents of it', async () => {
    await fails(rpc(f.client, 'AddTracingPolicy', { yaml: twoDocuments('one', 'two', { badSecond: true }) }), grpc.status.INVALID_ARGUMENT,
      /^line 19: spec\.kprobes\[0\]\.call: syscall "no_such_call" does not exist/);
    await fails(rpc(f.client, 'AddTracingPolicy', { yaml: 'metadata: [' }), grpc.status.INVALID_ARGUMENT, /^line \d+: /);
    await fails(rpc(f.client, 'AddTracingPolicy', {}), grpc.status.INVALID_ARGUMENT, 'no TracingPolicy or TracingPolicyNamespaced document');
    assert.deepEqual((await list()).map((p) => p.name), ['watch-open']);
  });

  it('refuses texts past the parser\'s bounds with INVALID_ARGUMENT, quickly, keeping what is loaded', async () => {
    const items = Array.from({ length: 20_000 }, (_, i) => `/v${i}`).join(', ');
    const hook = (values: string): string => `  - call: sys_openat\n    syscall: true\n    args:\n    - index: 1\n      type: string\n`
      + `    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Prefix\n        values: ${values}\n`;
    const aliasBomb = `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bomb\nspec:\n  kprobes:\n${hook(`&big [${items}]`)}${hook('*big').repeat(99)}`;
    const cases: [string, RegExp][] = [
      ['['.repeat(1_950_000), /^policy text is 1950000 bytes, more than the limit of 1048576 \(1 MiB\)$/],
      ['['.repeat(1_000_000), /^line 1: YAML nested more than 64 levels deep$/],
      [aliasBomb, /^line 7: more than 100000 YAML nodes once aliases are expanded$/],
      [`${policyText('many')}${hook('[&v /a]')}${hook('[*v]').repeat(150)}`, /invalid YAML: Excessive alias count/],
    ];
    for (const [yaml, details] of cases) {
      const start = performance.now();
      await fails(rpc(f.client, 'AddTracingPolicy', { yaml }), grpc.status.INVALID_ARGUMENT, details);
      const ms = performance.now() - start;
      assert.ok(ms < 3000, `answered in ${ms.toFixed(0)} ms`);
    }
    assert.deepEqual((await list()).map((p) => p.name), ['watch-open']);
  });

  it('answers INVALID_ARGUMENT to request bytes that do not decode', async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff]); // a tag varint that never ends
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      f.client.makeUnaryRequest('/tetragon.FineGuidanceSensors/AddTracingPolicy', (b: Buffer) => b, (b: Buffer) => b, garbage, (e) => resolve(e));
    });
    assert.ok(err !== null);
    assert.equal(grpc.status[err.code], grpc.status[grpc.status.INVALID_ARGUMENT], err.details);
    assert.match(err.details, /^request could not be decoded: /);
    // The server goes on serving.
    assert.deepEqual((await list()).map((p) => p.name), ['watch-open']);
  });

  it('refuses with FAILED_PRECONDITION when the sensor refuses, unloading what the text had loaded', async () => {
    f.control.refuse.set('two', 'this kernel has no bpf_send_signal');
    f.control.calls.length = 0;
    await fails(rpc(f.client, 'AddTracingPolicy', { yaml: twoDocuments('one', 'two') }), grpc.status.FAILED_PRECONDITION, 'policy two: this kernel has no bpf_send_signal');
    assert.deepEqual(f.control.calls, ['load one', 'load two', 'unload one']);
    assert.deepEqual((await list()).map((p) => p.name), ['watch-open']);
    f.control.refuse.clear();
  });

  it('disables, enables and sets the mode with ConfigureTracingPolicy and the deprecated rpcs', async () => {
    const policy = async (): Promise<Json> => (await list()).find((p) => p.name === 'watch-open')!;
    await rpc(f.client, 'ConfigureTracingPolicy', { name: 'watch-open', enable: false });
    assert.deepEqual([(await policy()).state, (await policy()).enabled], [TP_STATE_DISABLED, false]);
    await fails(rpc(f.client, 'ConfigureTracingPolicy', { name: 'watch-open', enable: false }), grpc.status.FAILED_PRECONDITION, 'tracing policy grpc:watch-open is not enabled');
    await rpc(f.client, 'EnableTracingPolicy', { name: 'watch-open' });
    assert.equal((await policy()).state, TP_STATE_ENABLED);
    await rpc(f.client, 'ConfigureTracingPolicy', { name: 'watch-open', mode: TP_MODE_MONITOR });
    assert.equal((await policy()).mode, TP_MODE_MONITOR);
    await fails(rpc(f.client, 'ConfigureTracingPolicy', { name: 'watch-open', mode: TP_MODE_MONITOR_ONLY }), grpc.status.INVALID_ARGUMENT, /invalid mode: TP_MODE_MONITOR_ONLY/);
    await rpc(f.client, 'DisableTracingPolicy', { name: 'watch-open' });
    await rpc(f.client, 'ConfigureTracingPolicy', { name: 'watch-open', mode: TP_MODE_ENFORCE, enable: true });
    assert.deepEqual([(await policy()).state, (await policy()).mode], [TP_STATE_ENABLED, TP_MODE_ENFORCE]);
    assert.equal(f.control.loaded.get('watch-open')?.mode, 'enforce');
    await fails(rpc(f.client, 'ConfigureTracingPolicy', { name: 'nothing', enable: true }), grpc.status.NOT_FOUND, 'tracing policy grpc:nothing does not exist');
  });

  it('answers the sensor rpcs: ListSensors per policy, the others UNIMPLEMENTED', async () => {
    assert.deepEqual(await rpc(f.client, 'ListSensors', {}), { sensors: [{ name: 'generic_kprobe', enabled: true, collection: 'watch-open' }] });
    await fails(rpc(f.client, 'EnableSensor', { name: 'generic_kprobe' }), grpc.status.UNIMPLEMENTED, /EnableSensor is deprecated.*ConfigureTracingPolicy/);
    await fails(rpc(f.client, 'DisableSensor', { name: 'generic_kprobe' }), grpc.status.UNIMPLEMENTED, /DisableSensor is deprecated/);
    await fails(rpc(f.client, 'RemoveSensor', { name: 'generic_kprobe' }), grpc.status.UNIMPLEMENTED, /RemoveSensor is deprecated.*DeleteTracingPolicy/);
  });

  it('keeps domains and namespaces apart', async () => {
    await f.store.add(policyText('from-dir'), '/etc/vigil/policies/dir.yaml', STATIC_DOMAIN);
    await rpc(f.client, 'AddTracingPolicy', { yaml: policyText('web', { namespace: 'shop' }) });
    assert.deepEqual(await rpc(f.client, 'ListDomains', {}), { domains: ['grpc', 'static'] });
    assert.deepEqual((await list('static')).map((p) => [p.name, p.info, p.domain]), [['from-dir', '/etc/vigil/policies/dir.yaml', 'static']]);
    assert.deepEqual((await list()).map((p) => [p.name, p.namespace]), [['watch-open', ''], ['from-dir', ''], ['web', 'shop']]);
    await fails(rpc(f.client, 'DeleteTracingPolicy', { name: 'from-dir' }), grpc.status.NOT_FOUND, 'tracing policy grpc:from-dir does not exist (there is static:from-dir)');
    await fails(rpc(f.client, 'DeleteTracingPolicy', { name: 'web', namespace: 'other' }), grpc.status.NOT_FOUND, /there is grpc:shop\/web/);
    await rpc(f.client, 'DeleteTracingPolicy', { name: 'web' }); // names are unique on a node: tetra v0.11 sends no namespace
    await rpc(f.client, 'DeleteTracingPolicy', { name: 'from-dir', domain: 'static' });
    assert.deepEqual((await list()).map((p) => p.name), ['watch-open']);
  });

  it('deletes a policy, then knows it no more', async () => {
    await rpc(f.client, 'DeleteTracingPolicy', { name: 'watch-open' });
    assert.deepEqual(await list(), []);
    assert.equal(f.control.loaded.size, 0);
    await fails(rpc(f.client, 'DeleteTracingPolicy', { name: 'watch-open' }), grpc.status.NOT_FOUND, 'tracing policy grpc:watch-open does not exist');
  });
});

// ---------------------------------------------------------------------------
// `vigil policy` against the server

interface Run { code: number | null; stdout: string; stderr: string }

function vigil(args: string[], pipedFrom?: string): Promise<Run> {
  const env = { ...process.env };
  delete env.VIGIL_SERVER_ADDRESS;
  const command = [process.execPath, path.join(repoRoot, 'bin', 'vigil.js'), 'policy', ...args];
  // pipedFrom: through a shell pipe, as `cat FILE | vigil policy add /dev/stdin` (node's own stdin 'pipe' is a socket, which /dev/stdin cannot reopen).
  const child = pipedFrom === undefined
    ? spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env })
    : spawn('sh', ['-c', 'cat "$0" | "$@"', pipedFrom, ...command], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('vigil policy', () => {
  let f: Fixture;
  let dir: string;
  before(async () => {
    f = await start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-policy-cli-'));
  });
  after(async () => {
    f.client.close();
    await f.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const ok = async (...args: string[]): Promise<string> => {
    const run = await vigil([...args, '--server', f.address]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    return run.stdout;
  };

  it('adds, lists, disables, enables, switches mode and deletes', async () => {
    const pair = file('pair.yaml', twoDocuments('file-open', 'file-unlink'));
    assert.equal(await ok('add', pair), `tracing policy "${pair}" added\n`);
    await f.store.add(policyText('kill-watch', { namespace: 'shop', mode: 'monitor', syscall: 'kill', argType: 'int' }), 'k.yaml', STATIC_DOMAIN);
    assert.equal(await ok('disable', 'file-unlink'), 'tracing policy "file-unlink" disabled\n');
    assert.equal(await ok('list'), [
      'ID   NAME          DOMAIN   STATE      FILTERID   NAMESPACE   SENSORS          KERNELMEMORY   MODE      NPOST   NENFORCE   NMONITOR',
      '1    file-open     grpc     enabled    0          (global)    generic_kprobe   0 B            enforce   7       2          3',
      '2    file-unlink   grpc     disabled   0          (global)    generic_kprobe   0 B            enforce   7       2          3',
      '3    kill-watch    static   enabled    0          shop        generic_kprobe   0 B            monitor   7       2          3',
      '',
    ].join('\n'));
    assert.equal(await ok('enable', 'file-unlink'), 'tracing policy "file-unlink" enabled\n');
    assert.equal(await ok('mode', 'kill-watch', 'enforce', '-n', 'shop', '--domain', 'static'), 'tracing policy "kill-watch" set to mode "enforce"\n');

    const json = JSON.parse(await ok('list', '-o', 'json', '--domain', 'static')) as Json;
    assert.deepEqual(json, { policies: [{
      id: '3', name: 'kill-watch', namespace: 'shop', info: 'k.yaml', sensors: ['generic_kprobe'], enabled: true, state: 'TP_STATE_ENABLED',
      mode: 'TP_MODE_ENFORCE', stats: { action_counters: { post: '7', signal: '2', monitor_signal: '3' } }, domain: 'static',
      hook_statuses: [{ section: 'kprobes', state: 'STATUS_LOADED', hook_description: 'sys_kill' }],
    }] });

    assert.equal(await ok('delete', 'file-open'), 'tracing policy "file-open" deleted\n');
    assert.equal(await ok('delete', 'kill-watch', '--namespace', 'shop', '--domain', 'static'), 'tracing policy "kill-watch" deleted\n');
    assert.deepEqual(f.store.list().map((p) => p.name), ['file-unlink']);
    assert.deepEqual(f.control.calls, ['load file-open', 'load file-unlink', 'load kill-watch', 'enable file-unlink false', 'enable file-unlink true',
      'mode kill-watch enforce', 'unload file-open', 'unload kill-watch']);
  });

  it('prints the server\'s refusals with their status and exits 1', async () => {
    const bad = file('bad.yaml', twoDocuments('a', 'b', { badSecond: true }));
    const add = await vigil(['add', bad, '--server', f.address]);
    assert.deepEqual([add.code, add.stdout], [1, '']);
    assert.match(add.stderr, new RegExp(`^vigil policy: failed to add tracing policy "${bad}": INVALID_ARGUMENT: line 19: spec\\.kprobes\\[0\\]\\.call: syscall "no_such_call" does not exist`));

    const dup = await vigil(['add', file('dup.yaml', policyText('file-unlink')), '--server', f.address]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /ALREADY_EXISTS: tracing policy grpc:file-unlink already exists\n$/);

    const unknown = await vigil(['delete', 'nothing', '--server', f.address]);
    assert.deepEqual([unknown.code, unknown.stderr], [1, 'vigil policy: failed to delete tracing policy "nothing": NOT_FOUND: tracing policy grpc:nothing does not exist\n']);

    const again = await vigil(['enable', 'file-unlink', '--server', f.address]);
    assert.deepEqual([again.code, again.stderr], [1, 'vigil policy: failed to enable tracing policy "file-unlink": FAILED_PRECONDITION: tracing policy grpc:file-unlink is not disabled\n']);

    const missing = await vigil(['add', path.join(dir, 'missing.yaml'), '--server', f.address]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /failed to read .*missing\.yaml: ENOENT/);

    // Read up to the server's limit and no further, and refused past it, before any call.
    const big = file('big.yaml', `${policyText('big')}#${'x'.repeat(1024 * 1024)}\n`);
    const tooBig = await vigil(['add', big, '--server', f.address]);
    assert.deepEqual([tooBig.code, tooBig.stderr], [1, `vigil policy: failed to read ${big}: a policy text is at most 1048576 bytes (1 MiB)\n`]);
    const endless = await vigil(['add', '/dev/zero', '--server', f.address]);
    assert.deepEqual([endless.code, endless.stderr], [1, 'vigil policy: failed to read /dev/zero: a policy text is at most 1048576 bytes (1 MiB)\n']);
    assert.deepEqual(f.store.list().map((p) => p.name).sort(), ['file-unlink'], 'nothing added');
  });

  it('adds a policy piped to /dev/stdin', async () => {
    const piped = await vigil(['add', '/dev/stdin', '--server', f.address], file('piped.yaml', policyText('piped')));
    assert.deepEqual([piped.code, piped.stdout, piped.stderr], [0, 'tracing policy "/dev/stdin" added\n', '']);
    assert.ok(f.store.list().some((p) => p.name === 'piped'));
    assert.equal((await vigil(['delete', 'piped', '--server', f.address])).code, 0);
  });

  it('refuses bad usage with exit code 2', async () => {
    for (const [args, message] of [
      [[], /missing subcommand/],
      [['frob'], /unknown subcommand "frob"/],
      [['delete'], /delete takes NAME, got none/],
      [['mode', 'file-unlink', 'audit'], /invalid mode "audit": expected enforce or monitor/],
      [['list', '-o', 'yaml'], /invalid --output "yaml"/],
      [['add', 'x.yaml', '-n', 'shop'], /--namespace does not apply to policy add/],
    ] as const) {
      const run = await vigil([...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
    }
    const help = await vigil(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /vigil policy mode NAME enforce\|monitor/);
  });
});
