/* The plan of a state without one pod, derived from the plan with it.
 *
 * ADD and DEL change the state by exactly one pod. Both plans are needed
 * (the kernel holds one, the diff goes to the other), and compiling twice
 * was half of the cost of an ADD. What one pod adds to a plan is local:
 * its dispatch entries and anti-spoofing chain, its addresses in the peer
 * sets, and, when it is the only pod of its kind (the policies that
 * select it), the kind's chain and that chain's ipBlock sets; other
 * chains do not depend on it, and the peer sets are every policy's,
 * with or without it; an idle kind
 * (txn.h) keeps its chain too. Named ports
 * break that (a pod's containerPorts can
 * add rules to other pods' chains), as do records that share the pod's
 * address or veth (stale attachments): then the caller compiles. */
#include "plan.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static char *dup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool same_host(const struct nf_cidr *a, const struct nf_cidr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, plan_addr_len(a->family)) == 0;
}

static bool pod_has(const struct nf_pod *pod, const struct nf_cidr *c)
{
	for (size_t i = 0; i < pod->naddrs; i++)
		if (same_host(&pod->addrs[i], c))
			return true;
	return false;
}

bool plan_pod_separable(const struct nf_state *s, const struct nf_pod *pod)
{
	for (size_t i = 0; i < s->npolicies; i++)
		for (size_t j = 0; j < s->policies[i].negress; j++)
			for (size_t k = 0; k < s->policies[i].egress_rules[j].nports; k++)
				if (s->policies[i].egress_rules[j].ports[k].name)
					return false;
	for (size_t i = 0; i < s->npods; i++) {
		const struct nf_pod *q = &s->pods[i];
		if (q == pod)
			continue;
		if (pod->host_veth && q->host_veth && strcmp(pod->host_veth, q->host_veth) == 0)
			return false;
		for (size_t j = 0; j < q->naddrs; j++)
			if (pod_has(pod, &q->addrs[j]))
				return false;
	}
	for (size_t i = 0; i < pod->naddrs; i++)
		if (!plan_family_used(s, pod->addrs[i].family, pod))
			return false;
	return true;
}

int plan_without_pod(const struct plan *with, const struct nf_state *s, const struct nf_pod *pod,
		     struct plan *out)
{
	struct plan p = {.sets_sorted = with->sets_sorted, .tables = with->tables};
	_cleanup_free_ char *chain = NULL;
	bool kin = false; /* another pod jumps to its kind's chain */
	int r = -ENOMEM;

	if (!plan_pod_separable(s, pod))
		return -EAGAIN;
	if (!(chain = plan_pod_chain_name(s, pod)))
		return -ENOMEM;
	p.chains = calloc(with->nchains + 1, sizeof(*p.chains));
	p.dispatch = calloc(with->ndispatch + 1, sizeof(*p.dispatch));
	p.antispoof = calloc(with->nantispoof + 1, sizeof(*p.antispoof));
	p.sets = calloc(with->nsets + 1, sizeof(*p.sets));
	if (!p.chains || !p.dispatch || !p.antispoof || !p.sets)
		goto fail;
	for (size_t i = 0; i < with->ndispatch; i++) {
		if (pod_has(pod, &with->dispatch[i].addr))
			continue;
		p.dispatch[p.ndispatch] = with->dispatch[i];
		if (!(p.dispatch[p.ndispatch++].chain = strdup(with->dispatch[i].chain)))
			goto fail;
		kin = kin || strcmp(with->dispatch[i].chain, chain) == 0;
	}
	/* an idle kind of the pod's kind holds its chain too (txn.h) */
	for (size_t i = 0; !kin && i < s->npods; i++) {
		_cleanup_free_ char *other = NULL;
		if (!s->pods[i].idle)
			continue;
		if (!(other = plan_pod_chain_name(s, &s->pods[i])))
			goto fail;
		kin = strcmp(other, chain) == 0;
	}
	for (size_t i = 0; i < with->nchains; i++) {
		const struct plan_chain *c = &with->chains[i];
		struct plan_chain *d;

		if (!kin && strcmp(c->name, chain) == 0)
			continue; /* the last pod of its kind */
		d = &p.chains[p.nchains++];
		if (!(d->name = strdup(c->name)) || !(d->comment = dup0(c->comment)) ||
		    !(d->rules = calloc(c->nrules + 1, sizeof(*d->rules))))
			goto fail;
		for (size_t j = 0; j < c->nrules; j++) {
			d->rules[j] = c->rules[j];
			d->rules[j].dst_set = NULL;
			d->rules[j].comment = NULL;
			d->nrules = j + 1;
			if ((c->rules[j].dst_set && !(d->rules[j].dst_set = strdup(c->rules[j].dst_set))) ||
			    (c->rules[j].comment && !(d->rules[j].comment = strdup(c->rules[j].comment))))
				goto fail;
		}
	}
	for (size_t i = 0; i < with->nantispoof; i++) {
		const struct plan_antispoof *a = &with->antispoof[i];
		struct plan_antispoof *d;

		if (pod->host_veth && strcmp(a->dev, pod->host_veth) == 0)
			continue;
		d = &p.antispoof[p.nantispoof++];
		if (!(d->chain = strdup(a->chain)) || !(d->dev = strdup(a->dev)) ||
		    !(d->addrs = calloc(a->naddrs + 1, sizeof(*d->addrs))))
			goto fail;
		memcpy(d->addrs, a->addrs, a->naddrs * sizeof(*d->addrs));
		d->naddrs = a->naddrs;
	}
	for (size_t i = 0; i < with->nsets; i++) {
		const struct plan_set *st = &with->sets[i];
		struct plan_set *d;

		/* every peer set stays while the state has an egress policy
		 * (compile.c compile_policy_sets): the pod's addresses leave
		 * them; the sets of its kind's chain go with the chain */
		if (!kin && plan_set_of_chain(st->name, chain))
			continue;
		d = &p.sets[p.nsets++];
		*d = *st;
		d->name = NULL;
		d->comment = NULL;
		d->n = 0;
		if (!(d->name = strdup(st->name)) || !(d->comment = dup0(st->comment)) ||
		    !(d->elems = calloc(st->n + 1, sizeof(*d->elems))))
			goto fail;
		for (size_t j = 0; j < st->n; j++)
			if (st->interval || !pod_has(pod, &st->elems[j]))
				d->elems[d->n++] = st->elems[j];
	}
	*out = p;
	return 0;
fail:
	plan_free(&p);
	return r;
}
