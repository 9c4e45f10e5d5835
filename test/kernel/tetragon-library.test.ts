/**
 * Tetragon's 71 example policies (../shared/tetragon-library, unchanged),
 * each added through the public API (AddTracingPolicy) in monitor mode, as a
 * Tetragon user would bring it: it loads whole or is refused naming why; a
 * policy that loads is triggered by what it watches and must post its event
 * (function, argument forms) from the triggering process. Triggers that need
 * a path the policy names run in a chroot of the test's own (the kernel names
 * the executable and files from the task's root), so nothing on the machine
 * is touched. The counts are printed; a policy that loads with no trigger, or
 * does not fire, fails the test.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import * as grpc from '@grpc/grpc-js';
import { VERSION } from '../../services/lib/version.js';
import { PublicApiServer } from '../../services/api/index.js';
import { defaultCompileEnv, policyMethods, PolicyStore } from '../../services/enforcer/index.js';
import { SensorsClient } from '../../services/cli/client.js';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { BUSYBOX, PROBE, run, type PolicyEvent } from '../support/policy.js';
import { waitFor } from '../support/wait.js';

const LIBRARY = path.resolve('..', 'shared', 'tetragon-library');
const PYTHON = execFileSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' }).trim();
const POLICY_EVENTS = ['process_kprobe', 'process_tracepoint', 'process_uprobe', 'process_lsm', 'process_loader'] as const;

let h: SensorHarness;
let api: PublicApiServer;
let client: SensorsClient;
/** A loopback listener for the network policies' connects, and its port. */
let listener: net.Server;
let port = 0;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-library-'));

/** A file of the chroot, made with its directories. */
function inRoot(rel: string, from?: string, content = 'root:x:0:0::/root:/bin/sh\n'): string {
  const file = path.join(root, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (from === undefined) fs.writeFileSync(file, content);
  else fs.copyFileSync(from, file);
  fs.chmodSync(file, 0o755);
  return file;
}

test.before(async () => {
  h = startSensor('library');
  const store = new PolicyStore(h.sensor, defaultCompileEnv(), () => undefined);
  api = new PublicApiServer(h.bus, { tcpAddress: 'localhost:0', unixSocket: '', version: VERSION, nodeName: 'library' });
  api.addMethods(policyMethods(store));
  client = new SensorsClient(`localhost:${(await api.start()).tcpPort}`);
  listener = net.createServer((c) => { c.on('error', () => undefined); c.resume(); });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as net.AddressInfo).port;
  // The chroot: busybox as /bin/busybox and under the names policies match on, the probe as /usr/sbin/sshd, curl and bash.
  inRoot('bin/busybox', BUSYBOX);
  for (const name of ['sh', 'ln', 'cat']) inRoot(`bin/${name}`, BUSYBOX);
  inRoot('usr/bin/cat', BUSYBOX);
  inRoot('usr/bin/sample-exec', BUSYBOX);
  inRoot('usr/sbin/sshd', PROBE);
  inRoot('usr/bin/curl', PROBE);
  inRoot('usr/bin/bash', PROBE);
  inRoot('usr/bin/kill', BUSYBOX);
  inRoot('usr/lib/liblzma.so.5.6.1', undefined, 'x'.repeat(4096));
  inRoot('etc/passwd');
});

test.after(async () => {
  client?.close();
  listener?.close();
  await api?.stop();
  h?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

/** Runs in the chroot. */
const chroot = (...args: string[]) => run('chroot', [root, ...args]);
const py = (code: string) => run(PYTHON, ['-c', code]);

/** What a policy's trigger ran, and what its event must show. */
interface Fired { pids: number[]; hook: string; check?: (e: PolicyEvent) => boolean }
type Trigger = () => Promise<Fired>;

const pidsOf = (...runs: { pid: number }[]): number[] => runs.map((r) => r.pid);

/** Triggers by library file; a string: why it cannot be triggered on this machine. */
const TRIGGERS: Record<string, Trigger | string> = {
  'bpf.yaml': async () => {
    const pin = `/sys/fs/bpf/vigil-library-${process.pid}`;
    const r = await run('bpftool', ['map', 'create', pin, 'type', 'array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'vigil_library']);
    fs.rmSync(pin, { force: true });
    return { pids: pidsOf(r), hook: 'security_bpf_map_create', check: (e) => e.args[0].bpf_map_arg?.MapName === 'vigil_library' };
  },
  'cves/cve-2024-3094-xz-ssh.yaml': async () => ({
    pids: pidsOf(await chroot('/usr/sbin/sshd', 'mmap', '/usr/lib/liblzma.so.5.6.1')), hook: 'security_mmap_file',
    check: (e) => e.args[0].file_arg?.path === '/usr/lib/liblzma.so.5.6.1' && e.args[1].uint_arg === 1,
  }),
  'fd_install_cap_changes.yaml': async () => ({
    // Root of a new user namespace drops CAP_SYS_ADMIN after its exec, then opens: a namespace capability changed.
    pids: pidsOf(await run('unshare', ['-U', '-r', '--', PROBE, 'dropcap-open', '/etc/hostname'])), hook: 'fd_install',
    check: (e) => e.args[1].file_arg?.path === '/etc/hostname',
  }),
  // isNamespaceCapability: capabilities count only outside the initial user namespace.
  'fd_install_caps.yaml': async () => ({ pids: pidsOf(await run('unshare', ['-U', '-r', '--', PROBE, 'open', '/etc/hostname'])), hook: 'fd_install', check: (e) => e.args[1].file_arg?.path === '/etc/hostname' }),
  'fd_install_ns.yaml': 'its matchNamespaces name the pid and mount namespace inodes of another machine',
  'fd_install_ns_host.yaml': async () => ({ pids: pidsOf(await run(PROBE, ['open', '/etc/hostname'])), hook: 'fd_install', check: (e) => e.args[0].int_arg >= 0 }),
  'filename_monitoring.yaml': async () => ({
    // busybox cat copies with sendfile, which security_file_permission's translation does not see; head reads.
    pids: pidsOf(await run(BUSYBOX, ['head', '-c', '1', '/etc/hostname'])), hook: 'security_file_permission',
    check: (e) => e.args[0].file_arg?.path === '/etc/hostname' && e.args[1].int_arg === 4,
  }),
  'filename_monitoring_filtered.yaml': async () => ({
    pids: pidsOf(await chroot('/bin/sh', '-c', 'echo x >> /etc/passwd')), hook: 'security_file_permission',
    check: (e) => e.args[0].file_arg?.path === '/etc/passwd' && e.args[1].int_arg === 2,
  }),
  'hardlink-observe.yaml': async () => ({
    // os.link with a dir_fd is linkat (busybox ln calls link); chrooted first, so /etc/passwd is the test's.
    pids: pidsOf(await py(`import os; os.chroot("${root}"); os.link("/etc/passwd", "passwd-${Date.now()}", dst_dir_fd=os.open("/etc", os.O_RDONLY))`)), hook: 'sys_linkat',
    check: (e) => e.args[1].string_arg === '/etc/passwd',
  }),
  'kprobe_commit_creds.yaml': async () => ({ pids: pidsOf(await py('import os; os.setuid(0)')), hook: 'commit_creds', check: (e) => e.args[0].process_credentials_arg?.uid.value === 0 }),
  'process-credentials/process-creds-installed.yaml': async () => ({
    pids: pidsOf(await run('unshare', ['--pid', '--fork', PYTHON, '-c', 'import os; os.setuid(0)'])), hook: 'commit_creds', check: (e) => e.args[0].process_credentials_arg?.euid.value === 0,
  }),
  'process-credentials/creds-capability-usage.yaml': async () => ({
    // rateLimit 1m: the process's first capability check posts, the rest of the minute is quiet.
    pids: pidsOf(await run('unshare', ['--pid', '--fork', PYTHON, '-c', 'import os; os.setuid(0)'])), hook: 'cap_capable',
    check: (e) => e.args[1].capability_arg?.name?.startsWith('CAP_') && e.args[0].user_ns_arg?.level.value === 0,
  }),
  // Monitor mode: the NotifyEnforcer's SIGKILL is reported, not sent.
  'killer.yaml': async () => ({
    pids: pidsOf(await chroot('/usr/bin/bash', 'dup')), hook: 'sys_enter',
    check: (e) => e.action === 13 && e.args[0].syscall_id?.id === 32 && e.args[0].syscall_id?.abi === 'x64',
  }),
  'list-syscalls.yaml': async () => ({ pids: pidsOf(await py('import ctypes; ctypes.CDLL(None).dup(1)')), hook: 'sys_dup' }),
  'list-syscalls-generated.yaml': async () => ({ pids: pidsOf(await chroot('/usr/bin/kill', '-0', '1')), hook: '__x64_sys_kill' }),
  'list-syscalls-tracepoint.yaml': async () => ({ pids: pidsOf(await py('import ctypes; ctypes.CDLL(None).dup(1)')), hook: 'sys_enter', check: (e) => e.args[0].size_arg === 32 }),
  // bash maps its libraries, and lives a moment so that the build ID can be read through its root.
  'loader.yaml': async () => ({
    pids: pidsOf(await run('/bin/bash', ['-c', 'sleep 2'])), hook: 'loader', check: (e) => e.path.endsWith('/libc.so.6') && e.buildid?.length === 20,
  }),
  'lsm_file_open.yaml': async () => ({
    pids: pidsOf(await chroot('/usr/bin/cat', '/etc/passwd')), hook: 'file_open', check: (e) => e.args[0].file_arg?.path === '/etc/passwd',
  }),
  'lsm_track_grandparent.yml': async () => {
    // python (comm vigil-gp) forks a child (comm vigil-parent) that forks the process execing busybox: resolve
    // mm.owner.real_parent.real_parent.comm from its binprm names the grandparent, not the parent.
    const r = await py(['import ctypes, os', 'libc = ctypes.CDLL(None)', 'libc.prctl(15, b"vigil-gp", 0, 0, 0)', 'if os.fork() == 0:',
      '    libc.prctl(15, b"vigil-parent", 0, 0, 0)', '    d = os.fork()', '    if d == 0:', `        os.execv("${BUSYBOX}", ["busybox", "true"])`,
      '    print(d, flush=True)', '    os.waitpid(d, 0)', '    os._exit(0)', 'os.wait()'].join('\n'));
    return { pids: [Number(r.stdout.trim())], hook: 'bprm_check_security', check: (e) => e.args[0].string_arg === 'vigil-gp' };
  },
  // The sensor then resolves ebpf.io or fetches http://ebpf.io: here no server answers, the event says what was done.
  'open_dnsrequest.yaml': async () => ({ pids: pidsOf(await chroot('/usr/bin/cat', '/etc/passwd')), hook: 'fd_install', check: (e) => e.action === 8 }),
  'open_geturl.yaml': async () => ({ pids: pidsOf(await chroot('/usr/bin/cat', '/etc/passwd')), hook: 'fd_install', check: (e) => e.action === 7 }),
  'openat_write.yaml': async () => ({
    pids: pidsOf(await chroot('/bin/sh', '-c', 'echo y >> /etc/passwd')), hook: 'sys_openat', check: (e) => e.args[1].string_arg === '/etc/passwd',
  }),
  'process-credentials/process.credentials.changes.at.syscalls.yaml': async () => {
    const r = await run('unshare', ['--pid', '--fork', PYTHON, '-c', 'import os; os.setgid(0); os.setuid(0)']);
    return { pids: pidsOf(r), hook: 'sys_setuid' };
  },
  'process-exec/process-exec-elf-begin.yaml': async () => {
    const r = await run(BUSYBOX, ['sh', '-c', `${BUSYBOX} true`]);
    return { pids: pidsOf(r), hook: 'security_bprm_creds_from_file', check: (e) => e.args[0].file_arg?.path === BUSYBOX };
  },
  'raw_syscalls.yaml': async () => ({ pids: pidsOf(await run(PROBE, ['getpid', '1'])), hook: 'sys_enter', check: (e) => e.args[0].syscall_id?.abi === 'x64' }),
  'rawtp.yaml': async () => ({ pids: pidsOf(await run(BUSYBOX, ['true'])), hook: 'sched_process_exec', check: (e) => e.args[0].linux_binprm_arg?.path === BUSYBOX }),
  'sandbox/linux-namespaces/kill_unprivileged_user_namespace.yaml': async () => ({
    pids: pidsOf(await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--', BUSYBOX, 'unshare', '-U', 'true'])),
    hook: 'create_user_ns', check: (e) => e.action === 3 && e.tags?.includes('not-applied'),
  }),
  'sandbox/linux-namespaces/kill_unprivileged_user_namespace_in_pid_namespace.yaml': async () => ({
    pids: pidsOf(await run('unshare', ['--pid', '--fork', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--', BUSYBOX, 'unshare', '-U', 'true'])),
    hook: 'create_user_ns', check: (e) => e.action === 3,
  }),
  'security_bprm_check.yaml': async () => ({
    pids: pidsOf(await chroot('/bin/sh', '-c', '/usr/bin/sample-exec true')), hook: 'security_bprm_check',
    check: (e) => e.args[0].linux_binprm_arg?.path === '/usr/bin/sample-exec',
  }),
  'symlink-observe.yaml': async () => ({
    // os.symlink with dir_fd is symlinkat (busybox ln -s calls symlink).
    pids: pidsOf(await py(`import os; os.symlink("/etc/passwd", "link-${Date.now()}", dir_fd=os.open("${root}", os.O_RDONLY))`)), hook: 'sys_symlinkat', check: (e) => e.args[0].string_arg === '/etc/passwd',
  }),
  'sys_clock_settime.yaml': async () => ({ pids: pidsOf(await py('import ctypes; ctypes.CDLL(None).syscall(227, 12345, None)')), hook: 'sys_clock_settime', check: (e) => e.args[0].int_arg === 12345 }),
  'sys_mount.yaml': async () => ({ pids: pidsOf(await py('import ctypes; ctypes.CDLL(None).mount(b"vigil-src", b"/nonexistent-vigil", b"tmpfs", 0, None)')), hook: 'sys_mount', check: (e) => e.args[0].string_arg === 'vigil-src' }),
  'sys_pivot_root.yaml': async () => ({ pids: pidsOf(await py('import ctypes; ctypes.CDLL(None).syscall(155, b"/nonexistent-a", b"/nonexistent-b")')), hook: 'sys_pivot_root' }),
  'sys_ptrace.yaml': async () => ({ pids: pidsOf(await py('import ctypes; ctypes.CDLL(None).ptrace(0, 0, None, None)')), hook: 'sys_ptrace', check: (e) => e.args[0].int_arg === 0 }),
  'sys_setuid.yaml': async () => ({ pids: pidsOf(await py('import os; os.setuid(0)')), hook: 'sys_setuid', check: (e) => e.args[0].int_arg === 0 }),
  'tty.yaml': async () => ({
    pids: pidsOf(await py('import os; m, s = os.openpty(); os.write(s, b"on a tty")')), hook: 'tty_write',
    check: (e) => e.args[0].file_arg?.path.startsWith('/dev/pts/') && Buffer.from(e.args[1].bytes_arg ?? []).toString() === 'on a tty',
  }),
  'tty_54.yaml': async () => ({
    pids: pidsOf(await py('import os; m, s = os.openpty(); os.write(s, b"on a tty")')), hook: 'tty_write', check: (e) => e.args[2].size_arg === 8,
  }),
  'uprobe-pid.yaml': 'its matchPIDs names pid 61697 of another machine',
  'uprobe.yaml': async () => ({ pids: pidsOf(await run('/bin/bash', ['-c', 'true'])), hook: 'main' }),
  // The host's bash through /procRoot, Tetragon's mount of the host's /proc: this agent has none and reads it as /proc
  // (refused where /proc/1/root cannot be read, as on a VM whose init keeps it from root).
  'uprobe-host.yaml': async () => ({ pids: pidsOf(await run('/usr/bin/bash', ['-c', 'true'])), hook: '_start', check: (e) => e.path === '/procRoot/1/root/usr/bin/bash' }),
  ...networkTriggers(),
  'write.yaml': async () => ({ pids: pidsOf(await run(BUSYBOX, ['echo', 'to stdout'])), hook: 'sys_write', check: (e) => e.args[0].int_arg === 1 }),
};

/** A non-private address no route answers (TEST-NET-2): connects to it stay in SYN_SENT. */
const REMOTE = '198.51.100.1';

/** The network policies: connects to the loopback listener or a remote address, datagrams over loopback (port 9, discard, or 53, DNS). */
function networkTriggers(): Record<string, Trigger> {
  const connect = (hook: string, check: (s: PolicyEvent) => boolean): Trigger => async () => ({
    pids: pidsOf(await run(PROBE, ['tcp', '127.0.0.1', String(port), '1'])), hook, check,
  });
  const datagram = (dport: number, hook: string, check: (e: PolicyEvent) => boolean): Trigger => async () => ({
    pids: pidsOf(await run(PROBE, ['udp', '127.0.0.1', String(dport)])), hook, check,
  });
  /** The listener's port is known once the tests start: read when an event is checked. */
  const toListener = (e: PolicyEvent): boolean => e.args[0].sock_arg?.daddr === '127.0.0.1' && e.args[0].sock_arg?.dport === port;
  const skbTo = (i: number, dport: number) => (e: PolicyEvent): boolean => e.args[i].skb_arg?.daddr === '127.0.0.1' && e.args[i].skb_arg?.dport === dport;
  const remote = (bin: (args: string[]) => Promise<{ pid: number }>): Trigger => async () => ({
    pids: pidsOf(await bin(['tcp-nb', REMOTE, '9'])), hook: 'tcp_connect', check: (e) => e.args[0].sock_arg?.daddr === REMOTE && e.action === 3,
  });
  return {
    // The connection's new sock is made in the softirq that takes the probe's ACK, on the probe's own CPU time (loopback).
    'tcp-accept.yaml': connect('tcp_create_openreq_child', (e) => e.return?.sock_arg?.sport === port && e.return.sock_arg.daddr === '127.0.0.1'),
    'tcp-connect.yaml': connect('tcp_connect', toListener),
    'tcp-connect-with-selectors.yaml': connect('tcp_sendmsg', (e) => toListener(e) && e.args[1].int_arg === 5),
    'tcp-connect-only-local-addrs.yaml': remote((args) => chroot('/usr/bin/curl', ...args)),
    'tcp-connect-only-private-addrs.yaml': remote((args) => run(PROBE, args)),
    'security-socket-connect.yaml': connect('security_socket_connect', (e) => e.args[0].sockaddr_arg?.port === port),
    'security-socket-connect-block-others.yaml': async () => ({
      // Its second selector: Override in enforce mode, reported not applied in monitor mode.
      pids: pidsOf(await chroot('/usr/bin/curl', 'tcp', '127.0.0.1', String(port), '1')), hook: 'security_socket_connect',
      check: (e) => e.action === 5 && e.tags?.includes('not-applied') && e.args[0].sock_arg?.protocol === 'IPPROTO_TCP',
    }),
    'dev_queue_xmit.yaml': datagram(9, 'dev_queue_xmit', skbTo(0, 9)),
    'datagram_518.yaml': datagram(9, 'ip_output', (e) => skbTo(1, 9)(e) && e.args[1].label === 'datagram'),
    'dev_hard_start_xmit.yaml': datagram(9, 'dev_hard_start_xmit', (e) => e.args[0].net_dev_arg?.name === 'lo'),
    'dns-only-specified-servers.yaml': datagram(53, 'ip_output', (e) => skbTo(0, 53)(e) && e.action === 3),
    'datagram.yaml': datagram(9, '__cgroup_bpf_run_filter_skb', (e) => skbTo(1, 9)(e) && e.args[2].int_arg === 1),
    'datagram-with-selectors.yaml': datagram(9, '__cgroup_bpf_run_filter_skb', skbTo(1, 9)),
    // The datagram's sock is tracked at its socket(): the record names the sender.
    'datagram-with-sock-tracking.yaml': datagram(9, '__cgroup_bpf_run_filter_skb', skbTo(1, 9)),
    // A datagram to a closed port is dropped for want of a socket; the sender lives on so that its user stack can be placed.
    'stack_traces.yaml': async () => ({
      pids: pidsOf(await run(PROBE, ['udp', '127.0.0.1', '9', '2000'])), hook: 'kfree_skb_reason',
      check: (e) => e.args[0].skb_arg?.dport === 9 && e.kernel_stack_trace?.length > 0 && e.user_stack_trace?.some((f: PolicyEvent) => f.module === PROBE),
    }),
    'tcp-listen.yaml': async () => ({
      pids: pidsOf(await run(PROBE, ['listen', '127.0.0.1', '31337'])), hook: 'inet_csk_listen_start', check: (e) => e.args[0].sock_arg?.sport === 31337,
    }),
  };
}

/** The library's policy files, sorted. */
function libraryFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) out.push(path.relative(LIBRARY, p));
    }
  };
  walk(LIBRARY);
  return out.sort();
}

/** The policy's text with policy-mode monitor added (nothing the library policies kill is killed). */
function monitored(text: string): { yaml: string; name: string } {
  const doc = YAML.parse(text) as { metadata: { name: string }; spec: { options?: { name: string; value: string }[] } };
  doc.spec.options = [...(doc.spec.options ?? []).filter((o) => o.name !== 'policy-mode'), { name: 'policy-mode', value: 'monitor' }];
  return { yaml: YAML.stringify(doc), name: doc.metadata.name };
}

/** The hook an event reports; a loader event (process_loader) has a path and no symbol. */
const hookOf = (e: PolicyEvent): string => e.function_name ?? e.event ?? e.symbol ?? (e.path === undefined ? '' : 'loader');
/** Whether an event is the policy's: loader events, as Tetragon's, name no policy. */
const ofPolicy = (e: PolicyEvent | undefined, name: string): e is PolicyEvent => e !== undefined && (e.policy_name === name || (e.policy_name === undefined && hookOf(e) === 'loader'));

test("Tetragon's 71 example policies through the public API: each loads and fires, or is refused naming why", { timeout: 600_000 }, async () => {
  const files = libraryFiles();
  assert.equal(files.length, 71, 'the library holds 71 policies');
  const loaded: string[] = [];
  const fired: string[] = [];
  const notRunnable: string[] = [];
  const refused: [string, string][] = [];
  const failures: string[] = [];
  for (const file of files) {
    const { yaml, name } = monitored(fs.readFileSync(path.join(LIBRARY, file), 'utf8'));
    try {
      await client.unary('AddTracingPolicy', { yaml });
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code !== grpc.status.INVALID_ARGUMENT) failures.push(`${file}: refused with ${grpc.status[e.code]}, not INVALID_ARGUMENT: ${e.details}`);
      if (!/^line \d+: spec[.\w[\]]*: ./.test(e.details)) failures.push(`${file}: the refusal names no line and field: ${e.details}`);
      refused.push([file, e.details]);
      continue;
    }
    loaded.push(file);
    try {
      const trigger = TRIGGERS[file];
      if (trigger === undefined) {
        failures.push(`${file}: loads, but the test has no trigger for it`);
      } else if (typeof trigger === 'string') {
        notRunnable.push(`${file}: ${trigger}`);
      } else {
        const since = h.events.length;
        const f = await trigger();
        const match = (): PolicyEvent | undefined => h.events.slice(since).flatMap((env) => POLICY_EVENTS.map((t) => env.event[t] as PolicyEvent | undefined))
          .find((e) => ofPolicy(e, name) && f.pids.concat(h.events.slice(since).filter((x) => f.pids.includes(x.event.process_exec?.parent?.pid.value ?? -1)).map((x) => x.event.process_exec!.process.pid.value)).includes(e.process?.pid?.value)
            && hookOf(e) === f.hook && (f.check?.(e) ?? true));
        await waitFor(`${file}: a ${f.hook} event of its trigger`, match, 5_000).then(() => fired.push(file), (err: Error) => {
          const seen = h.events.slice(since).flatMap((env) => POLICY_EVENTS.map((t) => env.event[t] as PolicyEvent | undefined)).filter((e) => ofPolicy(e, name)).slice(0, 3);
          failures.push(`${err.message}; its events: ${JSON.stringify(seen.map((e) => ({ pid: e!.process?.pid?.value, hook: hookOf(e!), args: e!.args })))}`);
        });
      }
    } finally {
      await client.unary('DeleteTracingPolicy', { name });
    }
  }
  console.log(`library: ${loaded.length} of ${files.length} load, ${fired.length} fire from their trigger, ${notRunnable.length} cannot be triggered here, ${refused.length} refused`);
  for (const line of notRunnable) console.log(`  not triggered: ${line}`);
  for (const [file, why] of refused) console.log(`  refused: ${file}: ${why.slice(why.indexOf(': ') + 2)}`);
  assert.deepEqual(failures, []);
  assert.ok(loaded.length >= 56, `${loaded.length} load`);
});
