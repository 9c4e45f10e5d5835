/**
 * The network argument values of policy records (bpf/vigil.h struct
 * vigil_sock, vigil_skb, both beginning with struct vigil_net_tuple), read
 * by offsets from the object's BTF, and addresses as text.
 */
import { StructLayout, type BtfSource } from './layout.js';

export interface KernelNetTuple { family: number; protocol: number; sport: number; dport: number; state: number; saddr: Buffer; daddr: Buffer }
export interface KernelSock extends KernelNetTuple { type: number; mark: number; priority: number; cookie: bigint }
export interface KernelSkb extends KernelNetTuple { len: number; priority: number; mark: number; hash: number }

export const AF_INET = 2;
export const AF_INET6 = 10;

/** An address of a tuple (16 bytes, IPv4 as ::ffff:a.b.c.d) as text in its family's form; IPv6 compressed. */
export function addressText(bytes: Buffer, family: number): string {
  if (family === AF_INET && bytes.length >= 16) return [...bytes.subarray(12, 16)].join('.');
  if (bytes.length < 16) return '';
  const full = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16)).join(':');
  // The URL parser writes IPv6 hosts in their canonical compressed form (RFC 5952).
  return new URL(`http://[${full}]/`).hostname.slice(1, -1);
}

function tupleReader(layout: StructLayout): (b: Buffer) => KernelNetTuple {
  const at = (path: string, size?: number): number => layout.offset(`t.${path}`, size);
  const o = { family: at('family', 2), protocol: at('protocol', 2), sport: at('sport', 2), dport: at('dport', 2), state: at('state', 1), saddr: at('saddr', 16), daddr: at('daddr', 16) };
  return (b) => ({
    family: b.readUInt16LE(o.family), protocol: b.readUInt16LE(o.protocol), sport: b.readUInt16LE(o.sport), dport: b.readUInt16LE(o.dport),
    state: b.readUInt8(o.state), saddr: b.subarray(o.saddr, o.saddr + 16), daddr: b.subarray(o.daddr, o.daddr + 16),
  });
}

/** Readers of `sock` and `skb` argument bytes; undefined when the bytes are short. */
export function netArgReaders(btf: BtfSource): { sock(b: Buffer): KernelSock | undefined; skb(b: Buffer): KernelSkb | undefined } {
  const sock = new StructLayout('vigil_sock', btf);
  const skb = new StructLayout('vigil_skb', btf);
  const sockTuple = tupleReader(sock);
  const skbTuple = tupleReader(skb);
  const so = { type: sock.offset('type', 2), mark: sock.offset('mark', 4), priority: sock.offset('priority', 4), cookie: sock.offset('cookie', 8) };
  const sk = { len: skb.offset('len', 4), priority: skb.offset('priority', 4), mark: skb.offset('mark', 4), hash: skb.offset('hash', 4) };
  return {
    sock: (b) => (b.length < sock.size ? undefined : {
      ...sockTuple(b), type: b.readUInt16LE(so.type), mark: b.readUInt32LE(so.mark), priority: b.readUInt32LE(so.priority), cookie: b.readBigUInt64LE(so.cookie),
    }),
    skb: (b) => (b.length < skb.size ? undefined : {
      ...skbTuple(b), len: b.readUInt32LE(sk.len), priority: b.readUInt32LE(sk.priority), mark: b.readUInt32LE(sk.mark), hash: b.readUInt32LE(sk.hash),
    }),
  };
}
