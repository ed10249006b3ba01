/* compile: node state -> plan. Pure (no kernel, no I/O), deterministic.
 *
 * Kubernetes egress semantics: a pod selected by at least one policy whose
 * effective policyTypes include Egress gets an allow-list: the union of the
 * egress rules of every such policy in its namespace; everything else it
 * sends is dropped. A rule allows (any of its peers) x (any of its ports).
 * Peer selectors become named address sets shared between pods; the
 * ipBlocks a kind's policies allow on one port spec become one interval
 * set of that kind's chain (cidr minus except, flattened; kind_blocks). */
#include "plan.h"

#include "../netconf/state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <xxhash.h>

/* The hash of a name in the indexes below (the plan's sets, a chain's
 * rules). Not for making names (those are nf_fnv1a64's: the kernel keeps
 * them): XXH3 is several times faster on the ~22 bytes of a set name. */
static uint64_t name_hash(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

static uint64_t fnv1a64_add(uint64_t h, const char *s)
{
	for (;; s++) { /* the NUL too: "a","bc" and "ab","c" differ */
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ULL;
		if (!*s)
			return h;
	}
}

/* The hash of a pod's namespace and labels (sorted by key): its twins. */
static uint64_t labels_hash(const struct nf_pod *pod)
{
	uint64_t h = fnv1a64_add(0xcbf29ce484222325ULL, pod->ns);

	for (size_t i = 0; i < pod->labels.n; i++)
		h = fnv1a64_add(fnv1a64_add(h, pod->labels.v[i].key), pod->labels.v[i].value);
	return h;
}

/* Does policy p select pod? (Egress policies of its namespace.) */
static bool selects(const struct nf_policy *p, const struct nf_pod *pod)
{
	return p->egress && strcmp(p->ns, pod->ns) == 0 && nf_selector_matches(&p->pod_sel, &pod->labels);
}

/* A pod's kind: the policies that select it. Its chain holds their
 * rules, so pods selected by the same policies share one chain, whatever
 * their labels: the replicas of a workload, across rollouts
 * (pod-template-hash) and StatefulSet pods (a label per pod) too; a pod
 * coming or going adds or removes map and set elements, and the kernel
 * validates one chain per set of selecting policies, not per pod or per
 * label set. Named by h1, a sum of each policy's FNV-1a (of namespace
 * and name: the same set in any order); h2, a sum of their XXH3, tells
 * two sets apart that h1 would not (never silently one chain). */
struct kind {
	bool selected; /* some policy selects it */
	uint64_t h1, h2;
};

static uint64_t mix64(uint64_t x) /* splitmix64's finalizer: sums of mixed hashes do not cancel */
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void kind_add(struct kind *k, const struct nf_policy *p)
{
	uint64_t h2 = XXH3_64bits(p->ns, strlen(p->ns) + 1);

	k->selected = true;
	k->h1 += mix64(fnv1a64_add(fnv1a64_add(0xcbf29ce484222325ULL, p->ns), p->name));
	k->h2 += mix64(XXH3_64bits_withSeed(p->name, strlen(p->name), h2));
}

/* The kind of pod in s; sel (if not NULL, room for every policy): the
 * indexes of the policies that select it, *nsel of them. */
static struct kind kind_sel(const struct nf_state *s, const struct nf_pod *pod, size_t *sel, size_t *nsel)
{
	struct kind k = {0};

	for (size_t i = 0; i < s->npolicies; i++)
		if (selects(&s->policies[i], pod)) {
			kind_add(&k, &s->policies[i]);
			if (sel)
				sel[(*nsel)++] = i;
		}
	return k;
}

static struct kind kind_of(const struct nf_state *s, const struct nf_pod *pod)
{
	return kind_sel(s, pod, NULL, NULL);
}

static char *kind_name(const struct kind *k)
{
	char *name = NULL;

	if (asprintf(&name, PLAN_KIND_PREFIX "%016llx", (unsigned long long)k->h1) < 0)
		name = NULL;
	return name;
}

char *plan_pod_chain_name(const struct nf_state *s, const struct nf_pod *pod)
{
	struct kind k = kind_of(s, pod);

	return kind_name(&k);
}

/* The chain's comment, "default: foo-deny-external-egress, dns (+3 more)"
 * (what it stands for, under the 128 bytes nft loads), made while the
 * policies selecting the pod are compiled into it: the namespace, then
 * kind_comment_add for each, then kind_comment_end. */
struct kind_comment {
	FILE *f;
	char *buf;
	size_t len, n, shown;
};

static bool kind_comment_start(struct kind_comment *c, const char *ns)
{
	*c = (struct kind_comment){0};
	if (!(c->f = open_memstream(&c->buf, &c->len)))
		return false;
	fprintf(c->f, "%s:", ns);
	return true;
}

static void kind_comment_add(struct kind_comment *c, const char *policy)
{
	c->n++;
	fflush(c->f);
	if (c->len + strlen(policy) + 2 <= 100) {
		fprintf(c->f, "%s %s", c->shown ? "," : "", policy);
		c->shown++;
	}
}

/* the comment (caller frees), or NULL (out of memory) */
static char *kind_comment_end(struct kind_comment *c)
{
	if (c->n > c->shown)
		fprintf(c->f, " (+%zu more)", c->n - c->shown);
	if (fclose(c->f) != 0) {
		free(c->buf);
		return NULL;
	}
	return c->buf;
}

bool plan_pod_is_selected(const struct nf_state *s, const struct nf_pod *pod)
{
	for (size_t i = 0; i < s->npolicies; i++)
		if (selects(&s->policies[i], pod))
			return true;
	return false;
}

/* An open-addressing index of array positions by a 64-bit hash; the
 * caller compares the candidates with the same hash. */
struct hidx {
	struct hslot {
		uint64_t h;
		size_t i; /* position + 1; 0: free */
	} *v;
	size_t n, used; /* n: 0 or a power of two */
};

static void hidx_free(struct hidx *x)
{
	free(x->v);
	memset(x, 0, sizeof(*x));
}

static void hidx_clear(struct hidx *x)
{
	if (x->v)
		memset(x->v, 0, x->n * sizeof(*x->v));
	x->used = 0;
}

/* The position of an entry with hash h for which eq(ctx, position) holds, or -1. */
static long hidx_find(const struct hidx *x, uint64_t h, bool (*eq)(const void *ctx, size_t i), const void *ctx)
{
	for (size_t j = x->n ? h & (x->n - 1) : 0; x->n && x->v[j].i; j = (j + 1) & (x->n - 1))
		if (x->v[j].h == h && eq(ctx, x->v[j].i - 1))
			return (long)(x->v[j].i - 1);
	return -1;
}

static int hidx_add(struct hidx *x, uint64_t h, size_t i)
{
	size_t j;

	if (2 * (x->used + 1) > x->n) { /* at most half full */
		struct hidx y = {.n = x->n ? 2 * x->n : 64};
		if (!(y.v = calloc(y.n, sizeof(*y.v))))
			return -ENOMEM;
		for (size_t k = 0; k < x->n; k++)
			if (x->v[k].i && hidx_add(&y, x->v[k].h, x->v[k].i - 1) < 0)
				return -ENOMEM; /* never: y has room */
		free(x->v);
		*x = y;
	}
	for (j = h & (x->n - 1); x->v[j].i; j = (j + 1) & (x->n - 1))
		;
	x->v[j].h = h;
	x->v[j].i = i + 1;
	x->used++;
	return 0;
}

struct builder {
	const struct nf_state *s;
	struct plan *p;
	size_t cap_sets;
	/* the labels of each pod's namespace (by pod index), found once per
	 * compile: selectors ask for them pods x peers times */
	const struct nf_labels **nsl;
	struct nf_labels *own; /* for namespaces no object declares */
	/* the set names of every peer, made once per compile: a growing
	 * open-addressing table of pointers on the id's address, to entries
	 * that never move (names handed out stay valid); a whole compile
	 * makes one for every egress policy's peers
	 * (compile_policy_sets), a pod's share for those it looks at */
	struct pmemo {
		const void *id;
		const char *key; /* the model's (nf_peer.key) */
		const struct nf_policy *pol; /* of a selector peer's entry */
		const struct nf_peer *peer;
		bool sets_done;
		uint64_t h; /* nf_fnv1a64(key) (the model's, made once): the names' hex digits */
		const char *prefix;
		bool named; /* n4 and n6 made (named()): only for the sets a compile uses */
		char n4[24], n6[24]; /* the set names made from key */
	} **memo;
	size_t nmemo, nused; /* nmemo: a power of two */
	struct memo_block {
		struct memo_block *next;
		size_t used;
		struct pmemo e[64];
	} *blocks;
	/* hash indexes: the plan's sets by name, and the rules of the chain
	 * being compiled (a union: a rule already there is not added again) */
	struct hidx sets_by_name, chain_rules;
	/* the address families some pod has ([0] IPv4, [1] IPv6): rules and
	 * peer sets of a family no pod has are left out (family_used) */
	bool fam[2];
	/* the ipBlock sets of the chain being compiled, one per family and
	 * port spec (kind_blocks): the set, its rule, the last policy rule
	 * merged into it and how many more than the first */
	struct kblock {
		size_t set, rule;
		const struct nf_rule *last;
		size_t more;
	} *kb;
	size_t nkb;
	/* plan_pod_delta: the one pod whose addresses peer sets are filled
	 * with (NULL: every pod of the state) */
	const struct nf_pod *only;
	/* pod_delta: one selector peer of each key looked at (the key names
	 * its sets: the peers of one key designate the same pods), by
	 * key_hash; at 1,000 policies ~2,000 peers have ~13 keys */
	struct hidx peer_keys;
	const struct nf_peer **kpeers;
	size_t nkpeers;
	/* pods with the same namespace and labels ("twins"): one kind, found
	 * for the first of them */
	struct twin {
		const struct nf_pod *pod; /* the first of them; NULL: free slot */
		uint64_t hash;
		struct kind kind;
		size_t chain; /* its kind's chain in the plan, when selected */
	} *twins;
	size_t ntwins; /* a power of two */
	/* the kinds' chains compiled so far (kc[i]: chain kc[i].chain), by h1 */
	struct kind_chain {
		struct kind kind;
		size_t chain;
	} *kc;
	size_t nkc;
	struct hidx kinds;
};

/* Appends item, growing the array geometrically: its capacity is the next
 * power of two of n (4 at least), so no separate capacity is kept. */
#define PUSH(arr, n, item)                                                        \
	({                                                                        \
		int _r = 0;                                                       \
		if ((n) == 0 || ((n) >= 4 && ((n) & ((n) - 1)) == 0)) {          \
			size_t _cap = (n) == 0 ? 4 : 2 * (size_t)(n);             \
			void *_q = realloc((arr), _cap * sizeof(*(arr)));         \
			if (_q)                                                   \
				(arr) = _q;                                       \
			else                                                      \
				_r = -ENOMEM;                                     \
		}                                                                 \
		if (_r == 0)                                                      \
			(arr)[(n)++] = (item);                                    \
		_r;                                                               \
	})

static int set_add_elem(struct plan_set *set, const struct nf_cidr *c)
{
	return PUSH(set->elems, set->n, *c);
}

static struct nf_cidr host_of(const struct nf_cidr *c)
{
	struct nf_cidr h = *c;
	h.prefix = c->family == AF_INET ? 32 : 128;
	return h;
}

/* Is pod q in the namespaces a peer designates? */
static bool peer_ns_matches(const struct builder *b, const struct nf_policy *pol, const struct nf_peer *peer,
			    const struct nf_pod *q)
{
	if (!peer->has_ns_sel)
		return strcmp(q->ns, pol->ns) == 0;
	return nf_selector_matches(&peer->ns_sel, b->nsl[q - b->s->pods]);
}

/* "<prefix>_<16 hex digits of h>_4" and "..._6" into n4 and n6 (24 bytes
 * each; prefix at most 5 characters): snprintf's cost showed in the
 * profile, and the two differ only in their last character */
static void set_names(char *n4, char *n6, const char *prefix, uint64_t h)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(prefix);

	memcpy(n4, prefix, n);
	n4[n++] = '_';
	for (int i = 60; i >= 0; i -= 4)
		n4[n++] = hex[(h >> i) & 15];
	n4[n++] = '_';
	n4[n++] = '4';
	n4[n] = '\0';
	memcpy(n6, n4, n + 1);
	n6[n - 1] = '6';
}

/* The memo entry of id (a peer's address, NULL: any
 * destination) for key, whose nf_fnv1a64 is h (the model keeps it: hashing
 * the keys of every peer of 1,000 policies, and naming their sets, on
 * each ADD was a third of the pod's share), made if new; NULL when out of
 * memory. Its set names are made by named(), when a set is. */
static struct pmemo *memo_get(struct builder *b, const void *id, const char *key, uint64_t h, const char *prefix)
{
	size_t i = ((uintptr_t)id >> 2) * 0x9e3779b97f4a7c15ULL & (b->nmemo - 1);
	struct pmemo *m;

	for (; b->memo[i]; i = (i + 1) & (b->nmemo - 1))
		if (b->memo[i]->id == id)
			return b->memo[i];
	if (2 * (b->nused + 1) > b->nmemo) { /* keep it at most half full */
		struct pmemo **old = b->memo, **t = calloc(2 * b->nmemo, sizeof(*t));
		if (!t)
			return NULL;
		b->memo = t;
		b->nmemo *= 2;
		for (size_t k = 0; k < b->nmemo / 2; k++) {
			size_t j;
			if (!old[k])
				continue;
			for (j = ((uintptr_t)old[k]->id >> 2) * 0x9e3779b97f4a7c15ULL & (b->nmemo - 1); t[j];
			     j = (j + 1) & (b->nmemo - 1))
				;
			t[j] = old[k];
		}
		free(old);
		for (i = ((uintptr_t)id >> 2) * 0x9e3779b97f4a7c15ULL & (b->nmemo - 1); b->memo[i]; i = (i + 1) & (b->nmemo - 1))
			;
	}
	if (!b->blocks || b->blocks->used == NF_ARRAY_SIZE(b->blocks->e)) {
		struct memo_block *blk = malloc(sizeof(*blk));
		if (!blk)
			return NULL;
		blk->next = b->blocks;
		blk->used = 0;
		b->blocks = blk;
	}
	m = &b->blocks->e[b->blocks->used++];
	m->id = id;
	m->key = key;
	m->pol = NULL;
	m->peer = NULL;
	m->sets_done = false;
	m->h = h;
	m->prefix = prefix;
	m->named = false;
	b->memo[i] = m;
	b->nused++;
	return m;
}

/* m, its set names made */
static struct pmemo *named(struct pmemo *m)
{
	if (!m->named) {
		set_names(m->n4, m->n6, m->prefix, m->h);
		m->named = true;
	}
	return m;
}

/* the selector sets' names: "sel_<hash>_4" */
#define SEL_PREFIX "sel"

/* The memo entry of a peer (NULL: any destination). */
static struct pmemo *peer_memo(struct builder *b, const struct nf_peer *peer)
{
	return memo_get(b, peer, peer ? peer->key : "any destination",
			peer ? peer->key_hash : nf_fnv1a64("any destination"), SEL_PREFIX);
}

/* Does some pod of s have an address of family f? A kind's rules of the
 * other family could never match: a pod's packets reach its kind's chain
 * through the dispatch map of its own addresses, and its anti-spoofing
 * chain drops every other source but neighbour discovery. On a
 * single-stack node that was a quarter of the rules (every selector
 * peer makes an IPv4 and an IPv6 rule), each created, validated and
 * stepped over in the kernel. A pod that brings or takes away the last
 * address of a family changes every kind's chain: plan_pod_separable
 * sends such an ADD or DEL through a whole compile. */
bool plan_family_used(const struct nf_state *s, int family, const struct nf_pod *except)
{
	for (size_t i = 0; i < s->npods; i++) {
		const struct nf_pod *q = &s->pods[i];
		if (q == except)
			continue;
		for (size_t j = 0; j < q->naddrs; j++)
			if (q->addrs[j].family == family)
				return true;
	}
	return false;
}

/* only: the pod whose share is compiled (plan_pod_delta), the only one
 * whose namespace's labels are looked up (peer_ns_matches), or NULL for
 * every pod (a whole compile) */
static int builder_init(struct builder *b, const struct nf_pod *only)
{
	const struct nf_state *s = b->s;

	b->fam[0] = plan_family_used(s, AF_INET, NULL);
	b->fam[1] = plan_family_used(s, AF_INET6, NULL);

	b->nmemo = 256;
	b->memo = calloc(b->nmemo, sizeof(*b->memo));
	if (!b->memo)
		return -ENOMEM;

	for (b->ntwins = 16; b->ntwins < 2 * s->npods; b->ntwins *= 2)
		;
	/* a pod's share looks for twins only for a kind it does not know
	 * (pod_delta): 48 KB cleared for nothing in a replica's ADD or DEL
	 * at 500 pods */
	if (!only && !(b->twins = calloc(b->ntwins, sizeof(*b->twins))))
		return -ENOMEM;

	b->nsl = calloc(s->npods + 1, sizeof(*b->nsl));
	b->own = calloc(s->npods + 1, sizeof(*b->own));
	if (!b->nsl || !b->own)
		return -ENOMEM;
	for (size_t i = 0; i < s->npods; i++) {
		if (only && &s->pods[i] != only)
			continue;
		for (size_t j = 0; j < s->nnamespaces && !b->nsl[i]; j++)
			if (strcmp(s->namespaces[j].name, s->pods[i].ns) == 0)
				b->nsl[i] = &s->namespaces[j].labels;
		if (!b->nsl[i]) {
			if (nf_state_namespace_labels(s, s->pods[i].ns, &b->own[i]) < 0)
				return -ENOMEM;
			b->nsl[i] = &b->own[i];
		}
	}
	return 0;
}

static void builder_fini(struct builder *b)
{
	free(b->twins);
	free(b->kc);
	free(b->kb);
	free(b->kpeers);
	hidx_free(&b->peer_keys);
	hidx_free(&b->kinds);
	free(b->memo);
	hidx_free(&b->sets_by_name);
	hidx_free(&b->chain_rules);
	for (struct memo_block *n; b->blocks; b->blocks = n) {
		n = b->blocks->next;
		free(b->blocks);
	}
	for (size_t i = 0; b->own && i < b->s->npods; i++)
		nf_labels_free(&b->own[i]);
	free(b->own);
	free(b->nsl);
}

static bool ipblock_has(const struct nf_ipblock *ib, const struct nf_cidr *host)
{
	if (!nf_cidr_contains(&ib->cidr, host))
		return false;
	for (size_t i = 0; i < ib->nexcept; i++)
		if (nf_cidr_contains(&ib->except[i], host))
			return false;
	return true;
}

/* Is pod q a destination the peer designates? peer NULL: any destination. */
static bool peer_has_pod(const struct builder *b, const struct nf_policy *pol, const struct nf_peer *peer,
			 const struct nf_pod *q)
{
	if (!peer)
		return true;
	if (peer->kind == NF_PEER_IPBLOCK) {
		for (size_t i = 0; i < q->naddrs; i++) {
			struct nf_cidr h = host_of(&q->addrs[i]);
			if (ipblock_has(&peer->ipblock, &h))
				return true;
		}
		return false;
	}
	return peer_ns_matches(b, pol, peer, q) &&
	       (!peer->has_pod_sel || nf_selector_matches(&peer->pod_sel, &q->labels));
}

struct set_query {
	const struct plan *p;
	const char *name;
};

static bool set_named(const void *ctx, size_t i)
{
	const struct set_query *q = ctx;
	return strcmp(q->p->sets[i].name, q->name) == 0;
}

/* The index of set `name`, created empty (with comment, family, interval)
 * when the plan does not have it yet. *created tells which. */
static int ensure_set(struct builder *b, const char *name, const char *comment, int family, bool interval,
		      bool *created)
{
	struct plan *p = b->p;
	struct plan_set set = {0};
	struct set_query q = {p, name};
	uint64_t h = name_hash(name);
	long i = hidx_find(&b->sets_by_name, h, set_named, &q);

	*created = false;
	if (i >= 0)
		return (int)i;
	set.name = strdup(name);
	set.comment = strdup(comment);
	set.family = family;
	set.interval = interval;
	if (!set.name || !set.comment || PUSH(p->sets, p->nsets, set) < 0) {
		free(set.name);
		free(set.comment);
		return -ENOMEM;
	}
	if (hidx_add(&b->sets_by_name, h, p->nsets - 1) < 0)
		return -ENOMEM; /* the set stays in the plan, which the caller frees */
	*created = true;
	return (int)p->nsets - 1;
}

/* The two sets (v4, v6) of the pods a selector peer designates. */
/* The two sets (v4, v6) of the pods a selector peer designates; the
 * names are the memo's. */
static int fill_selector_sets(struct builder *b, const struct nf_policy *pol, const struct nf_peer *peer, int i4,
			      int i6);

static int selector_sets(struct builder *b, const struct nf_policy *pol, const struct nf_peer *peer,
			 const char **name4, const char **name6)
{
	struct pmemo *m = peer_memo(b, peer);
	bool c4 = false, c6 = false;
	int i4 = -1, i6 = -1;

	if (!m)
		return -ENOMEM;
	named(m);
	/* none of a family no pod has (family_used) */
	*name4 = b->fam[0] ? m->n4 : NULL;
	*name6 = b->fam[1] ? m->n6 : NULL;
	if (m->sets_done)
		return 0;
	m->sets_done = true;
	m->pol = pol;
	m->peer = peer;
	if (b->fam[0] && (i4 = ensure_set(b, m->n4, m->key, AF_INET, false, &c4)) < 0)
		return i4;
	if (b->fam[1] && (i6 = ensure_set(b, m->n6, m->key, AF_INET6, false, &c6)) < 0)
		return i6;
	if (!c4 && !c6)
		return 0;
	return fill_selector_sets(b, pol, peer, c4 ? i4 : -1, c6 ? i6 : -1);
}

/* The addresses of the pods a selector peer designates into the sets i4
 * and i6 (-1: not that family; b->only: of that pod only). */
static int fill_selector_sets(struct builder *b, const struct nf_policy *pol, const struct nf_peer *peer, int i4,
			      int i6)
{
	int r;

	for (size_t i = 0; i < b->s->npods; i++) {
		const struct nf_pod *q = &b->s->pods[i];
		if ((b->only && q != b->only) || !peer_has_pod(b, pol, peer, q))
			continue;
		for (size_t j = 0; j < q->naddrs; j++) {
			struct nf_cidr hst = host_of(&q->addrs[j]);
			int idx = hst.family == AF_INET ? i4 : i6;
			if (idx >= 0 && (r = set_add_elem(&b->p->sets[idx], &hst)) < 0)
				return r;
		}
	}
	return 0;
}

static bool overlaps(const struct nf_cidr *a, const struct nf_cidr *b)
{
	return nf_cidr_contains(a, b) || nf_cidr_contains(b, a);
}

/* cidr minus excepts, as disjoint prefixes in address order */
static int subtract(const struct nf_cidr *c, const struct nf_ipblock *ib, struct plan_set *set)
{
	bool any = false;
	struct nf_cidr lo, hi;
	int maxbits = c->family == AF_INET ? 32 : 128, r;

	for (size_t i = 0; i < ib->nexcept; i++) {
		if (nf_cidr_contains(&ib->except[i], c))
			return 0; /* all of it excluded */
		if (overlaps(&ib->except[i], c))
			any = true;
	}
	if (!any || c->prefix >= maxbits)
		return set_add_elem(set, c);
	lo = *c;
	lo.prefix++;
	hi = lo;
	hi.addr[c->prefix / 8] |= (uint8_t)(0x80 >> (c->prefix % 8));
	if ((r = subtract(&lo, ib, set)) < 0)
		return r;
	return subtract(&hi, ib, set);
}

/* the same destination: any, or the same set */
static bool same_dst(const struct plan_rule *a, const struct plan_rule *b)
{
	return (!a->dst_set && !b->dst_set) || (a->dst_set && b->dst_set && strcmp(a->dst_set, b->dst_set) == 0);
}

static bool rule_eq(const struct plan_rule *a, const struct plan_rule *b)
{
	return a->family == b->family && a->l4proto == b->l4proto && a->port_lo == b->port_lo &&
	       a->port_hi == b->port_hi && same_dst(a, b);
}

static uint64_t rule_hash(const struct plan_rule *r)
{
	uint64_t h = r->dst_set ? name_hash(r->dst_set) : 0;
	return (h ^ ((uint64_t)r->family << 48 | (uint64_t)r->l4proto << 32 | (uint64_t)r->port_lo << 16 | r->port_hi)) *
	       0x9e3779b97f4a7c15ULL;
}

struct rule_query {
	const struct plan_chain *ch;
	const struct plan_rule *r;
};

static bool rule_at(const void *ctx, size_t i)
{
	const struct rule_query *q = ctx;
	return rule_eq(&q->ch->rules[i], q->r);
}

/* The match of family and port (NULL: any), no destination yet. */
static struct plan_rule port_match(int family, const struct nf_port *port)
{
	struct plan_rule r = {.family = family};

	if (port) {
		r.l4proto = port->proto;
		if (port->has_port) {
			r.port_lo = port->port;
			r.port_hi = port->end_port ? port->end_port : port->port;
		}
	}
	return r;
}

/* Adds a rule to ch, the chain being compiled, unless it has it already. */
static int add_rule(struct builder *b, struct plan_chain *ch, int family, const char *set, const struct nf_port *port,
		    const char *comment)
{
	struct plan_rule r = port_match(family, port);
	struct rule_query q = {ch, &r};
	uint64_t h;

	r.dst_set = (char *)set;
	h = rule_hash(&r);
	if (hidx_find(&b->chain_rules, h, rule_at, &q) >= 0)
		return 0; /* a union: the first rule already allows it */
	r.dst_set = NULL;
	if ((set && !(r.dst_set = strdup(set))) || !(r.comment = strdup(comment)) ||
	    PUSH(ch->rules, ch->nrules, r) < 0) {
		free(r.dst_set);
		free(r.comment);
		return -ENOMEM;
	}
	return hidx_add(&b->chain_rules, h, ch->nrules - 1);
}

/* A named port resolves against the containerPorts of each destination
 * pod (registered with netfencectl) with that name and protocol: the pods
 * the peer designates are grouped by the number their port has, one set
 * per number. A destination that is not a pod never matches. */
static int compile_named_port(struct builder *b, struct plan_chain *ch, const struct nf_policy *pol,
			      const struct nf_peer *peer, const struct nf_port *port, const char *comment)
{
	struct pmemo *m = peer_memo(b, peer);
	const char *key = m ? m->key : NULL;
	int r;

	if (!key)
		return -ENOMEM;
	for (size_t i = 0; i < b->s->npods; i++) {
		const struct nf_pod *q = &b->s->pods[i];
		const struct nf_podspec *spec;

		if (!peer_has_pod(b, pol, peer, q) || !(spec = nf_state_find_podspec(b->s, q->ns, q->name)))
			continue;
		for (size_t j = 0; j < spec->nports; j++) {
			const struct nf_container_port *cp = &spec->ports[j];
			struct nf_port num = {.proto = cp->proto, .has_port = true, .port = cp->port};
			_cleanup_free_ char *skey = NULL;
			char n[64];
			bool created;
			int idx[2];

			if (!cp->name || strcmp(cp->name, port->name) != 0 || cp->proto != port->proto)
				continue;
			if (asprintf(&skey, "%s port %s=%u", key, port->name, cp->port) < 0) {
				skey = NULL;
				return -ENOMEM;
			}
			for (int f = 0; f < 2; f++) {
				idx[f] = -1;
				if (!b->fam[f])
					continue; /* family_used */
				snprintf(n, sizeof(n), "np_%016llx_%c", (unsigned long long)nf_fnv1a64(skey), f ? '6' : '4');
				if ((idx[f] = ensure_set(b, n, skey, f ? AF_INET6 : AF_INET, false, &created)) < 0)
					return idx[f];
				if ((r = add_rule(b, ch, f ? AF_INET6 : AF_INET, n, &num, comment)) < 0)
					return r;
			}
			for (size_t k = 0; k < q->naddrs; k++) {
				struct nf_cidr h = host_of(&q->addrs[k]);
				/* an ipBlock designates addresses, not pods: only the
				 * pod's addresses inside it (never the other family) */
				if (peer && peer->kind == NF_PEER_IPBLOCK && !ipblock_has(&peer->ipblock, &h))
					continue;
				if (idx[h.family == AF_INET ? 0 : 1] >= 0 &&
				    (r = set_add_elem(&b->p->sets[idx[h.family == AF_INET ? 0 : 1]], &h)) < 0)
					return r;
			}
		}
	}
	return 0;
}

/* "<chain>_<spec>_<4|6>": spec "any", "tcp", "tcp443", "tcp8000-8100" */
static void blocks_set_name(char *buf, size_t len, const char *chain, const struct plan_rule *r)
{
	const char *proto = plan_proto_name(r->l4proto);
	char spec[32];

	if (!r->l4proto)
		snprintf(spec, sizeof(spec), "any");
	else if (!proto)
		snprintf(spec, sizeof(spec), "p%u", r->l4proto);
	else if (!r->port_lo)
		snprintf(spec, sizeof(spec), "%s", proto);
	else if (r->port_hi > r->port_lo)
		snprintf(spec, sizeof(spec), "%s%u-%u", proto, r->port_lo, r->port_hi);
	else
		snprintf(spec, sizeof(spec), "%s%u", proto, r->port_lo);
	snprintf(buf, len, "%s_%s_%c", chain, spec, r->family == AF_INET6 ? '6' : '4');
}

/* The ipBlocks of family of one egress rule on one port (NULL: any),
 * into the chain's ONE interval set for that family and port spec, and
 * that set's rule: a kind's policies that allow 24 blocks on two port
 * specs make 2 rules, not 24. A packet costs one lookup however many
 * blocks there are; the first pod of a kind makes fewer rules (each
 * ~13 us of kernel time, bench/krules.sh); every ADD validates fewer
 * (bench/kvalidate.sh); and the table has no set per policy rule to
 * search by name. The set is the chain's (plan_set_of_chain): its
 * content depends on the policies only, and it comes and goes with the
 * chain. */
static int kind_blocks(struct builder *b, struct plan_chain *ch, int family, const struct nf_port *port,
		       const struct nf_rule *rule)
{
	struct plan_rule key = port_match(family, port);
	struct kblock *k = NULL;
	char name[96];
	bool created;
	int idx, r;

	blocks_set_name(name, sizeof(name), ch->name, &key);
	/* its comment for now; kind_blocks_comments makes it */
	if ((idx = ensure_set(b, name, rule->id, family, true, &created)) < 0)
		return idx;
	if (created) {
		struct kblock e = {.set = (size_t)idx, .rule = ch->nrules, .last = rule};
		if ((r = add_rule(b, ch, family, name, port, rule->id)) < 0 || (r = PUSH(b->kb, b->nkb, e)) < 0)
			return r;
	} else {
		for (size_t i = 0; i < b->nkb && !k; i++)
			if (b->kb[i].set == (size_t)idx)
				k = &b->kb[i];
		if (!k)
			return -EINVAL; /* never: the set was made for this chain */
		if (k->last == rule)
			return 0; /* the rule's blocks are in it: a port listed twice */
		k->last = rule;
		k->more++;
	}
	for (size_t i = 0; i < rule->npeers; i++) {
		const struct nf_peer *peer = &rule->peers[i];
		if (peer->kind == NF_PEER_IPBLOCK && peer->ipblock.cidr.family == family &&
		    (r = subtract(&peer->ipblock.cidr, &peer->ipblock, &b->p->sets[idx])) < 0)
			return r;
	}
	return 0; /* overlaps between blocks are pruned with the sort */
}

/* The ipBlock rules' and sets' comments: the first policy rule's id and
 * how many more, "ns/pol egress[0] (+11 more)", "ipBlocks of ns/pol
 * egress[0] (+11 more)". */
static int kind_blocks_comments(struct builder *b, struct plan_chain *ch)
{
	for (size_t i = 0; i < b->nkb; i++) {
		struct plan_rule *ru = &ch->rules[b->kb[i].rule];
		struct plan_set *set = &b->p->sets[b->kb[i].set];
		char *c = NULL, *sc = NULL;

		if (b->kb[i].more && asprintf(&c, "%s (+%zu more)", ru->comment, b->kb[i].more) < 0)
			return -ENOMEM;
		if (asprintf(&sc, "ipBlocks of %s", c ? c : ru->comment) < 0) {
			free(c);
			return -ENOMEM;
		}
		if (c) {
			free(ru->comment);
			ru->comment = c;
		}
		free(set->comment);
		set->comment = sc;
	}
	return 0;
}

/* One egress rule: every (peer x port) pair becomes an allow rule. */
static int compile_egress_rule(struct builder *b, struct plan_chain *ch, const struct nf_policy *pol,
			       const struct nf_rule *rule, size_t idx)
{
	const char *comment = rule->id;
	size_t npeers = rule->has_to ? rule->npeers : 1, nports = rule->has_ports ? rule->nports : 1;
	int r;

	for (size_t i = 0; i < npeers; i++) {
		const struct nf_peer *peer = rule->has_to ? &rule->peers[i] : NULL;
		const char *s4 = NULL, *s6 = NULL;

		bool block = peer && peer->kind == NF_PEER_IPBLOCK;

		if (peer && !block)
			r = selector_sets(b, pol, peer, &s4, &s6);
		else
			r = 0;
		if (r < 0)
			return r;
		for (size_t j = 0; j < nports; j++) {
			const struct nf_port *port = rule->has_ports ? &rule->ports[j] : NULL;

			if (port && port->name)
				r = compile_named_port(b, ch, pol, peer, port, comment);
			else if (block)
				r = 0; /* below, all the rule's blocks at once */
			else if (!peer)
				r = add_rule(b, ch, 0, NULL, port, comment);
			else {
				r = 0;
				if (s4)
					r = add_rule(b, ch, AF_INET, s4, port, comment);
				if (r == 0 && s6)
					r = add_rule(b, ch, AF_INET6, s6, port, comment);
			}
			if (r < 0)
				return r;
		}
	}
	for (int f = 0; f < 2 && rule->has_to; f++) {
		int family = f ? AF_INET6 : AF_INET;
		bool any = false;

		for (size_t i = 0; i < rule->npeers && !any; i++)
			any = rule->peers[i].kind == NF_PEER_IPBLOCK && rule->peers[i].ipblock.cidr.family == family;
		if (!any || !b->fam[f]) /* most rules: no block of this family */
			continue;
		for (size_t j = 0; j < nports; j++) {
			const struct nf_port *port = rule->has_ports ? &rule->ports[j] : NULL;
			if ((!port || !port->name) && (r = kind_blocks(b, ch, family, port, rule)) < 0)
				return r;
		}
	}
	return 0;
}

/* by destination set, any destination (NULL) first; then in chain order */
static int by_dst(const void *x, const void *y, void *ctx)
{
	const struct plan_rule *v = ctx, *a = &v[*(const size_t *)x], *b = &v[*(const size_t *)y];
	int c = !a->dst_set || !b->dst_set ? !!a->dst_set - !!b->dst_set : strcmp(a->dst_set, b->dst_set);

	if (c)
		return c;
	return *(const size_t *)x < *(const size_t *)y ? -1 : 1;
}

/* Is rule ord[i] of ch covered by one of ord[from..to), its destination
 * aside? */
static bool covered_by(const struct plan_chain *ch, const size_t *ord, size_t from, size_t to, size_t i)
{
	for (size_t j = from; j < to; j++)
		if (j != i && plan_rule_ports_cover(&ch->rules[ord[j]], &ch->rules[ord[i]]))
			return true;
	return false;
}

/* Leaves out of ch the rules another of its rules makes redundant: one
 * with any destination, or the same set, on ports that cover theirs
 * (8080/TCP to a set that 8000-8100/TCP to that set allows already;
 * anything to a set the chain allows on any port). The chain only
 * accepts, so it allows the same; a packet walks fewer rules, and the
 * first pod of a kind makes fewer. A rule stays if it names a set made
 * for it (a kind's ipBlocks, a named port's pods): that set would be
 * left unused. Distinct rules never cover each other (add_rule keeps one
 * of equal ones), so a rule left out is covered by one that stays. */
static int prune_covered(struct plan_chain *ch)
{
	size_t n = ch->nrules, nany = 0, kept = 0;
	_cleanup_free_ size_t *ord = NULL;
	_cleanup_free_ bool *drop = NULL;

	if (n < 2)
		return 0;
	if (!(ord = malloc(n * sizeof(*ord))) || !(drop = calloc(n, sizeof(*drop))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ord[i] = i;
	qsort_r(ord, n, sizeof(*ord), by_dst, ch->rules);
	while (nany < n && !ch->rules[ord[nany]].dst_set)
		nany++;
	for (size_t g = 0, e; g < n; g = e) {
		for (e = g + 1; e < n && same_dst(&ch->rules[ord[g]], &ch->rules[ord[e]]); e++)
			;
		for (size_t i = g; i < e; i++) {
			const struct plan_rule *a = &ch->rules[ord[i]];
			if (a->dst_set && strncmp(a->dst_set, SEL_PREFIX "_", sizeof(SEL_PREFIX)) != 0)
				continue;
			/* by a rule of any destination, or of a's set */
			drop[ord[i]] = covered_by(ch, ord, 0, nany, i) || (g >= nany && covered_by(ch, ord, g, e, i));
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!drop[i]) {
			ch->rules[kept++] = ch->rules[i];
			continue;
		}
		free(ch->rules[i].dst_set);
		free(ch->rules[i].comment);
	}
	ch->nrules = kept;
	return 0;
}

static void chain_free(struct plan_chain *c)
{
	for (size_t i = 0; i < c->nrules; i++) {
		free(c->rules[i].dst_set);
		free(c->rules[i].comment);
	}
	free(c->rules);
	free(c->name);
	free(c->comment);
}

/* The pod's twin entry; *fresh: made now (pod is the first of its kind). */
static struct twin *twin_of(struct builder *b, const struct nf_pod *pod, bool *fresh)
{
	uint64_t h = labels_hash(pod);
	size_t i = h & (b->ntwins - 1);

	for (; b->twins[i].pod; i = (i + 1) & (b->ntwins - 1)) {
		const struct nf_pod *q = b->twins[i].pod;
		if (b->twins[i].hash == h && strcmp(q->ns, pod->ns) == 0 && nf_labels_equal(&q->labels, &pod->labels)) {
			*fresh = false;
			return &b->twins[i];
		}
	}
	b->twins[i].pod = pod;
	b->twins[i].hash = h;
	*fresh = true;
	return &b->twins[i];
}

/* The chain of the pod's kind k, compiled and appended to the plan; sel
 * (if not NULL): the nsel policies that select the pod (kind_sel), which
 * spares trying every policy's selector again. */
static int compile_chain(struct builder *b, const struct nf_pod *pod, const struct kind *k, const size_t *sel,
			 size_t nsel)
{
	struct plan_chain ch = {0};
	struct kind_comment cm;
	int r = -ENOMEM;

	if (!kind_comment_start(&cm, pod->ns))
		return -ENOMEM;
	if (!(ch.name = kind_name(k)))
		goto fail;
	hidx_clear(&b->chain_rules);
	b->nkb = 0;
	for (size_t i = 0; i < (sel ? nsel : b->s->npolicies); i++) {
		const struct nf_policy *pol = &b->s->policies[sel ? sel[i] : i];
		if (!sel && !selects(pol, pod))
			continue;
		kind_comment_add(&cm, pol->name);
		for (size_t j = 0; j < pol->negress; j++)
			if ((r = compile_egress_rule(b, &ch, pol, &pol->egress_rules[j], j)) < 0)
				goto fail;
	}
	if ((r = kind_blocks_comments(b, &ch)) < 0 || (r = prune_covered(&ch)) < 0)
		goto fail;
	ch.comment = kind_comment_end(&cm);
	cm.f = NULL;
	if (!ch.comment || PUSH(b->p->chains, b->p->nchains, ch) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	if (cm.f)
		free(kind_comment_end(&cm));
	chain_free(&ch);
	return r;
}

struct kind_q {
	const struct builder *b;
	uint64_t h1;
};

static bool kind_at(const void *ctx, size_t i)
{
	const struct kind_q *q = ctx;
	return q->b->kc[i].kind.h1 == q->h1;
}

/* *chain: the chain of kind k in the plan, compiled for pod (one of that
 * kind) unless an earlier pod's made it. Two sets of policies whose
 * names would be the same (h1) but whose h2 differ: -EEXIST, not one
 * chain for both. */
static int kind_chain(struct builder *b, const struct nf_pod *pod, const struct kind *k, size_t *chain)
{
	struct kind_q q = {b, k->h1};
	struct kind_chain e = {*k, 0};
	long i = hidx_find(&b->kinds, k->h1, kind_at, &q);
	int r;

	if (i >= 0) {
		if (b->kc[i].kind.h2 != k->h2)
			return -EEXIST;
		*chain = b->kc[i].chain;
		return 0;
	}
	if ((r = compile_chain(b, pod, k, NULL, 0)) < 0)
		return r;
	e.chain = b->p->nchains - 1;
	if (PUSH(b->kc, b->nkc, e) < 0 || hidx_add(&b->kinds, k->h1, b->nkc - 1) < 0)
		return -ENOMEM;
	*chain = e.chain;
	return 0;
}

/* The pod's own entries: its addresses -> `chain` in the dispatch maps,
 * and the anti-spoofing chain of its host veth. */
static int add_pod_entries(struct builder *b, const struct nf_pod *pod, const char *chain)
{
	struct plan_antispoof as = {0};

	for (size_t i = 0; i < pod->naddrs; i++) {
		struct plan_dispatch d = {.addr = host_of(&pod->addrs[i])};
		if (!(d.chain = strdup(chain)) || PUSH(b->p->dispatch, b->p->ndispatch, d) < 0) {
			free(d.chain);
			return -ENOMEM;
		}
	}
	if (!pod->host_veth || !*pod->host_veth)
		return 0;
	if (asprintf(&as.chain, "as_%s", pod->host_veth) < 0)
		return -ENOMEM;
	as.dev = strdup(pod->host_veth);
	as.addrs = calloc(pod->naddrs + 1, sizeof(*as.addrs));
	for (size_t i = 0; as.addrs && i < pod->naddrs; i++)
		as.addrs[as.naddrs++] = host_of(&pod->addrs[i]);
	if (!as.dev || !as.addrs || PUSH(b->p->antispoof, b->p->nantispoof, as) < 0) {
		free(as.chain);
		free(as.dev);
		free(as.addrs);
		return -ENOMEM;
	}
	return 0;
}

/* twin: the pod's entry; the chain of its kind is compiled (and its index
 * noted) for the first pod of the kind; the others jump to it. */
static int compile_pod(struct builder *b, const struct nf_pod *pod, struct twin *twin, bool first)
{
	int r;

	if (first && (r = kind_chain(b, pod, &twin->kind, &twin->chain)) < 0)
		return r;
	return add_pod_entries(b, pod, b->p->chains[twin->chain].name);
}

static int cmp_cidr(const void *a, const void *b)
{
	return nf_cidr_cmp(a, b);
}

static int cmp_set_name(const void *a, const void *b)
{
	return strcmp(((const struct plan_set *)a)->name, ((const struct plan_set *)b)->name);
}

/* Two records can claim one address or one veth when an attachment died
 * without a DEL and the address or name was handed out again: the newer
 * record (later in the state) wins; the kernel would reject duplicates. */
static void dedup_stale(struct plan *p)
{
	size_t j = 0;

	for (size_t i = 0; i < p->ndispatch; i++) {
		bool later = false;
		for (size_t k = i + 1; k < p->ndispatch && !later; k++)
			later = cmp_cidr(&p->dispatch[i].addr, &p->dispatch[k].addr) == 0;
		if (later)
			free(p->dispatch[i].chain);
		else
			p->dispatch[j++] = p->dispatch[i];
	}
	p->ndispatch = j;
	j = 0;
	for (size_t i = 0; i < p->nantispoof; i++) {
		bool later = false;
		for (size_t k = i + 1; k < p->nantispoof && !later; k++)
			later = strcmp(p->antispoof[i].dev, p->antispoof[k].dev) == 0;
		if (later) {
			free(p->antispoof[i].chain);
			free(p->antispoof[i].dev);
			free(p->antispoof[i].addrs);
		} else {
			p->antispoof[j++] = p->antispoof[i];
		}
	}
	p->nantispoof = j;
}

/* Sets by name (nft.c finds a rule's set by bisection); elements in one
 * order whatever the order pods attached in, without duplicates, and an
 * interval set's nested prefixes (blocks of one rule may nest) reduced to
 * the outer one. */
static void sort_sets(struct plan *p)
{
	if (p->nsets > 1)
		qsort(p->sets, p->nsets, sizeof(*p->sets), cmp_set_name);
	p->sets_sorted = true;
	for (size_t i = 0; i < p->nsets; i++)
		if (p->sets[i].n > 1) {
			struct plan_set *set = &p->sets[i];
			size_t u = 1;
			qsort(set->elems, set->n, sizeof(struct nf_cidr), cmp_cidr);
			for (size_t k = 1; k < set->n; k++) {
				if (cmp_cidr(&set->elems[k], &set->elems[u - 1]) == 0)
					continue;
				if (set->interval && nf_cidr_contains(&set->elems[u - 1], &set->elems[k]))
					continue;
				set->elems[u++] = set->elems[k];
			}
			set->n = u;
		}
}

/* The selector peer sets of every egress policy's rules, filled: the
 * plan has them while the state has an egress policy, whether a kind's
 * chain uses them or not, so that an ADD or DEL changes their elements
 * only, never makes or deletes one (plan_pod_delta): a new kind's chain
 * finds the sets of its rules there, and a pod's addresses go into
 * every set whose peer designates it. (The sets of named ports come
 * with the chains that use them: they depend on the pods, and a state
 * with one is compiled whole.) */
static int compile_policy_sets(struct builder *b)
{
	for (size_t i = 0; i < b->s->npolicies; i++) {
		const struct nf_policy *pol = &b->s->policies[i];
		for (size_t j = 0; pol->egress && j < pol->negress; j++) {
			const struct nf_rule *ru = &pol->egress_rules[j];
			int r;
			for (size_t k = 0; ru->has_to && k < ru->npeers; k++) {
				const char *s4, *s6;
				if (ru->peers[k].kind != NF_PEER_IPBLOCK &&
				    (r = selector_sets(b, pol, &ru->peers[k], &s4, &s6)) < 0)
					return r;
			}
		}
	}
	return 0;
}

/* The tables exist while the state has an egress policy, whether a pod is
 * selected or not: the first selected pod's ADD, and the last one's DEL,
 * change a chain and elements, not the tables and every set. */
static bool has_egress_policy(const struct nf_state *s)
{
	for (size_t i = 0; i < s->npolicies; i++)
		if (s->policies[i].egress)
			return true;
	return false;
}

int plan_compile(const struct nf_state *s, struct plan *out, struct nf_error *err)
{
	struct plan p = {0};
	struct builder b = {.s = s, .p = &p};
	int r;

	if ((r = builder_init(&b, NULL)) < 0) {
		builder_fini(&b);
		return nf_error_set(err, -r, CNI_ERR_IO, "compiling the rules: out of memory");
	}
	p.tables = has_egress_policy(s);
	if (p.tables && (r = compile_policy_sets(&b)) < 0) {
		builder_fini(&b);
		plan_free(&p);
		return nf_error_set(err, -r, CNI_ERR_IO, "compiling the policies' peer sets: %s", strerror(-r));
	}
	for (size_t i = 0; p.tables && i < s->npods; i++) {
		bool first;
		struct twin *t = twin_of(&b, &s->pods[i], &first);

		if (first)
			t->kind = kind_of(s, &s->pods[i]);
		if (!t->kind.selected)
			continue;
		if ((r = compile_pod(&b, &s->pods[i], t, first)) < 0) {
			const char *name = s->pods[i].idle ? "(an idle kind)" : s->pods[i].name;
			builder_fini(&b);
			plan_free(&p);
			if (r == -EEXIST)
				return nf_error_set(err, EEXIST, CNI_ERR_IO,
						    "compiling the rules of pod %s/%s: the set of policies selecting it "
						    "hashes to the chain name kind_%016llx of another set of policies; "
						    "renaming one of its policies gives it another",
						    s->pods[i].ns, name, (unsigned long long)t->kind.h1);
			return nf_error_set(err, -r, CNI_ERR_IO, "compiling the rules of pod %s/%s: %s",
					    s->pods[i].ns, name, strerror(-r));
		}
	}
	builder_fini(&b);
	dedup_stale(&p);
	sort_sets(&p);
	*out = p;
	return 0;
}

/* ---- one pod's share (plan.h: plan_pod_delta) ---- */

/* The pod's addresses of family into set i of the plan being built. */
static int add_pod_addrs(struct builder *b, size_t i, const struct nf_pod *pod)
{
	for (size_t k = 0; k < pod->naddrs; k++) {
		struct nf_cidr h = host_of(&pod->addrs[k]);
		int r;
		if (h.family == b->p->sets[i].family && (r = set_add_elem(&b->p->sets[i], &h)) < 0)
			return r;
	}
	return 0;
}

/* An empty copy of set s (name, comment, family, kind) into to. */
static int copy_set_empty(struct plan *to, const struct plan_set *s)
{
	struct plan_set c = {.family = s->family, .interval = s->interval};

	c.name = strdup(s->name);
	c.comment = strdup(s->comment);
	if (!c.name || !c.comment || PUSH(to->sets, to->nsets, c) < 0) {
		free(c.name);
		free(c.comment);
		return -ENOMEM;
	}
	return 0;
}

/* Is q of kind k, the kind of a pod the policies sel[0..nsel) select?
 * Those are tried first: most pods fail at the first. */
static bool same_kind(const struct nf_state *s, const struct nf_pod *q, const size_t *sel, size_t nsel,
		      const struct kind *k)
{
	struct kind kq;

	for (size_t i = 0; i < nsel; i++)
		if (!selects(&s->policies[sel[i]], q))
			return false;
	kq = kind_of(s, q);
	return kq.h1 == k->h1 && kq.h2 == k->h2;
}

struct key_q {
	const struct builder *b;
	const char *key;
};

static bool key_at(const void *ctx, size_t i)
{
	const struct key_q *q = ctx;
	return strcmp(q->b->kpeers[i]->key, q->key) == 0;
}

/* Is pe the first peer of its key that pod_delta looks at? (-ENOMEM) */
static int first_of_key(struct builder *b, const struct nf_peer *pe)
{
	struct key_q q = {b, pe->key};

	if (hidx_find(&b->peer_keys, pe->key_hash, key_at, &q) >= 0)
		return 0;
	if (PUSH(b->kpeers, b->nkpeers, pe) < 0 || hidx_add(&b->peer_keys, pe->key_hash, b->nkpeers - 1) < 0)
		return -ENOMEM;
	return 1;
}

/* The pod's share: its kind's chain when no other pod has that kind, its
 * entries, and the peer sets that take its addresses, with those alone
 * (empty in `without`). The kernel has every peer set already
 * (compile_policy_sets): the selector sets of a new kind's rules are in
 * both plans, as they are (empty, or with the pod's addresses in `with`),
 * so that nothing is sent for them but the pod's addresses. A new kind's
 * own ipBlock sets (kind_blocks) are in `with` only: made with its chain. */
static int pod_delta(struct builder *b, const struct nf_pod *pod, struct plan *without, struct plan *with)
{
	struct kind kd;
	bool selected, kin = false;
	_cleanup_free_ char *chain = NULL;
	_cleanup_free_ size_t *sel = malloc((b->s->npolicies + 1) * sizeof(*sel));
	size_t nsel = 0;
	int r;

	if (!sel)
		return -ENOMEM;
	/* no egress policy, no tables: a pod has nothing in the kernel */
	if (!has_egress_policy(b->s))
		return 0;
	kd = kind_sel(b->s, pod, sel, &nsel);
	selected = kd.selected;
	/* the kinds of the other pods; kin: one of them is of the pod's kind
	 * (its chain is theirs, with or without the pod). A record of the
	 * pod's namespace and labels (a replica, an idle kind: the common
	 * case) says so without hashing every pod's labels. */
	kin = selected && nf_state_twin(b->s, pod, false);
	if (selected && !kin && !(b->twins = calloc(b->ntwins, sizeof(*b->twins))))
		return -ENOMEM;
	for (size_t i = 0; selected && !kin && i < b->s->npods; i++) {
		const struct nf_pod *q = &b->s->pods[i];
		bool first;
		if (q == pod)
			continue;
		twin_of(b, q, &first);
		kin = kin || (strcmp(q->ns, pod->ns) == 0 &&
			      (nf_labels_equal(&q->labels, &pod->labels) || (first && same_kind(b->s, q, sel, nsel, &kd))));
	}
	/* 1. the chain of its kind, unless other pods have it, and its
	 * entries; the sets its rules use hold the pod's addresses alone
	 * (b->only) */
	b->only = pod;
	if (selected && !(chain = kind_name(&kd)))
		return -ENOMEM;
	if (selected && !kin && (r = compile_chain(b, pod, &kd, sel, nsel)) < 0)
		return r;
	if (selected && (r = add_pod_entries(b, pod, chain)) < 0)
		return r;
	/* 2. the other peer sets that take its addresses */
	for (size_t i = 0; i < b->s->npolicies; i++) {
		const struct nf_policy *pol = &b->s->policies[i];
		for (size_t j = 0; pol->egress && j < pol->negress; j++) {
			const struct nf_rule *ru = &pol->egress_rules[j];
			for (size_t k = 0; ru->has_to && k < ru->npeers; k++) {
				const struct nf_peer *pe = &ru->peers[k];
				struct pmemo *m;
				bool created;
				int idx;

				if (pe->kind == NF_PEER_IPBLOCK)
					continue;
				if ((r = first_of_key(b, pe)) < 0)
					return r;
				if (!r || !peer_has_pod(b, pol, pe, pod))
					continue; /* another peer of its key decided */
				if (!(m = peer_memo(b, pe)))
					return -ENOMEM;
				named(m);
				for (int f = 0; f < 2; f++) {
					if (!b->fam[f])
						continue; /* the plan has no set of that family */
					if ((idx = ensure_set(b, f ? m->n6 : m->n4, m->key, f ? AF_INET6 : AF_INET, false,
							      &created)) < 0)
						return idx;
					if (created && (r = add_pod_addrs(b, (size_t)idx, pod)) < 0)
						return r;
				}
			}
		}
	}
	/* 3. without the pod: the same peer sets, empty; not the sets of the
	 * kind's chain, which come and go with it */
	for (size_t i = 0; i < b->p->nsets; i++)
		if (!plan_set_of_chain(b->p->sets[i].name, NULL) && (r = copy_set_empty(without, &b->p->sets[i])) < 0)
			return r;
	*with = *b->p;
	memset(b->p, 0, sizeof(*b->p));
	sort_sets(with);
	sort_sets(without);
	return 0;
}

int plan_pod_delta(const struct nf_state *s, const struct nf_pod *pod, struct plan *without, struct plan *with)
{
	struct plan p = {0};
	struct builder b = {.s = s, .p = &p};
	int r;

	memset(without, 0, sizeof(*without));
	memset(with, 0, sizeof(*with));
	if (!plan_pod_separable(s, pod))
		return -EAGAIN;
	if ((r = builder_init(&b, pod)) == 0)
		r = pod_delta(&b, pod, without, with);
	builder_fini(&b);
	plan_free(&p);
	if (r < 0) {
		plan_free(without);
		plan_free(with);
	}
	return r;
}
