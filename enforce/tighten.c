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
#include <sys/socket.h>

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

/* Is every address of interval set a in interval set b? Both sorted,
 * without nested prefixes (compile.c sort_sets). Not element by element:
 * a kind's ipBlock set that gains a block around one it had, or two
 * halves of one, lost nothing (a policy that allows more must not
 * flush the flows it allowed before): each prefix of a must lie in one
 * run of b's adjacent prefixes (plan_set_range). */
static bool ranges_subset(const struct plan_set *a, const struct plan_set *b)
{
	size_t len = plan_addr_len(a->family), j = 0;
	struct plan_range run, e;
	bool have = false;

	for (size_t i = 0; i < a->n; i++) {
		plan_prefix_start(&a->elems[i], e.lo);
		e.open = !plan_prefix_end(e.lo, a->elems[i].prefix, len, e.hi);
		/* the run of b that reaches e's first address */
		while (!have || (!run.open && memcmp(run.hi, e.lo, len) <= 0)) {
			if (j == b->n)
				return false;
			j = plan_set_range(b, j, &run);
			have = true;
		}
		if (memcmp(run.lo, e.lo, len) > 0 || (!run.open && (e.open || memcmp(run.hi, e.hi, len) < 0)))
			return false;
	}
	return true;
}

/* Does b hold every address of a? (Sets of one family; interval sets by
 * their ranges.) */
static bool covered(const struct plan_set *a, const struct plan_set *b)
{
	return a->interval && b->interval ? ranges_subset(a, b) : set_subset(a, b);
}

struct ctx {
	const struct plan *before, *after;
	signed char *lost; /* per set of `before`: -1 not known yet */
	struct named { const char *name; size_t i; } *old; /* before's chains, by name */
	/* chain_lost_something of two chains of other names (a pod that
	 * changed kind), per family: the pods of a kind change together */
	struct pair { const struct plan_chain *old, *now; int family; bool lost; } *pairs;
	size_t npairs;
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
		c->lost[i] = j < 0 || !covered(&c->before->sets[i], &c->after->sets[j]);
	}
	return c->lost[i];
}

/* Does interval set `now` of the new plan hold every address of
 * interval set `old` of the old plan? (Two kinds' ipBlock sets: a pod
 * that a new policy selects changes kind, and its new chain's sets have
 * other names.) Selector sets are not compared: false. */
static bool blocks_kept(struct ctx *c, const char *old, const char *now)
{
	long i = find_named(c->before->sets, c->before->nsets, sizeof(*c->before->sets), old,
			    c->before->sets_sorted);
	long j = find_named(c->after->sets, c->after->nsets, sizeof(*c->after->sets), now, c->after->sets_sorted);

	return i >= 0 && j >= 0 && c->before->sets[i].interval && c->after->sets[j].interval &&
	       covered(&c->before->sets[i], &c->after->sets[j]);
}

/* Does a rule of chain now allow all that rule r allowed? Its family,
 * protocol and ports cover r's (compile.c leaves out a rule that another
 * covers), and its destination holds r's: any; r's set, which lost no
 * element; or an ipBlock set around r's. */
static bool rule_kept(struct ctx *c, const struct plan_rule *r, const struct plan_chain *now)
{
	for (size_t j = 0; j < now->nrules; j++) {
		const struct plan_rule *n = &now->rules[j];

		if (!plan_rule_ports_cover(n, r))
			continue;
		if (!n->dst_set)
			return true;
		if (!r->dst_set)
			continue;
		if (strcmp(r->dst_set, n->dst_set) == 0 ? !set_lost(c, r->dst_set) : blocks_kept(c, r->dst_set, n->dst_set))
			return true;
	}
	return false;
}

/* for the packets of one family: a rule of the other never matched them
 * (and the rules of a family no pod has come and go with its first and
 * last address, compile.c plan_family_used) */
static bool chain_lost_something(struct ctx *c, const struct plan_chain *old, const struct plan_chain *now,
				 int family)
{
	for (size_t i = 0; i < old->nrules; i++) {
		const struct plan_rule *r = &old->rules[i];

		if (r->family && r->family != family)
			continue;
		if (!rule_kept(c, r, now))
			return true;
	}
	return false;
}

/* chain_lost_something for two chains of other names, once per pair */
static int pair_lost(struct ctx *c, const struct plan_chain *old, const struct plan_chain *now, int family)
{
	struct pair *v;

	for (size_t i = 0; i < c->npairs; i++)
		if (c->pairs[i].old == old && c->pairs[i].now == now && c->pairs[i].family == family)
			return c->pairs[i].lost;
	if (!(v = realloc(c->pairs, (c->npairs + 1) * sizeof(*v))))
		return -ENOMEM;
	c->pairs = v;
	v[c->npairs] = (struct pair){old, now, family, chain_lost_something(c, old, now, family)};
	return v[c->npairs++].lost;
}

/* by family and address (dispatch addresses are hosts; an attachment's
 * addresses carry their prefix length) */
static int by_host(const void *a, const void *b)
{
	const struct nf_cidr *x = a, *y = b;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->addr, y->addr, plan_addr_len(x->family));
}

static int by_addr(const void *a, const void *b)
{
	return by_host(&((const struct plan_dispatch *)a)->addr, &((const struct plan_dispatch *)b)->addr);
}

static const struct plan_chain *chain_named(const struct named *v, size_t n, const struct plan *p, const char *name)
{
	const char *key = name;
	const struct named *hit = bsearch(&key, v, n, sizeof(*v), by_name);

	return hit ? &p->chains[hit->i] : NULL;
}

/* Per source address: the chain it jumps to now lost something against
 * the chain it jumped to before (the same kind's, or another's when the
 * pod was relabelled), or it was not selected before although attached. */
int plan_tightened_sources(const struct plan *before, const struct plan *after, const struct nf_cidr *existing,
			   size_t nexisting, struct nf_cidr **out, size_t *nout)
{
	struct ctx c = {.before = before, .after = after};
	struct named *now = NULL;
	struct nf_cidr *ex = NULL, *v = NULL;
	struct plan_dispatch *old = NULL;
	signed char *kept = NULL; /* per chain of `after` (same name before) and family: -1 not known yet */
	size_t n = 0;
	int r = -ENOMEM;

	c.lost = malloc(before->nsets + 1);
	c.old = calloc(before->nchains + 1, sizeof(*c.old));
	now = calloc(after->nchains + 1, sizeof(*now));
	kept = malloc(2 * after->nchains + 1);
	ex = calloc(nexisting + 1, sizeof(*ex));
	old = calloc(before->ndispatch + 1, sizeof(*old));
	v = calloc(after->ndispatch + 1, sizeof(*v));
	if (!c.lost || !c.old || !now || !kept || !ex || !old || !v)
		goto out;
	memset(c.lost, -1, before->nsets + 1);
	memset(kept, -1, 2 * after->nchains + 1);
	for (size_t i = 0; i < before->nchains; i++)
		c.old[i] = (struct named){.name = before->chains[i].name, .i = i};
	qsort(c.old, before->nchains, sizeof(*c.old), by_name);
	for (size_t i = 0; i < after->nchains; i++)
		now[i] = (struct named){.name = after->chains[i].name, .i = i};
	qsort(now, after->nchains, sizeof(*now), by_name);
	if (nexisting) {
		memcpy(ex, existing, nexisting * sizeof(*ex));
		qsort(ex, nexisting, sizeof(*ex), by_host);
	}
	if (before->ndispatch) {
		memcpy(old, before->dispatch, before->ndispatch * sizeof(*old));
		qsort(old, before->ndispatch, sizeof(*old), by_addr);
	}
	for (size_t j = 0; j < after->ndispatch; j++) {
		const struct plan_dispatch *d = &after->dispatch[j];
		const struct plan_dispatch *o = bsearch(d, old, before->ndispatch, sizeof(*old), by_addr);
		const struct plan_chain *cn = chain_named(now, after->nchains, after, d->chain);
		const struct plan_chain *co = o ? chain_named(c.old, before->nchains, before, o->chain) : NULL;
		bool tightened;

		if (!o) /* newly selected while attached */
			tightened = bsearch(&d->addr, ex, nexisting, sizeof(*ex), by_host) != NULL;
		else if (!cn || !co)
			tightened = true; /* never: every dispatch entry has its chain */
		else if (strcmp(co->name, cn->name) == 0) {
			size_t k = 2 * (size_t)(cn - after->chains) + (d->addr.family == AF_INET6);
			if (kept[k] < 0)
				kept[k] = !chain_lost_something(&c, co, cn, d->addr.family);
			tightened = !kept[k];
		} else {
			int l = pair_lost(&c, co, cn, d->addr.family);
			if (l < 0)
				goto out;
			tightened = l;
		}
		if (tightened)
			v[n++] = d->addr;
	}
	*out = v;
	*nout = n;
	v = NULL;
	r = 0;
out:
	free(v);
	free(c.lost);
	free(c.old);
	free(c.pairs);
	free(now);
	free(kept);
	free(ex);
	free(old);
	return r;
}
