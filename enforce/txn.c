#include "txn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int txn_begin(struct txn *t, const struct nf_state *s, struct nf_error *err)
{
	memset(t, 0, sizeof(*t));
	t->existing = calloc(s->npods + 1, sizeof(char *));
	if (!t->existing)
		return -ENOMEM;
	for (size_t i = 0; i < s->npods; i++) {
		if (!(t->existing[t->nexisting] = plan_pod_chain_name(&s->pods[i])))
			return -ENOMEM;
		t->nexisting++;
	}
	return plan_compile(s, &t->before, err);
}

void txn_end(struct txn *t)
{
	plan_free(&t->before);
	for (size_t i = 0; i < t->nexisting; i++)
		free(t->existing[i]);
	free(t->existing);
	t->existing = NULL;
	t->nexisting = 0;
}

int txn_commit(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	struct plan after = {0};
	struct nf_cidr *flush = NULL;
	size_t nflush = 0;
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
	if ((r = nf_state_save(path, s, err)) < 0) {
		if (changed) {
			struct nf_error ignored = {0};
			nft_apply(&t->before, &ignored);
		}
		goto out;
	}
	if (changed && plan_tightened_sources(&t->before, &after, t->existing, t->nexisting, &flush, &nflush) == 0) {
		struct nf_error ct = {0};
		if (conntrack_flush_sources(flush, nflush, &ct) < 0)
			snprintf(t->warning, sizeof(t->warning),
				 "the change is in place, but established connections it no longer allows may "
				 "continue: %.1500s", ct.msg);
	}
out:
	free(flush);
	free(rb);
	free(ra);
	plan_free(&after);
	return r;
}
