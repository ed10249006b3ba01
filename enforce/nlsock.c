/* enforce/nlsock.c: see nlsock.h. */
#include "nlsock.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define KEEP_MAX 8
#define WORK_MAX 4

struct work {
	void (*fn)(void *arg, bool deferred);
	void *arg;
	int fd; /* kept open in the child (the work closes it), or -1 */
};

static bool enabled, deletions;
static int kept[KEEP_MAX];
static int nkept;
static struct work works[WORK_MAX];
static int nworks;

static void run_work(struct work *w, bool deferred)
{
	w->fn(w->arg, deferred);
	free(w->arg);
}

void nlsock_defer_work(void (*fn)(void *arg, bool deferred), void *arg)
{
	nlsock_defer_work_fd(fn, arg, -1);
}

void nlsock_defer_work_fd(void (*fn)(void *arg, bool deferred), void *arg, int fd)
{
	struct work w = { .fn = fn, .arg = arg, .fd = fd };

	if (!enabled || nworks == WORK_MAX) {
		run_work(&w, false);
		return;
	}
	works[nworks++] = w;
}

static void run_works(bool deferred)
{
	for (int i = 0; i < nworks; i++)
		run_work(&works[i], deferred);
	nworks = 0;
}

void nlsock_defer_enable(void)
{
	enabled = true;
}

void nlsock_note_deletions(void)
{
	deletions = true;
}

void nlsock_close(struct mnl_socket *nl)
{
	if (!nl)
		return;
	if (enabled && deletions && nkept < KEEP_MAX) {
		int fd = fcntl(mnl_socket_get_fd(nl), F_DUPFD_CLOEXEC, 3);

		if (fd >= 0)
			kept[nkept++] = fd;
	}
	mnl_socket_close(nl);
}

void nlsock_keep_fd(int fd)
{
	if (fd < 0)
		return;
	if (enabled && nkept < KEEP_MAX)
		kept[nkept++] = fd;
	else
		close(fd);
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static void close_all_but(int *keep, int n)
{
	unsigned lo = 0;

	qsort(keep, (size_t)n, sizeof(*keep), int_cmp);
	for (int i = 0; i < n; i++) {
		if ((unsigned)keep[i] > lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static void close_kept(void)
{
	for (int i = 0; i < nkept; i++)
		close(kept[i]);
	nkept = 0;
}

void nlsock_release_deferred(void)
{
	int p[2], keep[KEEP_MAX + WORK_MAX + 1], nkeep = 0;
	pid_t pid;

	if (nkept == 0 && nworks == 0)
		return;
	fflush(NULL);
	if (pipe2(p, O_CLOEXEC) < 0) {
		run_works(false);
		close_kept();
		return;
	}
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		run_works(false);
		close_kept();
		return;
	}
	if (pid == 0) {
		char c;

		for (int i = 0; i < nkept; i++)
			keep[nkeep++] = kept[i];
		for (int i = 0; i < nworks; i++)
			if (works[i].fd >= 0)
				keep[nkeep++] = works[i].fd;
		keep[nkeep++] = p[0];
		close_all_but(keep, nkeep);
		run_works(true);
		/* EOF once the parent has closed its copies (then its own
		 * close did not release them: this process still holds them) */
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		close_kept();
		_exit(0);
	}
	close(p[0]);
	close_kept();
	for (int i = 0; i < nworks; i++) {
		if (works[i].fd >= 0)
			close(works[i].fd); /* the child has its copy */
		free(works[i].arg);
	}
	nworks = 0;
	close(p[1]);
}
