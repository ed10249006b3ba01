/* libFuzzer: the model cache's decoder on any body. The input is wrapped
 * in a header whose hashes match (text "x"), so every byte reaches the
 * decoder's own bounds and value checks; what decodes must compile. */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../../enforce/plan.h"
#include "../../netconf/state.h"

#define HDR 80 /* struct cache_header (netconf/cache.c) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char text[] = "x";
	struct nf_state empty = {0}, d = {0};
	struct plan p = {0};
	char *hdr = NULL, *buf;
	size_t hlen = 0;
	uint64_t v;

	/* a valid header for text, from the encoder of an empty state */
	if (nf_state_cache_encode(&empty, text, 1, 0, 1, &hdr, &hlen) != 0 || !(buf = malloc(HDR + size))) {
		free(hdr);
		return 0;
	}
	memcpy(buf, hdr, HDR);
	memcpy(buf + HDR, data, size);
	v = htole64(size);
	memcpy(buf + 56, &v, 8);
	v = htole64(XXH3_64bits(data, size));
	memcpy(buf + 64, &v, 8);
	/* the pods alone, from wherever the header says they begin */
	if (nf_state_cache_decode_pods(buf, HDR + size, text, 1, &d) == 0)
		nf_state_free(&d);
	if (nf_state_cache_decode(buf, HDR + size, text, 1, &d) == 0) {
		if (plan_compile(&d, &p, NULL) == 0) {
			free(plan_render(&p));
			plan_free(&p);
		}
		nf_state_free(&d);
	}
	free(buf);
	free(hdr);
	return 0;
}
