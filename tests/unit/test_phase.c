/* netconf/phase.c: off, it records nothing; on, each phase in the order
 * taken, in ms since the first, from several threads at once, never more
 * than NF_PHASE_MAX; the text is cut to the buffer and NUL-terminated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../netconf/phase.h"

static void test_phase_off(void **state)
{
	char buf[64] = "x";

	nf_phase_enable(false);
	nf_phase("a");
	assert_int_equal(nf_phase_format(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

static void test_phase_on(void **state)
{
	char buf[256], tiny[8];
	double b;

	nf_phase_enable(true);
	nf_phase("start");
	nf_phase("loaded");
	assert_int_equal(nf_phase_format(buf, sizeof(buf)), 2);
	assert_true(strncmp(buf, "start=0.000 loaded=", 19) == 0);
	b = strtod(buf + 19, NULL);
	assert_true(b >= 0 && b < 1000);
	/* cut to the buffer, always terminated */
	assert_int_equal(nf_phase_format(tiny, sizeof(tiny)), 2);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_memory_equal(tiny, "start=0", 7);
	/* enabling again starts over */
	nf_phase_enable(true);
	nf_phase("again");
	assert_int_equal(nf_phase_format(buf, sizeof(buf)), 1);
	assert_string_equal(buf, "again=0.000");
	nf_phase_enable(false);
}

static void *record(void *arg)
{
	for (int i = 0; i < 20; i++)
		nf_phase("t");
	return arg;
}

static void test_phase_threads(void **state)
{
	pthread_t th[4];
	char buf[1024];

	nf_phase_enable(true);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, record, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	/* 80 taken, NF_PHASE_MAX kept */
	assert_int_equal(nf_phase_format(buf, sizeof(buf)), NF_PHASE_MAX);
	nf_phase_enable(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phase_off),
		cmocka_unit_test(test_phase_on),
		cmocka_unit_test(test_phase_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
