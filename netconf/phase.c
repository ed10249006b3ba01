#include "phase.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static bool enabled;
static unsigned taken; /* slots claimed (atomically: the writer thread records too) */
static struct {
	const char *name;
	struct timespec at;
} phases[NF_PHASE_MAX];

void nf_phase_enable(bool on) /* before any other thread records */
{
	memset(phases, 0, sizeof(phases));
	__atomic_store_n(&taken, 0, __ATOMIC_RELAXED);
	enabled = on;
}

void nf_phase(const char *name)
{
	unsigned i;

	if (!enabled)
		return;
	i = __atomic_fetch_add(&taken, 1, __ATOMIC_RELAXED);
	if (i >= NF_PHASE_MAX)
		return;
	clock_gettime(CLOCK_MONOTONIC, &phases[i].at);
	/* the name last: nf_phase_format skips a slot still being written */
	__atomic_store_n(&phases[i].name, name, __ATOMIC_RELEASE);
}

size_t nf_phase_format(char *buf, size_t len)
{
	unsigned n = __atomic_load_n(&taken, __ATOMIC_RELAXED), k = 0;
	size_t at = 0;
	const struct timespec *t0 = NULL;

	if (len)
		buf[0] = '\0';
	if (n > NF_PHASE_MAX)
		n = NF_PHASE_MAX;
	for (unsigned i = 0; i < n; i++) {
		const char *name = __atomic_load_n(&phases[i].name, __ATOMIC_ACQUIRE);
		int w;

		if (!name)
			continue;
		if (!t0)
			t0 = &phases[i].at;
		/* once full, only counted: no pointer past the buffer */
		w = snprintf(at < len ? buf + at : NULL, at < len ? len - at : 0, "%s%s=%.3f", k ? " " : "", name,
			     (double)(phases[i].at.tv_sec - t0->tv_sec) * 1e3 +
				     (double)(phases[i].at.tv_nsec - t0->tv_nsec) / 1e6);
		if (w > 0)
			at += (size_t)w;
		k++;
	}
	if (len && at >= len)
		buf[len - 1] = '\0';
	return k;
}
