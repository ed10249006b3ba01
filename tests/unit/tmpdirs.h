/* tests/unit/tmpdirs.h: temporary directories of a test binary, removed
 * with what is in them by the group's teardown, also after a test failed
 * (a failed assertion leaves the test at once, before its own cleanup).
 * A test that checks it leaves its directory empty still removes it
 * itself; the teardown then finds it gone. */
#ifndef NETFENCE_TESTS_TMPDIRS_H
#define NETFENCE_TESTS_TMPDIRS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_TMPDIRS_MAX 64
static char *test_tmpdirs[TEST_TMPDIRS_MAX];
static int test_ntmpdirs;

/* mkdtemp(tmpl), noted for test_tmpdirs_teardown */
static inline char *test_mkdtemp(char *tmpl)
{
	char *d = mkdtemp(tmpl);

	if (d && test_ntmpdirs < TEST_TMPDIRS_MAX)
		test_tmpdirs[test_ntmpdirs++] = strdup(d);
	return d;
}

static inline int test_tmpdirs_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path); /* on: what can go goes */
	return 0;
}

/* the group teardown (cmocka_run_group_tests' last argument) */
static inline int test_tmpdirs_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < test_ntmpdirs; i++) {
		nftw(test_tmpdirs[i], test_tmpdirs_rm, 16, FTW_DEPTH | FTW_PHYS);
		free(test_tmpdirs[i]);
	}
	test_ntmpdirs = 0;
	return 0;
}

#endif
