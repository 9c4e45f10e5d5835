// SPDX-License-Identifier: Apache-2.0
/*
 * getpid-load [-w] N: calls getpid(2) N times through syscall(2), so no libc
 * caching can skip the kernel, and exits. With -w it first blocks until one
 * byte (or EOF) arrives on stdin, so that a consumer can load a filter for
 * this pid before the first call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int wait = argc == 3 && strcmp(argv[1], "-w") == 0;
	char *end;
	unsigned long long n, i;
	char byte;

	if (argc != 2 + wait) {
		fprintf(stderr, "usage: getpid-load [-w] N\n");
		return 2;
	}
	n = strtoull(argv[1 + wait], &end, 10);
	if (*end) {
		fprintf(stderr, "getpid-load: N must be a number, got %s\n", argv[1 + wait]);
		return 2;
	}
	if (wait && read(0, &byte, 1) < 0) {
		perror("getpid-load: read stdin");
		return 1;
	}
	for (i = 0; i < n; i++)
		syscall(SYS_getpid);
	return 0;
}
