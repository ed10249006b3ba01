/* libFuzzer: the state file, and the compile + render of what it holds;
 * and the model cache made from it, which must decode to a state that
 * renders the same plan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../enforce/plan.h"
#include "../../netconf/state.h"

/* the file a cache names (netconf/state.h) */
static const struct nf_text_id fuzz_tid = {.dev = 1, .ino = 2, .mtime_ns = 3};

static char *render(const struct nf_state *s)
{
	struct nf_error err = {0};
	struct plan p = {0};
	char *text = NULL;

	if (plan_compile(s, &p, &err) == 0) {
		text = plan_render(&p);
		plan_free(&p);
	}
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_state s = {0}, d = {0};
	struct nf_error err = {0};
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	char *buf = NULL, *a, *b;
	size_t blen = 0;

	if (!root)
		return 0;
	if (nf_state_from_json(root, &s, &err) == 0) {
		a = render(&s);
		if (nf_state_cache_encode(&s, (const char *)data, size, 0, size ? size : 1, &fuzz_tid, &buf, &blen) == 0 && size) {
			if (nf_state_cache_decode(buf, blen, size, &fuzz_tid, &d) != 0)
				abort(); /* its own cache must decode */
			b = render(&d);
			if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
				abort(); /* and compile to the same rules */
			free(b);
			nf_state_free(&d);
		}
		free(buf);
		free(a);
		nf_state_free(&s);
	}
	json_decref(root);
	return 0;
}
