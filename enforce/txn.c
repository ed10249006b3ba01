#include "txn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int txn_begin(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	memset(t, 0, sizeof(*t));
	if (asprintf(&t->dirty, "%s.dirty", path) < 0) {
		t->dirty = NULL;
		return -ENOMEM;
	}
	t->force = access(t->dirty, F_OK) == 0;
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
	free(t->dirty);
	memset(t, 0, sizeof(*t));
}

int txn_commit(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	struct plan after = {0};
	struct nf_cidr *flush = NULL;
	size_t nflush = 0;
	bool changed = false;
	int r, fd;

	if ((r = plan_compile(s, &after, err)) < 0)
		return r;
	fd = open(t->dirty, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = nf_error_set(err, errno, CNI_ERR_IO, "creating \"%s\": %s", t->dirty, strerror(errno));
		goto out;
	}
	close(fd);
	if (t->force) {
		changed = true;
		r = nft_apply(&after, err);
	} else if ((r = nft_apply_diff(&t->before, &after, &changed, err)) < 0) {
		/* the kernel did not hold what the state said (someone changed
		 * it): rebuild everything from the plan */
		nf_error_clear(err);
		changed = true;
		r = nft_apply(&after, err);
	}
	if (r < 0)
		goto out; /* the marker stays: the next change re-programs */
	if ((r = nf_state_save(path, s, err)) < 0) {
		if (changed) {
			struct nf_error ignored = {0};
			if (nft_apply(&t->before, &ignored) == 0)
				unlink(t->dirty);
		}
		goto out;
	}
	unlink(t->dirty);
	if (changed && plan_tightened_sources(&t->before, &after, t->existing, t->nexisting, &flush, &nflush) == 0) {
		struct nf_error ct = {0};
		if (conntrack_flush_sources(flush, nflush, &ct) < 0)
			snprintf(t->warning, sizeof(t->warning),
				 "the change is in place, but established connections it no longer allows may "
				 "continue: %.1500s", ct.msg);
	}
out:
	free(flush);
	plan_free(&after);
	return r;
}
