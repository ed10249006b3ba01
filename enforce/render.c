/* render: plan -> nft text. The output is valid `nft -f` input and
 * describes exactly what nft.c sends to the kernel, so a golden file of it
 * pins down a plan without a kernel, and loading it with nft is a
 * cross-check of nft.c: `nft list ruleset` after either prints the same.
 * Comments (nft's own, stored in the kernel, cut at 127 bytes as nft.c
 * does) say where each set, chain and rule comes from. */
#include "plan.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void put_elems(FILE *f, const struct nf_cidr *v, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 8];

	for (size_t i = 0; i < n; i++) {
		nf_addr_format(&v[i], buf, sizeof(buf));
		fprintf(f, "%s%s", i ? ", " : "", buf);
	}
}

/* an interval set's elements as the ranges nft.c sends: adjacent
 * prefixes as one (plan_set_range) */
static void put_ranges(FILE *f, const struct plan_set *s)
{
	char buf[2 * INET6_ADDRSTRLEN + 8];
	struct plan_range rg;

	for (size_t i = 0, next; i < s->n; i = next) {
		next = plan_set_range(s, i, &rg);
		plan_range_format(s->family, &rg, buf, sizeof(buf));
		fprintf(f, "%s%s", i ? ", " : "", buf);
	}
}

static void render_set(FILE *f, const struct plan_set *s)
{
	fprintf(f, "\tset %s {\n", s->name);
	if (s->comment && *s->comment)
		fprintf(f, "\t\tcomment \"%.127s\"\n", s->comment);
	fprintf(f, "\t\ttype %s\n", s->family == AF_INET ? "ipv4_addr" : "ipv6_addr");
	if (s->interval)
		fprintf(f, "\t\tflags interval\n");
	if (s->n) {
		fprintf(f, "\t\telements = { ");
		if (s->interval)
			put_ranges(f, s);
		else
			put_elems(f, s->elems, s->n);
		fprintf(f, " }\n");
	}
	fprintf(f, "\t}\n");
}

static void render_map(FILE *f, const struct plan *p, const char *name, int family)
{
	char buf[INET6_ADDRSTRLEN];
	bool first = true;

	fprintf(f, "\tmap %s {\n\t\ttype %s : verdict\n", name, family == AF_INET ? "ipv4_addr" : "ipv6_addr");
	for (size_t i = 0; i < p->ndispatch; i++) {
		if (p->dispatch[i].addr.family != family)
			continue;
		nf_addr_format(&p->dispatch[i].addr, buf, sizeof(buf));
		fprintf(f, "%s%s : jump %s", first ? "\t\telements = { " : ", ", buf, p->dispatch[i].chain);
		first = false;
	}
	if (!first)
		fprintf(f, " }\n");
	fprintf(f, "\t}\n");
}

static void render_base(FILE *f, const char *name, const char *hook)
{
	fprintf(f,
		"\tchain %s {\n"
		"\t\ttype filter hook %s priority filter; policy accept;\n"
		"\t\tct state established,related accept\n"
		"\t\tmeta l4proto ipv6-icmp icmpv6 type 133-136 accept\n"
		"\t\tip saddr vmap @%s\n"
		"\t\tip6 saddr vmap @%s\n"
		"\t}\n",
		name, hook, PLAN_MAP_V4, PLAN_MAP_V6);
}

static void render_rule(FILE *f, const struct plan_rule *r)
{
	fprintf(f, "\t\t");
	if (r->dst_set)
		fprintf(f, "%s daddr @%s ", r->family == AF_INET ? "ip" : "ip6", r->dst_set);
	else if (r->family)
		fprintf(f, "meta nfproto %s ", r->family == AF_INET ? "ipv4" : "ipv6");
	if (r->l4proto) {
		const char *pn = plan_proto_name(r->l4proto);
		if (pn)
			fprintf(f, "meta l4proto %s ", pn);
		else
			fprintf(f, "meta l4proto %u ", r->l4proto);
	}
	if (r->port_lo) {
		if (r->port_hi > r->port_lo)
			fprintf(f, "th dport %u-%u ", r->port_lo, r->port_hi);
		else
			fprintf(f, "th dport %u ", r->port_lo);
	}
	if (r->comment && *r->comment)
		fprintf(f, "accept comment \"%.127s\"\n", r->comment);
	else
		fprintf(f, "accept\n");
}

static void render_antispoof(FILE *f, const struct plan_antispoof *a)
{
	char buf[INET6_ADDRSTRLEN];

	fprintf(f, "\tchain %s {\n\t\ttype filter hook ingress device \"%s\" priority %d; policy accept;\n",
		a->chain, a->dev, PLAN_ANTISPOOF_PRIO);
	for (size_t i = 0; i < a->naddrs; i++) {
		if (a->addrs[i].family != AF_INET)
			continue;
		nf_addr_format(&a->addrs[i], buf, sizeof(buf));
		fprintf(f, "\t\tmeta protocol ip ip saddr %s accept\n", buf);
	}
	fprintf(f, "\t\tmeta protocol ip drop\n");
	for (size_t i = 0; i < a->naddrs; i++) {
		if (a->addrs[i].family != AF_INET6)
			continue;
		nf_addr_format(&a->addrs[i], buf, sizeof(buf));
		fprintf(f, "\t\tmeta protocol ip6 ip6 saddr %s accept\n", buf);
	}
	/* What a host sends of neighbour discovery and MLD: router
	 * solicitations, neighbour solicitations and advertisements, MLDv2
	 * reports. Never a router advertisement or a redirect: with those a
	 * pod can make itself the IPv6 router of its neighbours on the
	 * bridge (CVE-2020-10749). And only for a pod with an IPv6 address:
	 * one without has no IPv6 to resolve neighbours for, and on a bridge
	 * its ND and MLD are flooded to every other pod's port. */
	if (plan_antispoof_has6(a))
		fprintf(f, "\t\tmeta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 133 accept\n"
			   "\t\tmeta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 135-136 accept\n"
			   "\t\tmeta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 143 accept\n"
			   "\t\tmeta protocol ip6 ip6 saddr :: meta l4proto ipv6-icmp icmpv6 type 135 accept\n"
			   "\t\tmeta protocol ip6 ip6 saddr :: meta l4proto ipv6-icmp icmpv6 type 143 accept\n");
	fprintf(f, "\t\tmeta protocol ip6 drop\n\t}\n");
}

char *plan_render(const struct plan *p)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	if (plan_is_empty(p)) {
		fprintf(f, "# no egress policy: no netfence tables\n");
		fclose(f);
		return out;
	}
	fprintf(f, "table inet %s {\n", PLAN_TABLE);
	render_map(f, p, PLAN_MAP_V4, AF_INET);
	render_map(f, p, PLAN_MAP_V6, AF_INET6);
	fprintf(f, "\tset %s {\n\t\tcomment \"%s\"\n\t\ttype ipv4_addr\n\t}\n", PLAN_SET_REJUDGE4, PLAN_REJUDGE_COMMENT);
	fprintf(f, "\tset %s {\n\t\tcomment \"%s\"\n\t\ttype ipv6_addr\n\t}\n", PLAN_SET_REJUDGE6, PLAN_REJUDGE_COMMENT);
	for (size_t i = 0; i < p->nsets; i++)
		render_set(f, &p->sets[i]);
	render_base(f, PLAN_CHAIN_BASE, PLAN_BASE_HOOK_NAME);
	for (size_t i = 0; i < p->nchains; i++) {
		const struct plan_chain *c = &p->chains[i];
		fprintf(f, "\tchain %s {\n", c->name);
		if (c->comment && *c->comment)
			fprintf(f, "\t\tcomment \"%.127s\"\n", c->comment);
		for (size_t j = 0; j < c->nrules; j++)
			render_rule(f, &c->rules[j]);
		fprintf(f, "\t\tcounter drop\n\t}\n");
	}
	fprintf(f, "}\n");
	/* the anti-spoofing chains, by table (plan.h), tables in name order */
	for (unsigned k = 0; k < PLAN_AS_SHARDS; k++) {
		char tb[PLAN_AS_TABLE_LEN];
		bool open = false;

		for (size_t i = 0; i < p->nantispoof; i++) {
			if (plan_as_shard(p->antispoof[i].chain) != k)
				continue;
			if (!open)
				fprintf(f, "table netdev %s {\n", plan_as_table(p->antispoof[i].chain, tb));
			open = true;
			render_antispoof(f, &p->antispoof[i]);
		}
		if (open)
			fprintf(f, "}\n");
	}
	fclose(f);
	return out;
}
