/**
 * The `vigil` command: the compact encoder on Tetragon's JSON shape, and the
 * built command end to end (stdin mode, server mode against an in-process
 * gRPC server, usage errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AGENT_FLAGS, agentExporterConfig } from '../../services/cli/agent-command.js';
import { parseArgs, UsageError } from '../../services/lib/flags.js';
import { formatCompact } from '../../services/cli/compact.js';
import { repoRoot } from '../../services/lib/paths.js';
import { fineGuidanceSensorsDefinition } from '../../services/lib/tetragon-proto.js';

const NGINX_POD = { namespace: 'default', name: 'nginx-priv-6db9787dc9-d5jsx' };
const SYS_ADMIN_CAPS = { permitted: ['CAP_CHOWN', 'CAP_SYS_ADMIN'], effective: ['CAP_CHOWN', 'CAP_SYS_ADMIN'] };

test('compact: exec on the host shows the node name', () => {
  const line = formatCompact({
    process_exec: { process: { binary: '/usr/bin/ls', arguments: '-la' } },
    node_name: 'worker-1',
  });
  assert.equal(line, '🚀 process host /usr/bin/ls -la');
});

test('compact: exit with a status (0 is omitted from the JSON)', () => {
  const exit = (status?: number): string | undefined => formatCompact({
    process_exit: { process: { binary: '/usr/bin/ls', arguments: '-la' }, ...(status !== undefined && { status }) },
    node_name: 'worker-1',
  });
  assert.equal(exit(), '💥 exit    host /usr/bin/ls -la 0');
  assert.equal(exit(2), '💥 exit    host /usr/bin/ls -la 2');
});

test('compact: exit by a signal shows its name', () => {
  const line = formatCompact({
    process_exit: { process: { binary: '/usr/bin/sleep', arguments: '100' }, signal: 'SIGKILL' },
    node_name: 'worker-1',
  });
  assert.equal(line, '💥 exit    host /usr/bin/sleep 100 SIGKILL');
});

test('compact: pod source, quoted arguments, CAP_SYS_ADMIN marker ending at column 120', () => {
  const line = formatCompact({
    process_exit: { process: { binary: '/usr/sbin/nginx', arguments: '-g "daemon off;"', pod: NGINX_POD, cap: SYS_ADMIN_CAPS }, signal: 'SIGKILL' },
    node_name: 'kind-control-plane',
  });
  // The text before the marker is 93 bytes: 1 + (120 - 93 - 15) spaces, then the 15-rune marker.
  assert.equal(line, `💥 exit    default/nginx-priv-6db9787dc9-d5jsx /usr/sbin/nginx -g "daemon off;" SIGKILL${' '.repeat(17)}🛑 CAP_SYS_ADMIN`);
});

test('compact: kprobe open (fd_install) and the other kprobe forms', () => {
  const kprobe = (function_name: string, args?: unknown[]): string | undefined => formatCompact({
    process_kprobe: { process: { binary: '/usr/sbin/nginx', pod: NGINX_POD, cap: SYS_ADMIN_CAPS }, function_name, ...(args && { args }) },
  });
  assert.equal(kprobe('fd_install', [{ int_arg: 3 }, { file_arg: { path: '/proc/sys/kernel/ngroups_max' } }]),
    `📬 open    default/nginx-priv-6db9787dc9-d5jsx /usr/sbin/nginx /proc/sys/kernel/ngroups_max${' '.repeat(13)}🛑 CAP_SYS_ADMIN`);

  const plain = (function_name: string, args?: unknown[]): string | undefined => formatCompact({
    process_kprobe: { process: { binary: '/usr/bin/curl', pod: { namespace: 'kube-system', name: 'tetragon' } }, function_name, ...(args && { args }) },
  });
  assert.equal(plain('__x64_sys_write', [{ file_arg: { path: '/etc/password' } }, {}, { size_arg: '1234' }]),
    '📝 write   kube-system/tetragon /usr/bin/curl /etc/password 1234 bytes');
  assert.equal(plain('__x64_sys_write'), '📝 write   kube-system/tetragon /usr/bin/curl  ');
  assert.equal(plain('sys_openat', [{ int_arg: -100 }, { string_arg: '/etc/bad\nfile' }]),
    '📬\uFE0F openat  kube-system/tetragon /usr/bin/curl "/etc/bad\\nfile"');
  assert.equal(plain('__arm64_sys_close', [{ file_arg: { path: '/etc/password' } }]), '📪 close   kube-system/tetragon /usr/bin/curl /etc/password');
  assert.equal(plain('tcp_connect', [{ sock_arg: { saddr: '10.0.0.1', sport: 41000, daddr: '1.1.1.1', dport: 443 } }]),
    '🔌 connect kube-system/tetragon /usr/bin/curl tcp 10.0.0.1:41000 -> 1.1.1.1:443');
  assert.equal(plain('__x64_sys_setuid', [{ int_arg: 0 }]), '🔑 setuid  kube-system/tetragon /usr/bin/curl 0');
  assert.equal(plain('__x64_sys_mount', [{ string_arg: 'tmpfs' }, { string_arg: '/mnt' }]), '💾 mount   kube-system/tetragon /usr/bin/curl tmpfs /mnt');
  assert.equal(plain('security_file_permission', [{ file_arg: { path: '/etc/shadow' } }, { int_arg: 4 }]),
    '📚 read    kube-system/tetragon /usr/bin/curl /etc/shadow');
  assert.equal(plain('unhandled_function'), '❓ syscall kube-system/tetragon /usr/bin/curl unhandled_function');
});

test('compact: tracepoints, uprobes, escaping, timestamps, colour, no compact form', () => {
  const process = { binary: '/usr/bin/curl', pod: { namespace: 'kube-system', name: 'tetragon' } };
  assert.equal(formatCompact({ process_tracepoint: { process, subsys: 'sched', event: 'sched_switch' } }),
    '⁉\uFE0F tracepoint kube-system/tetragon /usr/bin/curl sched sched_switch');
  assert.equal(formatCompact({ process_uprobe: { process, path: '/lib/\x1b[31mevil.so', symbol: 'readline' } }),
    '🕵\uFE0F uprobe  kube-system/tetragon /usr/bin/curl "/lib/\\x1b[31mevil.so" readline');
  assert.equal(formatCompact({ process_exec: { process: { binary: '/bin/sh', arguments: 'echo \x00null\rbyte' } }, node_name: 'host\nname' }),
    '🚀 process host /bin/sh "echo \\x00null\\rbyte"');
  assert.equal(formatCompact({ process_exec: { process: { binary: '/bin/true' } }, node_name: 'n', time: '2024-05-01T10:00:00.5Z' }, { timestamps: true }),
    '2024-05-01T10:00:00.500000000Z 🚀 process host /bin/true ');
  assert.equal(formatCompact({ process_exec: { process: { binary: '/bin/true' } }, node_name: 'n' }, { timestamps: true }),
    '1970-01-01T00:00:00.000000000Z 🚀 process host /bin/true ');
  assert.equal(formatCompact({ process_exit: { process: { binary: '/bin/true' } }, node_name: 'n' }, { color: true }),
    '\x1b[34m💥 exit   \x1b[0m \x1b[32mhost\x1b[0m \x1b[35m/bin/true\x1b[0m \x1b[36m\x1b[0m \x1b[31m0\x1b[0m');
  assert.equal(formatCompact({ process_exec: {}, node_name: 'n' }), undefined);
  assert.equal(formatCompact({ rate_limit_info: { number_of_dropped_process_events: '3' } }), undefined);
});

// ---------------------------------------------------------------------------
// The built command

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs bin/vigil.js; stdin is the given text, or /dev/null (a character device: server mode). */
function vigil(args: string[], stdin?: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const inherited = { ...process.env };
  delete inherited.VIGIL_SERVER_ADDRESS;
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), ...args], {
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: { ...inherited, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  if (stdin !== undefined) child.stdin!.end(stdin);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const lines = (...events: unknown[]): string => events.map((e) => (typeof e === 'string' ? e : JSON.stringify(e))).join('\n') + '\n';

const EXEC = {
  process_exec: { process: { exec_id: 'bm9kZToxMjM0', pid: 1234, uid: 0, cwd: '/root', binary: '/usr/bin/ls', arguments: '-la', flags: 'execve', start_time: '2024-05-01T10:00:00.123456789Z' } },
  node_name: 'worker-1',
  time: '2024-05-01T10:00:00.123456789Z',
};
const EXIT = {
  process_exit: { process: { exec_id: 'bm9kZToxMjM0', pid: 1234, binary: '/usr/bin/ls', arguments: '-la' }, time: '2024-05-01T10:00:00.200Z' },
  node_name: 'worker-1',
  time: '2024-05-01T10:00:00.200Z',
};
const POD_EXIT = {
  process_exit: { process: { exec_id: 'bmdpbng=', pid: 77, binary: '/usr/sbin/nginx', arguments: '-g "daemon off;"', pod: NGINX_POD, cap: SYS_ADMIN_CAPS }, signal: 'SIGKILL' },
  node_name: 'kind-control-plane',
  time: '2024-05-01T10:00:01Z',
};
const BAD_PID = { process_exec: { process: { binary: '/usr/bin/id', pid: 'not-a-pid' } }, node_name: 'worker-1' };

test('events: compact lines from stdin, bad lines reported by number and skipped', async () => {
  const run = await vigil(['events', '-o', 'compact'], lines(EXEC, '{"process_exec": ', EXIT, BAD_PID, POD_EXIT));
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.split('\n'), [
    '🚀 process host /usr/bin/ls -la',
    '💥 exit    host /usr/bin/ls -la 0',
    `💥 exit    default/nginx-priv-6db9787dc9-d5jsx /usr/sbin/nginx -g "daemon off;" SIGKILL${' '.repeat(17)}🛑 CAP_SYS_ADMIN`,
    '',
  ]);
  const errors = run.stderr.trim().split('\n');
  assert.equal(errors.length, 2, run.stderr);
  assert.match(errors[0]!, /^vigil events: line 2: not JSON: /);
  assert.equal(errors[1], 'vigil events: line 4: process_exec.process.pid: expected a number, got "not-a-pid"');
});

test('events: a line longer than 4 MiB is reported by number and skipped unread; the lines around it are read', async () => {
  const run = await vigil(['events', '-o', 'compact'], `${lines(EXEC)}{"process_exec": "${'x'.repeat(5 * 2 ** 20)}"}\n${lines(EXIT)}`);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.split('\n'), ['🚀 process host /usr/bin/ls -la', '💥 exit    host /usr/bin/ls -la 0', '']);
  assert.equal(run.stderr.trim(), 'vigil events: line 2: longer than 4194304 characters, skipped');
});

test('events: -o json re-emits each line as canonical Tetragon JSON', async () => {
  const run = await vigil(['events', '-o', 'json'], lines(EXEC, EXIT, POD_EXIT));
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)), [EXEC, EXIT, POD_EXIT]);
  // protojson spellings are accepted and written back canonically.
  const loose = await vigil(['events'], lines({ processExit: { process: { binary: '/bin/x', pid: '5' }, status: 0 }, nodeName: 'n', time: '2024-05-01T12:00:00+02:00' }));
  assert.equal(loose.code, 0, loose.stderr);
  assert.equal(loose.stdout, '{"process_exit":{"process":{"pid":5,"binary":"/bin/x"}},"node_name":"n","time":"2024-05-01T10:00:00Z"}\n');
});

test('events: filters and field filters apply to stdin events', async () => {
  const input = lines(EXEC, EXIT, POD_EXIT);
  const compact = async (...flags: string[]): Promise<string[]> => {
    const run = await vigil(['events', '-o', 'compact', ...flags], input);
    assert.equal(run.code, 0, run.stderr);
    return run.stdout.trimEnd().split('\n').map((l) => l.slice(0, 12));
  };
  assert.deepEqual(await compact('--namespace', 'default'), ['💥 exit    d']);
  assert.deepEqual(await compact('--host'), ['🚀 process h', '💥 exit    h']);
  assert.deepEqual(await compact('-e', 'process_exit', '--binary', 'ls$'), ['💥 exit    h']);
  assert.deepEqual(await compact('--pid', '77,1', '--pid', '2'), ['💥 exit    d']);
  assert.deepEqual(await compact('--pod', '^nginx-'), ['💥 exit    d']);
  // The server's filters, with RE2's syntax: (?i), POSIX classes; JavaScript-only syntax refused.
  assert.deepEqual(await compact('--binary', '(?i)/LS$'), ['🚀 process h', '💥 exit    h']);
  assert.deepEqual(await compact('--binary', '^/usr/s?bin/[[:alpha:]]+$', '-e', 'process_exit'), ['💥 exit    h', '💥 exit    d']);
  const refused = await vigil(['events', '--binary', '(?<=x)ls'], input);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /allow_list\[0\]\.binary_regex\[0\]: invalid regular expression "\(\?<=x\)ls": error parsing regexp/);

  const fields = await vigil(['events', '-f', 'process.binary,process.pod', '-F', 'process.pod.name'], lines(POD_EXIT));
  assert.equal(fields.code, 0, fields.stderr);
  assert.deepEqual(JSON.parse(fields.stdout), {
    process_exit: { process: { binary: '/usr/sbin/nginx', pod: { namespace: 'default' } } },
    node_name: 'kind-control-plane',
    time: '2024-05-01T10:00:01Z',
  });
});

test('usage errors exit 2 and name the culprit', async () => {
  const flag = await vigil(['events', '--no-such-flag'], '');
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /unknown flag: --no-such-flag/);
  assert.equal(flag.stdout, '');

  const command = await vigil(['frobnicate']);
  assert.equal(command.code, 2);
  assert.match(command.stderr, /unknown command "frobnicate"/);

  const output = await vigil(['events', '-o', 'yaml'], '');
  assert.equal(output.code, 2);
  assert.match(output.stderr, /invalid --output "yaml"/);

  const types = await vigil(['events', '--event-types', 'process_exec,bogus'], '');
  assert.equal(types.code, 2);
  assert.match(types.stderr, /unknown event type "bogus"/);

  const badFlag = await vigil(['sensor', '--no-such-flag']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /unknown flag: --no-such-flag/);

  const help = await vigil(['events', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--include-fields/);
});

test('agent: --no-export-stdout turns off the JSON-lines stdout exporter', () => {
  const stdout = (...argv: string[]): boolean | undefined => agentExporterConfig(parseArgs(argv, AGENT_FLAGS)).stdout;
  assert.equal(stdout(), true);
  assert.equal(stdout('--no-export-stdout'), false);
  assert.equal(stdout('--export-stdout=false'), false);
  assert.equal(stdout('--no-export-stdout=false'), true);
  assert.throws(() => stdout('--no-export-stdout', '--export-stdout'), UsageError);
});

// ---------------------------------------------------------------------------
// Against a server

interface FakeServer { address: string; requests: unknown[]; close(): Promise<void> }

/**
 * A FineGuidanceSensors server that streams `events` and ends the stream
 * (unless keepOpen), or fails GetEvents with INVALID_ARGUMENT when events is an Error.
 */
async function fakeServer(events: object[] | Error, keepOpen = false): Promise<FakeServer> {
  const requests: unknown[] = [];
  const server = new grpc.Server();
  server.addService(fineGuidanceSensorsDefinition(), {
    GetEvents: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      requests.push(call.request);
      if (events instanceof Error) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: events.message });
        return;
      }
      for (const event of events) call.write(event);
      if (!keepOpen) call.end();
    },
    GetVersion: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { version: 'v9.9.9' }),
    GetHealth: (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
      callback(null, { health_status: [{ event: 1, status: 1, details: 'running' }] }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    address: `127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

test('events: streams from the server with the filters in the request', async () => {
  const server = await fakeServer([
    { process_exec: { process: { binary: '/usr/bin/ls', arguments: '-la', pid: { value: 1234 } } }, node_name: 'worker-1', time: { seconds: 1714557600, nanos: 0 } },
    { process_exit: { process: { binary: '/usr/bin/ls', arguments: '-la' }, signal: 'SIGKILL' }, node_name: 'worker-1', time: { seconds: 1714557601, nanos: 0 } },
  ]);
  try {
    const run = await vigil(['events', '-o', 'compact', '--timestamps', '--server', server.address, '--binary', 'ls', '-e', 'PROCESS_EXEC,process_exit', '-F', 'parent']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, [
      '2024-05-01T10:00:00.000000000Z 🚀 process host /usr/bin/ls -la',
      '2024-05-01T10:00:01.000000000Z 💥 exit    host /usr/bin/ls -la SIGKILL',
      '',
    ].join('\n'));
    assert.deepEqual(server.requests, [{
      allow_list: [{ binary_regex: ['ls'], event_set: [1, 5] }],
      field_filters: [{ fields: { paths: ['parent'] }, action: 1 }],
    }]);
  } finally {
    await server.close();
  }
});

test('events: Ctrl-C ends an open stream cleanly', async () => {
  const server = await fakeServer([{ process_exec: { process: { binary: '/bin/sleep', arguments: '1d' } }, node_name: 'n' }], true);
  try {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), 'events', '-o', 'compact', '--server', server.address],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    // Interrupt once the first event is out: the stream is open then.
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      child.kill('SIGINT');
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(stdout, '🚀 process host /bin/sleep 1d\n');
    assert.equal(stderr, '');
  } finally {
    await server.close();
  }
});

test('events: a server error is printed with its details, exit 1', async () => {
  const server = await fakeServer(new Error('binary_regex: invalid regex "("'));
  try {
    const run = await vigil(['events', '--binary', '('], undefined, { VIGIL_SERVER_ADDRESS: server.address });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `vigil events: GetEvents from ${server.address} failed: INVALID_ARGUMENT: binary_regex: invalid regex "("\n`);
  } finally {
    await server.close();
  }
});

test('version and status ask the server', async () => {
  const server = await fakeServer([]);
  try {
    const version = await vigil(['version', '--server', server.address]);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^CLI version: \d+\.\d+\.\d+.*\nServer version: v9\.9\.9\n$/);
    const status = await vigil(['status'], undefined, { VIGIL_SERVER_ADDRESS: server.address });
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.stdout, 'Health Status: running\n');
  } finally {
    await server.close();
  }
  const down = await vigil(['status', '--server', '127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^vigil status: GetHealth from 127\.0\.0\.1:1 failed: UNAVAILABLE: /);
});
