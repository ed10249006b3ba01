/* Which pods lost a permission between two plans.
 *
 * Established connections pass the base chains' "ct state established"
 * rule before any pod chain, so without more a connection that a change
 * no longer allows would live on until conntrack forgets it. netfence
 * deletes the conntrack entries that such a pod originated instead: each
 * flow is re-evaluated by its next packet (nf_conntrack_tcp_loose, on by
 * default, picks a mid-stream TCP packet up as new), so flows still
 * allowed continue and the others are dropped. Pure loosening (rules or
 * set elements only added) flushes nothing. */
#include "plan.h"

#include <errno.h>
#include <string.h>

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* bsearch over an array of structs whose first member is the name */
static long find_named(const void *base, size_t n, size_t size, const char *name, bool sorted)
{
	const char *key = name;
	const void *hit;

	if (!sorted) {
		for (size_t i = 0; i < n; i++)
			if (strcmp(*(char *const *)((const char *)base + i * size), name) == 0)
				return (long)i;
		return -1;
	}
	hit = bsearch(&key, base, n, size, by_name);
	return hit ? (long)(((const char *)hit - (const char *)base) / (long)size) : -1;
}

static bool same_rule(const struct plan_rule *a, const struct plan_rule *b)
{
	return a->family == b->family && a->l4proto == b->l4proto && a->port_lo == b->port_lo &&
	       a->port_hi == b->port_hi &&
	       ((!a->dst_set && !b->dst_set) || (a->dst_set && b->dst_set && strcmp(a->dst_set, b->dst_set) == 0));
}

/* every element of a is in b; both sorted (compile.c sorts every set) */
static bool set_subset(const struct plan_set *a, const struct plan_set *b)
{
	size_t j = 0;

	for (size_t i = 0; i < a->n; i++) {
		while (j < b->n && nf_cidr_cmp(&b->elems[j], &a->elems[i]) < 0)
			j++;
		if (j == b->n || nf_cidr_cmp(&b->elems[j], &a->elems[i]) != 0)
			return false;
	}
	return true;
}

struct ctx {
	const struct plan *before, *after;
	signed char *lost; /* per set of `before`: -1 not known yet */
	struct named { const char *name; size_t i; } *old; /* before's chains, by name */
};

/* Did set `name` of the old plan lose an element? Once per set: sets are
 * shared by many pods. */
static bool set_lost(struct ctx *c, const char *name)
{
	long i = find_named(c->before->sets, c->before->nsets, sizeof(*c->before->sets), name,
			    c->before->sets_sorted);
	long j;

	if (i < 0)
		return false;
	if (c->lost[i] < 0) {
		j = find_named(c->after->sets, c->after->nsets, sizeof(*c->after->sets), name, c->after->sets_sorted);
		c->lost[i] = j < 0 || !set_subset(&c->before->sets[i], &c->after->sets[j]);
	}
	return c->lost[i];
}

static bool chain_lost_something(struct ctx *c, const struct plan_chain *old, const struct plan_chain *now)
{
	for (size_t i = 0; i < old->nrules; i++) {
		const struct plan_rule *r = &old->rules[i];
		bool kept = false;

		for (size_t j = 0; j < now->nrules && !kept; j++)
			kept = same_rule(r, &now->rules[j]);
		if (!kept || (r->dst_set && set_lost(c, r->dst_set)))
			return true;
	}
	return false;
}

int plan_tightened_sources(const struct plan *before, const struct plan *after, char *const *existing,
			   size_t nexisting, struct nf_cidr **out, size_t *nout)
{
	struct ctx c = {.before = before, .after = after};
	char **ex = NULL, **hit = NULL;
	struct nf_cidr *v = NULL;
	size_t n = 0, nhit = 0;
	int r = -ENOMEM;

	c.lost = malloc(before->nsets + 1);
	c.old = calloc(before->nchains + 1, sizeof(*c.old));
	ex = calloc(nexisting + 1, sizeof(*ex));
	hit = calloc(after->nchains + 1, sizeof(*hit));
	v = calloc(after->ndispatch + 1, sizeof(*v));
	if (!c.lost || !c.old || !ex || !hit || !v)
		goto out;
	memset(c.lost, -1, before->nsets + 1);
	for (size_t i = 0; i < before->nchains; i++)
		c.old[i] = (struct named){.name = before->chains[i].name, .i = i};
	qsort(c.old, before->nchains, sizeof(*c.old), by_name);
	memcpy(ex, existing, nexisting * sizeof(*ex));
	qsort(ex, nexisting, sizeof(*ex), by_name);
	for (size_t i = 0; i < after->nchains; i++) {
		const struct plan_chain *now = &after->chains[i];
		const char *key = now->name;
		const struct named *old = bsearch(&key, c.old, before->nchains, sizeof(*c.old), by_name);
		bool tightened = old ? chain_lost_something(&c, &before->chains[old->i], now)
				     : bsearch(&key, ex, nexisting, sizeof(*ex), by_name) != NULL; /* newly selected */
		if (tightened)
			hit[nhit++] = now->name;
	}
	qsort(hit, nhit, sizeof(*hit), by_name);
	for (size_t j = 0; nhit && j < after->ndispatch; j++) {
		const char *key = after->dispatch[j].chain;
		if (bsearch(&key, hit, nhit, sizeof(*hit), by_name))
			v[n++] = after->dispatch[j].addr;
	}
	*out = v;
	*nout = n;
	v = NULL;
	r = 0;
out:
	free(v);
	free(c.lost);
	free(c.old);
	free(ex);
	free(hit);
	return r;
}
