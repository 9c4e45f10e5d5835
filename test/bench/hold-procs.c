// SPDX-License-Identifier: Apache-2.0
/*
 * hold-procs N: forks N children that wait (pause) and live on, prints
 * "ready" once all are forked, then on EOF (or a byte) on stdin kills them
 * and reaps them all. What a sensor's process cache holds with N live
 * processes, measured while they live. Each child is a fork of this small
 * program: no exec, so nothing but the fork is recorded.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-common.h"

int main(int argc, char **argv)
{
	long n = argc == 2 ? atol(argv[1]) : 0, forked = 0;
	pid_t *pids;
	char byte;

	if (n <= 0) {
		fprintf(stderr, "usage: hold-procs N\n");
		return 2;
	}
	pids = calloc(n, sizeof(*pids));
	if (!pids)
		die("calloc", errno);
	for (; forked < n; forked++) {
		pid_t pid = fork();

		if (pid < 0)
			break;
		if (pid == 0) {
			for (;;)
				pause();
		}
		pids[forked] = pid;
	}
	if (forked < n)
		fprintf(stderr, "hold-procs: fork %ld of %ld: %s\n", forked + 1, n, strerror(errno));
	else
		printf("ready\n");
	fflush(stdout);
	if (forked == n && read(0, &byte, 1) < 0)
		perror("hold-procs: read");
	for (long i = 0; i < forked; i++)
		kill(pids[i], SIGKILL);
	for (long i = 0; i < forked; i++)
		waitpid(pids[i], NULL, 0);
	return forked == n ? 0 : 1;
}
