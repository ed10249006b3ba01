/* libFuzzer: the CNI network config (with prevResult) and CNI_ARGS. */
#include <stdint.h>
#include <string.h>

#include "../../netconf/cni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_cni_conf c = {0};
	struct nf_cni_args a = {0};
	struct nf_error err = {0};
	char *s;

	if (nf_cni_conf_parse((const char *)data, size, &c, &err) == 0) {
		struct nf_prev_result pr = {0};
		if (c.prev_result && nf_prev_result_parse(c.prev_result, "eth0", &pr, &err) == 0)
			nf_prev_result_free(&pr);
		nf_cni_conf_free(&c);
	}
	/* the same bytes as CNI_ARGS */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (nf_cni_args_parse(s, &a, &err) == 0)
		nf_cni_args_free(&a);
	free(s);
	return 0;
}
