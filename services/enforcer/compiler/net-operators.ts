/**
 * Tetragon's network operators of matchArgs on sock, skb, socket and
 * sockaddr arguments, to kernel values: Family, Protocol and State by name
 * or number, ports, and SAddr/DAddr as address prefixes (CIDR), both
 * families in one form (IPv4 as ::ffff:a.b.c.d, as bpf/vigil.h's
 * vigil_net_tuple holds them). A sockaddr has one address and port, which
 * Tetragon tests with SAddr and SPort; so does Vigil.
 */
import net from 'node:net';
import type { AddressField, ArgMatch, ArgType, NetField } from '../../lib/policy-program.js';
import { MAX_MATCH_VALUES } from '../../lib/kernel-abi.js';
import type { ArgSelector } from './spec-types.js';

type Op = 'Equal' | 'NotEqual' | 'Priv' | 'NotPriv';

/** Each operator: the field it tests, and how. */
const OPERATORS: Record<string, { field: NetField | AddressField; op: Op }> = {
  Family: { field: 'Family', op: 'Equal' },
  Protocol: { field: 'Protocol', op: 'Equal' },
  State: { field: 'State', op: 'Equal' },
  SPort: { field: 'SPort', op: 'Equal' },
  NotSPort: { field: 'SPort', op: 'NotEqual' },
  SPortPriv: { field: 'SPort', op: 'Priv' },
  NotSPortPriv: { field: 'SPort', op: 'NotPriv' },
  DPort: { field: 'DPort', op: 'Equal' },
  NotDPort: { field: 'DPort', op: 'NotEqual' },
  DPortPriv: { field: 'DPort', op: 'Priv' },
  NotDPortPriv: { field: 'DPort', op: 'NotPriv' },
  SAddr: { field: 'SAddr', op: 'Equal' },
  NotSAddr: { field: 'SAddr', op: 'NotEqual' },
  DAddr: { field: 'DAddr', op: 'Equal' },
  NotDAddr: { field: 'DAddr', op: 'NotEqual' },
};

/** The fields each argument type has. */
const FIELDS: Partial<Record<ArgType, readonly (NetField | AddressField)[]>> = {
  sock: ['Family', 'Protocol', 'State', 'SPort', 'DPort', 'SAddr', 'DAddr'],
  skb: ['Family', 'Protocol', 'SPort', 'DPort', 'SAddr', 'DAddr'],
  sockaddr: ['Family', 'SPort', 'SAddr'],
};

/** Names Tetragon accepts for the values (linux/socket.h, linux/in.h, net/tcp_states.h). */
const NAMES: Partial<Record<NetField, Record<string, number>>> = {
  Family: { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10 },
  Protocol: { IPPROTO_IP: 0, IPPROTO_ICMP: 1, IPPROTO_TCP: 6, IPPROTO_UDP: 17, IPPROTO_ICMPV6: 58, IPPROTO_SCTP: 132, IPPROTO_RAW: 255, IPPROTO_MPTCP: 262 },
  State: {
    TCP_ESTABLISHED: 1, TCP_SYN_SENT: 2, TCP_SYN_RECV: 3, TCP_FIN_WAIT1: 4, TCP_FIN_WAIT2: 5, TCP_TIME_WAIT: 6,
    TCP_CLOSE: 7, TCP_CLOSE_WAIT: 8, TCP_LAST_ACK: 9, TCP_LISTEN: 10, TCP_CLOSING: 11, TCP_NEW_SYN_RECV: 12,
  },
};

const MAX_VALUE: Record<NetField, number> = { Family: 0xffff, Protocol: 0xffff, State: 0xff, SPort: 0xffff, DPort: 0xffff };

/** Most prefixes one SAddr/DAddr matcher holds (vigil_addr_lpm is shared by the node). */
export const MAX_PREFIXES = 64;

type Fail = (field: (string | number)[], reason: string) => never;

/** An IPv6 address's 16 bytes; IPv4 as ::ffff:a.b.c.d. */
function addressBytes(text: string): number[] | undefined {
  if (net.isIPv4(text)) return [...Array(10).fill(0), 0xff, 0xff, ...text.split('.').map(Number)];
  if (!net.isIPv6(text) || text.includes('.')) return undefined;
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const front = words(head);
  const back = tail === undefined ? [] : words(tail);
  const all = [...front, ...Array(8 - front.length - back.length).fill(0), ...back];
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

/** "a.b.c.d", "a.b.c.d/n", "x::y", "x::y/n" → the prefix, IPv4 lengths counted in the mapped form. */
function prefixOf(value: string): { address: number[]; bits: number } | string {
  const [addr, len, extra] = value.trim().split('/');
  const address = addressBytes(addr ?? '');
  if (address === undefined || extra !== undefined) return `"${value}" is not an IP address or CIDR prefix`;
  const v4 = net.isIPv4(addr!);
  const max = v4 ? 32 : 128;
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return `"${value}" has no prefix length after the /`;
  const bits = len === undefined ? max : Number(len);
  if (bits > max) return `"${value}": an ${v4 ? 'IPv4' : 'IPv6'} prefix is at most ${max} bits`;
  return { address, bits: v4 ? 96 + bits : bits };
}

function numberOf(field: NetField, value: string | number): number | string {
  const named = typeof value === 'string' ? NAMES[field]?.[value.trim()] : undefined;
  if (named !== undefined) return named;
  const text = String(value).trim();
  const names = NAMES[field] ? ` or one of ${Object.keys(NAMES[field]!).join(', ')}` : '';
  if (!/^\d+$/.test(text) || Number(text) > MAX_VALUE[field]) return `${JSON.stringify(value)} is not a ${field.toLowerCase()} (0 to ${MAX_VALUE[field]}${names})`;
  return Number(text);
}

/**
 * A matchArgs with a network operator on a sock, skb or sockaddr argument
 * (declared as `declared`). `fail` gets the field path under the matchArgs.
 */
export function netMatch(m: ArgSelector, argIndex: number, type: ArgType, declared: string, what: string, fail: Fail): ArgMatch {
  const spec = OPERATORS[m.operator];
  const fields = FIELDS[type] ?? [];
  if (spec === undefined) {
    const usable = Object.keys(OPERATORS).filter((o) => fields.includes(OPERATORS[o]!.field));
    return fail(['operator'], `operator "${m.operator}" cannot test ${what}, a ${declared}; its operators are ${usable.join(', ')}`);
  }
  if (!fields.includes(spec.field)) return fail(['operator'], `${what} is a ${declared}, which has no ${spec.field} to test (it has ${fields.join(', ')})`);
  const values = m.values ?? [];
  if (spec.op === 'Priv' || spec.op === 'NotPriv') {
    if (values.length > 0) fail(['values'], `${m.operator} takes no values`);
    return { argIndex, kind: 'net', field: spec.field as NetField, op: spec.op, values: [] };
  }
  if (values.length === 0) fail(['values'], 'needs at least one value');
  if (spec.field === 'SAddr' || spec.field === 'DAddr') {
    if (values.length > MAX_PREFIXES) fail(['values'], `too many values: ${values.length} (at most ${MAX_PREFIXES} prefixes)`);
    const prefixes = values.map((v, k) => {
      const p = prefixOf(String(v));
      return typeof p === 'string' ? fail(['values', k], p) : p;
    });
    return { argIndex, kind: 'address', field: spec.field, op: spec.op as 'Equal' | 'NotEqual', prefixes };
  }
  if (values.length > MAX_MATCH_VALUES) fail(['values'], `too many values: ${values.length} (at most ${MAX_MATCH_VALUES})`);
  const field = spec.field as NetField;
  return {
    argIndex, kind: 'net', field, op: spec.op, values: values.map((v, k) => {
      const n = numberOf(field, v);
      return typeof n === 'string' ? fail(['values', k], n) : BigInt(n);
    }),
  };
}
