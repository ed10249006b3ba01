/* libFuzzer: the model cache's decoder on any body. The input is wrapped
 * in a header whose checksums match, so every byte reaches the decoder's own
 * bounds and value checks; what decodes must compile. The first byte
 * picks how: even, the rest is a whole body (text "x"); odd, the rest is
 * a list of (u16 offset, u8 byte) writes into the cache of the NP-14 state
 * file (testdata/state/np14-state.json: the fuzzer is run from the
 * repository), so that the image of its structs (netconf/cache.c), whose
 * pointers random bytes would never make, is checked against near misses
 * too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../enforce/plan.h"
#include "../../netconf/state.h"

#define HDR NF_CACHE_HEADER_LEN

/* the file a cache names (netconf/state.h) */
static const struct nf_text_id fuzz_tid = {.dev = 1, .ino = 2, .mtime_ns = 3};

static char *np14, *np14_text;
static size_t np14_len, np14_text_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct nf_state s = {0};
	struct nf_error err = {0};

	if (nf_state_load("testdata/state/np14-state.json", &s, &err) == 0 && (np14_text = malloc(s.raw_len + 1))) {
		memcpy(np14_text, s.raw, s.raw_len);
		np14_text_len = s.raw_len;
		if (nf_state_cache_encode(&s, np14_text, np14_text_len, 0, np14_text_len, &fuzz_tid, &np14, &np14_len) != 0)
			np14 = NULL;
	}
	nf_state_free(&s);
	return 0;
}

static void decode_and_compile(char *buf, size_t len, size_t tlen)
{
	struct nf_state d = {0};
	struct plan p = {0};

	nf_state_cache_rehash(buf, len);
	/* the pods alone, from wherever the header says they begin */
	if (nf_state_cache_decode_pods(buf, len, tlen, &fuzz_tid, &d) == 0)
		nf_state_free(&d);
	if (nf_state_cache_decode(buf, len, tlen, &fuzz_tid, &d) == 0) {
		if (plan_compile(&d, &p, NULL) == 0) {
			free(plan_render(&p));
			plan_free(&p);
		}
		nf_state_free(&d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char text[] = "x";
	struct nf_state empty = {0};
	char *hdr = NULL, *buf;
	size_t hlen = 0;

	if (size < 1)
		return 0;
	if ((data[0] & 1) && np14) {
		if (!(buf = malloc(np14_len)))
			return 0;
		memcpy(buf, np14, np14_len);
		for (size_t i = 1; i + 3 <= size; i += 3) {
			size_t at = (size_t)(data[i] | data[i + 1] << 8) % (np14_len - HDR);
			buf[HDR + at] = (char)data[i + 2];
		}
		decode_and_compile(buf, np14_len, np14_text_len);
		free(buf);
		return 0;
	}
	data++;
	size--;
	/* a valid header for text, from the encoder of an empty state */
	if (nf_state_cache_encode(&empty, text, 1, 0, 1, &fuzz_tid, &hdr, &hlen) != 0 || !(buf = malloc(HDR + size))) {
		free(hdr);
		return 0;
	}
	memcpy(buf, hdr, HDR);
	memcpy(buf + HDR, data, size);
	decode_and_compile(buf, HDR + size, 1);
	free(buf);
	free(hdr);
	return 0;
}
