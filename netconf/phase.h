/* Phase timestamps of one plugin call, for finding where its time goes
 * (NETFENCE_PHASES=1, see README "Troubleshooting"; docs/performance.md).
 *
 * nf_phase() is a no-op until nf_phase_enable(); then each call records
 * its name and CLOCK_MONOTONIC, from any thread (the state writer's too),
 * up to NF_PHASE_MAX of them. nf_phase_format() writes them as
 * "name=ms ..." in the order taken, in ms since the first. Library code
 * records; only plugin/ prints. */
#ifndef NETFENCE_PHASE_H
#define NETFENCE_PHASE_H

#include <stdbool.h>
#include <stddef.h>

#define NF_PHASE_MAX 32

void nf_phase_enable(bool on);
void nf_phase(const char *name); /* name: a string literal (kept) */
/* fills buf (NUL-terminated, truncated to len); returns how many phases */
size_t nf_phase_format(char *buf, size_t len);

#endif
