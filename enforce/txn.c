#include "txn.h"

#include <errno.h>
#include <string.h>

int txn_begin(struct txn *t, const struct nf_state *s, struct nf_error *err)
{
	return plan_compile(s, &t->before, err);
}

void txn_end(struct txn *t)
{
	plan_free(&t->before);
}

int txn_commit(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	struct plan after = {0};
	char *rb = NULL, *ra = NULL;
	bool changed;
	int r;

	if ((r = plan_compile(s, &after, err)) < 0)
		return r;
	rb = plan_render(&t->before);
	ra = plan_render(&after);
	if (!rb || !ra) {
		r = -ENOMEM;
		goto out;
	}
	changed = strcmp(rb, ra) != 0;
	if (changed && (r = nft_apply(&after, err)) < 0)
		goto out;
	if ((r = nf_state_save(path, s, err)) < 0 && changed) {
		struct nf_error ignored = {0};
		nft_apply(&t->before, &ignored);
	}
out:
	free(rb);
	free(ra);
	plan_free(&after);
	return r;
}

