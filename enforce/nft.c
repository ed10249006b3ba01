/* nft.c: the plan -> one nf_tables transaction, built with libnftnl and sent
 * over libmnl. The only file in netfence that talks netlink.
 *
 * The expressions imitate what `nft --debug=netlink` (nftables 1.0.6)
 * generates for the same rules, so that `nft list ruleset` prints them as
 * plain nft text (ct state, icmpv6 type, th dport ranges as cmp gte/lte...).
 *
 * Measured on kernel 6.18 (throwaway netns): a netdev base chain whose device
 * does not exist is accepted and stays unbound; when the device is deleted
 * the chain stays (listed, unbound), and a new device with the same name
 * binds to it again (its counters kept counting). Older kernels refuse the
 * first (ENOENT) and delete the chain with the device, so antispoof chains
 * of missing devices are skipped, and every full apply deletes every
 * netdev table of netfence's (plan_is_as_table) and makes those of the
 * plan, so a stale as_<dev> does not outlive the next change.
 */
#include "nlsock.h"
#include "plan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

/* nftables' datatype ids (include/datatype.h, enum datatypes) and byte
 * order (enum byteorder): `nft list` prints set keys and data with them. */
#define NFT_DTYPE_VERDICT 1
#define NFT_DTYPE_IPADDR 7
#define NFT_DTYPE_IP6ADDR 8
#define NFT_BYTEORDER_BIG_ENDIAN 2

/* nla_len is 16 bits: a NEWSETELEM's element nest must stay below 64 KiB.
 * libnftnl does not check, it silently truncates the length. */
#define SETELEM_MSG_BUDGET (32 * 1024)
/* The largest message we build (a NEWSETELEM near the budget), with room. */
#define NLMSG_MAX (UINT16_MAX + 4096)
#define BATCH_PAGE (128 * 1024)
#define RECV_BUF_SIZE (64 * 1024)

_Static_assert(PLAN_AS_SHARDS <= 32, "struct tx's as_made is a 32-bit mask");

/* What each message of the batch is about, to name it in an error. */
enum obj_kind {
	OBJ_BATCH,
	OBJ_TABLE,     /* a: family (table inet netfence) */
	OBJ_DELTABLE,  /* a: family */
	OBJ_ASTABLE,   /* a: antispoof: its netdev table */
	OBJ_STALETABLE,/* a: tx->stale[a], a netdev table deleted by a full apply */
	OBJ_SET,       /* a: plan set */
	OBJ_SETELEM,   /* a: plan set, b: first element, n: count */
	OBJ_MAP,       /* a: AF_INET/AF_INET6 */
	OBJ_MAPELEM,   /* a: AF_INET/AF_INET6, b: first dispatch entry, n: count */
	OBJ_BASECHAIN, /* the base chain */
	OBJ_BASERULE,  /* b: rule */
	OBJ_CHAIN,     /* a: plan chain */
	OBJ_RULE,      /* a: plan chain, b: rule (== nrules: the final drop) */
	OBJ_ASCHAIN,   /* a: antispoof */
	OBJ_ASRULE,    /* a: antispoof, b: rule */
	/* nft_apply_diff: a names an object of the new plan (p), or of the
	 * old one (tx->before) for what goes away */
	OBJ_DIFFELEM,   /* a: plan set: elements added */
	OBJ_DIFFDELELEM,/* a: plan set: elements removed or flushed */
	OBJ_DIFFMAPADD, /* a: AF_INET/AF_INET6 */
	OBJ_DIFFMAPDEL, /* a: AF_INET/AF_INET6 */
	OBJ_DIFFFLUSH,  /* a: plan chain, flushed to be refilled */
	OBJ_OLDFLUSH,   /* a: old chain, flushed to be deleted */
	OBJ_OLDCHAIN,   /* a: old chain, deleted */
	OBJ_OLDSET,     /* a: old set, deleted */
	OBJ_OLDAS,      /* a: old antispoof chain, deleted */
	OBJ_OLDASTABLE, /* a: old antispoof chain: its table deleted (no other left) */
	OBJ_ASFLUSH,    /* a: antispoof chain, flushed to be refilled */
	/* nft_remove_pod (no plan: names in struct tx) */
	OBJ_RMELEM,    /* a: AF_INET/AF_INET6, b: index in tx->rm_keys */
	OBJ_RMRULES,   /* flushing tx->rm_chains[a] */
	OBJ_RMCHAIN,   /* tx->rm_chains[a] */
	OBJ_RMSET,     /* tx->rm_sets[a]: a deleted chain's own set */
	OBJ_RMASCHAIN, /* tx->rm_as */
	/* re-judging (plan.h): a is AF_INET/AF_INET6 */
	OBJ_REJUDGESET, /* creating rejudge4/rejudge6 */
	OBJ_REJUDGEADD, /* adding addresses to it */
	OBJ_REJUDGEDEL, /* removing them */
	OBJ_REJUDGERULE, /* b: 0 IPv4, 1 IPv6 */
	OBJ_REJUDGERULEDEL,
};

struct obj {
	uint8_t kind;
	uint32_t a, b;
	uint32_t n; /* OBJ_SETELEM, OBJ_MAPELEM: elements b..b+n-1 of the plan */
};

struct tx {
	struct nftnl_batch *batch;
	char *scratch; /* NLMSG_MAX bytes, zeroed: the message being built */
	uint32_t base; /* seq of the batch begin message */
	uint32_t seq;  /* seq of the next message */
	struct obj *objs; /* objs[seq - base] */
	size_t cap;
	uint32_t set_id;
	uint32_t *plan_set_ids; /* per plan set */
	uint32_t map_id[2];     /* egress4, egress6 */
	uint32_t rejudge_id[2]; /* rejudge4, rejudge6 */
	bool rejudge_rules_present; /* nft_apply_diff: in the base chains already */
	bool oom;
	bool deletes; /* a DEL message: its commit leaves RCU work (nlsock.h) */
	const struct plan *before; /* nft_apply_diff */
	/* full apply: the netdev tables of netfence's found in the kernel */
	char *const *stale;
	uint32_t as_made; /* bit NN: table netdev netfence-NN made in this batch */
	/* nft_remove_pod: what the messages are about */
	char *const *rm_chains;
	char *const *rm_sets;
	const char *rm_as;
	const struct nf_cidr *rm_keys;
};

static int tx_init(struct tx *tx, const struct plan *p)
{
	memset(tx, 0, sizeof(*tx));
	tx->batch = nftnl_batch_alloc(BATCH_PAGE, NLMSG_MAX);
	tx->scratch = calloc(1, NLMSG_MAX);
	if (!tx->batch || !tx->scratch)
		return -ENOMEM;
	if (p && p->nsets) {
		tx->plan_set_ids = calloc(p->nsets, sizeof(*tx->plan_set_ids));
		if (!tx->plan_set_ids)
			return -ENOMEM;
	}
	/* a fresh socket per transaction: any seq works; time keeps them
	 * recognisable in a trace */
	tx->base = (uint32_t)time(NULL);
	tx->seq = tx->base;
	return 0;
}

static void tx_fini(struct tx *tx)
{
	if (tx->batch)
		nftnl_batch_free(tx->batch);
	free(tx->scratch);
	free(tx->objs);
	free(tx->plan_set_ids);
}

/* A NULL-terminated list of names (as_tables). */
static void free_names(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Reserves the next seq for an object. */
static uint32_t tx_note(struct tx *tx, enum obj_kind kind, size_t a, size_t b)
{
	size_t i = tx->seq - tx->base;

	if (i >= tx->cap) {
		size_t cap = tx->cap ? tx->cap * 2 : 256;
		struct obj *o = realloc(tx->objs, cap * sizeof(*o));
		if (!o) {
			tx->oom = true;
			return tx->seq++;
		}
		tx->objs = o;
		tx->cap = cap;
	}
	tx->objs[i] = (struct obj){ .kind = kind, .a = (uint32_t)a, .b = (uint32_t)b };
	return tx->seq++;
}

/* Messages are built in a zeroed scratch buffer and copied into the batch:
 * libmnl 1.0.4 does not clear attribute padding, and the batch pages are
 * not cleared either (valgrind: "sendmsg points to uninitialised bytes"). */
static void tx_next(struct tx *tx)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)tx->scratch;
	uint32_t len = nlh->nlmsg_len;

	if (len > NLMSG_MAX) { /* cannot happen: SETELEM_MSG_BUDGET bounds it */
		tx->oom = true;
		return;
	}
	memcpy(nftnl_batch_buffer(tx->batch), tx->scratch, len);
	memset(tx->scratch, 0, len);
	if (nftnl_batch_update(tx->batch) < 0)
		tx->oom = true;
}

static struct nlmsghdr *tx_hdr(struct tx *tx, uint16_t type, uint16_t family, uint16_t flags,
			       enum obj_kind kind, size_t a, size_t b)
{
	uint32_t seq = tx_note(tx, kind, a, b);

	if (type == NFT_MSG_DELTABLE || type == NFT_MSG_DELCHAIN || type == NFT_MSG_DELRULE ||
	    type == NFT_MSG_DELSET || type == NFT_MSG_DELSETELEM)
		tx->deletes = true;
	return nftnl_nlmsg_build_hdr(tx->scratch, type, family, flags, seq);
}

/* ---- objects ---- */

static int put_comment_udata(const char *comment, uint8_t type,
			     struct nftnl_udata_buf **out)
{
	char buf[NFTNL_UDATA_COMMENT_MAXLEN];
	struct nftnl_udata_buf *ud;

	*out = NULL;
	if (!comment || !*comment)
		return 0;
	/* nft refuses to load comments longer than 128 bytes; so do we */
	snprintf(buf, sizeof(buf), "%s", comment);
	ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	if (!ud)
		return -ENOMEM;
	if (!nftnl_udata_put_strz(ud, type, buf)) {
		nftnl_udata_buf_free(ud);
		return -ENOMEM;
	}
	*out = ud;
	return 0;
}

/* The table chain `chain` of `family` is in: inet netfence, or for an
 * antispoof chain its pod's netdev table (plan.h). */
static const char *table_of(uint16_t family, const char *chain, char buf[PLAN_AS_TABLE_LEN])
{
	return family == NFPROTO_NETDEV ? plan_as_table(chain, buf) : PLAN_TABLE;
}

static void put_table(struct tx *tx, uint16_t family, const char *name, bool del, enum obj_kind kind,
		      size_t a)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, name) < 0) {
		tx->oom = true;
		goto out;
	}
	nlh = tx_hdr(tx, del ? NFT_MSG_DELTABLE : NFT_MSG_NEWTABLE, family, del ? 0 : NLM_F_CREATE, kind, a, 0);
	nftnl_table_nlmsg_build_payload(nlh, t);
	tx_next(tx);
out:
	if (t)
		nftnl_table_free(t);
}

/* table inet netfence */
static void add_table(struct tx *tx, bool del)
{
	put_table(tx, NFPROTO_INET, PLAN_TABLE, del, del ? OBJ_DELTABLE : OBJ_TABLE, NFPROTO_INET);
}

/* Deletes netdev table `name`, creating it first so that the delete
 * cannot fail with ENOENT (a full apply skips the chains of devices that
 * do not exist, so the kernel may never have had it). */
static void drop_table(struct tx *tx, const char *name, enum obj_kind kind, size_t a)
{
	put_table(tx, NFPROTO_NETDEV, name, false, kind, a);
	put_table(tx, NFPROTO_NETDEV, name, true, kind, a);
}

/* hooknum < 0: a regular chain */
static void add_chain(struct tx *tx, uint16_t family, const char *name, int hooknum, int prio,
		      const char *dev, const char *comment, enum obj_kind kind, size_t a)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nftnl_udata_buf *ud = NULL;
	char tb[PLAN_AS_TABLE_LEN];
	struct nlmsghdr *nlh;

	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table_of(family, name, tb)) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0)
		goto oom;
	if (hooknum >= 0) {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hooknum);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
		if (nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0)
			goto oom;
		if (dev && nftnl_chain_set_str(c, NFTNL_CHAIN_DEV, dev) < 0)
			goto oom;
	}
	if (put_comment_udata(comment, NFTNL_UDATA_CHAIN_COMMENT, &ud) < 0)
		goto oom;
	if (ud && nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(ud),
				       nftnl_udata_buf_len(ud)) < 0)
		goto oom;
	nlh = tx_hdr(tx, NFT_MSG_NEWCHAIN, family, NLM_F_CREATE, kind, a, 0);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	tx_next(tx);
	goto out;
oom:
	tx->oom = true;
out:
	if (ud)
		nftnl_udata_buf_free(ud);
	if (c)
		nftnl_chain_free(c);
}

/* map: key -> verdict. Returns the set id. */
static uint32_t add_set(struct tx *tx, const char *name, int family, bool interval, bool map,
			const char *comment, enum obj_kind kind, size_t a)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_udata_buf *ud = NULL;
	uint32_t id = ++tx->set_id;
	uint32_t flags = 0;
	struct nlmsghdr *nlh;

	if (!s || nftnl_set_set_str(s, NFTNL_SET_TABLE, PLAN_TABLE) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
		goto oom;
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE,
			  family == AF_INET ? NFT_DTYPE_IPADDR : NFT_DTYPE_IP6ADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)plan_addr_len(family));
	if (interval)
		flags |= NFT_SET_INTERVAL;
	if (map) {
		flags |= NFT_SET_MAP;
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 0);
	}
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);

	ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	if (!ud || !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_BYTEORDER_BIG_ENDIAN))
		goto oom;
	if (comment && *comment) {
		char buf[NFTNL_UDATA_COMMENT_MAXLEN];
		snprintf(buf, sizeof(buf), "%s", comment);
		if (!nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_COMMENT, buf))
			goto oom;
	}
	if (nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
			       nftnl_udata_buf_len(ud)) < 0)
		goto oom;

	nlh = tx_hdr(tx, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE, kind, a, 0);
	nftnl_set_nlmsg_build_payload(nlh, s);
	tx_next(tx);
	goto out;
oom:
	tx->oom = true;
out:
	if (ud)
		nftnl_udata_buf_free(ud);
	if (s)
		nftnl_set_free(s);
	return id;
}

/* Collects elements and flushes them as NEWSETELEM messages of bounded size. */
struct elems {
	struct tx *tx;
	const char *set;
	uint32_t set_id;
	enum obj_kind kind;
	size_t a;
	struct nftnl_set *s; /* pending message */
	size_t first;        /* index (in the plan) of its first element */
	size_t last;         /* and of its last */
	size_t bytes;
	uint16_t msg;        /* NFT_MSG_NEWSETELEM (0) or NFT_MSG_DELSETELEM */
};

static void elems_flush(struct elems *e)
{
	struct nlmsghdr *nlh;

	if (!e->s)
		return;
	nlh = tx_hdr(e->tx, e->msg ? e->msg : NFT_MSG_NEWSETELEM, NFPROTO_INET,
		     e->msg == NFT_MSG_DELSETELEM ? 0 : NLM_F_CREATE, e->kind, e->a, e->first);
	if (!e->tx->oom)
		e->tx->objs[e->tx->seq - 1 - e->tx->base].n = (uint32_t)(e->last - e->first + 1);
	nftnl_set_elems_nlmsg_build_payload(nlh, e->s);
	tx_next(e->tx);
	nftnl_set_free(e->s);
	e->s = NULL;
	e->bytes = 0;
}

/* index: the plan element this one comes from (for errors) */
static struct nftnl_set_elem *elems_new(struct elems *e, size_t index, size_t est)
{
	struct nftnl_set_elem *el;

	if (e->s && e->bytes + est > SETELEM_MSG_BUDGET)
		elems_flush(e);
	if (!e->s) {
		e->s = nftnl_set_alloc();
		if (!e->s || nftnl_set_set_str(e->s, NFTNL_SET_TABLE, PLAN_TABLE) < 0 ||
		    nftnl_set_set_str(e->s, NFTNL_SET_NAME, e->set) < 0) {
			e->tx->oom = true;
			if (e->s)
				nftnl_set_free(e->s);
			e->s = NULL;
			return NULL;
		}
		nftnl_set_set_u32(e->s, NFTNL_SET_ID, e->set_id);
		e->first = index;
	}
	el = nftnl_set_elem_alloc();
	if (!el) {
		e->tx->oom = true;
		return NULL;
	}
	nftnl_set_elem_add(e->s, el);
	e->last = index;
	e->bytes += est;
	return el;
}

static void elem_key(struct elems *e, struct nftnl_set_elem *el, const uint8_t *key, size_t len)
{
	if (nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, (uint32_t)len) < 0)
		e->tx->oom = true;
}

/* Element size estimate: nests, key, flags, udata, verdict + chain name. */
#define ELEM_EST(keylen, extra) (64 + (keylen) + (extra))

static void set_elems_msg(struct tx *tx, const struct plan_set *ps, size_t si, uint32_t set_id,
			  uint16_t msg, enum obj_kind kind);

static void add_set_elems(struct tx *tx, const struct plan_set *ps, size_t si)
{
	set_elems_msg(tx, ps, si, tx->plan_set_ids[si], 0, OBJ_SETELEM);
}

/* msg 0: add the elements of ps; NFT_MSG_DELSETELEM: delete them */
static void set_elems_msg(struct tx *tx, const struct plan_set *ps, size_t si, uint32_t set_id,
			  uint16_t msg, enum obj_kind kind)
{
	struct elems e = { .tx = tx, .set = ps->name, .set_id = set_id, .kind = kind, .a = si,
			   .msg = msg };
	size_t len = plan_addr_len(ps->family);
	static const uint8_t zero[16];

	for (size_t i = 0, next; i < ps->n && !tx->oom; i = next) {
		const struct nf_cidr *c = &ps->elems[i];
		struct nftnl_set_elem *el;
		struct plan_range rg;

		next = i + 1;
		if (!ps->interval) {
			el = elems_new(&e, i, ELEM_EST(len, 0));
			if (el)
				elem_key(&e, el, c->addr, len);
			continue;
		}
		/* adjacent prefixes: one range, two elements */
		next = plan_set_range(ps, i, &rg);
		/* As nftables does: an interval set starts with an end element
		 * at 0 unless the first range starts there. */
		if (i == 0 && memcmp(rg.lo, zero, len) != 0) {
			el = elems_new(&e, i, ELEM_EST(len, 8));
			if (!el)
				break;
			elem_key(&e, el, zero, len);
			nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
		}
		el = elems_new(&e, i, ELEM_EST(len, 16));
		if (!el)
			break;
		elem_key(&e, el, rg.lo, len);
		if (!rg.open) {
			el = elems_new(&e, next - 1, ELEM_EST(len, 8));
			if (!el)
				break;
			elem_key(&e, el, rg.hi, len);
			nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
		} else {
			/* no "next address" after the top: nftables sends the
			 * start alone, flagged open so `nft list` prints it */
			struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(16);
			if (!ud || !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_ELEM_FLAGS,
							NFTNL_SET_ELEM_F_INTERVAL_OPEN) ||
			    nftnl_set_elem_set(el, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(ud),
					       nftnl_udata_buf_len(ud)) < 0)
				tx->oom = true;
			if (ud)
				nftnl_udata_buf_free(ud);
		}
	}
	elems_flush(&e);
	if (e.s)
		nftnl_set_free(e.s);
}

/* msg 0: add the entries of v (of `family`); NFT_MSG_DELSETELEM: delete them */
static void map_elems_msg(struct tx *tx, const struct plan_dispatch *v, size_t n, int family,
			  uint16_t msg, enum obj_kind kind)
{
	int fi = family == AF_INET ? 0 : 1;
	struct elems e = { .tx = tx, .set = fi ? PLAN_MAP_V6 : PLAN_MAP_V4,
			   .set_id = tx->map_id[fi], .kind = kind, .a = (size_t)family, .msg = msg };
	size_t len = plan_addr_len(family);

	for (size_t i = 0; i < n && !tx->oom; i++) {
		const struct plan_dispatch *d = &v[i];
		struct nftnl_set_elem *el;

		if (d->addr.family != family)
			continue;
		el = elems_new(&e, i, ELEM_EST(len, 32 + strlen(d->chain)));
		if (!el)
			break;
		elem_key(&e, el, d->addr.addr, len);
		if (msg == NFT_MSG_DELSETELEM)
			continue;
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, (uint32_t)NFT_JUMP);
		if (nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, d->chain) < 0)
			tx->oom = true;
	}
	elems_flush(&e);
	if (e.s)
		nftnl_set_free(e.s);
}

static void add_map_elems(struct tx *tx, const struct plan *p, int family)
{
	map_elems_msg(tx, p->dispatch, p->ndispatch, family, 0, OBJ_MAPELEM);
}

/* msg 0: add the host addresses v (either family) to rejudge4/rejudge6;
 * NFT_MSG_DELSETELEM: delete them */
static void rejudge_elems_msg(struct tx *tx, const struct nf_cidr *v, size_t n, uint16_t msg, enum obj_kind kind)
{
	for (int fi = 0; fi < 2 && !tx->oom; fi++) {
		int family = fi ? AF_INET6 : AF_INET;
		struct elems e = { .tx = tx, .set = fi ? PLAN_SET_REJUDGE6 : PLAN_SET_REJUDGE4,
				   .set_id = tx->rejudge_id[fi], .kind = kind, .a = (size_t)family, .msg = msg };
		size_t len = plan_addr_len(family);

		for (size_t i = 0; i < n && !tx->oom; i++) {
			struct nftnl_set_elem *el;

			if (v[i].family != family)
				continue;
			el = elems_new(&e, i, ELEM_EST(len, 0));
			if (!el)
				break;
			elem_key(&e, el, v[i].addr, len);
		}
		elems_flush(&e);
		if (e.s)
			nftnl_set_free(e.s);
	}
}

/* ---- rule expressions, as nftables generates them ---- */

struct rb {
	struct nftnl_rule *r;
	bool oom;
};

/* Where finished rules go: NEWRULE messages of a batch (nft_apply), or a
 * list of nftnl_rule objects (nft_check_pod compares them with the
 * kernel's). One builder for both, so the check compares with exactly
 * what an apply sends. */
struct rsink {
	struct tx *tx;             /* into this batch, or */
	struct nftnl_rule **rules; /* collected here (caller frees) */
	size_t n, cap;
	bool oom;
	bool insert; /* into the batch at the head of the chain, not appended */
};

static bool sink_oom(const struct rsink *s)
{
	return s->oom || (s->tx && s->tx->oom);
}

static struct nftnl_expr *rb_expr(struct rb *rb, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (!e) {
		rb->oom = true;
		return NULL;
	}
	nftnl_rule_add_expr(rb->r, e);
	return e;
}

static void rb_meta(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void rb_payload(struct rb *rb, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

static void rb_cmp(struct rb *rb, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0)
		rb->oom = true;
}

static void rb_cmp_u8(struct rb *rb, uint32_t op, uint8_t v)
{
	rb_cmp(rb, op, &v, sizeof(v));
}

static void rb_cmp_be16(struct rb *rb, uint32_t op, uint16_t v)
{
	uint16_t be = htons(v);
	rb_cmp(rb, op, &be, sizeof(be));
}

static void rb_bitwise(struct rb *rb, const void *mask, const void *xor, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "bitwise");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	if (nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len) < 0 ||
	    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, len) < 0)
		rb->oom = true;
}

/* ct KEY into reg 1 */
static void rb_ct(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "ct");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
}

/* ct state established,related */
static void rb_ct_established(struct rb *rb)
{
	uint32_t ctmask = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0;

	rb_ct(rb, NFT_CT_STATE);
	rb_bitwise(rb, &ctmask, &zero, sizeof(ctmask));
	rb_cmp(rb, NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* dreg_verdict: a vmap lookup */
static void rb_lookup(struct rb *rb, const char *set, uint32_t set_id, bool dreg_verdict)
{
	struct nftnl_expr *e = rb_expr(rb, "lookup");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set) < 0)
		rb->oom = true;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	if (dreg_verdict)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
}

static void rb_verdict(struct rb *rb, int verdict)
{
	struct nftnl_expr *e = rb_expr(rb, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
}

static void rb_counter(struct rb *rb)
{
	rb_expr(rb, "counter");
}

static void rb_nfproto(struct rb *rb, int family)
{
	rb_meta(rb, NFT_META_NFPROTO);
	rb_cmp_u8(rb, NFT_CMP_EQ, family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6);
}

static void rb_l4proto(struct rb *rb, uint8_t proto)
{
	rb_meta(rb, NFT_META_L4PROTO);
	rb_cmp_u8(rb, NFT_CMP_EQ, proto);
}

/* netdev: meta protocol ip|ip6 */
static void rb_ethproto(struct rb *rb, int family)
{
	rb_meta(rb, NFT_META_PROTOCOL);
	rb_cmp_be16(rb, NFT_CMP_EQ, family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
}

/* ip saddr/daddr, ip6 saddr/daddr into reg 1 */
static void rb_addr(struct rb *rb, int family, bool dst)
{
	if (family == AF_INET)
		rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, dst ? 16 : 12, 4);
	else
		rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, dst ? 24 : 8, 16);
}

/* transport byte/word at offset, == lo or in lo..hi (nft 1.0.6: cmp gte + lte) */
static void rb_th_range(struct rb *rb, uint32_t offset, uint32_t len, uint16_t lo, uint16_t hi)
{
	rb_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, offset, len);
	if (len == 1) {
		if (hi > lo) {
			rb_cmp_u8(rb, NFT_CMP_GTE, (uint8_t)lo);
			rb_cmp_u8(rb, NFT_CMP_LTE, (uint8_t)hi);
		} else {
			rb_cmp_u8(rb, NFT_CMP_EQ, (uint8_t)lo);
		}
	} else {
		if (hi > lo) {
			rb_cmp_be16(rb, NFT_CMP_GTE, lo);
			rb_cmp_be16(rb, NFT_CMP_LTE, hi);
		} else {
			rb_cmp_be16(rb, NFT_CMP_EQ, lo);
		}
	}
}

static void rb_icmpv6_type(struct rb *rb, uint8_t lo, uint8_t hi)
{
	rb_l4proto(rb, IPPROTO_ICMPV6);
	rb_th_range(rb, 0, 1, lo, hi);
}

static int rb_begin(struct rb *rb, uint16_t family, const char *chain, const char *comment)
{
	struct nftnl_udata_buf *ud = NULL;
	char tb[PLAN_AS_TABLE_LEN];

	rb->oom = false;
	rb->r = nftnl_rule_alloc();
	if (!rb->r || nftnl_rule_set_str(rb->r, NFTNL_RULE_TABLE, table_of(family, chain, tb)) < 0 ||
	    nftnl_rule_set_str(rb->r, NFTNL_RULE_CHAIN, chain) < 0 ||
	    put_comment_udata(comment, NFTNL_UDATA_RULE_COMMENT, &ud) < 0)
		rb->oom = true;
	else if (ud && nftnl_rule_set_data(rb->r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud),
					   nftnl_udata_buf_len(ud)) < 0)
		rb->oom = true;
	if (ud)
		nftnl_udata_buf_free(ud);
	return rb->oom ? -ENOMEM : 0;
}

static void rb_commit(struct rb *rb, struct rsink *s, uint16_t family, enum obj_kind kind,
		      size_t a, size_t b)
{
	struct tx *tx = s->tx;
	struct nlmsghdr *nlh;

	if (rb->oom || !rb->r) {
		s->oom = true;
		if (tx)
			tx->oom = true;
	} else if (tx) {
		nlh = tx_hdr(tx, NFT_MSG_NEWRULE, family, s->insert ? NLM_F_CREATE : NLM_F_CREATE | NLM_F_APPEND,
			     kind, a, b);
		nftnl_rule_nlmsg_build_payload(nlh, rb->r);
		tx_next(tx);
	} else {
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 16;
			struct nftnl_rule **v = realloc(s->rules, cap * sizeof(*v));
			if (!v) {
				s->oom = true;
				goto free;
			}
			s->rules = v;
			s->cap = cap;
		}
		s->rules[s->n++] = rb->r;
		rb->r = NULL;
	}
free:
	if (rb->r)
		nftnl_rule_free(rb->r);
	rb->r = NULL;
}

static void sink_fini(struct rsink *s)
{
	for (size_t i = 0; i < s->n; i++)
		nftnl_rule_free(s->rules[i]);
	free(s->rules);
	s->rules = NULL;
	s->n = s->cap = 0;
}

/* ---- the layout ---- */

#define PLAN_BASE_HOOK NF_INET_PRE_ROUTING /* plan.h: PLAN_BASE_HOOK_NAME */

/* The rules that judge again, packet by packet, the established flows the
 * pods in rejudge4/rejudge6 started (txn.h): in the base chains only
 * while that is pending (a rule there costs every packet a lookup, which
 * showed as 3-6 % less throughput through the node), inserted ahead of
 * `ct state established,related accept`:
 *   ip saddr @rejudge4 ct state established,related ct direction original ip saddr vmap @egress4
 *   ip6 saddr @rejudge6 ... ip6 saddr vmap @egress6
 * (in that order: inserting puts each at the head, so IPv6 goes first). */
static void rejudge_rules(struct rsink *s, const uint32_t map_id[2], const uint32_t rejudge_id[2])
{
	const char *name = PLAN_CHAIN_BASE;
	struct rb rb;

	for (int fi = 1; fi >= 0; fi--) {
		int family = fi ? AF_INET6 : AF_INET;
		rb_begin(&rb, NFPROTO_INET, name, PLAN_REJUDGE_COMMENT);
		rb_nfproto(&rb, family);
		rb_addr(&rb, family, false);
		rb_lookup(&rb, fi ? PLAN_SET_REJUDGE6 : PLAN_SET_REJUDGE4, rejudge_id[fi], false);
		rb_ct_established(&rb);
		rb_ct(&rb, NFT_CT_DIRECTION);
		rb_cmp_u8(&rb, NFT_CMP_EQ, IP_CT_DIR_ORIGINAL);
		rb_addr(&rb, family, false);
		rb_lookup(&rb, fi ? PLAN_MAP_V6 : PLAN_MAP_V4, map_id[fi], true);
		rb_commit(&rb, s, NFPROTO_INET, OBJ_REJUDGERULE, 0, (size_t)fi);
	}
}

/* Does rule r use one of the sets rejudge4/rejudge6? */
static bool rule_rejudges(struct nftnl_rule *r)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;
	bool found = false;

	while (it && !found && (e = nftnl_expr_iter_next(it))) {
		const char *set;
		if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "lookup") != 0 ||
		    !nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET))
			continue;
		set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
		found = strcmp(set, PLAN_SET_REJUDGE4) == 0 || strcmp(set, PLAN_SET_REJUDGE6) == 0;
	}
	if (it)
		nftnl_expr_iter_destroy(it);
	return found;
}

/* map_id: the ids of egress4 and egress6 in the batch (0 outside one) */
static void base_chain_rules(struct rsink *s, const uint32_t map_id[2])
{
	const char *name = PLAN_CHAIN_BASE;
	struct rb rb;
	size_t n = 0;

	/* ct state established,related accept */
	rb_begin(&rb, NFPROTO_INET, name, NULL);
	rb_ct_established(&rb);
	rb_verdict(&rb, NF_ACCEPT);
	rb_commit(&rb, s, NFPROTO_INET, OBJ_BASERULE, 0, n++);

	/* icmpv6 type nd-router-solicit..nd-neighbor-advert accept: neighbour
	 * discovery must work for every pod, selected or not */
	rb_begin(&rb, NFPROTO_INET, name, NULL);
	rb_icmpv6_type(&rb, 133, 136);
	rb_verdict(&rb, NF_ACCEPT);
	rb_commit(&rb, s, NFPROTO_INET, OBJ_BASERULE, 0, n++);

	for (int fi = 0; fi < 2; fi++) {
		int family = fi ? AF_INET6 : AF_INET;
		/* ip saddr vmap @egress4 / ip6 saddr vmap @egress6 */
		rb_begin(&rb, NFPROTO_INET, name, NULL);
		rb_nfproto(&rb, family);
		rb_addr(&rb, family, false);
		rb_lookup(&rb, fi ? PLAN_MAP_V6 : PLAN_MAP_V4, map_id[fi], true);
		rb_commit(&rb, s, NFPROTO_INET, OBJ_BASERULE, 0, n++);
	}
}

static void add_base_chain(struct tx *tx)
{
	struct rsink s = { .tx = tx };

	add_chain(tx, NFPROTO_INET, PLAN_CHAIN_BASE, PLAN_BASE_HOOK, 0, NULL, NULL, OBJ_BASECHAIN, 0);
	base_chain_rules(&s, tx->map_id);
}

static int find_set(const struct plan *p, const char *name)
{
	if (p->sets_sorted) {
		size_t lo = 0, hi = p->nsets;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strcmp(p->sets[mid].name, name);
			if (c == 0)
				return (int)mid;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return -1;
	}
	for (size_t i = 0; i < p->nsets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* set_ids: the ids of the plan's sets in the batch (NULL outside one) */
static void pod_rule(struct rsink *s, const struct plan *p, size_t ci, size_t ri,
		     const uint32_t *set_ids)
{
	const struct plan_chain *c = &p->chains[ci];
	const struct plan_rule *r = &c->rules[ri];
	struct rb rb;

	rb_begin(&rb, NFPROTO_INET, c->name, r->comment);
	if (r->dst_set) {
		int si = find_set(p, r->dst_set);
		int family = p->sets[si].family;
		rb_nfproto(&rb, family);
		rb_addr(&rb, family, true);
		rb_lookup(&rb, r->dst_set, set_ids ? set_ids[si] : 0, false);
	} else if (r->family) {
		rb_nfproto(&rb, r->family);
	}
	if (r->l4proto)
		rb_l4proto(&rb, r->l4proto);
	if (r->port_lo) /* th dport */
		rb_th_range(&rb, 2, 2, r->port_lo, r->port_hi > r->port_lo ? r->port_hi : r->port_lo);
	rb_verdict(&rb, NF_ACCEPT);
	rb_commit(&rb, s, NFPROTO_INET, OBJ_RULE, ci, ri);
}

static void pod_chain_rules(struct rsink *s, const struct plan *p, size_t ci,
			    const uint32_t *set_ids)
{
	const struct plan_chain *c = &p->chains[ci];
	struct rb rb;

	for (size_t ri = 0; ri < c->nrules && !sink_oom(s); ri++)
		pod_rule(s, p, ci, ri, set_ids);
	rb_begin(&rb, NFPROTO_INET, c->name, NULL);
	rb_counter(&rb);
	rb_verdict(&rb, NF_DROP);
	rb_commit(&rb, s, NFPROTO_INET, OBJ_RULE, ci, c->nrules);
}

static void add_pod_chain_rules(struct tx *tx, const struct plan *p, size_t ci)
{
	struct rsink s = { .tx = tx };

	pod_chain_rules(&s, p, ci, tx->plan_set_ids);
}

static void antispoof_rules(struct rsink *s, const struct plan_antispoof *as, size_t ai)
{
	static const uint8_t ll_mask[16] = { 0xff, 0xc0 }, ll_net[16] = { 0xfe, 0x80 },
			     any6[16] = { 0 };
	/* What a host sends of ND and MLD (render.c): router solicitations,
	 * neighbour solicitations and advertisements and MLDv2 reports from
	 * link-local sources; DAD probes and MLD reports from :: (RFC 4862,
	 * RFC 3810). No router advertisement (134) nor redirect (137). Only
	 * for a pod with an IPv6 address. */
	static const struct {
		bool unspec;
		uint8_t lo, hi;
	} nd[] = { { false, 133, 133 }, { false, 135, 136 }, { false, 143, 143 },
		   { true, 135, 135 }, { true, 143, 143 } };
	size_t n = 0;
	bool has6 = plan_antispoof_has6(as);
	struct rb rb;

	for (int fi = 0; fi < 2; fi++) {
		int family = fi ? AF_INET6 : AF_INET;
		size_t len = plan_addr_len(family);

		for (size_t i = 0; i < as->naddrs; i++) {
			if (as->addrs[i].family != family)
				continue;
			rb_begin(&rb, NFPROTO_NETDEV, as->chain, NULL);
			rb_ethproto(&rb, family);
			rb_addr(&rb, family, false);
			rb_cmp(&rb, NFT_CMP_EQ, as->addrs[i].addr, (uint32_t)len);
			rb_verdict(&rb, NF_ACCEPT);
			rb_commit(&rb, s, NFPROTO_NETDEV, OBJ_ASRULE, ai, n++);
		}
		for (size_t i = 0; fi && has6 && i < NF_ARRAY_SIZE(nd); i++) {
			rb_begin(&rb, NFPROTO_NETDEV, as->chain, NULL);
			rb_ethproto(&rb, family);
			rb_addr(&rb, family, false);
			if (nd[i].unspec) {
				rb_cmp(&rb, NFT_CMP_EQ, any6, sizeof(any6));
			} else {
				rb_bitwise(&rb, ll_mask, any6, sizeof(ll_mask));
				rb_cmp(&rb, NFT_CMP_EQ, ll_net, sizeof(ll_net));
			}
			rb_icmpv6_type(&rb, nd[i].lo, nd[i].hi);
			rb_verdict(&rb, NF_ACCEPT);
			rb_commit(&rb, s, NFPROTO_NETDEV, OBJ_ASRULE, ai, n++);
		}
		/* a pod without an address of this family sends none of it */
		rb_begin(&rb, NFPROTO_NETDEV, as->chain, NULL);
		rb_ethproto(&rb, family);
		rb_verdict(&rb, NF_DROP);
		rb_commit(&rb, s, NFPROTO_NETDEV, OBJ_ASRULE, ai, n++);
	}
}

/* The pod's netdev table, its chain and the chain's rules. */
static void add_antispoof(struct tx *tx, const struct plan_antispoof *as, size_t ai)
{
	struct rsink s = { .tx = tx };
	uint32_t bit = 1u << plan_as_shard(as->chain);
	char tb[PLAN_AS_TABLE_LEN];

	/* once per table and batch: a policy change that selects 100 pods
	 * would send 100 messages that each find the table and do nothing */
	if (!(tx->as_made & bit))
		put_table(tx, NFPROTO_NETDEV, plan_as_table(as->chain, tb), false, OBJ_ASTABLE, ai);
	tx->as_made |= bit;
	add_chain(tx, NFPROTO_NETDEV, as->chain, NF_NETDEV_INGRESS, PLAN_ANTISPOOF_PRIO, as->dev,
		  NULL, OBJ_ASCHAIN, ai);
	antispoof_rules(&s, as, ai);
}

static int plan_check(const struct plan *p, struct nf_error *err)
{
	for (size_t ci = 0; ci < p->nchains; ci++) {
		const struct plan_chain *c = &p->chains[ci];
		for (size_t ri = 0; ri < c->nrules; ri++) {
			const struct plan_rule *r = &c->rules[ri];
			int si = r->dst_set ? find_set(p, r->dst_set) : 0;
			if (si < 0)
				return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
						    "invalid plan: chain \"%s\" rule %zu: unknown set \"%s\"",
						    c->name, ri, r->dst_set);
			if (r->dst_set && r->family && r->family != p->sets[si].family)
				return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
						    "invalid plan: chain \"%s\" rule %zu: set \"%s\" is of the other address family",
						    c->name, ri, r->dst_set);
			if (r->port_lo && !r->l4proto)
				return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
						    "invalid plan: chain \"%s\" rule %zu: a port needs a protocol",
						    c->name, ri);
		}
	}
	for (size_t si = 0; si < p->nsets; si++) {
		const struct plan_set *s = &p->sets[si];
		if (s->family != AF_INET && s->family != AF_INET6)
			return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
					    "invalid plan: set \"%s\": bad address family %d", s->name, s->family);
		for (size_t i = 0; i < s->n; i++)
			if (s->elems[i].family != s->family ||
			    s->elems[i].prefix > plan_addr_len(s->family) * 8)
				return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
						    "invalid plan: set \"%s\": element %zu is not an IPv%d prefix",
						    s->name, i, s->family == AF_INET ? 4 : 6);
	}
	return 0;
}

static void build(struct tx *tx, const struct plan *p)
{
	nftnl_batch_begin(tx->scratch, tx_note(tx, OBJ_BATCH, 0, 0));
	tx_next(tx);

	/* create if missing, so that the delete cannot fail with ENOENT */
	add_table(tx, false);
	add_table(tx, true);
	for (size_t i = 0; tx->stale && tx->stale[i]; i++)
		drop_table(tx, tx->stale[i], OBJ_STALETABLE, i);

	if (p && !plan_is_empty(p)) {
		add_table(tx, false);
		tx->map_id[0] = add_set(tx, PLAN_MAP_V4, AF_INET, false, true, NULL, OBJ_MAP, AF_INET);
		tx->map_id[1] = add_set(tx, PLAN_MAP_V6, AF_INET6, false, true, NULL, OBJ_MAP, AF_INET6);
		tx->rejudge_id[0] = add_set(tx, PLAN_SET_REJUDGE4, AF_INET, false, false, PLAN_REJUDGE_COMMENT,
					    OBJ_REJUDGESET, AF_INET);
		tx->rejudge_id[1] = add_set(tx, PLAN_SET_REJUDGE6, AF_INET6, false, false, PLAN_REJUDGE_COMMENT,
					    OBJ_REJUDGESET, AF_INET6);
		/* the policies' peer sets first, then the kinds' ipBlock sets:
		 * the kernel finds a set by name walking the table's sets in
		 * creation order, and an ADD names peer sets (its addresses,
		 * a new kind's rules) more than one kind's own */
		for (int kinds = 0; kinds < 2; kinds++)
			for (size_t i = 0; i < p->nsets; i++) {
				const struct plan_set *s = &p->sets[i];
				if (plan_set_of_chain(s->name, NULL) != kinds)
					continue;
				tx->plan_set_ids[i] = add_set(tx, s->name, s->family, s->interval, false,
							      s->comment, OBJ_SET, i);
				add_set_elems(tx, s, i);
			}
		/* in render.c's order (`nft list` lists chains in creation
		 * order); pod chains before the map elements that jump to them */
		add_base_chain(tx);
		for (size_t i = 0; i < p->nchains; i++)
			add_chain(tx, NFPROTO_INET, p->chains[i].name, -1, 0, NULL,
				  p->chains[i].comment, OBJ_CHAIN, i);
		for (size_t i = 0; i < p->nchains && !tx->oom; i++)
			add_pod_chain_rules(tx, p, i);
		add_map_elems(tx, p, AF_INET);
		add_map_elems(tx, p, AF_INET6);

		for (size_t i = 0; i < p->nantispoof && !tx->oom; i++) {
			/* the pod is gone (see the top of this file) */
			if (if_nametoindex(p->antispoof[i].dev) == 0)
				continue;
			add_antispoof(tx, &p->antispoof[i], i);
		}
	}

	nftnl_batch_end(tx->scratch, tx_note(tx, OBJ_BATCH, 0, 0));
	tx_next(tx);
}

/* ---- talking to the kernel ---- */

/* "10.0.0.0/8" (prefix < 0: address only) */
static void fmt_addr(const struct nf_cidr *c, int prefix, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, a, sizeof(a));
	if (prefix >= 0)
		snprintf(buf, len, "%s/%d", a, prefix);
	else
		snprintf(buf, len, "%s", a);
}

static const char *family_name(uint32_t f)
{
	return f == NFPROTO_NETDEV ? "netdev" : "inet";
}

static void describe(const struct tx *tx, const struct plan *p, const struct obj *o, char *buf,
		     size_t len)
{
	char tb[PLAN_AS_TABLE_LEN];

	switch (o->kind) {
	case OBJ_BATCH:
		snprintf(buf, len, "the transaction");
		break;
	case OBJ_TABLE:
		snprintf(buf, len, "table %s %s", family_name(o->a), PLAN_TABLE);
		break;
	case OBJ_DELTABLE:
		snprintf(buf, len, "deleting table %s %s", family_name(o->a), PLAN_TABLE);
		break;
	case OBJ_ASTABLE:
		snprintf(buf, len, "table netdev %s", plan_as_table(p->antispoof[o->a].chain, tb));
		break;
	case OBJ_STALETABLE:
		snprintf(buf, len, "deleting table netdev %s", tx->stale[o->a]);
		break;
	case OBJ_SET:
		snprintf(buf, len, "set \"%s\"", p->sets[o->a].name);
		break;
	case OBJ_SETELEM: {
		const struct plan_set *s = &p->sets[o->a];
		char c[INET6_ADDRSTRLEN + 8] = "?";
		if (o->b < s->n)
			fmt_addr(&s->elems[o->b], s->interval ? s->elems[o->b].prefix : -1, c,
				 sizeof(c));
		snprintf(buf, len, "set \"%s\" (elements %u-%u of %zu, from %s)", s->name, o->b,
			 o->b + o->n - 1, s->n, c);
		break;
	}
	case OBJ_MAP:
		snprintf(buf, len, "map \"%s\"", o->a == AF_INET ? PLAN_MAP_V4 : PLAN_MAP_V6);
		break;
	case OBJ_MAPELEM: {
		/* the likely culprit: a jump to a chain the plan does not have */
		const struct plan_dispatch *d = NULL;
		char a[INET6_ADDRSTRLEN + 8] = "?";
		for (size_t i = o->b; i < p->ndispatch && i < (size_t)o->b + o->n && !d; i++) {
			bool found = false;
			if (p->dispatch[i].addr.family != (int)o->a)
				continue;
			for (size_t j = 0; j < p->nchains && !found; j++)
				found = strcmp(p->chains[j].name, p->dispatch[i].chain) == 0;
			if (!found)
				d = &p->dispatch[i];
		}
		if (!d && o->b < p->ndispatch)
			d = &p->dispatch[o->b];
		if (d)
			fmt_addr(&d->addr, -1, a, sizeof(a));
		snprintf(buf, len, "map \"%s\" (dispatch entries %u-%u, e.g. %s : jump %s)",
			 o->a == AF_INET ? PLAN_MAP_V4 : PLAN_MAP_V6, o->b, o->b + o->n - 1, a,
			 d ? d->chain : "?");
		break;
	}
	case OBJ_BASECHAIN:
		snprintf(buf, len, "chain \"%s\"", PLAN_CHAIN_BASE);
		break;
	case OBJ_BASERULE:
		snprintf(buf, len, "chain \"%s\" (rule %u)", PLAN_CHAIN_BASE, o->b);
		break;
	case OBJ_CHAIN:
		snprintf(buf, len, "chain \"%s\"", p->chains[o->a].name);
		break;
	case OBJ_RULE: {
		const struct plan_chain *c = &p->chains[o->a];
		if (o->b >= c->nrules)
			snprintf(buf, len, "chain \"%s\" (final counter drop)", c->name);
		else if (c->rules[o->b].comment)
			snprintf(buf, len, "chain \"%s\" (rule %u, %s)", c->name, o->b,
				 c->rules[o->b].comment);
		else
			snprintf(buf, len, "chain \"%s\" (rule %u)", c->name, o->b);
		break;
	}
	case OBJ_ASCHAIN:
		snprintf(buf, len, "chain \"%s\" on device \"%s\"", p->antispoof[o->a].chain,
			 p->antispoof[o->a].dev);
		break;
	case OBJ_ASRULE:
		snprintf(buf, len, "chain \"%s\" (rule %u)", p->antispoof[o->a].chain, o->b);
		break;
	case OBJ_DIFFELEM:
		snprintf(buf, len, "adding elements to set \"%s\"", p->sets[o->a].name);
		break;
	case OBJ_DIFFDELELEM:
		snprintf(buf, len, "removing elements from set \"%s\"", p->sets[o->a].name);
		break;
	case OBJ_DIFFMAPADD:
	case OBJ_DIFFMAPDEL:
		snprintf(buf, len, "%s entries of map \"%s\"", o->kind == OBJ_DIFFMAPADD ? "adding" : "removing",
			 o->a == AF_INET ? PLAN_MAP_V4 : PLAN_MAP_V6);
		break;
	case OBJ_DIFFFLUSH:
		snprintf(buf, len, "flushing chain \"%s\" to replace its rules", p->chains[o->a].name);
		break;
	case OBJ_OLDFLUSH:
	case OBJ_OLDCHAIN:
		snprintf(buf, len, "%s chain \"%s\"", o->kind == OBJ_OLDFLUSH ? "flushing" : "deleting",
			 tx->before->chains[o->a].name);
		break;
	case OBJ_OLDSET:
		snprintf(buf, len, "deleting set \"%s\"", tx->before->sets[o->a].name);
		break;
	case OBJ_OLDAS:
		snprintf(buf, len, "deleting chain \"%s\" from table netdev %s", tx->before->antispoof[o->a].chain,
			 plan_as_table(tx->before->antispoof[o->a].chain, tb));
		break;
	case OBJ_OLDASTABLE:
		snprintf(buf, len, "deleting table netdev %s (chain \"%s\", the last of it)",
			 plan_as_table(tx->before->antispoof[o->a].chain, tb), tx->before->antispoof[o->a].chain);
		break;
	case OBJ_ASFLUSH:
		snprintf(buf, len, "flushing chain \"%s\" to replace its rules", p->antispoof[o->a].chain);
		break;
	case OBJ_RMELEM: {
		char a[INET6_ADDRSTRLEN + 8] = "?";
		fmt_addr(&tx->rm_keys[o->b], -1, a, sizeof(a));
		snprintf(buf, len, "deleting %s from map \"%s\"", a,
			 o->a == AF_INET ? PLAN_MAP_V4 : PLAN_MAP_V6);
		break;
	}
	case OBJ_RMRULES:
		snprintf(buf, len, "flushing chain \"%s\"", tx->rm_chains[o->a]);
		break;
	case OBJ_RMCHAIN:
		snprintf(buf, len, "deleting chain \"%s\"", tx->rm_chains[o->a]);
		break;
	case OBJ_RMSET:
		snprintf(buf, len, "deleting set \"%s\"", tx->rm_sets[o->a]);
		break;
	case OBJ_RMASCHAIN:
		snprintf(buf, len, "deleting chain \"%s\" from table netdev %s", tx->rm_as, plan_as_table(tx->rm_as, tb));
		break;
	case OBJ_REJUDGERULE:
	case OBJ_REJUDGERULEDEL:
		snprintf(buf, len, "%s the re-judging rule (IPv%s) of chain \"%s\"",
			 o->kind == OBJ_REJUDGERULE ? "inserting" : "deleting", o->b ? "6" : "4", PLAN_CHAIN_BASE);
		break;
	case OBJ_REJUDGESET:
	case OBJ_REJUDGEADD:
	case OBJ_REJUDGEDEL:
		snprintf(buf, len, "%sset \"%s\"",
			 o->kind == OBJ_REJUDGEADD ? "adding addresses to " : o->kind == OBJ_REJUDGEDEL ? "removing addresses from " : "",
			 o->a == AF_INET ? PLAN_SET_REJUDGE4 : PLAN_SET_REJUDGE6);
		break;
	default:
		snprintf(buf, len, "message of unknown kind");
	}
}

struct kerr {
	uint32_t seq;
	int error; /* positive errno */
	char extack[256];
};

static int open_socket(struct mnl_socket **out, struct nf_error *err)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	int one = 1;

	if (!nl)
		return nf_error_set(err, errno, NF_ERR_KERNEL,
				    "opening the nftables netlink socket: %s", strerror(errno));
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(nl);
		return nf_error_set(err, e, NF_ERR_KERNEL,
				    "binding the nftables netlink socket: %s", strerror(e));
	}
	/* errors without a copy of the (possibly 64 KiB) request, but with
	 * the kernel's explanation when it has one */
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	*out = nl;
	return 0;
}

static void parse_error(const struct nlmsghdr *nlh, struct kerr *ke)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	unsigned off;

	ke->seq = e->msg.nlmsg_seq;
	ke->error = -e->error;
	ke->extack[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	if (mnl_nlmsg_get_payload_len(nlh) < off)
		return;
	mnl_attr_for_each(attr, nlh, off) {
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			snprintf(ke->extack, sizeof(ke->extack), "%s", mnl_attr_get_str(attr));
	}
}

/* Sends the batch in one sendmsg() and collects every error. */
static int tx_talk(struct tx *tx, const struct plan *p, struct nf_error *err)
{
	struct mnl_socket *nl = NULL;
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
	struct iovec *iov = NULL;
	struct kerr *kerrs = NULL;
	size_t nkerrs = 0, kcap = 0, total = 0;
	char *buf = NULL;
	struct msghdr msg;
	int niov, r, fd;

	r = open_socket(&nl, err);
	if (r < 0)
		return r;
	fd = mnl_socket_get_fd(nl);

	niov = nftnl_batch_iovec_len(tx->batch);
	iov = calloc((size_t)niov, sizeof(*iov));
	buf = malloc(RECV_BUF_SIZE);
	if (!iov || !buf) {
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
		goto out;
	}
	nftnl_batch_iovec(tx->batch, iov, (uint32_t)niov);
	for (int i = 0; i < niov; i++)
		total += iov[i].iov_len;

	/* netlink refuses a message larger than the send buffer (EMSGSIZE) */
	if (total + 4096 > 200 * 1024) {
		int sz = total + 4096 > INT_MAX / 2 ? INT_MAX / 2 : (int)(total + 4096);
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	msg = (struct msghdr){ .msg_name = &snl, .msg_namelen = sizeof(snl), .msg_iov = iov,
			       .msg_iovlen = (size_t)niov };
	if (sendmsg(fd, &msg, 0) < 0) {
		r = nf_error_set(err, errno, NF_ERR_KERNEL,
				 "sending the nftables transaction (%zu bytes): %s", total,
				 strerror(errno));
		goto out;
	}

	/* The kernel processes the whole batch inside sendmsg(): every error
	 * (NLMSG_ERROR, one per failing message, all messages are tried) is
	 * queued on the socket when it returns. So only errors are asked for
	 * (an ack per message could overflow the receive buffer on a large
	 * plan) and the socket is drained without blocking, as nft does. */
	for (;;) {
		ssize_t n = recv(fd, buf, RECV_BUF_SIZE, MSG_DONTWAIT);
		const struct nlmsghdr *nlh;
		int left;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS && nkerrs)
				break; /* too many errors to keep: report the first ones */
			r = nf_error_set(err, errno, NF_ERR_KERNEL, "reading nftables' answer: %s",
					 strerror(errno));
			goto out;
		}
		left = (int)n;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			struct kerr ke;

			if (nlh->nlmsg_type != NLMSG_ERROR ||
			    mnl_nlmsg_get_payload_len(nlh) < sizeof(struct nlmsgerr))
				continue;
			parse_error(nlh, &ke);
			if (ke.error == 0)
				continue;
			if (nkerrs == kcap) {
				size_t cap = kcap ? kcap * 2 : 8;
				struct kerr *k = realloc(kerrs, cap * sizeof(*k));
				if (!k) {
					r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
					goto out;
				}
				kerrs = k;
				kcap = cap;
			}
			kerrs[nkerrs++] = ke;
		}
	}

	r = 0;
	if (!nkerrs && tx->deletes)
		nlsock_note_deletions();
	if (nkerrs) {
		const struct kerr *k = &kerrs[0];
		char what[512] = "";
		size_t used = 0;

		if (k->seq - tx->base < tx->seq - tx->base)
			describe(tx, p, &tx->objs[k->seq - tx->base], what, sizeof(what));
		else
			snprintf(what, sizeof(what), "message %u", k->seq);
		r = nf_error_set(err, k->error, NF_ERR_KERNEL, "nftables rejected %s: %s%s%s%s",
				 what, strerror(k->error), k->extack[0] ? " (" : "", k->extack,
				 k->extack[0] ? ")" : "");
		if (k->error == EPERM && err)
			snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
				 " (netfence needs CAP_NET_ADMIN in the node's network namespace)");
		/* later errors are usually consequences of the first */
		for (size_t i = 1; err && i < nkerrs && used + 1 < sizeof(err->details); i++) {
			k = &kerrs[i];
			if (k->seq - tx->base < tx->seq - tx->base)
				describe(tx, p, &tx->objs[k->seq - tx->base], what, sizeof(what));
			else
				snprintf(what, sizeof(what), "message %u", k->seq);
			used += (size_t)snprintf(err->details + used, sizeof(err->details) - used,
						 "%s%s: %s", i > 1 ? "; " : "then ", what,
						 strerror(k->error));
		}
		if (err && used >= sizeof(err->details))
			err->details[sizeof(err->details) - 1] = '\0';
	}
out:
	free(kerrs);
	free(buf);
	free(iov);
	nlsock_close(nl);
	return r;
}

static int as_tables(char ***out, struct nf_error *err);

static int run(const struct plan *p, struct nf_error *err)
{
	char **stale = NULL;
	struct tx tx;
	int r;

	if ((r = as_tables(&stale, err)) < 0)
		return r;
	r = tx_init(&tx, p);
	if (r < 0) {
		tx_fini(&tx);
		free_names(stale);
		return nf_error_set(err, -r, NF_ERR_KERNEL, "out of memory");
	}
	tx.stale = stale;
	build(&tx, p);
	if (tx.oom)
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL,
				 "out of memory building the nftables transaction");
	else
		r = tx_talk(&tx, p, err);
	tx_fini(&tx);
	free_names(stale);
	return r;
}

int nft_apply(const struct plan *p, struct nf_error *err)
{
	int r = p ? plan_check(p, err) : 0;

	if (r < 0)
		return r;
	return run(p, err);
}

/* ---- incremental changes ----
 *
 * A change usually touches one pod: its chain, its dispatch entries, its
 * anti-spoofing chain, and its address in the peer sets that select it.
 * nft_apply_diff sends only what differs between the plan the kernel holds
 * (before) and the new one, in one transaction; whatever does not fit that
 * picture (first or last selected pod) goes through the full rebuild. */

struct nidx {
	const char *name;
	size_t i;
};

static int nidx_cmp(const void *a, const void *b)
{
	return strcmp(((const struct nidx *)a)->name, ((const struct nidx *)b)->name);
}

/* sorted (name, index) pairs of n objects of size sz whose first member is
 * the name */
static struct nidx *nidx_build(const void *v, size_t n, size_t sz)
{
	struct nidx *x = calloc(n + 1, sizeof(*x));

	if (!x)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		x[i].name = *(char *const *)((const char *)v + i * sz);
		x[i].i = i;
	}
	qsort(x, n, sizeof(*x), nidx_cmp);
	return x;
}

static long nidx_find(const struct nidx *x, size_t n, const char *name)
{
	struct nidx key = { .name = name };
	const struct nidx *f = bsearch(&key, x, n, sizeof(*x), nidx_cmp);

	return f ? (long)f->i : -1;
}


static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool rules_equal(const struct plan_chain *a, const struct plan_chain *b)
{
	if (a->nrules != b->nrules)
		return false;
	for (size_t i = 0; i < a->nrules; i++) {
		const struct plan_rule *x = &a->rules[i], *y = &b->rules[i];
		if (x->family != y->family || x->l4proto != y->l4proto || x->port_lo != y->port_lo ||
		    x->port_hi != y->port_hi || !str_eq(x->dst_set, y->dst_set) || !str_eq(x->comment, y->comment))
			return false;
	}
	return true;
}

static bool antispoof_equal(const struct plan_antispoof *a, const struct plan_antispoof *b)
{
	if (strcmp(a->dev, b->dev) != 0 || a->naddrs != b->naddrs)
		return false;
	for (size_t i = 0; i < a->naddrs; i++)
		if (nf_cidr_cmp(&a->addrs[i], &b->addrs[i]) != 0)
			return false;
	return true;
}

static void flush_chain(struct tx *tx, uint16_t family, const char *chain, enum obj_kind kind, size_t a)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	char tb[PLAN_AS_TABLE_LEN];

	if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table_of(family, chain, tb)) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain) < 0) {
		tx->oom = true;
	} else {
		nftnl_rule_nlmsg_build_payload(tx_hdr(tx, NFT_MSG_DELRULE, family, 0, kind, a, 0), r);
		tx_next(tx);
	}
	if (r)
		nftnl_rule_free(r);
}

static void del_chain(struct tx *tx, uint16_t family, const char *chain, enum obj_kind kind, size_t a)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	char tb[PLAN_AS_TABLE_LEN];

	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table_of(family, chain, tb)) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain) < 0) {
		tx->oom = true;
	} else {
		nftnl_chain_nlmsg_build_payload(tx_hdr(tx, NFT_MSG_DELCHAIN, family, 0, kind, a, 0), c);
		tx_next(tx);
	}
	if (c)
		nftnl_chain_free(c);
}

/* kind OBJ_OLDSET, OBJ_RMSET: delete the set; OBJ_DIFFDELELEM: flush its elements */
static void del_set(struct tx *tx, const char *name, enum obj_kind kind, size_t a)
{
	struct nftnl_set *st = nftnl_set_alloc();

	if (!st || nftnl_set_set_str(st, NFTNL_SET_TABLE, PLAN_TABLE) < 0 ||
	    nftnl_set_set_str(st, NFTNL_SET_NAME, name) < 0) {
		tx->oom = true;
	} else if (kind == OBJ_OLDSET || kind == OBJ_RMSET) {
		nftnl_set_nlmsg_build_payload(tx_hdr(tx, NFT_MSG_DELSET, NFPROTO_INET, 0, kind, a, 0), st);
		tx_next(tx);
	} else {
		nftnl_set_elems_nlmsg_build_payload(tx_hdr(tx, NFT_MSG_DELSETELEM, NFPROTO_INET, 0, kind, a, 0), st);
		tx_next(tx);
	}
	if (st)
		nftnl_set_free(st);
}

/* Elements of a sorted array that are not in another: the result borrows
 * nothing (a copy). */
static struct nf_cidr *minus(const struct nf_cidr *a, size_t na, const struct nf_cidr *b, size_t nb,
			     size_t *nout)
{
	struct nf_cidr *v = calloc(na + 1, sizeof(*v));
	size_t i = 0, j = 0, n = 0;

	if (!v)
		return NULL;
	while (i < na) {
		int c = j < nb ? nf_cidr_cmp(&a[i], &b[j]) : -1;
		if (c < 0)
			v[n++] = a[i++];
		else if (c > 0)
			j++;
		else
			i++, j++;
	}
	*nout = n;
	return v;
}

static int dispatch_cmp(const void *x, const void *y)
{
	const struct plan_dispatch *a = x, *b = y;
	int c = nf_cidr_cmp(&a->addr, &b->addr);
	return c ? c : strcmp(a->chain, b->chain);
}

/* dispatch entries of a that b lacks (same address and chain) */
static struct plan_dispatch *dispatch_minus(const struct plan *a, const struct plan *b, size_t *nout)
{
	struct plan_dispatch *sa = calloc(a->ndispatch + 1, sizeof(*sa)), *sb = calloc(b->ndispatch + 1, sizeof(*sb));
	struct plan_dispatch *v = calloc(a->ndispatch + 1, sizeof(*v));
	size_t i = 0, j = 0, n = 0;

	if (!sa || !sb || !v) {
		free(sa);
		free(sb);
		free(v);
		return NULL;
	}
	memcpy(sa, a->dispatch, a->ndispatch * sizeof(*sa));
	memcpy(sb, b->dispatch, b->ndispatch * sizeof(*sb));
	qsort(sa, a->ndispatch, sizeof(*sa), dispatch_cmp);
	qsort(sb, b->ndispatch, sizeof(*sb), dispatch_cmp);
	while (i < a->ndispatch) {
		int c = j < b->ndispatch ? dispatch_cmp(&sa[i], &sb[j]) : -1;
		if (c < 0)
			v[n++] = sa[i++];
		else if (c > 0)
			j++;
		else
			i++, j++;
	}
	free(sa);
	free(sb);
	*nout = n;
	return v;
}

/* the re-judging rules in the base chains (rule_rejudges) */
struct rj_rules {
	size_t n;
	uint64_t handle[8];
};
static int rejudge_rules_present(bool *present, struct nf_error *err);
/* The anti-spoofing chains in the kernel: (table, chain); all of them
 * (as_list_load), or (counted) those of some chains asked for one by one
 * that exist, with the number of chains of each of their tables */
struct as_list {
	char **tab, **chain;
	size_t n, cap;
	bool oom;
	bool counted;
	uint32_t use[PLAN_AS_SHARDS]; /* counted: chains in table NN */
};
/* at most this many chains are asked for one by one, not listed */
#define AS_PROBE_MAX 8
static int as_list_load(const char *table, struct as_list *x);
static int as_list_probe(const struct plan *b, const size_t *gone, const unsigned *sh, size_t ngone,
			 struct as_list *x);
static void as_list_free(struct as_list *x);

/* Deletes the anti-spoofing chains of b that p does not have. The plans
 * may be one pod's share (nft_apply_delta), so what else a table holds is
 * asked of the kernel (one listing): a table whose chains all go, and
 * that gets none from p, goes whole (made first, so that the delete
 * cannot fail); else each chain the kernel has is flushed and deleted (a
 * full apply skips the chains of devices that do not exist, so the
 * kernel may never have had it). When the kernel cannot be asked, each
 * chain is deleted, and the transaction says what is wrong. */
static int del_antispoof(struct tx *tx, const struct plan *b, const struct plan *p, const struct nidx *pa,
			 size_t *nchanges)
{
	struct as_list k = { 0 };
	/* gone: the indexes in b of the chains that go; sh: their tables */
	size_t *gone = calloc(b->nantispoof + 1, sizeof(*gone)), ngone = 0;
	unsigned *sh = calloc(b->nantispoof + 1, sizeof(*sh));
	char tb[PLAN_AS_TABLE_LEN];
	bool known, one_table = true;
	int r = 0;

	if (!gone || !sh) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->nantispoof; i++)
		if (nidx_find(pa, p->nantispoof, b->antispoof[i].chain) < 0) {
			sh[ngone] = plan_as_shard(b->antispoof[i].chain);
			gone[ngone++] = i;
		}
	if (ngone == 0)
		goto out;
	for (size_t g = 1; g < ngone && one_table; g++)
		one_table = sh[g] == sh[0];
	/* a listing holds every netdev chain of the node (the kernel does not
	 * filter a dump of chains by table): at 500 pods, 0.3 ms of a DEL.
	 * So a few chains are asked for one by one, with their tables' sizes. */
	r = ngone <= AS_PROBE_MAX ? as_list_probe(b, gone, sh, ngone, &k)
				  : as_list_load(one_table ? plan_as_table(b->antispoof[gone[0]].chain, tb) : NULL, &k);
	if (r == -ENOMEM)
		goto out;
	known = r == 0;
	r = 0;
	for (size_t g = 0; g < ngone; g++) {
		bool first = true, whole = known;

		plan_as_table(b->antispoof[gone[g]].chain, tb);
		for (size_t e = 0; e < g && first; e++) /* each table once */
			first = sh[e] != sh[g];
		if (!first)
			continue;
		/* whole: every chain of it in the kernel goes, and p adds none
		 * (counted: the chains that go that it has are all it has) */
		if (k.counted && whole) {
			size_t nk = 0;
			for (size_t c = 0; c < k.n; c++)
				nk += strcmp(k.tab[c], tb) == 0;
			whole = k.use[sh[g]] == nk;
		}
		for (size_t c = 0; c < k.n && whole && !k.counted; c++) {
			bool going = false;
			if (strcmp(k.tab[c], tb) != 0)
				continue;
			for (size_t e = g; e < ngone && !going; e++)
				going = strcmp(k.chain[c], b->antispoof[gone[e]].chain) == 0;
			whole = going;
		}
		for (size_t i = 0; i < p->nantispoof && whole; i++)
			whole = plan_as_shard(p->antispoof[i].chain) != sh[g];
		if (whole) {
			drop_table(tx, tb, OBJ_OLDASTABLE, gone[g]);
			(*nchanges)++;
			continue;
		}
		for (size_t e = g; e < ngone; e++) {
			const char *c = b->antispoof[gone[e]].chain;
			bool there = !known;
			if (sh[e] != sh[g])
				continue;
			for (size_t x = 0; x < k.n && !there; x++)
				there = strcmp(k.chain[x], c) == 0 && strcmp(k.tab[x], tb) == 0;
			if (there) {
				flush_chain(tx, NFPROTO_NETDEV, c, OBJ_OLDAS, gone[e]);
				del_chain(tx, NFPROTO_NETDEV, c, OBJ_OLDAS, gone[e]);
				(*nchanges)++;
			}
		}
	}
out:
	as_list_free(&k);
	free(gone);
	free(sh);
	return r;
}

/* Builds the difference into tx; *nchanges counts what differs. */
static int build_diff(struct tx *tx, const struct plan *b, const struct plan *p, const struct nf_cidr *rejudge,
		      size_t nrejudge, size_t *nchanges)
{
	struct nidx *bs = nidx_build(b->sets, b->nsets, sizeof(*b->sets));
	struct nidx *bc = nidx_build(b->chains, b->nchains, sizeof(*b->chains));
	struct nidx *ba = nidx_build(b->antispoof, b->nantispoof, sizeof(*b->antispoof));
	struct nidx *ps = nidx_build(p->sets, p->nsets, sizeof(*p->sets));
	struct nidx *pc = nidx_build(p->chains, p->nchains, sizeof(*p->chains));
	struct nidx *pa = nidx_build(p->antispoof, p->nantispoof, sizeof(*p->antispoof));
	struct plan_dispatch *gone = NULL, *added = NULL;
	size_t ngone = 0, nadded = 0, n = 0;
	int r = -ENOMEM;

	if (!bs || !bc || !ba || !ps || !pc || !pa || !(gone = dispatch_minus(b, p, &ngone)) ||
	    !(added = dispatch_minus(p, b, &nadded)))
		goto out;
	tx->before = b;
	nftnl_batch_begin(tx->scratch, tx_note(tx, OBJ_BATCH, 0, 0));
	tx_next(tx);

	/* 1. dispatch entries that go (or change): before any chain goes */
	if (ngone) {
		map_elems_msg(tx, gone, ngone, AF_INET, NFT_MSG_DELSETELEM, OBJ_DIFFMAPDEL);
		map_elems_msg(tx, gone, ngone, AF_INET6, NFT_MSG_DELSETELEM, OBJ_DIFFMAPDEL);
		n += ngone;
	}
	/* 2. pod chains that go */
	for (size_t i = 0; i < b->nchains; i++) {
		if (nidx_find(pc, p->nchains, b->chains[i].name) >= 0)
			continue;
		flush_chain(tx, NFPROTO_INET, b->chains[i].name, OBJ_OLDFLUSH, i);
		del_chain(tx, NFPROTO_INET, b->chains[i].name, OBJ_OLDCHAIN, i);
		n++;
	}
	/* 3. sets: new ones, and the elements of changed ones */
	for (size_t i = 0; i < p->nsets && !tx->oom; i++) {
		const struct plan_set *s = &p->sets[i];
		long j = nidx_find(bs, b->nsets, s->name);
		const struct plan_set *o = j >= 0 ? &b->sets[j] : NULL;

		if (!o) {
			tx->plan_set_ids[i] = add_set(tx, s->name, s->family, s->interval, false, s->comment,
						      OBJ_SET, i);
			add_set_elems(tx, s, i);
			n++;
			continue;
		}
		if (o->n == s->n) {
			size_t k = 0;
			while (k < s->n && nf_cidr_cmp(&o->elems[k], &s->elems[k]) == 0)
				k++;
			if (k == s->n)
				continue;
		}
		n++;
		if (s->interval) { /* ranges merge in the kernel: replace them all */
			del_set(tx, s->name, OBJ_DIFFDELELEM, i);
			add_set_elems(tx, s, i);
		} else {
			struct plan_set d = *s;
			size_t k;
			d.elems = minus(o->elems, o->n, s->elems, s->n, &k);
			d.n = k;
			if (!d.elems)
				goto out;
			if (d.n)
				set_elems_msg(tx, &d, i, 0, NFT_MSG_DELSETELEM, OBJ_DIFFDELELEM);
			free(d.elems);
			d.elems = minus(s->elems, s->n, o->elems, o->n, &k);
			d.n = k;
			if (!d.elems)
				goto out;
			if (d.n)
				set_elems_msg(tx, &d, i, 0, 0, OBJ_DIFFELEM);
			free(d.elems);
		}
	}
	/* 4. pod chains: new ones, and changed ones refilled */
	for (size_t i = 0; i < p->nchains && !tx->oom; i++) {
		const struct plan_chain *c = &p->chains[i];
		long j = nidx_find(bc, b->nchains, c->name);

		if (j >= 0 && rules_equal(c, &b->chains[j]))
			continue;
		if (j >= 0)
			flush_chain(tx, NFPROTO_INET, c->name, OBJ_DIFFFLUSH, i);
		else
			add_chain(tx, NFPROTO_INET, c->name, -1, 0, NULL, c->comment, OBJ_CHAIN, i);
		add_pod_chain_rules(tx, p, i);
		n++;
	}
	/* 5. sets that go, now that no rule uses them */
	for (size_t i = 0; i < b->nsets; i++) {
		if (nidx_find(ps, p->nsets, b->sets[i].name) >= 0)
			continue;
		del_set(tx, b->sets[i].name, OBJ_OLDSET, i);
		n++;
	}
	/* 6. dispatch entries that come, now that their chains exist */
	if (nadded) {
		map_elems_msg(tx, added, nadded, AF_INET, 0, OBJ_DIFFMAPADD);
		map_elems_msg(tx, added, nadded, AF_INET6, 0, OBJ_DIFFMAPADD);
		n += nadded;
	}
	/* the pods whose flows the new chains judge again (txn.h) */
	if (nrejudge) {
		rejudge_elems_msg(tx, rejudge, nrejudge, 0, OBJ_REJUDGEADD);
		if (!tx->rejudge_rules_present) {
			struct rsink sink = { .tx = tx, .insert = true };
			rejudge_rules(&sink, tx->map_id, tx->rejudge_id);
		}
		n++;
	}
	/* 7. anti-spoofing chains, in their tables (plan.h) */
	if ((r = del_antispoof(tx, b, p, pa, &n)) < 0)
		goto out;
	r = -ENOMEM;
	for (size_t i = 0; i < p->nantispoof && !tx->oom; i++) {
		const struct plan_antispoof *a = &p->antispoof[i];
		long j = nidx_find(ba, b->nantispoof, a->chain);
		struct rsink sink = { .tx = tx };

		if (j >= 0 && antispoof_equal(a, &b->antispoof[j]))
			continue;
		n++;
		if (j >= 0) {
			flush_chain(tx, NFPROTO_NETDEV, a->chain, OBJ_ASFLUSH, i);
			antispoof_rules(&sink, a, i);
			continue;
		}
		if (if_nametoindex(a->dev) == 0) /* the pod is gone already */
			continue;
		add_antispoof(tx, a, i);
	}
	nftnl_batch_end(tx->scratch, tx_note(tx, OBJ_BATCH, 0, 0));
	tx_next(tx);
	*nchanges = n;
	r = tx->oom ? -ENOMEM : 0;
out:
	free(bs);
	free(bc);
	free(ba);
	free(ps);
	free(pc);
	free(pa);
	free(gone);
	free(added);
	return r;
}

static int apply_changes(const struct plan *before, const struct plan *after, const struct nf_cidr *rejudge,
			 size_t nrejudge, bool rules_present, bool *changed, struct nf_error *err)
{
	struct tx tx;
	size_t n = 0;
	int r;

	*changed = true;
	if ((r = plan_check(after, err)) < 0)
		return r;
	r = tx_init(&tx, after);
	tx.rejudge_rules_present = rules_present;
	if (r == 0)
		r = build_diff(&tx, before, after, rejudge, nrejudge, &n);
	if (r < 0) {
		tx_fini(&tx);
		return nf_error_set(err, -r, NF_ERR_KERNEL, "out of memory building the nftables transaction");
	}
	*changed = n > 0;
	r = n ? tx_talk(&tx, after, err) : 0;
	tx_fini(&tx);
	return r;
}

int nft_apply_diff(const struct plan *before, const struct plan *after, const struct nf_cidr *rejudge,
		   size_t nrejudge, bool *changed, bool *rejudging, struct nf_error *err)
{
	*changed = true;
	*rejudging = false;
	if (plan_is_empty(before) || plan_is_empty(after))
		return nft_apply(after, err);
	*rejudging = nrejudge > 0;
	if (nrejudge) { /* the rules may be there already: a child's work pending */
		bool present = false;
		int r = rejudge_rules_present(&present, err);
		if (r < 0)
			return r;
		return apply_changes(before, after, rejudge, nrejudge, present, changed, err);
	}
	return apply_changes(before, after, NULL, 0, false, changed, err);
}

int nft_apply_delta(const struct plan *before, const struct plan *after, bool *changed, struct nf_error *err)
{
	return apply_changes(before, after, NULL, 0, false, changed, err);
}

int nft_delete_all(struct nf_error *err)
{
	return run(NULL, err);
}

static int chain_exists_cb(const struct nlmsghdr *nlh, void *data)
{
	*(int *)data = 1;
	return MNL_CB_OK;
}

int nft_chain_exists(const char *name, struct nf_error *err)
{
	char buf[8192] = { 0 }; /* zeroed: libmnl 1.0.4 leaves attribute padding */
	struct nftnl_chain *c;
	struct mnl_socket *nl = NULL;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL), portid;
	int found = 0, r;
	ssize_t n;

	r = open_socket(&nl, err);
	if (r < 0)
		return r;
	c = nftnl_chain_alloc();
	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, PLAN_TABLE) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0) {
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
		goto out;
	}
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = nf_error_set(err, errno, NF_ERR_KERNEL, "asking nftables for chain \"%s\": %s",
				 name, strerror(errno));
		goto out;
	}
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			r = -1;
			break;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, chain_exists_cb, &found);
		if (r <= 0)
			break;
	}
	if (r < 0 && errno == ENOENT)
		r = 0; /* no such chain, or no table */
	else if (r < 0)
		r = nf_error_set(err, errno, NF_ERR_KERNEL, "asking nftables for chain \"%s\": %s",
				 name, strerror(errno));
	else
		r = found;
out:
	if (c)
		nftnl_chain_free(c);
	nlsock_close(nl);
	return r;
}

/* ---- reading the kernel back: nft_check_pod, nft_remove_pod ----
 *
 * The check compares the kernel with the plan object by object, in a
 * canonical form: rules as the text of their expressions (nftnl's own
 * printer, with counter values left out) plus their comment; sets as sorted
 * lists of ranges; maps as address -> verdict. Handles, counters, set ids
 * and element order do not count. */

#define QREQ_SIZE 8192

struct q {
	struct mnl_socket *nl;
	uint32_t portid, seq;
	char *req; /* the request, zeroed before each (attribute padding) */
	char *buf;
};

static int q_open(struct q *q, struct nf_error *err)
{
	int r;

	memset(q, 0, sizeof(*q));
	q->req = malloc(QREQ_SIZE);
	q->buf = malloc(RECV_BUF_SIZE);
	if (!q->req || !q->buf)
		return nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
	q->seq = (uint32_t)time(NULL);
	r = open_socket(&q->nl, err);
	if (r < 0) {
		q->nl = NULL;
		return r;
	}
	q->portid = mnl_socket_get_portid(q->nl);
	return 0;
}

static void q_close(struct q *q)
{
	if (q->nl)
		nlsock_close(q->nl);
	free(q->req);
	free(q->buf);
}

static struct nlmsghdr *q_hdr(struct q *q, uint16_t type, uint16_t family, bool dump)
{
	memset(q->req, 0, QREQ_SIZE);
	return nftnl_nlmsg_build_hdr(q->req, type, family, dump ? NLM_F_DUMP : NLM_F_ACK, ++q->seq);
}

/* Sends the request in q->req and feeds every answer to cb. 0, or -errno:
 * -ENOENT when the object or its table does not exist. */
static int q_run(struct q *q, mnl_cb_t cb, void *data)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)q->req;
	uint32_t seq = nlh->nlmsg_seq;
	ssize_t n;
	int r;

	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = mnl_socket_recvfrom(q->nl, q->buf, RECV_BUF_SIZE);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		errno = 0;
		r = mnl_cb_run(q->buf, (size_t)n, seq, q->portid, cb, data);
		if (r < 0)
			return errno ? -errno : -EPROTO;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

static int parse_fail(void)
{
	if (!errno)
		errno = EPROTO;
	return MNL_CB_ERROR;
}

static int q_table_cb(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_OK;
}

static int q_table(struct q *q, uint16_t family, const char *name)
{
	struct nftnl_table *t = nftnl_table_alloc();
	int r;

	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, name) < 0) {
		if (t)
			nftnl_table_free(t);
		return -ENOMEM;
	}
	nftnl_table_nlmsg_build_payload(q_hdr(q, NFT_MSG_GETTABLE, family, false), t);
	nftnl_table_free(t);
	r = q_run(q, q_table_cb, NULL);
	return r;
}

struct names {
	char **v; /* NULL-terminated */
	size_t n;
};

static int as_tables_cb(const struct nlmsghdr *nlh, void *data)
{
	struct names *x = data;
	struct nftnl_table *t = nftnl_table_alloc();
	const char *name;
	char **v;
	int r = MNL_CB_OK;

	if (!t) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_table_nlmsg_parse(nlh, t) < 0) {
		r = parse_fail();
	} else if ((name = nftnl_table_get_str(t, NFTNL_TABLE_NAME)) && plan_is_as_table(name)) {
		if (!(v = realloc(x->v, (x->n + 2) * sizeof(*v))) || !(v[x->n] = strdup(name))) {
			if (v)
				x->v = v;
			errno = ENOMEM;
			r = MNL_CB_ERROR;
		} else {
			x->v = v;
			v[++x->n] = NULL;
		}
	}
	nftnl_table_free(t);
	return r;
}

/* The netdev tables of netfence's in the kernel (plan_is_as_table), a
 * NULL-terminated list (free_names), or NULL for none. */
static int as_tables(char ***out, struct nf_error *err)
{
	struct names x = { 0 };
	struct q q;
	int r = q_open(&q, err);

	*out = NULL;
	if (r == 0) {
		q_hdr(&q, NFT_MSG_GETTABLE, NFPROTO_NETDEV, true);
		r = q_run(&q, as_tables_cb, &x);
		if (r < 0) {
			free_names(x.v);
			r = nf_error_set(err, -r, NF_ERR_KERNEL, "listing the netdev tables of nftables: %s",
					 strerror(-r));
		} else {
			*out = x.v;
		}
	}
	q_close(&q);
	return r;
}

static int q_chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_chain **c = data;

	if (*c)
		return MNL_CB_OK;
	*c = nftnl_chain_alloc();
	if (!*c) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	return nftnl_chain_nlmsg_parse(nlh, *c) < 0 ? parse_fail() : MNL_CB_OK;
}

static int q_chain(struct q *q, uint16_t family, const char *name, struct nftnl_chain **out)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	char tb[PLAN_AS_TABLE_LEN];
	int r;

	*out = NULL;
	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table_of(family, name, tb)) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0) {
		if (c)
			nftnl_chain_free(c);
		return -ENOMEM;
	}
	nftnl_chain_nlmsg_build_payload(q_hdr(q, NFT_MSG_GETCHAIN, family, false), c);
	nftnl_chain_free(c);
	r = q_run(q, q_chain_cb, out);
	if (r == 0 && !*out)
		r = -ENOENT;
	if (r < 0 && *out) {
		nftnl_chain_free(*out);
		*out = NULL;
	}
	return r;
}

static int q_set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_set **s = data;

	if (*s)
		return MNL_CB_OK;
	*s = nftnl_set_alloc();
	if (!*s) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	return nftnl_set_nlmsg_parse(nlh, *s) < 0 ? parse_fail() : MNL_CB_OK;
}

static int q_elems_cb(const struct nlmsghdr *nlh, void *data)
{
	return nftnl_set_elems_nlmsg_parse(nlh, data) < 0 ? parse_fail() : MNL_CB_OK;
}

/* elems: the set's elements (a dump) instead of its definition */
static int q_set(struct q *q, const char *name, bool elems, struct nftnl_set **out)
{
	struct nftnl_set *s = nftnl_set_alloc();
	int r;

	*out = NULL;
	if (!s || nftnl_set_set_str(s, NFTNL_SET_TABLE, PLAN_TABLE) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0) {
		if (s)
			nftnl_set_free(s);
		return -ENOMEM;
	}
	if (elems) {
		nftnl_set_elems_nlmsg_build_payload(q_hdr(q, NFT_MSG_GETSETELEM, NFPROTO_INET, true), s);
		*out = s;
		r = q_run(q, q_elems_cb, s);
	} else {
		nftnl_set_nlmsg_build_payload(q_hdr(q, NFT_MSG_GETSET, NFPROTO_INET, false), s);
		nftnl_set_free(s);
		r = q_run(q, q_set_cb, out);
		if (r == 0 && !*out)
			r = -ENOENT;
	}
	if (r < 0 && *out) {
		nftnl_set_free(*out);
		*out = NULL;
	}
	return r;
}

static int q_rules_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rsink *s = data;
	struct rb rb = { .r = nftnl_rule_alloc() };

	if (!rb.r) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_rule_nlmsg_parse(nlh, rb.r) < 0) {
		nftnl_rule_free(rb.r);
		return parse_fail();
	}
	rb_commit(&rb, s, 0, OBJ_RULE, 0, 0);
	if (s->oom) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

/* The rules of a chain, in order, appended to out (collecting). */
static int q_rules(struct q *q, uint16_t family, const char *chain, struct rsink *out)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	char tb[PLAN_AS_TABLE_LEN];

	if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table_of(family, chain, tb)) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain) < 0) {
		if (r)
			nftnl_rule_free(r);
		return -ENOMEM;
	}
	nftnl_rule_nlmsg_build_payload(q_hdr(q, NFT_MSG_GETRULE, family, true), r);
	nftnl_rule_free(r);
	return q_run(q, q_rules_cb, out);
}

/* ---- canonical forms ---- */

struct udata_comment {
	uint8_t type;
	const char *s;
	size_t len;
};

static int udata_comment_cb(const struct nftnl_udata *attr, void *data)
{
	struct udata_comment *c = data;

	if (nftnl_udata_type(attr) == c->type) {
		c->s = nftnl_udata_get(attr);
		c->len = strnlen(c->s, nftnl_udata_len(attr));
	}
	return 0;
}

/* The comment stored in userdata (NULL, 0 if none). */
static struct udata_comment udata_comment(const void *ud, uint32_t len, uint8_t type)
{
	struct udata_comment c = { .type = type };

	if (ud && len)
		nftnl_udata_parse(ud, len, udata_comment_cb, &c);
	return c;
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == ' ')
		s[--n] = '\0';
}

/* A rule as text: its expressions as nftnl prints them ("[ meta load
 * nfproto => reg 1 ] [ cmp eq reg 1 0x00000002 ] ..."), counters without
 * their values, then its comment. Two rules do the same iff their texts
 * are equal. NULL: out of memory. */
static char *rule_text(const struct nftnl_rule *r)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;
	struct udata_comment c;
	const void *ud = NULL;
	uint32_t udlen = 0;
	char *out = NULL;
	size_t len = 0;
	char buf[1024];
	FILE *f;

	if (!it)
		return NULL;
	f = open_memstream(&out, &len);
	if (!f) {
		nftnl_expr_iter_destroy(it);
		return NULL;
	}
	for (bool first = true; (e = nftnl_expr_iter_next(it)); first = false) {
		const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

		buf[0] = '\0';
		if (strcmp(name, "lookup") == 0) {
			/* the kernel reports flags 0, a rule we build has none */
			snprintf(buf, sizeof(buf), "reg %u set %s dreg %u flags 0x%x",
				 nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG),
				 nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET)
					 ? nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET)
					 : "?",
				 nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG)
					 ? nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG)
					 : 0,
				 nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS)
					 ? nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS)
					 : 0);
		} else if (strcmp(name, "counter") != 0 &&
			   nftnl_expr_snprintf(buf, sizeof(buf), e, NFTNL_OUTPUT_DEFAULT, 0) < 0) {
			buf[0] = '\0';
		}
		trim(buf);
		fprintf(f, "%s[ %s%s%s ]", first ? "" : " ", name, buf[0] ? " " : "", buf);
	}
	nftnl_expr_iter_destroy(it);
	if (nftnl_rule_is_set(r, NFTNL_RULE_USERDATA))
		ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &udlen);
	c = udata_comment(ud, udlen, NFTNL_UDATA_RULE_COMMENT);
	if (c.s)
		fprintf(f, " comment \"%.*s\"", (int)c.len, c.s);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void free_texts(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static char **rule_texts(const struct rsink *s)
{
	char **v = calloc(s->n + 1, sizeof(*v));

	for (size_t i = 0; v && i < s->n; i++) {
		v[i] = rule_text(s->rules[i]);
		if (!v[i]) {
			free_texts(v, i);
			return NULL;
		}
	}
	return v;
}

static bool texts_equal(char *const *a, char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

#define TXT "%.700s"

/* The kernel's rules of a chain (got) against the plan's (want). what:
 * "chain \"pod_x\"". */
static int compare_rules(const char *what, const struct rsink *want, const struct rsink *got,
			 struct nf_error *err)
{
	char **w = rule_texts(want), **g = rule_texts(got);
	size_t nw = want->n, ng = got->n, i = 0;
	int r = 0;

	if (!w || !g) {
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
		goto out;
	}
	while (i < nw && i < ng && strcmp(w[i], g[i]) == 0)
		i++;
	if (i == nw && i == ng)
		goto out;
	if (ng == nw + 1 && texts_equal(g + i + 1, w + i, nw - i))
		r = nf_error_set(err, EEXIST, NF_ERR_KERNEL,
				 "%s: rule %zu is not in the plan (kernel: " TXT ")", what, i, g[i]);
	else if (nw == ng + 1 && texts_equal(g + i, w + i + 1, ng - i))
		r = nf_error_set(err, ENOENT, NF_ERR_KERNEL,
				 "%s: rule %zu of the plan is missing (plan: " TXT ")", what, i, w[i]);
	else if (i < nw && i < ng)
		r = nf_error_set(err, EINVAL, NF_ERR_KERNEL,
				 "%s: rule %zu differs from the plan (kernel: " TXT ", plan: " TXT ")",
				 what, i, g[i], w[i]);
	else if (i == nw)
		r = nf_error_set(err, EEXIST, NF_ERR_KERNEL,
				 "%s: %zu rules, the plan has %zu; rule %zu is not in the plan (kernel: " TXT ")",
				 what, ng, nw, i, g[i]);
	else
		r = nf_error_set(err, ENOENT, NF_ERR_KERNEL,
				 "%s: %zu rules, the plan has %zu; rule %zu of the plan is missing (plan: " TXT ")",
				 what, ng, nw, i, w[i]);
out:
	free_texts(w, nw);
	free_texts(g, ng);
	return r;
}

/* plan_ranges in address order (a host set's element is lo alone); ctx:
 * the address length */
static int range_cmp(const void *a, const void *b, void *ctx)
{
	const struct plan_range *x = a, *y = b;
	size_t len = *(const size_t *)ctx;
	int c = memcmp(x->lo, y->lo, len);

	if (c)
		return c;
	if (x->open != y->open)
		return x->open ? 1 : -1;
	return memcmp(x->hi, y->hi, len);
}

/* sorts by key, an interval end before a start at the same key */
struct ekey {
	uint8_t k[16];
	bool end;
};

static int ekey_cmp(const void *a, const void *b, void *ctx)
{
	const struct ekey *x = a, *y = b;
	int c = memcmp(x->k, y->k, *(const size_t *)ctx);

	if (c)
		return c;
	return (int)y->end - (int)x->end;
}

/* plan_range_format, or the address alone for a host set's element */
static void fmt_range(int family, bool interval, const struct plan_range *rg, char *buf, size_t len)
{
	if (interval)
		plan_range_format(family, rg, buf, len);
	else if (!inet_ntop(family, rg->lo, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

/* The kernel's elements of a set as sorted ranges. */
static int kernel_ranges(struct nftnl_set *s, int family, bool interval, struct plan_range **out,
			 size_t *nout)
{
	size_t alen = plan_addr_len(family), n = 0, nk = 0, cap = 64;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct ekey *keys = malloc(cap * sizeof(*keys));
	struct plan_range *rg = NULL;
	struct nftnl_set_elem *e;
	bool pending = false;
	uint8_t start[16];

	*out = NULL;
	*nout = 0;
	if (!it || !keys)
		goto oom;
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0;
		const void *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);

		if (!k)
			continue;
		if (nk == cap) {
			struct ekey *v = realloc(keys, cap * 2 * sizeof(*v));
			if (!v)
				goto oom;
			keys = v;
			cap *= 2;
		}
		memset(&keys[nk], 0, sizeof(keys[nk]));
		memcpy(keys[nk].k, k, klen < alen ? klen : alen);
		keys[nk].end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
			       (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END);
		nk++;
	}
	nftnl_set_elems_iter_destroy(it);
	it = NULL;
	qsort_r(keys, nk, sizeof(*keys), ekey_cmp, &alen);
	rg = calloc(nk + 1, sizeof(*rg));
	if (!rg)
		goto oom;
	for (size_t i = 0; i < nk; i++) {
		if (!interval) {
			memcpy(rg[n++].lo, keys[i].k, alen);
			continue;
		}
		if (!keys[i].end) {
			if (pending) { /* a start after a start: the first is open */
				memcpy(rg[n].lo, start, alen);
				rg[n++].open = true;
			}
			memcpy(start, keys[i].k, alen);
			pending = true;
		} else if (pending) {
			memcpy(rg[n].lo, start, alen);
			memcpy(rg[n++].hi, keys[i].k, alen);
			pending = false;
		} /* else: the end at 0 that starts every interval set */
	}
	if (pending) {
		memcpy(rg[n].lo, start, alen);
		rg[n++].open = true;
	}
	free(keys);
	qsort_r(rg, n, sizeof(*rg), range_cmp, &alen);
	*out = rg;
	*nout = n;
	return 0;
oom:
	if (it)
		nftnl_set_elems_iter_destroy(it);
	free(keys);
	free(rg);
	return -ENOMEM;
}

static int plan_ranges(const struct plan_set *ps, struct plan_range **out, size_t *nout)
{
	size_t alen = plan_addr_len(ps->family), n = 0;
	struct plan_range *rg = calloc(ps->n + 1, sizeof(*rg));

	*out = rg;
	*nout = 0;
	if (!rg)
		return -ENOMEM;
	for (size_t i = 0; i < ps->n; n++) {
		if (!ps->interval) {
			memcpy(rg[n].lo, ps->elems[i++].addr, alen);
			continue;
		}
		i = plan_set_range(ps, i, &rg[n]); /* as set_elems_msg sends them */
	}
	qsort_r(rg, n, sizeof(*rg), range_cmp, &alen);
	*nout = n;
	return 0;
}

static int check_set(struct q *q, const struct plan_set *ps, struct nf_error *err)
{
	struct nftnl_set *s = NULL;
	struct plan_range *want = NULL, *got = NULL;
	size_t ngot = 0, nwant = 0, i = 0, j = 0, ndiff = 0;
	const struct plan_range *missing = NULL, *extra = NULL;
	uint32_t flags;
	int r;

	r = q_set(q, ps->name, false, &s);
	if (r == -ENOENT)
		return nf_error_set(err, ENOENT, NF_ERR_KERNEL, "set \"%s\" is missing from table inet %s",
				    ps->name, PLAN_TABLE);
	if (r < 0)
		return nf_error_set(err, -r, NF_ERR_KERNEL, "reading set \"%s\" from nftables: %s",
				    ps->name, strerror(-r));
	flags = nftnl_set_get_u32(s, NFTNL_SET_FLAGS);
	if (nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) != plan_addr_len(ps->family) ||
	    !!(flags & NFT_SET_INTERVAL) != ps->interval || (flags & NFT_SET_MAP)) {
		r = nf_error_set(err, EINVAL, NF_ERR_KERNEL,
				 "set \"%s\": its type differs from the plan (kernel: key length %u, flags 0x%x; plan: %s%s)",
				 ps->name, nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN), flags,
				 ps->family == AF_INET ? "ipv4_addr" : "ipv6_addr",
				 ps->interval ? ", flags interval" : "");
		goto out;
	}
	nftnl_set_free(s);
	s = NULL;
	r = q_set(q, ps->name, true, &s);
	if (r < 0) {
		r = nf_error_set(err, -r, NF_ERR_KERNEL, "reading the elements of set \"%s\" from nftables: %s",
				 ps->name, strerror(-r));
		goto out;
	}
	if (kernel_ranges(s, ps->family, ps->interval, &got, &ngot) < 0 ||
	    plan_ranges(ps, &want, &nwant) < 0) {
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
		goto out;
	}
	while (i < nwant || j < ngot) {
		size_t alen = plan_addr_len(ps->family);
		int c = i == nwant ? 1 : j == ngot ? -1 : range_cmp(&want[i], &got[j], &alen);
		if (c == 0) {
			i++;
			j++;
			continue;
		}
		ndiff++;
		if (c < 0) {
			if (!missing)
				missing = &want[i];
			i++;
		} else {
			if (!extra)
				extra = &got[j];
			j++;
		}
	}
	if (missing || extra) {
		char a[2 * INET6_ADDRSTRLEN + 8];
		char tail[64] = "";

		if (ndiff > 1)
			snprintf(tail, sizeof(tail), " (%zu differences in all)", ndiff);
		fmt_range(ps->family, ps->interval, missing ? missing : extra, a, sizeof(a));
		if (missing)
			r = nf_error_set(err, ENOENT, NF_ERR_KERNEL, "set \"%s\": element %s missing%s",
					 ps->name, a, tail);
		else
			r = nf_error_set(err, EEXIST, NF_ERR_KERNEL,
					 "set \"%s\": element %s is not in the plan%s", ps->name, a, tail);
	}
out:
	free(want);
	free(got);
	if (s)
		nftnl_set_free(s);
	return r;
}

/* A map element: address -> verdict (chain: owned by the nftnl set). */
struct mel {
	uint8_t k[16];
	int verdict;
	const char *chain;
};

static int mel_cmp(const void *a, const void *b, void *ctx)
{
	return memcmp(((const struct mel *)a)->k, ((const struct mel *)b)->k, *(const size_t *)ctx);
}

static const struct mel *mel_find(const struct mel *v, size_t n, const uint8_t *k, size_t alen)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(v[mid].k, k, alen);
		if (c == 0)
			return &v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The map's entries for the pod chain (plan) and the kernel's: the same
 * addresses, each a jump to the chain, and no other address jumping to it. */
static int check_map(struct q *q, const struct plan *p, const char *chain, int family,
		     struct nf_error *err)
{
	const char *map = family == AF_INET ? PLAN_MAP_V4 : PLAN_MAP_V6;
	size_t alen = plan_addr_len(family), ngot = 0, nwant = 0, cap = 64;
	struct nftnl_set *s = NULL;
	struct nftnl_set_elems_iter *it = NULL;
	struct nftnl_set_elem *e;
	struct mel *got = NULL, *want = NULL;
	char a[INET6_ADDRSTRLEN] = "?";
	int r;

	r = q_set(q, map, false, &s);
	if (r == -ENOENT)
		return nf_error_set(err, ENOENT, NF_ERR_KERNEL, "map \"%s\" is missing from table inet %s",
				    map, PLAN_TABLE);
	if (r < 0)
		return nf_error_set(err, -r, NF_ERR_KERNEL, "reading map \"%s\" from nftables: %s", map,
				    strerror(-r));
	if (nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) != alen ||
	    !(nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & NFT_SET_MAP) ||
	    nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE) != NFT_DATA_VERDICT) {
		r = nf_error_set(err, EINVAL, NF_ERR_KERNEL,
				 "map \"%s\": its type differs from the plan (%s : verdict)", map,
				 family == AF_INET ? "ipv4_addr" : "ipv6_addr");
		goto out;
	}
	nftnl_set_free(s);
	s = NULL;
	r = q_set(q, map, true, &s);
	if (r < 0) {
		r = nf_error_set(err, -r, NF_ERR_KERNEL, "reading the elements of map \"%s\": %s", map,
				 strerror(-r));
		goto out;
	}
	it = nftnl_set_elems_iter_create(s);
	got = malloc(cap * sizeof(*got));
	want = calloc(p->ndispatch + 1, sizeof(*want));
	if (!it || !got || !want)
		goto oom;
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0;
		const void *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);

		if (!k || klen != alen)
			continue;
		if (ngot == cap) {
			struct mel *v = realloc(got, cap * 2 * sizeof(*v));
			if (!v)
				goto oom;
			got = v;
			cap *= 2;
		}
		memcpy(got[ngot].k, k, alen);
		got[ngot].verdict = (int)nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT);
		got[ngot].chain = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)
					  ? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)
					  : NULL;
		ngot++;
	}
	for (size_t i = 0; i < p->ndispatch; i++)
		if (p->dispatch[i].addr.family == family && strcmp(p->dispatch[i].chain, chain) == 0)
			memcpy(want[nwant++].k, p->dispatch[i].addr.addr, alen);
	qsort_r(got, ngot, sizeof(*got), mel_cmp, &alen);
	qsort_r(want, nwant, sizeof(*want), mel_cmp, &alen);

	/* every plan entry of the chain is there, a jump to the chain */
	for (size_t i = 0; i < nwant; i++) {
		const struct mel *m = mel_find(got, ngot, want[i].k, alen);
		struct nf_cidr c = { .family = family };

		if (m && m->verdict == NFT_JUMP && m->chain && strcmp(m->chain, chain) == 0)
			continue;
		memcpy(c.addr, want[i].k, alen);
		fmt_addr(&c, -1, a, sizeof(a));
		if (!m)
			r = nf_error_set(err, ENOENT, NF_ERR_KERNEL,
					 "map \"%s\": %s does not jump to \"%s\" (no element for %s)", map, a,
					 chain, a);
		else if (m->chain)
			r = nf_error_set(err, EINVAL, NF_ERR_KERNEL,
					 "map \"%s\": %s does not jump to \"%s\" (it %s \"%s\")", map, a,
					 chain, m->verdict == NFT_GOTO ? "goes to" : "jumps to", m->chain);
		else
			r = nf_error_set(err, EINVAL, NF_ERR_KERNEL,
					 "map \"%s\": %s does not jump to \"%s\" (its verdict is %d)", map,
					 a, chain, m->verdict);
		goto out;
	}
	/* and no other address leads to the chain */
	for (size_t i = 0; i < ngot; i++) {
		struct nf_cidr c = { .family = family };

		if (!got[i].chain || strcmp(got[i].chain, chain) != 0 ||
		    mel_find(want, nwant, got[i].k, alen))
			continue;
		memcpy(c.addr, got[i].k, alen);
		fmt_addr(&c, -1, a, sizeof(a));
		r = nf_error_set(err, EEXIST, NF_ERR_KERNEL,
				 "map \"%s\": %s jumps to \"%s\", the plan does not say so", map, a, chain);
		goto out;
	}
	goto out;
oom:
	r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
out:
	free(got);
	free(want);
	if (it)
		nftnl_set_elems_iter_destroy(it);
	if (s)
		nftnl_set_free(s);
	return r;
}

/* hooknum < 0: a regular chain. what: "chain \"x\"" */
static int check_chain_def(const struct nftnl_chain *c, const char *what, int hooknum, int prio,
			   const char *dev, struct nf_error *err)
{
	bool base = nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM);
	const char *kdev = NULL;
	char devs[256] = "";

	if (hooknum < 0) {
		if (base)
			return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
					    "%s is a base chain (hook %u), the plan has a regular chain", what,
					    nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM));
		return 0;
	}
	if (!base || nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) != (uint32_t)hooknum ||
	    nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) != prio ||
	    !nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ||
	    strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), "filter") != 0 ||
	    nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) != NF_ACCEPT)
		return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
				    "%s: its hook differs from the plan (kernel: %s hook %d priority %d policy %s; plan: filter hook %d priority %d policy accept)",
				    what,
				    nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ? nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE) : "no type",
				    base ? (int)nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) : -1,
				    nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO),
				    nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT ? "accept" : "drop",
				    hooknum, prio);
	if (!dev)
		return 0;
	if (nftnl_chain_is_set(c, NFTNL_CHAIN_DEVICES)) {
		const char *const *v = nftnl_chain_get_array(c, NFTNL_CHAIN_DEVICES);
		size_t used = 0;

		for (size_t i = 0; v && v[i] && used < sizeof(devs); i++)
			used += (size_t)snprintf(devs + used, sizeof(devs) - used, "%s\"%s\"",
						 i ? ", " : "", v[i]);
		if (v && v[0] && !v[1])
			kdev = v[0];
	} else if (nftnl_chain_is_set(c, NFTNL_CHAIN_DEV)) {
		kdev = nftnl_chain_get_str(c, NFTNL_CHAIN_DEV);
		snprintf(devs, sizeof(devs), "\"%s\"", kdev);
	}
	if (!kdev || strcmp(kdev, dev) != 0)
		return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
				    "%s is bound to %s, the plan says device \"%s\"", what,
				    devs[0] ? devs : "no device", dev);
	if (if_nametoindex(dev) == 0)
		return nf_error_set(err, ENODEV, NF_ERR_KERNEL,
				    "%s: its device \"%s\" does not exist", what, dev);
	return 0;
}

/* A chain and its rules. hooknum < 0: a regular chain, comment: the plan's */
static int check_chain(struct q *q, uint16_t family, const char *name, int hooknum, int prio,
		       const char *dev, const char *comment, const struct rsink *want,
		       struct nf_error *err)
{
	struct rsink got = { 0 };
	struct nftnl_chain *c = NULL;
	char what[NFT_CHAIN_MAXNAMELEN + 64], tb[PLAN_AS_TABLE_LEN];
	int r;

	snprintf(what, sizeof(what), "chain \"%s\"", name);
	r = q_chain(q, family, name, &c);
	if (r == -ENOENT)
		return nf_error_set(err, ENOENT, NF_ERR_KERNEL, "chain \"%s\" is missing from table %s %s",
				    name, family_name(family), table_of(family, name, tb));
	if (r < 0)
		return nf_error_set(err, -r, NF_ERR_KERNEL, "reading chain \"%s\" from nftables: %s",
				    name, strerror(-r));
	r = check_chain_def(c, what, hooknum, prio, dev, err);
	if (r == 0 && hooknum < 0) {
		char buf[NFTNL_UDATA_COMMENT_MAXLEN] = "";
		const void *ud = NULL;
		uint32_t udlen = 0;
		struct udata_comment uc;

		if (comment)
			snprintf(buf, sizeof(buf), "%s", comment);
		if (nftnl_chain_is_set(c, NFTNL_CHAIN_USERDATA))
			ud = nftnl_chain_get_data(c, NFTNL_CHAIN_USERDATA, &udlen);
		uc = udata_comment(ud, udlen, NFTNL_UDATA_CHAIN_COMMENT);
		if (uc.len != strlen(buf) || (uc.s && memcmp(uc.s, buf, uc.len) != 0))
			r = nf_error_set(err, EINVAL, NF_ERR_KERNEL,
					 "%s: comment \"%.*s\" differs from the plan's \"%s\"", what,
					 (int)uc.len, uc.s ? uc.s : "", buf);
	}
	if (r == 0) {
		r = q_rules(q, family, name, &got);
		if (r < 0) {
			r = nf_error_set(err, -r, NF_ERR_KERNEL, "reading the rules of chain \"%s\": %s",
					 name, strerror(-r));
		} else {
			/* the re-judging rules come and go with a policy change's
			 * child (txn.h), outside the plan */
			size_t k = 0;
			for (size_t i = 0; i < got.n; i++) {
				if (rule_rejudges(got.rules[i]))
					nftnl_rule_free(got.rules[i]);
				else
					got.rules[k++] = got.rules[i];
			}
			got.n = k;
			r = compare_rules(what, want, &got, err);
		}
	}
	sink_fini(&got);
	nftnl_chain_free(c);
	return r;
}

static int check_table(struct q *q, uint16_t family, const char *name, struct nf_error *err)
{
	int r = q_table(q, family, name);

	if (r == -ENOENT)
		return nf_error_set(err, ENOENT, NF_ERR_KERNEL, "table %s %s is missing",
				    family_name(family), name);
	if (r < 0)
		return nf_error_set(err, -r, NF_ERR_KERNEL, "reading table %s %s from nftables: %s",
				    family_name(family), name, strerror(-r));
	return 0;
}

/* The antispoof chain of the pod: the one of its host veth. */
static const struct plan_antispoof *find_antispoof(const struct plan *p, const char *dev)
{
	for (size_t ai = 0; dev && ai < p->nantispoof; ai++)
		if (strcmp(p->antispoof[ai].dev, dev) == 0)
			return &p->antispoof[ai];
	return NULL;
}

static int check_pod(struct q *q, const struct plan *p, size_t ci, const char *dev, struct nf_error *err)
{
	const struct plan_chain *pc = &p->chains[ci];
	const struct plan_antispoof *as;
	struct rsink want = { 0 };
	char tb[PLAN_AS_TABLE_LEN];
	int r;

	if ((r = check_table(q, NFPROTO_INET, PLAN_TABLE, err)) < 0)
		return r;

	pod_chain_rules(&want, p, ci, NULL);
	r = want.oom ? nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory")
		     : check_chain(q, NFPROTO_INET, pc->name, -1, 0, NULL, pc->comment, &want, err);
	sink_fini(&want);
	if (r < 0)
		return r;

	for (size_t ri = 0; ri < pc->nrules; ri++) {
		const char *set = pc->rules[ri].dst_set;
		bool seen = false;
		if (!set)
			continue;
		for (size_t k = 0; k < ri && !seen; k++)
			seen = pc->rules[k].dst_set && strcmp(pc->rules[k].dst_set, set) == 0;
		if (!seen && (r = check_set(q, &p->sets[find_set(p, set)], err)) < 0)
			return r;
	}

	if ((r = check_map(q, p, pc->name, AF_INET, err)) < 0 ||
	    (r = check_map(q, p, pc->name, AF_INET6, err)) < 0)
		return r;

	{
		static const uint32_t no_ids[2];
		base_chain_rules(&want, no_ids);
		r = want.oom ? nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory")
			     : check_chain(q, NFPROTO_INET, PLAN_CHAIN_BASE, PLAN_BASE_HOOK, 0, NULL, NULL,
					   &want, err);
		sink_fini(&want);
		if (r < 0)
			return r;
	}

	as = find_antispoof(p, dev);
	if (!as)
		return 0;
	if ((r = check_table(q, NFPROTO_NETDEV, plan_as_table(as->chain, tb), err)) < 0)
		return r;
	antispoof_rules(&want, as, 0);
	r = want.oom ? nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory")
		     : check_chain(q, NFPROTO_NETDEV, as->chain, NF_NETDEV_INGRESS,
				   PLAN_ANTISPOOF_PRIO, as->dev, NULL, &want, err);
	sink_fini(&want);
	return r;
}

int nft_check_pod(const struct plan *p, const char *chain, const char *dev, struct nf_error *err)
{
	struct q q;
	size_t ci;
	int r;

	for (ci = 0; ci < p->nchains; ci++)
		if (strcmp(p->chains[ci].name, chain) == 0)
			break;
	if (ci == p->nchains)
		return nf_error_set(err, EINVAL, NF_ERR_KERNEL, "chain \"%s\" is not in the plan",
				    chain);
	if ((r = plan_check(p, err)) < 0)
		return r;
	r = q_open(&q, err);
	if (r == 0)
		r = check_pod(&q, p, ci, dev, err);
	q_close(&q);
	return r;
}

/* ---- nft_remove_pod ---- */

/* What is left of a pod in the kernel. */
struct rm {
	struct nf_cidr *keys; /* map elements to delete (family says which map) */
	size_t nkeys, cap;
	/* chains to flush and delete: the one named, and those only the
	 * deleted elements jumped to (the last pod of a kind) */
	char **chains;
	size_t nchains;
	/* chains other elements jump to (they stay) */
	char **kept;
	size_t nkept;
	/* the sets of the chains deleted (plan_set_of_chain): after them */
	char **sets;
	size_t nsets;
	bool as; /* the antispoof chain exists */
};

static void rm_free(struct rm *rm)
{
	for (size_t i = 0; i < rm->nchains; i++)
		free(rm->chains[i]);
	for (size_t i = 0; i < rm->nkept; i++)
		free(rm->kept[i]);
	for (size_t i = 0; i < rm->nsets; i++)
		free(rm->sets[i]);
	free(rm->chains);
	free(rm->kept);
	free(rm->sets);
	free(rm->keys);
}

static bool in_names(char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

/* Adds name to *v unless it is there; -ENOMEM. */
static int add_name(char ***v, size_t *n, const char *name)
{
	char **q;

	if (in_names(*v, *n, name))
		return 0;
	if (!(q = realloc(*v, (*n + 1) * sizeof(*q))))
		return -ENOMEM;
	*v = q;
	if (!(q[*n] = strdup(name)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static bool rm_wanted(struct nftnl_set_elem *e, int family, const char *chain,
		      const struct nf_cidr *addrs, size_t naddrs)
{
	uint32_t klen = 0;
	const void *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);

	if (!k || klen != plan_addr_len(family))
		return false;
	if (chain)
		return nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN) &&
		       strcmp(nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN), chain) == 0;
	for (size_t i = 0; i < naddrs; i++)
		if (addrs[i].family == family && memcmp(addrs[i].addr, k, klen) == 0)
			return true;
	return false;
}

/* The elements of one dispatch map: those to delete into rm->keys (and
 * the chains they jump to into rm->chains), the chains of the others into
 * rm->kept. */
static int rm_scan_map(struct nftnl_set *s, int family, const char *chain, const struct nf_cidr *addrs,
		       size_t naddrs, struct rm *rm)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e = NULL;
	int r = it ? 0 : -ENOMEM;

	while (r == 0 && (e = nftnl_set_elems_iter_next(it))) {
		const char *to = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)
					 ? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)
					 : NULL;
		uint32_t klen;
		struct nf_cidr *k;

		if (!rm_wanted(e, family, chain, addrs, naddrs)) {
			if (to)
				r = add_name(&rm->kept, &rm->nkept, to);
			continue;
		}
		if (to && (r = add_name(&rm->chains, &rm->nchains, to)) < 0)
			break;
		if (rm->nkeys == rm->cap) {
			size_t cap = rm->cap ? rm->cap * 2 : 8;
			struct nf_cidr *v = realloc(rm->keys, cap * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			rm->keys = v;
			rm->cap = cap;
		}
		k = &rm->keys[rm->nkeys++];
		*k = (struct nf_cidr){ .family = family, .prefix = (uint8_t)(plan_addr_len(family) * 8) };
		memcpy(k->addr, nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen), plan_addr_len(family));
	}
	if (it)
		nftnl_set_elems_iter_destroy(it);
	return r;
}

/* Keeps in rm->chains those that exist and that no kept element jumps to. */
static int rm_chains_to_delete(struct q *q, struct rm *rm)
{
	size_t j = 0;
	int r = 0;

	for (size_t i = 0; i < rm->nchains; i++) {
		struct nftnl_chain *c = NULL;
		bool del = !in_names(rm->kept, rm->nkept, rm->chains[i]);

		if (del && r == 0) {
			int e = q_chain(q, NFPROTO_INET, rm->chains[i], &c);
			if (c)
				nftnl_chain_free(c);
			if (e < 0 && e != -ENOENT)
				r = e;
			del = e == 0;
		}
		if (del)
			rm->chains[j++] = rm->chains[i];
		else
			free(rm->chains[i]);
	}
	rm->nchains = j;
	return r;
}

static int rm_sets_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rm *rm = data;
	struct nftnl_set *s = nftnl_set_alloc();
	const char *name;
	int r = MNL_CB_OK;

	if (!s) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_set_nlmsg_parse(nlh, s) < 0) {
		nftnl_set_free(s);
		return parse_fail();
	}
	name = nftnl_set_get_str(s, NFTNL_SET_NAME);
	for (size_t i = 0; name && i < rm->nchains; i++)
		if (plan_set_of_chain(name, rm->chains[i])) {
			if (add_name(&rm->sets, &rm->nsets, name) < 0) {
				errno = ENOMEM;
				r = MNL_CB_ERROR;
			}
			break;
		}
	nftnl_set_free(s);
	return r;
}

/* The sets of the chains to delete (their ipBlock sets, compile.c
 * kind_blocks) into rm->sets: a dump of the table's sets. */
static int rm_chain_sets(struct q *q, struct rm *rm)
{
	struct nftnl_set *s;
	int r;

	if (!rm->nchains)
		return 0;
	if (!(s = nftnl_set_alloc()) || nftnl_set_set_str(s, NFTNL_SET_TABLE, PLAN_TABLE) < 0) {
		if (s)
			nftnl_set_free(s);
		return -ENOMEM;
	}
	nftnl_set_nlmsg_build_payload(q_hdr(q, NFT_MSG_GETSET, NFPROTO_INET, true), s);
	nftnl_set_free(s);
	r = q_run(q, rm_sets_cb, rm);
	return r == -ENOENT ? 0 : r;
}

static int rm_find(struct q *q, const char *chain, const struct nf_cidr *addrs, size_t naddrs,
		   const char *as, struct rm *rm, struct nf_error *err)
{
	char tb[PLAN_AS_TABLE_LEN];
	int r = q_table(q, NFPROTO_INET, PLAN_TABLE);

	if (r < 0 && r != -ENOENT)
		goto fail;
	if (r == 0 && chain && (r = add_name(&rm->chains, &rm->nchains, chain)) < 0)
		goto fail;
	for (int fi = 0; r == 0 && fi < 2; fi++) {
		struct nftnl_set *s;

		r = q_set(q, fi ? PLAN_MAP_V6 : PLAN_MAP_V4, true, &s);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r < 0)
			goto fail;
		r = rm_scan_map(s, fi ? AF_INET6 : AF_INET, chain, addrs, naddrs, rm);
		nftnl_set_free(s);
		if (r < 0)
			goto fail;
	}
	if (r == 0 && ((r = rm_chains_to_delete(q, rm)) < 0 || (r = rm_chain_sets(q, rm)) < 0))
		goto fail;
	if (as) {
		struct nftnl_chain *c = NULL;
		r = q_table(q, NFPROTO_NETDEV, plan_as_table(as, tb));
		if (r == 0) {
			r = q_chain(q, NFPROTO_NETDEV, as, &c);
			rm->as = r == 0;
			if (c)
				nftnl_chain_free(c);
		}
		if (r < 0 && r != -ENOENT)
			goto fail;
	}
	return 0;
fail:
	return nf_error_set(err, -r, NF_ERR_KERNEL, "reading table %s from nftables: %s", PLAN_TABLE,
			    strerror(-r));
}

static void rm_build(struct tx *tx, const struct rm *rm, const char *as)
{
	nftnl_batch_begin(tx->scratch, tx_note(tx, OBJ_BATCH, 0, 0));
	tx_next(tx);
	for (size_t i = 0; i < rm->nkeys && !tx->oom; i++) {
		const struct nf_cidr *k = &rm->keys[i];
		struct nftnl_set *s = nftnl_set_alloc();
		struct nftnl_set_elem *el = nftnl_set_elem_alloc();

		if (!s || !el || nftnl_set_set_str(s, NFTNL_SET_TABLE, PLAN_TABLE) < 0 ||
		    nftnl_set_set_str(s, NFTNL_SET_NAME,
				      k->family == AF_INET ? PLAN_MAP_V4 : PLAN_MAP_V6) < 0 ||
		    nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, k->addr,
				       (uint32_t)plan_addr_len(k->family)) < 0) {
			tx->oom = true;
		} else {
			nftnl_set_elem_add(s, el);
			el = NULL;
			nftnl_set_elems_nlmsg_build_payload(
				tx_hdr(tx, NFT_MSG_DELSETELEM, NFPROTO_INET, 0, OBJ_RMELEM,
				       (size_t)k->family, i),
				s);
			tx_next(tx);
		}
		if (el)
			nftnl_set_elem_free(el);
		if (s)
			nftnl_set_free(s);
	}
	for (size_t i = 0; i < rm->nchains && !tx->oom; i++) {
		struct nftnl_rule *r = nftnl_rule_alloc();
		struct nftnl_chain *c = nftnl_chain_alloc();

		if (!r || !c || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, PLAN_TABLE) < 0 ||
		    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, rm->chains[i]) < 0 ||
		    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, PLAN_TABLE) < 0 ||
		    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, rm->chains[i]) < 0) {
			tx->oom = true;
		} else {
			nftnl_rule_nlmsg_build_payload(
				tx_hdr(tx, NFT_MSG_DELRULE, NFPROTO_INET, 0, OBJ_RMRULES, i, 0), r);
			tx_next(tx);
			nftnl_chain_nlmsg_build_payload(
				tx_hdr(tx, NFT_MSG_DELCHAIN, NFPROTO_INET, 0, OBJ_RMCHAIN, i, 0), c);
			tx_next(tx);
		}
		if (r)
			nftnl_rule_free(r);
		if (c)
			nftnl_chain_free(c);
	}
	for (size_t i = 0; i < rm->nsets && !tx->oom; i++)
		del_set(tx, rm->sets[i], OBJ_RMSET, i);
	if (rm->as)
		del_chain(tx, NFPROTO_NETDEV, as, OBJ_RMASCHAIN, 0);
	nftnl_batch_end(tx->scratch, tx_note(tx, OBJ_BATCH, 0, 0));
	tx_next(tx);
}

static int rm_send(const struct rm *rm, const char *as, struct nf_error *err)
{
	struct tx tx;
	int r = tx_init(&tx, NULL);

	if (r == 0) {
		tx.rm_chains = rm->chains;
		tx.rm_sets = rm->sets;
		tx.rm_as = as;
		tx.rm_keys = rm->keys;
		rm_build(&tx, rm, as);
		r = tx.oom ? -ENOMEM : tx_talk(&tx, NULL, err);
	}
	if (r == -ENOMEM)
		nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
	tx_fini(&tx);
	return r;
}

int nft_remove_pod(const char *chain, const struct nf_cidr *addrs, size_t naddrs,
		   const char *antispoof_chain, struct nf_error *err)
{
	char tb[PLAN_AS_TABLE_LEN] = "";
	struct q q;
	int r, failed = 0;

	if (antispoof_chain)
		plan_as_table(antispoof_chain, tb);
	for (size_t i = 0; i < naddrs; i++)
		if (addrs[i].family != AF_INET && addrs[i].family != AF_INET6)
			return nf_error_set(err, EINVAL, NF_ERR_KERNEL,
					    "address %zu: bad address family %d", i, addrs[i].family);
	r = q_open(&q, err);
	/* query, delete what is there, query again: a concurrent change
	 * (another DEL, an apply) can make a delete fail with ENOENT */
	for (int round = 0; r == 0; round++) {
		struct rm rm = { 0 };
		bool left;

		r = rm_find(&q, chain, addrs, naddrs, antispoof_chain, &rm, err);
		left = rm.nkeys || rm.nchains || rm.nsets || rm.as;
		if (r == 0 && left) {
			if (round < 3) {
				failed = rm_send(&rm, antispoof_chain, err);
			} else if (failed < 0) {
				r = failed; /* err says why */
			} else {
				char a[INET6_ADDRSTRLEN + 8] = "";
				if (rm.nkeys)
					fmt_addr(&rm.keys[0], -1, a, sizeof(a));
				r = nf_error_set(err, EAGAIN, NF_ERR_KERNEL,
						 "removing pod chain \"%s\": still there after 3 attempts:%s%s%s%s%s%s%s",
						 chain ? chain : "(none)",
						 rm.nchains ? " the chain" : "", rm.nsets ? " its sets" : "",
						 rm.nkeys ? " map element " : "", a,
						 rm.nkeys ? (rm.keys[0].family == AF_INET ? " of " PLAN_MAP_V4 : " of " PLAN_MAP_V6) : "",
						 rm.as ? " antispoof chain of table netdev " : "", rm.as ? tb : "");
			}
		}
		rm_free(&rm);
		if (r < 0 || !left)
			break;
	}
	q_close(&q);
	return r;
}

static int as_list_cb(const struct nlmsghdr *nlh, void *data)
{
	struct as_list *x = data;
	struct nftnl_chain *c = nftnl_chain_alloc();
	const char *t, *name;

	if (!c || nftnl_chain_nlmsg_parse(nlh, c) < 0) {
		if (c)
			nftnl_chain_free(c);
		return parse_fail();
	}
	t = nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE);
	name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
	if (t && name && plan_is_as_table(t)) {
		char *ts = NULL, *ns = NULL;
		if (x->n == x->cap) {
			size_t cap = x->cap ? 2 * x->cap : 64;
			char **a = realloc(x->tab, cap * sizeof(*a)), **b;
			if (a)
				x->tab = a;
			b = a ? realloc(x->chain, cap * sizeof(*b)) : NULL;
			if (b) {
				x->chain = b;
				x->cap = cap;
			}
		}
		if (x->n < x->cap && (ts = strdup(t)) && (ns = strdup(name))) {
			x->tab[x->n] = ts;
			x->chain[x->n++] = ns;
		} else {
			free(ts);
			x->oom = true;
		}
	}
	nftnl_chain_free(c);
	if (x->oom) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

static void as_list_free(struct as_list *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->tab[i]);
		free(x->chain[i]);
	}
	free(x->tab);
	free(x->chain);
	memset(x, 0, sizeof(*x));
}

/* The chains of netdev table `table` (NULL: of every netdev table of
 * netfence's) into x: one dump. 0, -ENOMEM, or another -errno (the kernel
 * could not be asked; a missing table is no chain). */
static int as_list_load(const char *table, struct as_list *x)
{
	struct nf_error err = { 0 };
	struct nlmsghdr *nlh;
	struct q q;
	int r = q_open(&q, &err);

	if (r == 0) {
		nlh = q_hdr(&q, NFT_MSG_GETCHAIN, NFPROTO_NETDEV, true);
		if (table) {
			struct nftnl_chain *c = nftnl_chain_alloc();
			if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0)
				r = -ENOMEM;
			else
				nftnl_chain_nlmsg_build_payload(nlh, c);
			if (c)
				nftnl_chain_free(c);
		}
		if (r == 0)
			r = q_run(&q, as_list_cb, x);
		if (r == -ENOENT)
			r = 0;
		if (x->oom)
			r = -ENOMEM;
	}
	q_close(&q);
	if (r < 0)
		as_list_free(x);
	return r;
}

static int as_use_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_table *t = nftnl_table_alloc();
	uint32_t *use = data;

	if (!t || nftnl_table_nlmsg_parse(nlh, t) < 0) {
		if (t)
			nftnl_table_free(t);
		return parse_fail();
	}
	/* unknown: more than any count, so the table does not go whole */
	*use = nftnl_table_is_set(t, NFTNL_TABLE_USE) ? nftnl_table_get_u32(t, NFTNL_TABLE_USE) : UINT32_MAX;
	nftnl_table_free(t);
	return MNL_CB_OK;
}

static int as_there_cb(const struct nlmsghdr *nlh, void *data)
{
	*(bool *)data = true;
	return MNL_CB_OK;
}

/* The chains gone[0..ngone) of b (sh: their tables' NN) that the kernel
 * has, and the number of chains of each of their tables (its "use": these
 * tables hold nothing else; a missing table has 0): x, counted. 0, or
 * -errno (the kernel could not be asked: x empty). */
static int as_list_probe(const struct plan *b, const size_t *gone, const unsigned *sh, size_t ngone,
			 struct as_list *x)
{
	struct nf_error err = { 0 };
	char tb[PLAN_AS_TABLE_LEN];
	struct q q;
	int r = q_open(&q, &err);

	x->counted = true;
	x->cap = AS_PROBE_MAX;
	x->tab = calloc(x->cap, sizeof(*x->tab));
	x->chain = calloc(x->cap, sizeof(*x->chain));
	if (r == 0 && (!x->tab || !x->chain))
		r = -ENOMEM;
	for (size_t g = 0; g < ngone && g < AS_PROBE_MAX && r == 0; g++) {
		const char *c = b->antispoof[gone[g]].chain;
		bool first = true, there = false;
		struct nftnl_table *t;
		struct nftnl_chain *ch;

		plan_as_table(c, tb);
		for (size_t e = 0; e < g && first; e++)
			first = sh[e] != sh[g];
		if (first) {
			if (!(t = nftnl_table_alloc()) || nftnl_table_set_str(t, NFTNL_TABLE_NAME, tb) < 0) {
				r = -ENOMEM;
			} else {
				nftnl_table_nlmsg_build_payload(q_hdr(&q, NFT_MSG_GETTABLE, NFPROTO_NETDEV, false), t);
				x->use[sh[g]] = 0;
				r = q_run(&q, as_use_cb, &x->use[sh[g]]);
				if (r == -ENOENT)
					r = 0;
			}
			if (t)
				nftnl_table_free(t);
		}
		if (r < 0)
			break;
		if (!(ch = nftnl_chain_alloc()) || nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, tb) < 0 ||
		    nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, c) < 0) {
			r = -ENOMEM;
		} else {
			nftnl_chain_nlmsg_build_payload(q_hdr(&q, NFT_MSG_GETCHAIN, NFPROTO_NETDEV, false), ch);
			r = q_run(&q, as_there_cb, &there);
			if (r == -ENOENT)
				r = 0;
		}
		if (ch)
			nftnl_chain_free(ch);
		if (r == 0 && there) {
			if ((x->tab[x->n] = strdup(tb)) && (x->chain[x->n] = strdup(c))) {
				x->n++;
			} else {
				free(x->tab[x->n]);
				x->tab[x->n] = NULL;
				r = -ENOMEM;
			}
		}
	}
	q_close(&q);
	if (r < 0)
		as_list_free(x);
	return r;
}

/* ---- re-judging (txn.h) ---- */

/* Appends the elements of the kernel's set `name` (host addresses of
 * `family`) to *v. A missing set or table: nothing. */
static int rejudge_scan(struct q *q, const char *name, int family, struct nf_cidr **v, size_t *n, size_t *cap)
{
	struct nftnl_set *s = NULL;
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *e;
	int r = q_set(q, name, true, &s);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	it = nftnl_set_elems_iter_create(s);
	if (!it) {
		nftnl_set_free(s);
		return -ENOMEM;
	}
	while (r == 0 && (e = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0;
		const void *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);

		if (!k || klen != plan_addr_len(family))
			continue;
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 8;
			struct nf_cidr *nv = realloc(*v, c * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			*v = nv;
			*cap = c;
		}
		memset(&(*v)[*n], 0, sizeof((*v)[*n]));
		(*v)[*n].family = family;
		(*v)[*n].prefix = (uint8_t)(klen * 8);
		memcpy((*v)[*n].addr, k, klen);
		(*n)++;
	}
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
	return r;
}

static int rejudge_rules_query(struct q *q, struct rj_rules *out)
{
	struct rsink got = { 0 };
	int r = q_rules(q, NFPROTO_INET, PLAN_CHAIN_BASE, &got);

	out->n = 0;
	for (size_t i = 0; r == 0 && i < got.n; i++) {
		if (!rule_rejudges(got.rules[i]) || out->n == 8)
			continue;
		out->handle[out->n++] = nftnl_rule_get_u64(got.rules[i], NFTNL_RULE_HANDLE);
	}
	sink_fini(&got);
	return r < 0 && r != -ENOENT ? r : 0;
}

static int rejudge_rules_present(bool *present, struct nf_error *err)
{
	struct rj_rules rr = { 0 };
	struct q q;
	int r = q_open(&q, err);

	if (r == 0 && (r = rejudge_rules_query(&q, &rr)) < 0)
		nf_error_set(err, -r, NF_ERR_KERNEL, "reading the base chains' rules: %s", strerror(-r));
	q_close(&q);
	*present = rr.n > 0;
	return r;
}

static int rejudge_query(struct q *q, struct nf_cidr **out, size_t *nout)
{
	size_t cap = 0;
	int r;

	*out = NULL;
	*nout = 0;
	r = rejudge_scan(q, PLAN_SET_REJUDGE4, AF_INET, out, nout, &cap);
	if (r == 0)
		r = rejudge_scan(q, PLAN_SET_REJUDGE6, AF_INET6, out, nout, &cap);
	if (r < 0) {
		free(*out);
		*out = NULL;
		*nout = 0;
	}
	return r;
}

int nft_rejudge_list(struct nf_cidr **out, size_t *nout, struct nf_error *err)
{
	struct q q;
	int r = q_open(&q, err);

	*out = NULL;
	*nout = 0;
	if (r == 0 && (r = rejudge_query(&q, out, nout)) < 0)
		nf_error_set(err, -r, NF_ERR_KERNEL, "listing sets %s/%s: %s", PLAN_SET_REJUDGE4, PLAN_SET_REJUDGE6,
			     strerror(-r));
	q_close(&q);
	return r;
}

int nft_rejudge_end(const struct nf_cidr *addrs, size_t naddrs, struct nf_error *err)
{
	struct q q;
	int r = q_open(&q, err);

	/* query, delete what is still there, query again: a full apply in
	 * between makes the delete fail with ENOENT */
	for (int round = 0; r == 0; round++) {
		struct nf_cidr *have = NULL, *gone;
		size_t nhave = 0, ngone = 0;
		struct rj_rules rr;
		struct tx tx;

		if ((r = rejudge_query(&q, &have, &nhave)) < 0 || (r = rejudge_rules_query(&q, &rr)) < 0) {
			free(have);
			nf_error_set(err, -r, NF_ERR_KERNEL, "listing the re-judging sets and rules: %s", strerror(-r));
			break;
		}
		gone = have; /* in place: those of addrs */
		for (size_t i = 0; i < nhave; i++)
			for (size_t k = 0; k < naddrs; k++)
				if (addrs[k].family == have[i].family &&
				    memcmp(addrs[k].addr, have[i].addr, plan_addr_len(have[i].family)) == 0) {
					gone[ngone++] = have[i];
					break;
				}
		if (ngone == 0 && rr.n == 0) {
			free(have);
			break;
		}
		if (round == 3) {
			free(have);
			r = nf_error_set(err, EAGAIN, NF_ERR_KERNEL,
					 "removing the re-judging rules and addresses (sets %s/%s): still there after 3 attempts",
					 PLAN_SET_REJUDGE4, PLAN_SET_REJUDGE6);
			break;
		}
		if ((r = tx_init(&tx, NULL)) == 0) {
			nftnl_batch_begin(tx.scratch, tx_note(&tx, OBJ_BATCH, 0, 0));
			tx_next(&tx);
			/* the rules first: then nothing looks the addresses up */
			for (size_t i = 0; i < rr.n && !tx.oom; i++) {
				struct nftnl_rule *rule = nftnl_rule_alloc();
				const char *chain = PLAN_CHAIN_BASE;
				if (!rule || nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, PLAN_TABLE) < 0 ||
				    nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, chain) < 0) {
					tx.oom = true;
				} else {
					nftnl_rule_set_u64(rule, NFTNL_RULE_HANDLE, rr.handle[i]);
					nftnl_rule_nlmsg_build_payload(tx_hdr(&tx, NFT_MSG_DELRULE, NFPROTO_INET, 0,
									     OBJ_REJUDGERULEDEL, 0, 0),
								       rule);
					tx_next(&tx);
				}
				if (rule)
					nftnl_rule_free(rule);
			}
			if (ngone)
				rejudge_elems_msg(&tx, gone, ngone, NFT_MSG_DELSETELEM, OBJ_REJUDGEDEL);
			nftnl_batch_end(tx.scratch, tx_note(&tx, OBJ_BATCH, 0, 0));
			tx_next(&tx);
			r = tx.oom ? -ENOMEM : tx_talk(&tx, NULL, err);
			if (r == -ENOENT) { /* changed meanwhile: again */
				nf_error_clear(err);
				r = 0;
			}
		}
		if (r == -ENOMEM)
			nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "out of memory");
		tx_fini(&tx);
		free(have);
	}
	q_close(&q);
	return r;
}
