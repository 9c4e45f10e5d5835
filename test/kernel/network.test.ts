/**
 * Network hooks served by this kernel's tracepoints and syscalls, and
 * Override through the cgroup connect programs (services/enforcer/compiler/
 * translations.ts, bpf/hook_cgroup.bpf.c), on real sockets over loopback and
 * over a veth pair into a network namespace the test creates. Each policy
 * is scoped to a private copy of the probe, so nothing else is touched.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { formatCompact } from '../../services/cli/compact.js';
import { toProtoJson } from '../../services/lib/tetragon-proto.js';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { exited, waitFor } from '../support/wait.js';
import { freePorts } from '../support/ports.js';
import { compile, copyOf, policyEvents, policyYaml, PROBE, run, scratch, withPolicy, type PolicyEvent } from '../support/policy.js';

let h: SensorHarness;
let server: net.Server;
let port = 0;
/** Connections the listener accepted. */
let accepted = 0;
const probe = copyOf(PROBE, 'net-probe');
const only = { matchBinaries: [{ operator: 'In', values: [probe] }] };

/** The veth pair: this side's address, the namespace's, and its name. */
const NETNS = `vigil-net-${process.pid}`;
const HOST_ADDR = '10.231.0.1';
const NS_ADDR = '10.231.0.2';
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

test.before(async () => {
  h = startSensor('network');
  server = net.createServer((c) => { accepted++; c.on('error', () => undefined); c.resume(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  ip('netns', 'add', NETNS);
  ip('link', 'add', `vh${process.pid % 100000}`, 'type', 'veth', 'peer', 'name', `vn${process.pid % 100000}`);
  ip('link', 'set', `vn${process.pid % 100000}`, 'netns', NETNS);
  ip('addr', 'add', `${HOST_ADDR}/24`, 'dev', `vh${process.pid % 100000}`);
  ip('link', 'set', `vh${process.pid % 100000}`, 'up');
  ip('-n', NETNS, 'addr', 'add', `${NS_ADDR}/24`, 'dev', `vn${process.pid % 100000}`);
  ip('-n', NETNS, 'link', 'set', `vn${process.pid % 100000}`, 'up');
  ip('-n', NETNS, 'link', 'set', 'lo', 'up');
});

test.after(() => {
  h?.stop();
  server?.close();
  try { ip('link', 'del', `vh${process.pid % 100000}`); } catch { /* gone with the namespace */ }
  try { ip('netns', 'del', NETNS); } catch { /* never made */ }
  fs.rmSync(scratch, { recursive: true, force: true });
});


const hookOf = (e: PolicyEvent): string => e.function_name;

test('tcp_connect, tcp_sendmsg and tcp_close: the sock of a loopback connection, as Tetragon reports it', async () => {
  const dest = { index: 0, operator: 'DAddr', values: ['127.0.0.1/8', '192.168.0.0/16'] };
  const sock = [{ index: 0, type: 'sock' }];
  const yaml = policyYaml('tcp-conn', { kprobes: [
    { call: 'tcp_connect', syscall: false, args: sock, selectors: [{ ...only, matchArgs: [dest] }] },
    { call: 'tcp_close', syscall: false, args: sock, selectors: [{ ...only, matchArgs: [dest] }] },
    { call: 'tcp_sendmsg', syscall: false, args: [...sock, { index: 2, type: 'int' }], selectors: [{ ...only, matchArgs: [dest] }] },
  ] });
  await withPolicy(h, yaml, async () => {
    const r = await run(probe, ['tcp', '127.0.0.1', String(port), '1']);
    assert.match(r.stdout, /connected 1 /);
    const events = await policyEvents(h, 'tcp-conn', [r.pid]);
    const of = (name: string) => events.find((e) => hookOf(e) === name);
    const connect = of('tcp_connect');
    assert.ok(connect, `tcp_connect: ${JSON.stringify(events.map(hookOf))}`);
    const s = connect.args[0].sock_arg;
    assert.equal(s.family, 'AF_INET');
    assert.equal(s.type, 'SOCK_STREAM');
    assert.equal(s.protocol, 'IPPROTO_TCP');
    assert.equal(s.daddr, '127.0.0.1');
    assert.equal(s.saddr, '127.0.0.1');
    assert.equal(s.dport, port);
    assert.ok(s.sport > 0, 'the source port is chosen');
    const send = of('tcp_sendmsg');
    assert.ok(send, 'tcp_sendmsg');
    assert.equal(send.args[0].sock_arg.sport, s.sport);
    assert.equal(send.args[1].int_arg, 5, 'the bytes sent');
    // As tetra's compact output prints it (the event in Tetragon's JSON, as `vigil events -o compact` renders it).
    // (A root process holding CAP_SYS_ADMIN gets tetra's 🛑 marker after it.)
    const line = formatCompact(toProtoJson('GetEventsResponse', { process_kprobe: connect, node_name: 'network', time: { seconds: 0, nanos: 0 } }));
    assert.ok(line?.startsWith(`🔌 connect host ${probe} tcp 127.0.0.1:${s.sport} -> 127.0.0.1:${port}`), line);
    const close = of('tcp_close');
    assert.ok(close, 'tcp_close');
    assert.equal(close.args[0].sock_arg.dport, port);
    assert.equal(close.args[0].sock_arg.state, 'TCP_ESTABLISHED', 'the state before the close');
  });
});

test('NotDAddr and Sigkill: a connect outside the prefixes kills, one inside does not (IPv4 and IPv6)', async () => {
  const yaml = policyYaml('tcp-local', { kprobes: [{
    call: 'tcp_connect', syscall: false, args: [{ index: 0, type: 'sock' }],
    selectors: [{ ...only, matchArgs: [{ index: 0, operator: 'NotDAddr', values: ['127.0.0.0/8', '::1/128'] }], matchActions: [{ action: 'Sigkill' }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const local = await run(probe, ['tcp', '127.0.0.1', String(port), '1']);
    const local6 = await run(probe, ['tcp-nb', '::1', String(port)]);
    const remote = await run(probe, ['tcp-nb', NS_ADDR, '9']);
    assert.equal(local.signal, null, local.stderr);
    assert.equal(local6.signal, null, local6.stderr);
    assert.equal(remote.signal, 'SIGKILL');
    const [event] = await policyEvents(h, 'tcp-local', [local.pid, local6.pid, remote.pid]);
    assert.equal(event?.process.pid.value, remote.pid);
    assert.equal(event.args[0].sock_arg.daddr, NS_ADDR);
  });
});

test('inet_csk_listen_start with SPort: the listening port, IPv6 too', async () => {
  const listenPort = await freePorts(2);
  const yaml = policyYaml('tcp-listen', { kprobes: [{
    call: 'inet_csk_listen_start', syscall: false, args: [{ index: 0, type: 'sock' }],
    selectors: [{ ...only, matchArgs: [{ index: 0, operator: 'SPort', values: [String(listenPort)] }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const other = await run(probe, ['listen', '127.0.0.1', String(listenPort + 1)]);
    const v6 = await run(probe, ['listen', '::1', String(listenPort)]);
    const events = await policyEvents(h, 'tcp-listen', [other.pid, v6.pid]);
    assert.deepEqual(events.map((e) => e.process.pid.value), [v6.pid]);
    assert.equal(events[0]!.args[0].sock_arg.family, 'AF_INET6');
    assert.equal(events[0]!.args[0].sock_arg.saddr, '::1');
    assert.equal(events[0]!.args[0].sock_arg.sport, listenPort);
  });
});

test('inet_csk_accept: the listening sock, and the new connection as the return value', async () => {
  const listenPort = await freePorts(1);
  const yaml = policyYaml('tcp-accept', { kprobes: [{
    call: 'inet_csk_accept', syscall: false, args: [{ index: 0, type: 'sock' }], return: true, returnArg: { index: 0, type: 'sock' },
    selectors: [{ ...only, matchReturnArgs: [{ index: 0, operator: 'DPortPriv' }] }, { ...only, matchArgs: [{ index: 0, operator: 'State', values: ['TCP_LISTEN'] }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(probe, ['pair', '127.0.0.1', String(listenPort)]);
    assert.equal(r.code, 0, r.stderr);
    const [event, ...more] = await policyEvents(h, 'tcp-accept', [r.pid]);
    assert.equal(more.length, 0);
    assert.equal(event?.args[0].sock_arg.state, 'TCP_LISTEN');
    assert.equal(event.args[0].sock_arg.sport, listenPort);
    const accepted = event.return.sock_arg;
    assert.equal(accepted.sport, listenPort, 'the accepted connection, on the listening port');
    assert.ok(accepted.dport >= 1024, `from the client's ephemeral port ${accepted.dport}`);
    assert.equal(accepted.state, 'TCP_ESTABLISHED');
  });
});

test('tcp_create_openreq_child: the new connection\'s sock, made from its listener in the softirq of the client\'s ACK', async () => {
  const listenPort = await freePorts(2);
  const yaml = policyYaml('openreq', { kprobes: [{
    call: 'tcp_create_openreq_child', syscall: false, args: [{ index: 0, type: 'sock' }], return: true, returnArg: { index: 0, type: 'sock' },
    selectors: [{ matchArgs: [{ index: 0, operator: 'SPort', values: [String(listenPort)] }, { index: 0, operator: 'State', values: ['TCP_LISTEN'] }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const other = await run(probe, ['pair', '127.0.0.1', String(listenPort + 1)]);
    const r = await run(probe, ['pair', '127.0.0.1', String(listenPort)]);
    assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'openreq', [r.pid, other.pid], true);
    assert.equal(events.length, 1, 'one connection made, to the port the selector names');
    const [event] = events;
    assert.equal(event!.function_name, 'tcp_create_openreq_child');
    assert.equal(event!.args[0].sock_arg.state, 'TCP_LISTEN', 'the listener\'s state');
    const child = event!.return.sock_arg;
    assert.equal(child.sport, listenPort, 'on the listening port');
    assert.equal(child.daddr, '127.0.0.1');
    assert.ok(child.dport >= 1024, `from the client's ephemeral port ${child.dport}`);
    assert.equal(child.protocol, 'IPPROTO_TCP');
  });
});

test('sk_filter_trim_cap and __cgroup_bpf_run_filter_skb (ingress): a datagram queued to a loopback UDP socket, its sock and skb; the packet still arrives', async () => {
  const [receiver, bystander] = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
  await Promise.all([receiver, bystander].map((sock) => new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))));
  const udpPort = receiver.address().port;
  const received: string[] = [];
  receiver.on('message', (m) => received.push(m.toString()));
  const yaml = policyYaml('ingress', { kprobes: [{
    call: 'sk_filter_trim_cap', syscall: false, args: [{ index: 0, type: 'sock' }, { index: 1, type: 'skb', label: 'datagram' }],
    selectors: [{ matchArgs: [{ index: 1, operator: 'Protocol', values: ['IPPROTO_UDP'] }, { index: 1, operator: 'DPort', values: [String(udpPort)] }] }],
  }, {
    call: '__cgroup_bpf_run_filter_skb', syscall: false, args: [{ index: 0, type: 'sock' }, { index: 1, type: 'skb' }, { index: 2, type: 'int' }],
    selectors: [{ matchArgs: [{ index: 1, operator: 'DPort', values: [String(udpPort)] }, { index: 2, operator: 'Equal', values: ['0'] }] }],
  }] });
  try {
    await withPolicy(h, yaml, async () => {
      const other = await run(probe, ['udp', '127.0.0.1', String(bystander.address().port)]);
      const r = await run(probe, ['udp', '127.0.0.1', String(udpPort)]);
      assert.equal(r.code, 0, r.stderr);
      const events = await policyEvents(h, 'ingress', [r.pid, other.pid], true);
      assert.deepEqual(events.map((e) => e.function_name), ['sk_filter_trim_cap', '__cgroup_bpf_run_filter_skb'],
        'one datagram, to the socket of the port the selector names, seen by both hooks');
      const [event, filter] = events;
      assert.equal(filter!.args[2].int_arg, 0, 'CGROUP_INET_INGRESS');
      assert.equal(filter!.args[0].sock_arg.sport, udpPort);
      assert.deepEqual([event!.args[0].sock_arg.sport, event!.args[0].sock_arg.protocol, event!.args[0].sock_arg.type], [udpPort, 'IPPROTO_UDP', 'SOCK_DGRAM'], 'the receiving socket');
      assert.equal(event!.args[1].label, 'datagram');
      assert.deepEqual([event!.args[1].skb_arg.daddr, event!.args[1].skb_arg.dport, event!.args[1].skb_arg.protocol], ['127.0.0.1', udpPort, 'IPPROTO_UDP']);
      await waitFor('the datagram at the receiver', () => received.length > 0 || undefined);
      assert.deepEqual(received, ['hello']);
    });
  } finally {
    receiver.close();
    bystander.close();
  }
});

test('sk_filter_trim_cap refuses stack traces, naming the cgroup program that serves it', () => {
  const yaml = policyYaml('ingress-stacks', { kprobes: [{
    call: 'sk_filter_trim_cap', syscall: false, args: [{ index: 0, type: 'sock' }],
    selectors: [{ matchActions: [{ action: 'Post', kernelStackTrace: true }] }],
  }] });
  assert.throws(() => compile(yaml), /selectors\[0\]\.matchActions\[0\]\.kernelStackTrace: kernelStackTrace: sk_filter_trim_cap is served here by the cgroup_skb\/ingress program/);
});

test('TrackSock: a state change in softirq names the sock\'s owner, not the process it interrupted', async () => {
  const serverPort = await freePorts(1);
  const server = copyOf(PROBE, 'net-server');
  const yaml = policyYaml('track', { kprobes: [
    { call: 'inet_csk_accept', syscall: false, args: [{ index: 0, type: 'sock' }], return: true, returnArg: { index: 0, type: 'sock' },
      returnArgAction: 'TrackSock', selectors: [{ matchBinaries: [{ operator: 'In', values: [server] }], matchActions: [{ action: 'NoPost' }] }] },
    { call: 'tcp_set_state', syscall: false, args: [{ index: 0, type: 'sock' }, { index: 1, type: 'int' }],
      selectors: [{ matchArgs: [{ index: 0, operator: 'SPort', values: [String(serverPort)] }, { index: 1, operator: 'Equal', values: ['8'] }] }] },
    { call: '__sk_free', syscall: false, args: [{ index: 0, type: 'sock' }],
      selectors: [{ matchArgs: [{ index: 0, operator: 'SPort', values: [String(serverPort)] }], matchActions: [{ action: 'UntrackSock', argSock: 0 }] }] },
  ] });
  await withPolicy(h, yaml, async () => {
    const serving = spawn(server, ['serve', '127.0.0.1', String(serverPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => serving.stdout.once('data', () => resolve()));
    // The client's FIN reaches the server's sock in softirq, run on the client's own CPU time (loopback);
    // held a second first, so that the server's accept has returned (and tracked the sock) by then.
    const client = await run(probe, ['tcp', '127.0.0.1', String(serverPort), '1', '1000']);
    await exited(serving);
    const events = await policyEvents(h, 'track', [client.pid, serving.pid!]);
    const closeWait = events.find((e) => e.function_name === 'tcp_set_state');
    assert.ok(closeWait, JSON.stringify(events.map((e) => [e.function_name, e.process.pid.value])));
    assert.equal(closeWait.args[1].int_arg, 8, 'TCP_CLOSE_WAIT');
    assert.equal(closeWait.process.pid.value, serving.pid, 'the server owns the sock the FIN closed');
    assert.equal(events.filter((e) => e.function_name === 'inet_csk_accept').length, 0, 'NoPost');
  });
});

/** security_socket_connect with Override as Tetragon's library writes it, in the given mode. */
const overridePolicy = (name: string, mode: 'enforce' | 'monitor', argError: number): string => policyYaml(name, { kprobes: [{
  call: 'security_socket_connect', syscall: false,
  args: [{ index: 0, type: 'socket' }, { index: 1, type: 'sockaddr' }, { index: 2, type: 'int' }],
  selectors: [{
    ...only,
    matchArgs: [{ index: 0, operator: 'Protocol', values: ['IPPROTO_TCP'] }, { index: 1, operator: 'Family', values: ['AF_INET', 'AF_INET6'] },
      { index: 1, operator: 'SPort', values: [String(port)] }],
    matchActions: [{ action: 'Override', argError }],
  }],
}] }, mode);

test('Override on security_socket_connect: 1,000 connects fail with the errno and the listener accepts none', async () => {
  const trials = 1000;
  await withPolicy(h, overridePolicy('connect-deny', 'enforce', -13), async () => {
    const before = accepted;
    const r = await run(probe, ['tcp', '127.0.0.1', String(port), String(trials)]);
    console.log(`override: ${r.stdout.trim()}, listener accepted ${accepted - before}`);
    assert.equal(r.stdout.trim(), `connected 0 failed ${trials} errno 13`, 'every connect failed with EACCES');
    // A connect of this process (the policy's binary is the probe) marks the end: the listener accepts in order.
    const marker = net.connect(port, '127.0.0.1');
    marker.on('error', () => undefined);
    await waitFor('the marker connection accepted', () => (accepted - before >= 1 ? true : undefined));
    marker.destroy();
    assert.equal(accepted - before, 1, 'the listener accepted nothing but the marker');
    const events = await policyEvents(h, 'connect-deny', [r.pid]);
    assert.equal(events.length, trials, 'one event each');
    const e = events[0]!;
    assert.equal(e.action, 5, 'KPROBE_ACTION_OVERRIDE');
    assert.equal(e.args[0].sock_arg.protocol, 'IPPROTO_TCP');
    assert.deepEqual(e.args[1].sockaddr_arg, { family: 'AF_INET', addr: '127.0.0.1', port });
    // A connect elsewhere, by the same process kind, is let through: the decision is per call.
    const other = await run(probe, ['tcp-nb', NS_ADDR, '9']);
    assert.match(other.stdout, /errno (115|111|0)/);
  });
  const after = await run(probe, ['tcp', '127.0.0.1', String(port), '1']);
  assert.match(after.stdout, /connected 1 /, 'unloaded: connects succeed again');
});

test('Override in monitor mode: the connect goes through and the event says not applied', async () => {
  await withPolicy(h, overridePolicy('connect-watch', 'monitor', -13), async () => {
    const before = accepted;
    const r = await run(probe, ['tcp', '127.0.0.1', String(port), '3']);
    assert.match(r.stdout, /connected 3 failed 0/);
    const events = await policyEvents(h, 'connect-watch', [r.pid]);
    assert.equal(events.length, 3);
    assert.ok(events.every((e) => e.action === 5 && e.tags?.includes('not-applied')));
    await waitFor('the listener accepting the 3 connections', () => (accepted - before === 3 ? true : undefined));
  });
});

test('Override on sys_connect over a veth pair into a network namespace: EPERM by default, IPv6 sockets too', async () => {
  // Nothing listens there: without the Override the connect would fail with ECONNREFUSED (111), not EPERM.
  const nsPort = 20000; // in the test's own namespace, where nothing else runs
  const yaml = policyYaml('veth-deny', { kprobes: [{
    call: 'sys_connect', syscall: true, args: [{ index: 0, type: 'int' }, { index: 1, type: 'sockaddr' }],
    selectors: [{ ...only, matchArgs: [{ index: 1, operator: 'SAddr', values: ['10.231.0.0/24', 'fd00:231::/64'] }], matchActions: [{ action: 'Override' }] }],
  }] });
  await withPolicy(h, yaml, async () => {
    const v4 = await run(probe, ['tcp', NS_ADDR, String(nsPort), '5']);
    const v6 = await run(probe, ['tcp-nb', 'fd00:231::2', String(nsPort)]);
    const loop = await run(probe, ['tcp', '127.0.0.1', String(port), '1']);
    assert.equal(v4.stdout.trim(), 'connected 0 failed 5 errno 1');
    assert.equal(v6.stdout.trim(), 'errno 1');
    assert.match(loop.stdout, /connected 1 /);
    const events = await policyEvents(h, 'veth-deny', [v4.pid, v6.pid, loop.pid]);
    assert.equal(events.filter((e) => e.process.pid.value === v4.pid).length, 5);
    assert.equal(events.filter((e) => e.process.pid.value === loop.pid).length, 0);
    assert.equal(events.find((e) => e.process.pid.value === v6.pid)?.args[1].sockaddr_arg.addr, 'fd00:231::2');
  });
});

test('Override on security_socket_bind and security_socket_create: bind and socket fail with the errno', async () => {
  const bindPort = await freePorts(2);
  const yaml = policyYaml('bind-deny', { kprobes: [
    { call: 'security_socket_bind', syscall: false, args: [{ index: 0, type: 'socket' }, { index: 1, type: 'sockaddr' }],
      selectors: [{ ...only, matchArgs: [{ index: 1, operator: 'SPort', values: [String(bindPort)] }], matchActions: [{ action: 'Override', argError: -98 }] }] },
    { call: 'security_socket_create', syscall: false, args: [{ index: 0, type: 'int' }, { index: 1, type: 'int' }],
      selectors: [{ ...only, matchArgs: [{ index: 0, operator: 'Equal', values: ['10'] }, { index: 1, operator: 'Equal', values: ['2'] }], matchActions: [{ action: 'Override', argError: -97 }] }] },
  ] });
  await withPolicy(h, yaml, async () => {
    const bound = await run(probe, ['listen', '127.0.0.1', String(bindPort)]);
    const other = await run(probe, ['listen', '127.0.0.1', String(bindPort + 1)]);
    const udp6 = await run(probe, ['udp', '::1', '9']);
    const udp4 = await run(probe, ['udp', '127.0.0.1', '9']);
    assert.equal(bound.code, 2);
    assert.match(bound.stderr, /Address already in use/);
    assert.equal(other.code, 0, other.stderr);
    assert.equal(udp6.code, 2, 'socket(AF_INET6, SOCK_DGRAM) failed');
    assert.match(udp6.stderr, /sendto: Bad file descriptor/);
    assert.equal(udp4.code, 0, udp4.stderr);
    const events = await policyEvents(h, 'bind-deny', [bound.pid, other.pid, udp6.pid, udp4.pid]);
    assert.deepEqual(events.map((e) => [e.function_name, e.process.pid.value]), [['security_socket_bind', bound.pid], ['security_socket_create', udp6.pid]]);
  });
});

test('an Override no cgroup program can take (a connect on an AF_UNIX socket) is counted, not silent', async () => {
  const python = execFileSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' }).trim();
  const yaml = policyYaml('unix-deny', { kprobes: [{
    call: 'sys_connect', syscall: true, args: [{ index: 0, type: 'int' }],
    selectors: [{ matchBinaries: [{ operator: 'In', values: [python] }], matchActions: [{ action: 'Override' }] }],
  }] });
  const before = h.sensor.statsMessage().overrideMissed;
  await withPolicy(h, yaml, async () => {
    const r = await run(python, ['-c', 'import socket\ntry:\n  socket.socket(socket.AF_UNIX).connect("/nonexistent-vigil")\nexcept OSError as e:\n  print(e.errno)']);
    assert.equal(r.stdout.trim(), '2', 'ENOENT: the connect went on');
    await policyEvents(h, 'unix-deny', [r.pid]);
  });
  assert.equal(h.sensor.statsMessage().overrideMissed - before, 1, 'override_not_applied');
});

test('ip_output with skb Protocol, DPort and NotDAddr (the DNS-server policy): a datagram to another server kills', async () => {
  const yaml = policyYaml('dns-only', { kprobes: [{
    call: 'ip_output', syscall: false, args: [{ index: 2, type: 'skb' }],
    selectors: [{
      ...only,
      matchArgs: [{ index: 2, operator: 'Protocol', values: ['IPPROTO_TCP', 'IPPROTO_UDP'] }, { index: 2, operator: 'DPort', values: ['53'] },
        { index: 2, operator: 'NotDAddr', values: ['127.0.0.53'] }],
      matchActions: [{ action: 'Sigkill' }],
    }],
  }] });
  await withPolicy(h, yaml, async () => {
    const allowed = await run(probe, ['udp', '127.0.0.53', '53']);
    const denied = await run(probe, ['udp', '127.0.0.1', '53']);
    const otherPort = await run(probe, ['udp', '127.0.0.1', '54']);
    assert.equal(allowed.signal, null, allowed.stderr);
    assert.equal(otherPort.signal, null, otherPort.stderr);
    assert.equal(denied.signal, 'SIGKILL');
    const events = await policyEvents(h, 'dns-only', [allowed.pid, denied.pid, otherPort.pid]);
    assert.deepEqual(events.map((e) => e.process.pid.value), [denied.pid]);
    const skb = events[0]!.args[0].skb_arg;
    assert.equal(skb.daddr, '127.0.0.1');
    assert.equal(skb.dport, 53);
    assert.equal(skb.protocol, 'IPPROTO_UDP');
    assert.equal(skb.len, 5 + 8 + 20 + 14, 'payload, UDP, IP and Ethernet headers (queued to the device)');
  });
});

test('ip_output, ip_mc_output and ip6_output: each sees its kind of packet (IPv4 to one host, to a group, IPv6)', async () => {
  const out = (call: string) => ({
    call, syscall: false, args: [{ index: 1, type: 'sock' }, { index: 2, type: 'skb' }],
    selectors: [{ ...only, matchArgs: [{ index: 2, operator: 'DPort', values: ['9'] }] }],
  });
  const yaml = policyYaml('outputs', { kprobes: [out('ip_output'), out('ip_mc_output'), out('ip6_output')] });
  const subnetBroadcast = HOST_ADDR.replace(/\.\d+$/, '.255');
  // A first datagram resolves the namespace's address (ARP), so that the one under the policy is queued by its sender, not from the softirq of the reply.
  await run(probe, ['udp', NS_ADDR, '9']);
  await withPolicy(h, yaml, async () => {
    const sent = [
      await run(probe, ['udp', '127.0.0.1', '9']),
      await run(probe, ['udp', '::1', '9']),
      await run(probe, ['udp', NS_ADDR, '9']),
      await run(probe, ['udp-group', subnetBroadcast, '9', HOST_ADDR]),
      await run(probe, ['udp-group', '224.0.0.1', '9', HOST_ADDR]),
    ];
    for (const r of sent) assert.equal(r.code, 0, r.stderr);
    const events = await policyEvents(h, 'outputs', sent.map((r) => r.pid));
    const seen = events.map((e) => `${hookOf(e)} ${e.args[1].skb_arg.daddr}`).sort();
    assert.deepEqual(seen, ['ip6_output ::1', 'ip_mc_output 224.0.0.1', `ip_mc_output ${subnetBroadcast}`, 'ip_output 127.0.0.1', `ip_output ${NS_ADDR}`].sort());
    const group = events.find((e) => e.args[1].skb_arg.daddr === '224.0.0.1')!;
    assert.deepEqual([group.args[0].sock_arg.protocol, group.args[1].skb_arg.dport], ['IPPROTO_UDP', 9], 'the sending sock and the datagram');
  });
});

test('dev_hard_start_xmit names the device; kfree_skb_reason gives the drop reason, and the kernel and user stacks', async () => {
  const yaml = policyYaml('xmit', { kprobes: [
    { call: 'dev_hard_start_xmit', syscall: false, args: [{ index: 1, type: 'net_device' }], selectors: [{ ...only, matchArgs: [{ index: 1, operator: 'Equal', values: ['lo'] }] }] },
    { call: 'kfree_skb_reason', syscall: false, args: [{ index: 0, type: 'skb' }, { index: 1, type: 'int' }],
      selectors: [{ ...only, matchActions: [{ action: 'Post', kernelStackTrace: true, userStackTrace: true }] }] },
  ] });
  await withPolicy(h, yaml, async () => {
    // A datagram to a closed loopback port: sent on lo, then dropped for want of a socket. The sender
    // lives on 2 s, so that its mappings can still be read when the event is decoded.
    const r = await run(probe, ['udp', '127.0.0.1', '9', '2000']);
    const events = await policyEvents(h, 'xmit', [r.pid]);
    assert.ok(events.some((e) => hookOf(e) === 'dev_hard_start_xmit' && e.args[0].net_dev_arg?.name === 'lo'), JSON.stringify(events.map(hookOf)));
    const drop = events.find((e) => hookOf(e) === 'kfree_skb_reason' && e.args[0].skb_arg?.dport === 9);
    assert.ok(drop, 'the dropped datagram');
    assert.ok(drop.args[1].int_arg > 1, `a drop reason (${drop.args[1].int_arg})`);
    const symbols = drop.kernel_stack_trace.map((f: PolicyEvent) => f.symbol);
    assert.ok(symbols.includes('udp_rcv') || symbols.some((s: string) => s.startsWith('__udp4_lib_rcv')), `the kernel stack: ${symbols.join(' < ')}`);
    assert.ok(drop.user_stack_trace.some((f: PolicyEvent) => f.module === probe), `the user stack: ${JSON.stringify(drop.user_stack_trace)}`);
  });
});

test('stack traces on syscall hooks, at a syscall\'s own tracepoint (socket) and through the raw programs (sendto)', async () => {
  const stacks = { action: 'Post', kernelStackTrace: true, userStackTrace: true };
  const yaml = policyYaml('syscall-stacks', { kprobes: [
    { call: 'sys_socket', syscall: true, args: [{ index: 0, type: 'int' }], selectors: [{ ...only, matchActions: [stacks] }] },
    { call: 'sys_sendto', syscall: true, args: [{ index: 0, type: 'int' }], selectors: [{ ...only, matchActions: [stacks] }] },
  ] });
  await withPolicy(h, yaml, async () => {
    // The sender lives on 2 s, so that its mappings can still be read when the events are decoded.
    const r = await run(probe, ['udp', '127.0.0.1', '9', '2000']);
    const events = await policyEvents(h, 'syscall-stacks', [r.pid]);
    assert.deepEqual(events.map(hookOf).sort(), ['sys_sendto', 'sys_socket']);
    for (const e of events) {
      const symbols = e.kernel_stack_trace.map((f: PolicyEvent) => f.symbol);
      assert.ok(symbols.includes('do_syscall_64'), `${hookOf(e)}'s kernel stack: ${symbols.join(' < ')}`);
      assert.ok(e.user_stack_trace.some((f: PolicyEvent) => f.module === probe), `${hookOf(e)}'s user stack: ${JSON.stringify(e.user_stack_trace)}`);
    }
  });
});
