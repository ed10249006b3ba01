/* nft_plan_driver: applies hand-built plans with enforce/nft.c, for
 * conformance/nft_apply_test.sh. Run it only inside a throwaway netns.
 *
 *   nft_plan_driver apply1 | apply2 | empty | delete | bad
 *   nft_plan_driver diff FROM TO      nft_apply_diff from plan FROM (held) to plan TO
 *   nft_plan_driver exists CHAIN      exit 0 if it exists, 1 if not
 *   nft_plan_driver big N             N interval prefixes, N host addresses, N dispatch entries
 *   nft_plan_driver check PLAN CHAIN  nft_check_pod of a plan (apply1, apply2, big:N) without
 *                                     applying it: exit 0 if the kernel matches, 1 if not
 *   nft_plan_driver remove CHAIN|- ASCHAIN|- [ADDR...]
 *                                     nft_remove_pod ("-": NULL)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "../../enforce/plan.h"

static void die_oom(void)
{
	fprintf(stderr, "out of memory\n");
	exit(2);
}

static char *xstrdup(const char *s)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		die_oom();
	return d;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		die_oom();
	return p;
}

/* "10.0.0.0/8", "fd00::5" (bare: host prefix) */
static struct nf_cidr cidr(const char *s)
{
	struct nf_cidr c = { 0 };
	char buf[64];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	c.family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, buf, c.addr) != 1) {
		fprintf(stderr, "bad address %s\n", s);
		exit(2);
	}
	c.prefix = slash ? (uint8_t)atoi(slash + 1) : (c.family == AF_INET ? 32 : 128);
	return c;
}

static void add_set(struct plan *p, const char *name, const char *comment, int family,
		    bool interval, const char *const *elems)
{
	struct plan_set *s;
	size_t n = 0;

	while (elems[n])
		n++;
	p->sets = realloc(p->sets, (p->nsets + 1) * sizeof(*p->sets));
	if (!p->sets)
		die_oom();
	s = &p->sets[p->nsets++];
	*s = (struct plan_set){ .name = xstrdup(name), .comment = xstrdup(comment),
				.family = family, .interval = interval, .n = n,
				.elems = xcalloc(n, sizeof(struct nf_cidr)) };
	for (size_t i = 0; i < n; i++)
		s->elems[i] = cidr(elems[i]);
}

static struct plan_chain *add_chain(struct plan *p, const char *name, const char *comment)
{
	struct plan_chain *c;

	p->chains = realloc(p->chains, (p->nchains + 1) * sizeof(*p->chains));
	if (!p->chains)
		die_oom();
	c = &p->chains[p->nchains++];
	*c = (struct plan_chain){ .name = xstrdup(name), .comment = xstrdup(comment) };
	return c;
}

static void add_rule(struct plan_chain *c, int family, const char *set, uint8_t proto,
		     uint16_t lo, uint16_t hi, const char *comment)
{
	c->rules = realloc(c->rules, (c->nrules + 1) * sizeof(*c->rules));
	if (!c->rules)
		die_oom();
	c->rules[c->nrules++] = (struct plan_rule){ .family = family, .dst_set = xstrdup(set),
						    .l4proto = proto, .port_lo = lo,
						    .port_hi = hi, .comment = xstrdup(comment) };
}

static void add_dispatch(struct plan *p, const char *addr, const char *chain)
{
	p->dispatch = realloc(p->dispatch, (p->ndispatch + 1) * sizeof(*p->dispatch));
	if (!p->dispatch)
		die_oom();
	p->dispatch[p->ndispatch++] = (struct plan_dispatch){ .addr = cidr(addr),
							      .chain = xstrdup(chain) };
}

/* The host veth of the pod whose address leads to chain (the plans here
 * have one pod per chain), or NULL. */
static const char *dev_of(const struct plan *p, const char *chain)
{
	for (size_t i = 0; i < p->ndispatch; i++) {
		if (strcmp(p->dispatch[i].chain, chain) != 0)
			continue;
		for (size_t a = 0; a < p->nantispoof; a++)
			for (size_t k = 0; k < p->antispoof[a].naddrs; k++)
				if (nf_cidr_cmp(&p->antispoof[a].addrs[k], &p->dispatch[i].addr) == 0)
					return p->antispoof[a].dev;
	}
	return NULL;
}

static void add_antispoof(struct plan *p, const char *dev, const char *const *addrs)
{
	struct plan_antispoof *a;
	char chain[64];
	size_t n = 0;

	while (addrs[n])
		n++;
	p->antispoof = realloc(p->antispoof, (p->nantispoof + 1) * sizeof(*p->antispoof));
	if (!p->antispoof)
		die_oom();
	snprintf(chain, sizeof(chain), "as_%s", dev);
	a = &p->antispoof[p->nantispoof++];
	*a = (struct plan_antispoof){ .chain = xstrdup(chain), .dev = xstrdup(dev), .naddrs = n,
				      .addrs = xcalloc(n, sizeof(struct nf_cidr)) };
	for (size_t i = 0; i < n; i++)
		a->addrs[i] = cidr(addrs[i]);
}

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* every shape of rule, sets of every kind, v4+v6 dispatch, antispoof on
 * nfv1 (dual stack), nfv2 (v4 only), nfvgone and nfv88 (no such device) */
static void plan1(struct plan *p)
{
	struct plan_chain *c;

	add_set(p, "peers_web", "ns(default) pods(app=web)", AF_INET, false,
		L("10.1.0.10", "10.1.0.11"));
	add_set(p, "peers_web6", "ns(default) pods(app=web)", AF_INET6, false, L("fd00::10"));
	/* pod_aaaa's own (plan_set_of_chain): nft_remove_pod deletes it with the chain */
	/* the two /9s are adjacent: the kernel gets one range, 10.0.0.0/8 */
	add_set(p, "pod_aaaa_any_4", "ipBlock 0.0.0.0/0 except 10.0.0.0/8", AF_INET, true,
		L("10.0.0.0/9", "10.128.0.0/9", "192.168.0.0/16", "255.255.255.0/24"));
	add_set(p, "blk_1", "ipBlock fd00:1::/64", AF_INET6, true,
		L("fd00:1::/64", "fd00:2::/63", "ffff::/16"));
	add_set(p, "blk_empty", NULL, AF_INET, true, NONE);

	c = add_chain(p, "pod_aaaa", "default/a");
	add_rule(c, AF_INET, "peers_web", 6, 80, 80, "default/allow-web egress[0]");
	add_rule(c, AF_INET6, "peers_web6", 17, 53, 53, "default/allow-web egress[0]");
	add_rule(c, AF_INET, "pod_aaaa_any_4", 0, 0, 0, "default/allow-blocks egress[0]");
	add_rule(c, 0, NULL, 6, 1000, 2000, "default/allow-range egress[0]");
	add_rule(c, AF_INET6, "blk_1", 132, 5000, 5000, "default/allow-sctp egress[1]");
	add_rule(c, 0, NULL, 17, 0, 0, "default/allow-udp egress[0]");
	add_rule(c, AF_INET6, NULL, 0, 0, 0, NULL);
	add_chain(p, "pod_bbbb", "default/b"); /* selected, no allow rule: deny all */

	add_dispatch(p, "10.1.0.5", "pod_aaaa");
	add_dispatch(p, "fd00::5", "pod_aaaa");
	add_dispatch(p, "10.1.0.6", "pod_bbbb");

	add_antispoof(p, "nfv1", L("10.1.0.5", "fd00::5"));
	add_antispoof(p, "nfv2", L("10.1.0.6"));
	add_antispoof(p, "nfvgone", L("10.1.0.99"));
	/* no such device either, in the netdev table of nfv2's (netfence-17):
	 * a diff to plan 2, which keeps nfv2, must find that the kernel never
	 * had its chain (with nfv1's: two to look for, one dump) */
	add_antispoof(p, "nfv88", L("10.1.0.88"));
}

static void plan2(struct plan *p)
{
	struct plan_chain *c;

	add_set(p, "peers_db", "ns(db) pods(app=pg)", AF_INET, false, L("10.1.0.20"));
	c = add_chain(p, "pod_cccc", "default/c");
	add_rule(c, AF_INET, "peers_db", 6, 5432, 5432, "default/allow-db egress[0]");
	add_dispatch(p, "10.1.0.6", "pod_cccc");
	add_antispoof(p, "nfv2", L("10.1.0.6"));
	/* in the netdev table of nfv1's (netfence-24): a diff from plan 1
	 * deletes as_nfv1 from a table that stays */
	add_antispoof(p, "nfv29", L("10.1.0.29"));
}

/* rejected by the kernel: a chain name over NFT_CHAIN_MAXNAMELEN, and a
 * dispatch entry jumping to a chain that does not exist */
static void plan_bad(struct plan *p)
{
	char name[300];
	struct plan_chain *c;

	plan2(p);
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memcpy(name, "pod_", 4);
	c = add_chain(p, name, "default/long");
	add_rule(c, 0, NULL, 6, 22, 22, "default/ssh egress[0]");
	add_dispatch(p, "10.1.0.8", "pod_nochain");
}

static void plan_big(struct plan *p, size_t n)
{
	struct plan_set *s;
	struct plan_chain *c;

	add_set(p, "big_blk", "big interval set", AF_INET, true, NONE);
	add_set(p, "big_hosts", "big host set", AF_INET6, false, NONE);
	s = &p->sets[0];
	free(s->elems);
	s->elems = xcalloc(n, sizeof(*s->elems));
	s->n = n;
	/* /30s from 10.0.0.0 on, each 4 addresses after the last: disjoint and
	 * not adjacent (adjacent prefixes are sent as one range) */
	for (size_t i = 0; i < n; i++)
		s->elems[i] = (struct nf_cidr){ .family = AF_INET, .prefix = 30,
					       .addr = { 10, (uint8_t)(i >> 13), (uint8_t)(i >> 5),
							 (uint8_t)((i & 31) << 3) } };
	s = &p->sets[1];
	free(s->elems);
	s->elems = xcalloc(n, sizeof(*s->elems));
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		struct nf_cidr a = cidr("fd00:99::");
		a.addr[13] = (uint8_t)(i >> 16);
		a.addr[14] = (uint8_t)(i >> 8);
		a.addr[15] = (uint8_t)i;
		s->elems[i] = a;
	}
	c = add_chain(p, "pod_big", "default/big");
	add_rule(c, AF_INET, "big_blk", 6, 443, 443, NULL);
	add_rule(c, AF_INET6, "big_hosts", 0, 0, 0, NULL);
	p->dispatch = xcalloc(n, sizeof(*p->dispatch));
	for (size_t i = 0; i < n; i++) {
		struct nf_cidr a = cidr("10.200.0.0");
		a.addr[1] = (uint8_t)(200 + (i >> 16));
		a.addr[2] = (uint8_t)(i >> 8);
		a.addr[3] = (uint8_t)i;
		p->dispatch[i] = (struct plan_dispatch){ .addr = a, .chain = xstrdup("pod_big") };
	}
	p->ndispatch = n;
}

int main(int argc, char **argv)
{
	struct nf_error err = { 0 };
	struct plan p = { 0 };
	const char *cmd = argc > 1 ? argv[1] : "";
	int r;

	if (strcmp(cmd, "exists") == 0 && argc == 3) {
		r = nft_chain_exists(argv[2], &err);
		if (r < 0) {
			fprintf(stderr, "error %d (code %d): %s\n", r, err.code, err.msg);
			return 2;
		}
		printf("%s\n", r ? "yes" : "no");
		return r ? 0 : 1;
	}
	if (strcmp(cmd, "check") == 0 && argc == 4) {
		if (strcmp(argv[2], "apply1") == 0)
			plan1(&p);
		else if (strcmp(argv[2], "apply2") == 0)
			plan2(&p);
		else if (strncmp(argv[2], "big:", 4) == 0)
			plan_big(&p, strtoul(argv[2] + 4, NULL, 10));
		else {
			fprintf(stderr, "check: unknown plan %s\n", argv[2]);
			return 2;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = nft_check_pod(&p, argv[3], dev_of(&p, argv[3]), &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (strncmp(argv[2], "big:", 4) == 0)
			fprintf(stderr, "nft_check_pod: %.3f s\n",
				(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		plan_free(&p);
		if (r < 0) {
			printf("error %d (code %d): %s\n", r, err.code, err.msg);
			return 1;
		}
		printf("%s matches the plan\n", argv[3]);
		return 0;
	}
	/* diff FROM TO: the kernel holds plan FROM; send only the difference */
	if (strcmp(cmd, "diff") == 0 && argc == 4) {
		struct plan from = { 0 };
		bool changed = false, rejudging = false;
		void (*mk[2])(struct plan *);

		for (int i = 0; i < 2; i++) {
			const char *n = argv[2 + i];
			mk[i] = strcmp(n, "apply1") == 0 ? plan1 : strcmp(n, "apply2") == 0 ? plan2 : NULL;
			if (!mk[i]) {
				fprintf(stderr, "diff: unknown plan %s\n", n);
				return 2;
			}
		}
		mk[0](&from);
		mk[1](&p);
		r = nft_apply_diff(&from, &p, NULL, 0, &changed, &rejudging, &err);
		plan_free(&from);
		plan_free(&p);
		if (r < 0) {
			fprintf(stderr, "error %d (code %d): %s\n", r, err.code, err.msg);
			return 1;
		}
		printf("%s\n", changed ? "changed" : "unchanged");
		return 0;
	}
	if (strcmp(cmd, "remove") == 0 && argc >= 4) {
		struct nf_cidr addrs[16];
		size_t n = 0;

		for (int i = 4; i < argc && n < NF_ARRAY_SIZE(addrs); i++)
			addrs[n++] = cidr(argv[i]);
		r = nft_remove_pod(strcmp(argv[2], "-") ? argv[2] : NULL, addrs, n,
				   strcmp(argv[3], "-") ? argv[3] : NULL, &err);
		if (r < 0) {
			fprintf(stderr, "error %d (code %d): %s\n", r, err.code, err.msg);
			if (err.details[0])
				fprintf(stderr, "details: %s\n", err.details);
			return 1;
		}
		return 0;
	}
	if (strcmp(cmd, "delete") == 0) {
		r = nft_delete_all(&err);
	} else {
		if (strcmp(cmd, "apply1") == 0)
			plan1(&p);
		else if (strcmp(cmd, "apply2") == 0)
			plan2(&p);
		else if (strcmp(cmd, "bad") == 0)
			plan_bad(&p);
		else if (strcmp(cmd, "big") == 0 && argc == 3)
			plan_big(&p, strtoul(argv[2], NULL, 10));
		else if (strcmp(cmd, "empty") != 0) {
			fprintf(stderr, "usage: %s apply1|apply2|empty|delete|bad|big N|exists CHAIN|"
				"check PLAN CHAIN|remove CHAIN ASCHAIN [ADDR...]\n",
				argv[0]);
			return 2;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = nft_apply(&p, &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (strcmp(cmd, "big") == 0)
			fprintf(stderr, "nft_apply: %.3f s\n",
				(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		plan_free(&p);
	}
	if (r < 0) {
		fprintf(stderr, "error %d (code %d): %s\n", r, err.code, err.msg);
		if (err.details[0])
			fprintf(stderr, "details: %s\n", err.details);
		return 1;
	}
	return 0;
}
