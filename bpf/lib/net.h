/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network arguments: a struct sock or struct sk_buff (kernel memory) read
 * into struct vigil_sock / vigil_skb, and the tuple (struct
 * vigil_net_tuple) the network operators of matchArgs test, with the
 * address prefixes of SAddr/DAddr in vigil_addr_lpm.
 */
#ifndef VIGIL_NET_H
#define VIGIL_NET_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "vigil.h"
#include "lib/bound.h"
#include "lib/maps.h"

/* Not in BTF (#defines of linux/socket.h, linux/in.h, linux/if_ether.h, linux/stat.h). */
#define VIGIL_AF_UNIX 1
#define VIGIL_AF_INET 2
#define VIGIL_AF_INET6 10
#define VIGIL_IPPROTO_TCP 6
#define VIGIL_IPPROTO_UDP 17
#define VIGIL_S_IFMT 00170000
#define VIGIL_S_IFSOCK 0140000
#define VIGIL_PRIV_PORTS 1024
#define VIGIL_NO_HEADER 0xffff

/* An IPv4 address as ::ffff:a.b.c.d. */
static __always_inline void vigil_addr_v4(__u8 *out, __u32 be_addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &be_addr, 4);
}

static __always_inline void vigil_read_sock(const struct sock *sk, struct vigil_sock *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	if (!sk)
		return;
	out->t.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	out->t.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	out->t.protocol = BPF_CORE_READ(sk, sk_protocol);
	out->t.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	out->t.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	out->type = BPF_CORE_READ(sk, sk_type);
	out->mark = BPF_CORE_READ(sk, sk_mark);
	out->priority = BPF_CORE_READ(sk, sk_priority);
	out->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (out->t.family == VIGIL_AF_INET) {
		vigil_addr_v4(out->t.saddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		vigil_addr_v4(out->t.daddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else if (out->t.family == VIGIL_AF_INET6) {
		BPF_CORE_READ_INTO(&out->t.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&out->t.daddr, sk, __sk_common.skc_v6_daddr);
	}
}

/* The sock of the current task's socket fd, or NULL when fd names no socket. */
static __always_inline const struct sock *vigil_fd_sock(struct file *file)
{
	struct socket *sock;

	if (!file || (BPF_CORE_READ(file, f_inode, i_mode) & VIGIL_S_IFMT) != VIGIL_S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* The inode of the socket a sock belongs to (socket:[INODE]), 0 once the socket is closed. */
static __always_inline __u64 vigil_sock_ino(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}

/* Byte offsets in the IPv4 and IPv6 headers (linux/ip.h, linux/ipv6.h), read field by field
 * into the output, so that no header is copied to the (small) stack. */
#define VIGIL_IP4_PROTOCOL 9
#define VIGIL_IP4_SADDR 12
#define VIGIL_IP4_DADDR 16
#define VIGIL_IP6_NEXTHDR 6
#define VIGIL_IP6_SADDR 8
#define VIGIL_IP6_DADDR 24
#define VIGIL_IP6_HEADER 40

/* Where a packet's IP header starts (head + nh) and its first byte (the version in the high nibble); false when it has none. */
static __always_inline bool vigil_skb_ip_start(const struct sk_buff *skb, unsigned char **head, __u16 *nh, __u8 *first)
{
	*head = BPF_CORE_READ(skb, head);
	*nh = BPF_CORE_READ(skb, network_header);
	return *nh != VIGIL_NO_HEADER && !bpf_probe_read_kernel(first, 1, *head + *nh);
}

/* The IP header of a packet and its ports (TCP and UDP), as the skb's header offsets give them. */
static __always_inline void vigil_read_skb(const struct sk_buff *skb, struct vigil_skb *out)
{
	unsigned char *head, *ip;
	__u16 nh, th;
	__u8 first = 0, proto = 0;
	__u32 v4 = 0, ports = 0;

	__builtin_memset(out, 0, sizeof(*out));
	if (!skb)
		return;
	out->len = BPF_CORE_READ(skb, len);
	out->priority = BPF_CORE_READ(skb, priority);
	out->mark = BPF_CORE_READ(skb, mark);
	out->hash = BPF_CORE_READ(skb, hash);
	if (!vigil_skb_ip_start(skb, &head, &nh, &first))
		return;
	th = BPF_CORE_READ(skb, transport_header);
	ip = head + nh;
	if (first >> 4 == 4) {
		out->t.family = VIGIL_AF_INET;
		bpf_probe_read_kernel(&proto, 1, ip + VIGIL_IP4_PROTOCOL);
		bpf_probe_read_kernel(&v4, 4, ip + VIGIL_IP4_SADDR);
		vigil_addr_v4(out->t.saddr, v4);
		bpf_probe_read_kernel(&v4, 4, ip + VIGIL_IP4_DADDR);
		vigil_addr_v4(out->t.daddr, v4);
		if (th == VIGIL_NO_HEADER || th <= nh)
			th = nh + (first & 0xf) * 4;
	} else if (first >> 4 == 6) {
		out->t.family = VIGIL_AF_INET6;
		bpf_probe_read_kernel(&proto, 1, ip + VIGIL_IP6_NEXTHDR);
		bpf_probe_read_kernel(out->t.saddr, 16, ip + VIGIL_IP6_SADDR);
		bpf_probe_read_kernel(out->t.daddr, 16, ip + VIGIL_IP6_DADDR);
		if (th == VIGIL_NO_HEADER || th <= nh)
			th = nh + VIGIL_IP6_HEADER;
	} else {
		return;
	}
	out->t.protocol = proto;
	if ((proto == VIGIL_IPPROTO_TCP || proto == VIGIL_IPPROTO_UDP) &&
	    !bpf_probe_read_kernel(&ports, sizeof(ports), head + th)) {
		out->t.sport = bpf_ntohs((__u16)ports);
		out->t.dport = bpf_ntohs((__u16)(ports >> 16));
	}
}

/* The first byte of an IPv4 multicast address (224.0.0.0/4), and the group bit of a link-layer address's first byte. */
#define VIGIL_IP4_MULTICAST_MASK 0xf0
#define VIGIL_IP4_MULTICAST 0xe0
#define VIGIL_LL_GROUP 0x01

/*
 * The kind of a packet queued to a device (enum vigil_skb_ip), 0 when not
 * IP. IPv4 to a group is what the kernel sends through ip_mc_output: a
 * multicast or the limited broadcast address, or a link-layer group
 * address (a subnet's broadcast on Ethernet) in its MAC header.
 */
static __always_inline __u32 vigil_skb_ip_kind(const struct sk_buff *skb)
{
	unsigned char *head;
	__u16 nh, mh;
	__u8 first = 0, ll = 0;
	__u32 daddr = 0;

	if (!skb || !vigil_skb_ip_start(skb, &head, &nh, &first))
		return 0;
	if (first >> 4 == 6)
		return VIGIL_SKB_IP6;
	if (first >> 4 != 4 || bpf_probe_read_kernel(&daddr, 4, head + nh + VIGIL_IP4_DADDR))
		return 0;
	if (((__u8)daddr & VIGIL_IP4_MULTICAST_MASK) == VIGIL_IP4_MULTICAST || daddr == 0xffffffff)
		return VIGIL_SKB_IP4_GROUP;
	mh = BPF_CORE_READ(skb, mac_header);
	if (mh != VIGIL_NO_HEADER && mh < nh && !bpf_probe_read_kernel(&ll, 1, head + mh) && (ll & VIGIL_LL_GROUP))
		return VIGIL_SKB_IP4_GROUP;
	return VIGIL_SKB_IP4_UNICAST;
}

/*
 * The tuple of an argument's bytes in the record: a sock's or an skb's own;
 * a raw sockaddr's address and port as the source ones. False when the
 * argument has none.
 */
static __always_inline bool vigil_net_tuple_of(__u8 type, const char *bytes, __u32 len,
					       struct vigil_net_tuple *t)
{
	__u16 port = 0;
	__u32 v4 = 0;

	__builtin_memset(t, 0, sizeof(*t));
	if (type == VIGIL_ARG_SOCK || type == VIGIL_ARG_SKB)
		return len >= sizeof(*t) && !bpf_probe_read_kernel(t, sizeof(*t), bytes);
	if (type != VIGIL_ARG_SOCKADDR || len < 2 || bpf_probe_read_kernel(&t->family, 2, bytes))
		return false;
	if (t->family == VIGIL_AF_INET && len >= 8) {
		bpf_probe_read_kernel(&port, 2, bytes + 2);
		bpf_probe_read_kernel(&v4, 4, bytes + 4);
		vigil_addr_v4(t->saddr, v4);
	} else if (t->family == VIGIL_AF_INET6 && len >= 24) {
		bpf_probe_read_kernel(&port, 2, bytes + 2);
		bpf_probe_read_kernel(t->saddr, 16, bytes + 8);
	}
	t->sport = bpf_ntohs(port);
	return true;
}

/* Whether an address is among the prefixes of (hook, selector, matcher). */
static __always_inline bool vigil_addr_in(const __u8 *addr, __u32 hook, __u32 sel, __u32 matcher)
{
	struct vigil_addr_key key = {
		.prefixlen = 32 + 128,
		.hook = hook,
		.selector = sel,
		.matcher = matcher,
	};

	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&vigil_addr_lpm, &key) != NULL;
}

#endif /* VIGIL_NET_H */
