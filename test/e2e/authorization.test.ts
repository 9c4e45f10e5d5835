/**
 * Who may change policies, end to end on a real agent process: policy
 * changes over plaintext TCP are refused (PERMISSION_DENIED, audited) unless
 * the operator opts in; the unix socket (root only, mode 0600) and mutual TLS
 * are authorised; an unprivileged user can neither connect to the socket nor
 * change policies over TCP; events stream over TLS.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { repoRoot } from '../../services/lib/paths.js';
import { SensorsClient, type ClientTlsOptions } from '../../services/cli/client.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { openatHook, policyYaml, run } from '../support/policy.js';
import { waitFor } from '../support/wait.js';

const VIGIL = path.join(repoRoot, 'bin', 'vigil.js');
/** World-readable (0755): the unprivileged user's script lives here, and the socket, so that its own mode is what is tested. */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-authz-'));
fs.chmodSync(dir, 0o755);

function policy(name: string): string {
  return policyYaml(name, { kprobes: [openatHook([{ matchArgs: [{ index: 1, operator: 'Equal', values: [`/nonexistent/${name}`] }] }])] });
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await promise;
    return { code: grpc.status.OK, details: '' };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
}

async function names(client: SensorsClient): Promise<string[]> {
  const res = await client.unary<{ policies?: { name: string }[] }>('ListTracingPolicies', {});
  return (res.policies ?? []).map((p) => p.name);
}

async function withClient<T>(address: string, use: (client: SensorsClient) => Promise<T>, tls?: ClientTlsOptions): Promise<T> {
  const client = new SensorsClient(address, tls);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** A `vigil` CLI run to its end. */
function vigil(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [VIGIL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

/** CA, server (localhost, 127.0.0.1, ::1) and client certificates, and a client certificate of another CA. */
function makeCertificates(): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey' | 'rogueCert' | 'rogueKey', string> {
  const f = (name: string): string => path.join(dir, name);
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] }); };
  const leaf = (name: string, ca: string, caKey: string, ext: string): void => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    fs.writeFileSync(f(`${name}.ext`), ext);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-out', f(`${name}.crt`), '-extfile', f(`${name}.ext`));
  };
  for (const ca of ['ca', 'rogue-ca']) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`), '-days', '1', '-subj', `/CN=vigil test ${ca}`);
  }
  leaf('server', f('ca.crt'), f('ca.key'), 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
  leaf('client', f('ca.crt'), f('ca.key'), 'extendedKeyUsage=clientAuth\n');
  leaf('rogue', f('rogue-ca.crt'), f('rogue-ca.key'), 'extendedKeyUsage=clientAuth\n');
  return {
    ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'),
    clientCert: f('client.crt'), clientKey: f('client.key'), rogueCert: f('rogue.crt'), rogueKey: f('rogue.key'),
  };
}

interface Attempt { address: string; method: 'GetVersion' | 'AddTracingPolicy' | 'DeleteTracingPolicy'; text?: string }

/**
 * Runs the attempts as user nobody (uid and gid 65534, no other groups): each
 * answers "OK", "CODE message" (a gRPC status) or "connect ERRNO". The script
 * speaks gRPC with Node's own http2 and imports nothing from the checkout,
 * which nobody may not be able to read (a clone under /root, say). Each
 * request carries at most one string, field 1: AddTracingPolicyRequest.yaml,
 * DeleteTracingPolicyRequest.name.
 */
function asNobody(attempts: Attempt[]): { uid: number; results: string[] } {
  const script = path.join(dir, `nobody-${Date.now()}.mjs`);
  fs.writeFileSync(script, `
    import http2 from 'node:http2';
    import net from 'node:net';
    const message = (text) => {
      if (text === undefined) return Buffer.alloc(0);
      const body = Buffer.from(text);
      const length = [];
      for (let n = body.length; ; n >>>= 7) { if (n < 0x80) { length.push(n); break; } length.push((n & 0x7f) | 0x80); }
      return Buffer.concat([Buffer.from([0x0a, ...length]), body]);
    };
    const attempt = ({ address, method, text }) => new Promise((resolve) => {
      const unix = address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
      let answered = false;
      const done = (answer) => { if (!answered) { answered = true; session.destroy(); resolve(answer); } };
      // The socket's own error (EACCES, ECONNREFUSED) comes first; http2 then cancels the stream.
      const connect = () => net.connect(unix).on('error', (e) => done('connect ' + e.code));
      const session = unix === undefined ? http2.connect('http://' + address) : http2.connect('http://localhost', { createConnection: connect });
      session.on('error', (e) => done('connect ' + e.code));
      const call = session.request({ ':method': 'POST', ':path': '/tetragon.FineGuidanceSensors/' + method, 'content-type': 'application/grpc', te: 'trailers' });
      const status = (h) => h['grpc-status'] === undefined ? undefined
        : h['grpc-status'] === '0' ? 'OK' : h['grpc-status'] + ' ' + decodeURIComponent(h['grpc-message'] ?? '');
      call.on('response', (h) => { const s = status(h); if (s !== undefined) done(s); });
      call.on('trailers', (h) => done(status(h) ?? 'no grpc-status'));
      call.on('error', (e) => done('connect ' + e.code));
      call.resume();
      const body = message(text);
      const frame = Buffer.alloc(5);
      frame.writeUInt32BE(body.length, 1);
      call.end(Buffer.concat([frame, body]));
    });
    const results = [];
    for (const a of ${JSON.stringify(attempts)}) results.push(await attempt(a));
    console.log(JSON.stringify({ uid: process.getuid(), results }));
  `);
  fs.chmodSync(script, 0o644);
  const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, script], { timeout: 60_000, encoding: 'utf8', cwd: dir });
  return JSON.parse(out.trim().split('\n').at(-1)!) as { uid: number; results: string[] };
}

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('default: policy changes need the unix socket', () => {
  const socket = path.join(dir, 'default.sock');
  let agent: AgentProcess;
  let tcp: string;

  before(async () => {
    agent = await startAgent(['--server-unix-socket', socket], 'ignore', { insecurePolicyChanges: false });
    tcp = `localhost:${agent.port}`;
  });
  after(async () => { await agent?.stop(); });

  test('AddTracingPolicy over plaintext TCP is PERMISSION_DENIED, not loaded, and audited', async () => {
    const refused = await withClient(tcp, (c) => codeOf(c.unary('AddTracingPolicy', { yaml: policy('authz-tcp') })));
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED, refused.details);
    assert.match(refused.details, /policy changes over plaintext TCP are refused: use the unix socket, mTLS .*--server-insecure-policy-changes/);
    for (const method of ['DeleteTracingPolicy', 'ConfigureTracingPolicy', 'EnableTracingPolicy', 'DisableTracingPolicy']) {
      const r = await withClient(tcp, (c) => codeOf(c.unary(method, { name: 'authz-tcp' })));
      assert.equal(r.code, grpc.status.PERMISSION_DENIED, `${method}: ${r.details}`);
    }
    // Read-only calls stay open over TCP (Tetragon's default).
    assert.ok(!(await withClient(tcp, names)).includes('authz-tcp'), 'the refused policy is not loaded');
    assert.ok((await withClient(tcp, (c) => c.unary<{ version?: string }>('GetVersion', {}))).version);
    const audit = await waitFor('the audit record of the refusal', () => agent.stderr().split('\n').find((l) => l.includes('"action":"policy-change-refused"') && l.includes('AddTracingPolicy')));
    assert.match(audit, /AddTracingPolicy from (127\.0\.0\.1|::1|::ffff:127\.0\.0\.1):\d+ \(plaintext TCP\) refused/);
    assert.equal(agent.stderr().split('\n').filter((l) => l.includes('"action":"policy-change-refused"')).length >= 5, true, 'every refusal is audited');
  });

  test('over the unix socket as root: add, list and delete work; the socket is mode 0600', async () => {
    const st = fs.statSync(socket);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0);
    await withClient(`unix://${socket}`, async (c) => {
      await c.unary('AddTracingPolicy', { yaml: policy('authz-unix') });
      assert.ok((await names(c)).includes('authz-unix'));
      await c.unary('ConfigureTracingPolicy', { name: 'authz-unix', mode: 2 });
      await c.unary('DeleteTracingPolicy', { name: 'authz-unix' });
      assert.ok(!(await names(c)).includes('authz-unix'));
    });
    // `vigil policy` over the socket, as an operator runs it.
    const file = path.join(dir, 'authz-cli.yaml');
    fs.writeFileSync(file, policy('authz-cli'));
    const added = await vigil(['policy', 'add', file, '--server', `unix://${socket}`]);
    assert.equal(added.code, 0, added.output);
    const viaTcp = await vigil(['policy', 'delete', 'authz-cli', '--server', tcp]);
    assert.equal(viaTcp.code, 1);
    assert.match(viaTcp.output, /PERMISSION_DENIED: DeleteTracingPolicy: policy changes over plaintext TCP are refused/);
    assert.equal((await vigil(['policy', 'delete', 'authz-cli', '--server', `unix://${socket}`])).code, 0);
  });

  test('an unprivileged user cannot connect to the socket and is refused over TCP', async () => {
    const { uid, results: [unix, add, version] } = asNobody([
      { address: `unix://${socket}`, method: 'GetVersion' },
      { address: tcp, method: 'AddTracingPolicy', text: policy('authz-nobody') },
      { address: tcp, method: 'GetVersion' },
    ]);
    assert.equal(uid, 65534);
    assert.equal(unix, 'connect EACCES');
    assert.match(add!, new RegExp(`^${grpc.status.PERMISSION_DENIED} AddTracingPolicy: policy changes over plaintext TCP are refused`));
    assert.equal(version, 'OK', 'read-only calls stay open over TCP');
    assert.ok(!(await withClient(`unix://${socket}`, names)).includes('authz-nobody'));
  });
});

describe('--server-unix-socket-group', () => {
  const socket = path.join(dir, 'group.sock');
  let agent: AgentProcess;
  before(async () => { agent = await startAgent(['--server-unix-socket', socket, '--server-unix-socket-group', 'nogroup', '--server-address', ''], 'ignore', { insecurePolicyChanges: false }); });
  after(async () => { await agent?.stop(); });

  test('members of the group may connect to the socket and change policies', async () => {
    const st = fs.statSync(socket);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, 65534);
    const { results } = asNobody([
      { address: `unix://${socket}`, method: 'AddTracingPolicy', text: policy('authz-group') },
      { address: `unix://${socket}`, method: 'DeleteTracingPolicy', text: 'authz-group' },
    ]);
    assert.deepEqual(results, ['OK', 'OK']);
  });
});

describe('--server-insecure-policy-changes', () => {
  let agent: AgentProcess;
  before(async () => { agent = await startAgent([], 'ignore', { insecurePolicyChanges: true }); });
  after(async () => { await agent?.stop(); });

  test('allows policy changes over plaintext TCP', async () => {
    await withClient(`localhost:${agent.port}`, async (c) => {
      await c.unary('AddTracingPolicy', { yaml: policy('authz-insecure') });
      assert.ok((await names(c)).includes('authz-insecure'));
      await c.unary('DeleteTracingPolicy', { name: 'authz-insecure' });
    });
    assert.ok(!agent.stderr().includes('policy-change-refused'));
  });
});

describe('mutual TLS', () => {
  let certs: ReturnType<typeof makeCertificates>;
  let agent: AgentProcess;
  let tcp: string;
  const read = (file: string): Buffer => fs.readFileSync(file);

  before(async () => {
    certs = makeCertificates();
    agent = await startAgent(['--server-tls-cert', certs.serverCert, '--server-tls-key', certs.serverKey, '--server-tls-client-ca', certs.ca], 'ignore', { insecurePolicyChanges: false });
    tcp = `localhost:${agent.port}`;
  });
  after(async () => { await agent?.stop(); });

  test('a client with a valid certificate can add a policy; with the CLI too', async () => {
    const tls = { ca: read(certs.ca), cert: read(certs.clientCert), key: read(certs.clientKey) };
    await withClient(tcp, async (c) => {
      await c.unary('AddTracingPolicy', { yaml: policy('authz-mtls') });
      assert.ok((await names(c)).includes('authz-mtls'));
    }, tls);
    const tlsFlags = ['--server', tcp, '--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey];
    const deleted = await vigil(['policy', 'delete', 'authz-mtls', ...tlsFlags]);
    assert.equal(deleted.code, 0, deleted.output);
    const listed = await vigil(['policy', 'list', '-o', 'json', ...tlsFlags]);
    assert.equal(listed.code, 0, listed.output);
    assert.ok(!listed.output.includes('authz-mtls'));
  });

  test('a client without a certificate, with another CA\'s, or in plaintext fails the handshake', async () => {
    const noCert = await withClient(tcp, (c) => codeOf(c.unary('AddTracingPolicy', { yaml: policy('authz-nocert') })), { ca: read(certs.ca) });
    assert.equal(noCert.code, grpc.status.UNAVAILABLE, noCert.details);
    const rogue = await withClient(tcp, (c) => codeOf(c.unary('GetVersion', {})), { ca: read(certs.ca), cert: read(certs.rogueCert), key: read(certs.rogueKey) });
    assert.equal(rogue.code, grpc.status.UNAVAILABLE, rogue.details);
    const plain = await withClient(tcp, (c) => codeOf(c.unary('GetVersion', {})));
    assert.equal(plain.code, grpc.status.UNAVAILABLE, plain.details);
    const cli = await vigil(['policy', 'list', '--server', tcp, '--tls-ca', certs.ca]);
    assert.equal(cli.code, 1);
    assert.match(cli.output, /UNAVAILABLE/);
  });

  test('GetEvents streams over TLS', async () => {
    const client = new SensorsClient(tcp, { ca: read(certs.ca), cert: read(certs.clientCert), key: read(certs.clientKey) });
    const stream = client.serverStream('GetEvents', { allow_list: [{ binary_regex: ['/true$'], event_set: [1] }] });
    let received = 0;
    stream.on('data', () => { received++; });
    stream.on('error', () => { /* cancelled below */ });
    try {
      const deadline = Date.now() + 20_000;
      while (received === 0 && Date.now() < deadline) {
        await run('/bin/true', []);
        await waitFor('an event over TLS', () => (received > 0 ? true : undefined), 250).catch(() => undefined);
      }
      assert.ok(received > 0, 'no event over TLS within 20 s');
    } finally {
      stream.cancel();
      client.close();
    }
  });
});
