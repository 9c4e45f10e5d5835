/**
 * Tetragon's network operators and Override compiled to kernel values
 * (services/enforcer/compiler/net-operators.ts), refused with the field path
 * when wrong, and carried whole through the split shape's control API.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { loadPolicyText, PolicyError } from '../../services/enforcer/index.js';
import { programFromProto, programToProto } from '../../services/lib/control-api.js';
import { decodeMessage, encodeMessage } from '../../services/lib/tetragon-proto.js';
import type { Hook, PolicyProgram } from '../../services/lib/policy-program.js';
import { fakeCompileEnv } from '../support/policy-control.js';

/** A security_socket_connect hook with the given matchArgs and actions. */
function connectPolicy(matchArgs: string, actions = '[{ action: Post }]', call = 'security_socket_connect'): string {
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: net
spec:
  kprobes:
  - call: ${call}
    syscall: ${call.startsWith('sys_')}
    args:
    - { index: 0, type: ${call.startsWith('sys_') ? 'int' : 'socket'} }
    - { index: 1, type: sockaddr }
    selectors:
    - matchArgs: ${matchArgs.replace(/\s*\n\s*/g, ' ')}
      matchActions: ${actions}
`;
}

const compileText = (text: string): PolicyProgram[] => loadPolicyText(text, fakeCompileEnv(), 'p.yaml').map((c) => c.program);
const hookOf = (text: string): Hook => compileText(text)[0]!.hooks[0]!;
const refusal = (text: string): string => {
  try {
    compileText(text);
  } catch (err) {
    if (err instanceof PolicyError) return `${err.path}: ${err.reason}`;
    throw err;
  }
  return assert.fail('compiled');
};

test('names and numbers of Family, Protocol and ports; the socket is the sock of the fd', () => {
  const hook = hookOf(connectPolicy(`[{ index: 0, operator: Protocol, values: [IPPROTO_TCP, "17"] }, { index: 1, operator: Family, values: [AF_INET6] },
      { index: 1, operator: NotSPort, values: [80, "443"] }, { index: 1, operator: SPortPriv }]`));
  assert.equal(hook.attach.kind === 'syscall' && hook.attach.syscall, 'connect');
  assert.equal(hook.atExit, false, 'decided at the entry');
  assert.deepEqual(hook.args[0], { source: { kind: 'syscall_arg', index: 0 }, type: 'sock', sockFrom: 'fd', wireType: 'socket' });
  assert.deepEqual(hook.selectors[0]!.matchArgs, [
    { argIndex: 0, kind: 'net', field: 'Protocol', op: 'Equal', values: [6n, 17n] },
    { argIndex: 1, kind: 'net', field: 'Family', op: 'Equal', values: [10n] },
    { argIndex: 1, kind: 'net', field: 'SPort', op: 'NotEqual', values: [80n, 443n] },
    { argIndex: 1, kind: 'net', field: 'SPort', op: 'Priv', values: [] },
  ]);
});

test('SAddr/DAddr: addresses and CIDR prefixes of both families, IPv4 as ::ffff:a.b.c.d', () => {
  const hook = hookOf(connectPolicy('[{ index: 1, operator: NotSAddr, values: ["127.0.0.1/8", "10.1.2.3", "fd00::/8", "::1"] }]'));
  const m = hook.selectors[0]!.matchArgs[0]!;
  assert.equal(m.kind, 'address');
  assert.ok(m.kind === 'address');
  assert.equal(m.op, 'NotEqual');
  const mapped = (...v4: number[]) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4];
  assert.deepEqual(m.prefixes, [
    { address: mapped(127, 0, 0, 1), bits: 104 },
    { address: mapped(10, 1, 2, 3), bits: 128 },
    { address: [0xfd, ...Array(15).fill(0)], bits: 8 },
    { address: [...Array(15).fill(0), 1], bits: 128 },
  ]);
});

test('wrong network matchers are refused with the field path', () => {
  const at = 'spec.kprobes[0].selectors[0].matchArgs[0]';
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: DAddr, values: [10.0.0.1] }]')),
    `${at}.operator: argument index 1 is a sockaddr, which has no DAddr to test (it has Family, SPort, SAddr)`);
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: SAddr, values: ["10.0.0.1/33"] }]')),
    `${at}.values[0]: "10.0.0.1/33": an IPv4 prefix is at most 32 bits`);
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: SAddr, values: [example.com] }]')),
    `${at}.values[0]: "example.com" is not an IP address or CIDR prefix`);
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: Family, values: [AF_BOGUS] }]')),
    `${at}.values[0]: "AF_BOGUS" is not a family (0 to 65535 or one of AF_UNIX, AF_INET, AF_INET6)`);
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: SPort, values: [70000] }]')),
    `${at}.values[0]: 70000 is not a sport (0 to 65535)`);
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: SPortPriv, values: [1] }]')), `${at}.values: SPortPriv takes no values`);
  assert.deepEqual(hookOf(connectPolicy('[{ index: 0, operator: State, values: [TCP_LISTEN] }]')).selectors[0]!.matchArgs[0],
    { argIndex: 0, kind: 'net', field: 'State', op: 'Equal', values: [10n] }, 'a socket has a state');
});

test('Override: at a connect\'s entry only, its errno from argError', () => {
  const errno = (actions: string, call?: string) => hookOf(connectPolicy('[{ index: 1, operator: Family, values: [AF_INET] }]', actions, call)).selectors[0]!.matchActions[0];
  assert.deepEqual(errno('[{ action: Override, argError: -13 }]'), { action: 'Override', error: 13 });
  assert.deepEqual(errno('[{ action: Override }]'), { action: 'Override', error: 1 }, 'EPERM by default');
  assert.deepEqual(errno('[{ action: Override, argError: 1 }]', 'sys_connect'), { action: 'Override', error: 1 });
  const hook = hookOf(connectPolicy('[{ index: 1, operator: SAddr, values: [10.0.0.0/8] }]', '[{ action: Override }]', 'sys_connect'));
  assert.equal(hook.atExit, false, 'a sockaddr matched at the entry, before the cgroup program runs');
  assert.equal(refusal(connectPolicy('[{ index: 1, operator: Family, values: [AF_INET] }]', '[{ action: Override, argError: -5000 }]')),
    'spec.kprobes[0].selectors[0].matchActions[0].argError: argError -5000 is not an errno (-1 to -4095)');
});

test('the control API carries network matchers, the sock source and the Override errno unchanged', () => {
  const [program] = compileText(connectPolicy(`[{ index: 1, operator: NotSAddr, values: ["192.168.0.0/16", "fe80::/10"] },
      { index: 0, operator: Protocol, values: [IPPROTO_TCP] }]`, '[{ action: Override, argError: -111 }]'));
  const bytes = encodeMessage('vigil.v1.PolicyProgram', programToProto(program!));
  assert.deepEqual(programFromProto(decodeMessage('vigil.v1.PolicyProgram', bytes)), program);
});
