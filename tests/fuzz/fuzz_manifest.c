/* libFuzzer: YAML/JSON manifests through to the validated model. */
#include <stdint.h>
#include <string.h>

#include "../../netconf/manifest.h"
#include "../../netconf/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_error err = {0};
	json_t *docs = NULL, *item;
	size_t i;

	if (nf_manifest_parse((const char *)data, size, "fuzz", &docs, &err) < 0)
		return 0;
	json_array_foreach(docs, i, item) {
		struct nf_policy p = {0};
		struct nf_namespace n = {0};
		struct nf_podspec ps = {0};
		if (nf_policy_from_json(item, "default", &p, &err) == 0)
			nf_policy_free(&p);
		if (nf_namespace_from_json(item, &n, &err) == 0)
			nf_namespace_free(&n);
		if (nf_podspec_from_json(item, "default", &ps, &err) == 0)
			nf_podspec_free(&ps);
	}
	json_decref(docs);
	return 0;
}
