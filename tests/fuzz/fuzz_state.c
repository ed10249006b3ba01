/* libFuzzer: the state file, and the compile + render of what it holds. */
#include <stdint.h>
#include <string.h>

#include "../../enforce/plan.h"
#include "../../netconf/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_state s = {0};
	struct nf_error err = {0};
	struct plan p = {0};
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);

	if (!root)
		return 0;
	if (nf_state_from_json(root, &s, &err) == 0) {
		if (plan_compile(&s, &p, &err) == 0) {
			free(plan_render(&p));
			plan_free(&p);
		}
		nf_state_free(&s);
	}
	json_decref(root);
	return 0;
}
