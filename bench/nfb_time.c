/*
 * nfb_time: run a command, append one line about it to a file.
 *
 *   nfb_time -o FILE [-l LABEL] -- CMD [ARG...]
 *
 * Appends "LABEL<TAB>wall_ms<TAB>maxrss_kb<TAB>status" to FILE, where
 * wall_ms is the CLOCK_MONOTONIC time from just before fork() to waitpid()
 * returning, and maxrss_kb is getrusage(RUSAGE_CHILDREN).ru_maxrss: the
 * peak resident set of the largest process among CMD and the descendants
 * it waited for (run the plugin itself under nfb_time to get the plugin's
 * peak). stdin, stdout and stderr pass through; exits with CMD's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	const char *out = NULL, *label = "-";
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc)
			label = argv[++i];
		else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else
			break;
	}
	if (!out || i >= argc) {
		fprintf(stderr, "usage: nfb_time -o FILE [-l LABEL] -- CMD [ARG...]\n");
		return 2;
	}
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("nfb_time: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[i], argv + i);
		fprintf(stderr, "nfb_time: exec %s: %s\n", argv[i], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			perror("nfb_time: waitpid");
			return 2;
		}
	double t1 = now_ms();
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	FILE *f = fopen(out, "a");
	if (!f) {
		perror(out);
		return 2;
	}
	fprintf(f, "%s\t%.3f\t%ld\t%d\n", label, t1 - t0, ru.ru_maxrss, code);
	fclose(f);
	return code;
}
