/**
 * Who may change policies (services/api/authorization.ts): the decision, the
 * server's refusals (status, count, audit record) on an in-process server,
 * and the flags that configure it. No root needed for these.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { authorize, groupId, POLICY_CHANGING_METHODS, type CallOrigin } from '../../services/api/authorization.js';
import { PublicApiServer } from '../../services/api/server.js';
import { LocalBus, type AuditRecord } from '../../services/lib/bus.js';
import { parseArgs, UsageError } from '../../services/lib/flags.js';
import { SENSOR_FLAGS, publicApiOptions } from '../../services/cli/common-flags.js';
import { CLIENT_TLS_FLAGS, SensorsClient, clientTlsOf, policyServerAddress } from '../../services/cli/client.js';
import { DEFAULT_SERVER_ADDRESS } from '../../services/lib/defaults.js';

const unix: CallOrigin = { listener: 'unix' };
const plain: CallOrigin = { listener: 'tcp', tls: false };
const mtls: CallOrigin = { listener: 'tcp', tls: true, clientCertificate: true };
const tlsOnly: CallOrigin = { listener: 'tcp', tls: true, clientCertificate: false };
const secure = { insecureTcpPolicyChanges: false };
const insecure = { insecureTcpPolicyChanges: true };

describe('authorize', () => {
  test('policy-changing methods: unix socket and mTLS are authorised, plaintext TCP is PERMISSION_DENIED', () => {
    for (const method of ['AddTracingPolicy', 'DeleteTracingPolicy', 'ConfigureTracingPolicy', 'EnableTracingPolicy', 'DisableTracingPolicy']) {
      assert.ok(POLICY_CHANGING_METHODS.has(method), method);
      assert.deepEqual(authorize(method, unix, secure), { allowed: true });
      assert.deepEqual(authorize(method, mtls, secure), { allowed: true });
      const refused = authorize(method, plain, secure);
      assert.equal(refused.allowed, false);
      assert.equal(!refused.allowed && refused.code, grpc.status.PERMISSION_DENIED);
      assert.match(!refused.allowed ? refused.message : '',
        new RegExp(`^${method}: policy changes over plaintext TCP are refused: use the unix socket, mTLS \\(--server-tls-cert, --server-tls-key, --server-tls-client-ca\\), or --server-insecure-policy-changes$`));
    }
  });

  test('TLS without a client certificate is UNAUTHENTICATED', () => {
    const d = authorize('AddTracingPolicy', tlsOnly, secure);
    assert.equal(!d.allowed && d.code, grpc.status.UNAUTHENTICATED);
    assert.match(!d.allowed ? d.message : '', /need a verified client certificate/);
  });

  test('the operator\'s opt-in allows TCP policy changes', () => {
    assert.deepEqual(authorize('AddTracingPolicy', plain, insecure), { allowed: true });
    assert.deepEqual(authorize('AddTracingPolicy', tlsOnly, insecure), { allowed: true });
  });

  test('read-only methods are open everywhere', () => {
    for (const method of ['GetEvents', 'GetHealth', 'GetVersion', 'GetInfo', 'ListTracingPolicies', 'ListDomains', 'ListSensors']) {
      assert.ok(!POLICY_CHANGING_METHODS.has(method), method);
      const origins: CallOrigin[] = [unix, plain, mtls, tlsOnly];
      for (const from of origins) assert.deepEqual(authorize(method, from, secure), { allowed: true });
    }
  });
});

test('groupId reads names from the group file and takes numbers as they are', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-group-')), 'group');
  fs.writeFileSync(file, 'root:x:0:\nvigil:x:997:alice,bob\n');
  assert.equal(groupId('vigil', file), 997);
  assert.equal(groupId('root', file), 0);
  assert.equal(groupId('1234', file), 1234);
  assert.throws(() => groupId('nope', file), /no group "nope"/);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

describe('the server refuses, counts and audits', () => {
  test('plaintext TCP with insecureTcpPolicyChanges false', async () => {
    const bus = new LocalBus();
    const audits: AuditRecord[] = [];
    bus.subscribeAudit((r) => { audits.push(r); });
    const server = new PublicApiServer(bus, { tcpAddress: 'localhost:0', unixSocket: '', version: 't', nodeName: 'node-a', insecureTcpPolicyChanges: false });
    let added = 0;
    server.addMethods({ AddTracingPolicy: (_call: unknown, callback: grpc.sendUnaryData<object>) => { added++; callback(null, {}); } });
    const { tcpPort } = await server.start();
    const client = new SensorsClient(`localhost:${tcpPort}`);
    try {
      await assert.rejects(client.unary('AddTracingPolicy', { yaml: 'x' }), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.PERMISSION_DENIED);
        assert.match(err.details, /^AddTracingPolicy: policy changes over plaintext TCP are refused/);
        return true;
      });
      // Read-only methods are served on the same connection.
      assert.deepEqual(await client.unary('GetVersion', {}), { version: 't' });
      assert.equal(added, 0, 'the handler never ran');
      assert.equal(server.stats().refusedCalls, 1);
      assert.deepEqual(server.stats().refusedByMethod, { AddTracingPolicy: 1 });
      assert.equal(audits.length, 1);
      assert.equal(audits[0]!.action, 'policy-change-refused');
      assert.equal(audits[0]!.node, 'node-a');
      assert.match(audits[0]!.details!, /^AddTracingPolicy from (127\.0\.0\.1|::1):\d+ \(plaintext TCP\) refused: /);
    } finally {
      client.close();
      await server.stop();
    }
  });

  test('the unix socket is authorised and private (mode 0600)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-authz-unit-'));
    const socket = path.join(dir, 'api.sock');
    const server = new PublicApiServer(new LocalBus(), { tcpAddress: '', unixSocket: socket, version: 't', nodeName: 'n', insecureTcpPolicyChanges: false });
    server.addMethods({ AddTracingPolicy: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, {}) });
    await server.start();
    const client = new SensorsClient(`unix://${socket}`);
    try {
      assert.equal(fs.statSync(socket).mode & 0o777, 0o600);
      assert.deepEqual(await client.unary('AddTracingPolicy', { yaml: 'x' }), {});
      assert.equal(server.stats().refusedCalls, 0);
    } finally {
      client.close();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('flags', () => {
  test('the commands refuse TCP policy changes unless --server-insecure-policy-changes', () => {
    assert.equal(publicApiOptions(parseArgs([], SENSOR_FLAGS), 'n').insecureTcpPolicyChanges, false);
    assert.equal(publicApiOptions(parseArgs(['--server-insecure-policy-changes'], SENSOR_FLAGS), 'n').insecureTcpPolicyChanges, true);
    assert.equal(publicApiOptions(parseArgs([], SENSOR_FLAGS), 'n').tls, undefined);
    assert.equal(publicApiOptions(parseArgs(['--server-unix-socket-group', 'adm'], SENSOR_FLAGS), 'n').unixSocketGroup, 'adm');
  });

  test('TLS flags: cert and key together; a client CA needs them; files are read', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-tls-flags-'));
    const f = (name: string): string => { fs.writeFileSync(path.join(dir, name), `PEM ${name}`); return path.join(dir, name); };
    const [cert, key, ca] = [f('c.pem'), f('k.pem'), f('ca.pem')];
    assert.throws(() => publicApiOptions(parseArgs(['--server-tls-cert', cert], SENSOR_FLAGS), 'n'), UsageError);
    assert.throws(() => publicApiOptions(parseArgs(['--server-tls-client-ca', ca], SENSOR_FLAGS), 'n'), UsageError);
    assert.throws(() => publicApiOptions(parseArgs(['--server-tls-cert', cert, '--server-tls-key', path.join(dir, 'missing')], SENSOR_FLAGS), 'n'), /--server-tls-key: ENOENT/);
    const huge = path.join(dir, 'huge.pem');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 3 * 1024 ** 3);
    assert.throws(() => publicApiOptions(parseArgs(['--server-tls-cert', cert, '--server-tls-key', huge], SENSOR_FLAGS), 'n'),
      { name: 'Error', message: `--server-tls-key: ${huge} holds more than 4194304 bytes (4 MiB), more than any PEM file` });
    assert.throws(() => clientTlsOf(parseArgs(['--tls-ca', '/dev/zero'], CLIENT_TLS_FLAGS)), UsageError, 'an endless device is read to the bound');
    const tls = publicApiOptions(parseArgs(['--server-tls-cert', cert, '--server-tls-key', key, '--server-tls-client-ca', ca], SENSOR_FLAGS), 'n').tls!;
    assert.deepEqual([tls.cert.toString(), tls.key.toString(), tls.clientCa?.toString()], ['PEM c.pem', 'PEM k.pem', 'PEM ca.pem']);

    assert.equal(clientTlsOf(parseArgs([], CLIENT_TLS_FLAGS)), undefined);
    assert.throws(() => clientTlsOf(parseArgs(['--tls-cert', cert], CLIENT_TLS_FLAGS)), /--tls-cert and --tls-key go together/);
    assert.deepEqual(clientTlsOf(parseArgs(['--tls-ca', ca], CLIENT_TLS_FLAGS)), { ca: Buffer.from('PEM ca.pem') });
    const both = clientTlsOf(parseArgs(['--tls-cert', cert, '--tls-key', key], CLIENT_TLS_FLAGS))!;
    assert.deepEqual([both.cert?.toString(), both.key?.toString(), both.ca], ['PEM c.pem', 'PEM k.pem', undefined]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('vigil policy defaults to the unix socket when it exists', () => {
    const saved = process.env.VIGIL_SERVER_ADDRESS;
    delete process.env.VIGIL_SERVER_ADDRESS;
    try {
      assert.equal(policyServerAddress(undefined, '/nonexistent/vigil.sock'), DEFAULT_SERVER_ADDRESS);
      assert.equal(policyServerAddress('localhost:1', '/nonexistent/vigil.sock'), 'localhost:1');
    } finally {
      if (saved !== undefined) process.env.VIGIL_SERVER_ADDRESS = saved;
    }
  });
});
