/* spawn-load N [PATH]: posix_spawn PATH (default /bin/true) N times, one after
 * another, waiting for each; prints the elapsed seconds as JSON. The exec-heavy
 * workload of KERNEL.md's reference figures. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000;
	char *path = argc > 2 ? argv[2] : "/bin/true";
	char *child_argv[] = { path, NULL };
	struct timespec start, end;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (long i = 0; i < n; i++) {
		pid_t pid;
		int status;

		if (posix_spawn(&pid, path, NULL, NULL, child_argv, environ)) {
			perror("posix_spawn");
			return 1;
		}
		if (waitpid(pid, &status, 0) < 0) {
			perror("waitpid");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("{\"spawns\":%ld,\"seconds\":%.6f}\n", n,
	       (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
	return 0;
}
