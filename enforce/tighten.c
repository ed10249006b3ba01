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

static const struct plan_chain *chain_named(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nchains; i++)
		if (strcmp(p->chains[i].name, name) == 0)
			return &p->chains[i];
	return NULL;
}

static const struct plan_set *set_named(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nsets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return &p->sets[i];
	return NULL;
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

static bool chain_lost_something(const struct plan *before, const struct plan_chain *old, const struct plan *after,
				 const struct plan_chain *now)
{
	for (size_t i = 0; i < old->nrules; i++) {
		const struct plan_rule *r = &old->rules[i];
		bool kept = false;

		for (size_t j = 0; j < now->nrules && !kept; j++)
			kept = same_rule(r, &now->rules[j]);
		if (!kept)
			return true;
		if (r->dst_set) {
			const struct plan_set *a = set_named(before, r->dst_set), *b = set_named(after, r->dst_set);
			if (a && (!b || !set_subset(a, b)))
				return true;
		}
	}
	return false;
}

static bool listed(char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

int plan_tightened_sources(const struct plan *before, const struct plan *after, char *const *existing,
			   size_t nexisting, struct nf_cidr **out, size_t *nout)
{
	struct nf_cidr *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < after->nchains; i++) {
		const struct plan_chain *now = &after->chains[i], *old = chain_named(before, now->name);
		bool tightened = old ? chain_lost_something(before, old, after, now)
				     : listed(existing, nexisting, now->name); /* newly selected */
		if (!tightened)
			continue;
		for (size_t j = 0; j < after->ndispatch; j++) {
			void *grown;
			if (strcmp(after->dispatch[j].chain, now->name) != 0)
				continue;
			grown = realloc(v, (n + 1) * sizeof(*v));
			if (!grown) {
				free(v);
				return -ENOMEM;
			}
			v = grown;
			v[n++] = after->dispatch[j].addr;
		}
	}
	*out = v;
	*nout = n;
	return 0;
}
