// SPDX-License-Identifier: Apache-2.0
/*
 * tcp-load connect|rr N: N TCP connections over loopback to a listener of
 * its own, pinned to the CPU it starts on; prints {"meanNs":…,"bestNs":…}
 * per connection (bench-common.h: the fastest chunk of CHUNK is the figure).
 *   connect: connect, accept, close both (the load of the cgroup connect
 *            program's row);
 *   rr:      connect, one byte each way (request, response), the client
 *            closes (ESTABLISHED -> FIN_WAIT1), then the server (the load of
 *            the TCP state hooks' row).
 * The server side closes with SO_LINGER 0, so that it resets the connection
 * and no TIME_WAIT socket holds the client's port: a run never runs out of
 * ephemeral ports.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "bench-common.h"

#define CHUNK 1000ULL

struct tcp_load {
	int listener;
	int request_response;
	struct sockaddr_in addr;
};

static void one_connection(void *state)
{
	struct tcp_load *t = state;
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	char byte = 'x';
	int client, server;

	client = socket(AF_INET, SOCK_STREAM, 0);
	if (client < 0 || connect(client, (struct sockaddr *)&t->addr, sizeof(t->addr)))
		die("connect", errno);
	server = accept(t->listener, NULL, NULL);
	if (server < 0)
		die("accept", errno);
	if (t->request_response &&
	    (write(client, &byte, 1) != 1 || read(server, &byte, 1) != 1 ||
	     write(server, &byte, 1) != 1 || read(client, &byte, 1) != 1))
		die("request/response", errno);
	close(client);
	if (setsockopt(server, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)))
		die("SO_LINGER", errno);
	close(server);
}

int main(int argc, char **argv)
{
	struct tcp_load t = { .addr = { .sin_family = AF_INET } };
	socklen_t len = sizeof(t.addr);
	unsigned long long n;
	double mean, best;
	cpu_set_t cpu;
	char *end;

	if (argc != 3 || (strcmp(argv[1], "connect") && strcmp(argv[1], "rr"))) {
		fprintf(stderr, "usage: tcp-load connect|rr N\n");
		return 2;
	}
	n = strtoull(argv[2], &end, 10);
	if (*end || !n) {
		fprintf(stderr, "tcp-load: N must be a positive number, got %s\n", argv[2]);
		return 2;
	}
	t.request_response = !strcmp(argv[1], "rr");
	t.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t.listener = socket(AF_INET, SOCK_STREAM, 0);
	if (t.listener < 0 || bind(t.listener, (struct sockaddr *)&t.addr, sizeof(t.addr)) ||
	    listen(t.listener, 16) || getsockname(t.listener, (struct sockaddr *)&t.addr, &len))
		die("listen", errno);
	CPU_ZERO(&cpu);
	CPU_SET(sched_getcpu(), &cpu);
	if (sched_setaffinity(0, sizeof(cpu), &cpu))
		die("sched_setaffinity", errno);
	best = bench_best_ns(one_connection, &t, n, CHUNK, &mean);
	printf("{\"meanNs\":%.1f,\"bestNs\":%.1f}\n", mean, best);
	return 0;
}
