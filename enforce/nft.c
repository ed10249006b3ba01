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
 * of missing devices are skipped, and every apply rebuilds the whole table
 * so a stale as_<dev> does not outlive the next change.
 */
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

/* What each message of the batch is about, to name it in an error. */
enum obj_kind {
	OBJ_BATCH,
	OBJ_TABLE,     /* a: family */
	OBJ_DELTABLE,  /* a: family */
	OBJ_SET,       /* a: plan set */
	OBJ_SETELEM,   /* a: plan set, b: first element, n: count */
	OBJ_MAP,       /* a: AF_INET/AF_INET6 */
	OBJ_MAPELEM,   /* a: AF_INET/AF_INET6, b: first dispatch entry, n: count */
	OBJ_BASECHAIN, /* a: 0 forward, 1 input */
	OBJ_BASERULE,  /* a: 0 forward, 1 input, b: rule */
	OBJ_CHAIN,     /* a: plan chain */
	OBJ_RULE,      /* a: plan chain, b: rule (== nrules: the final drop) */
	OBJ_ASCHAIN,   /* a: antispoof */
	OBJ_ASRULE,    /* a: antispoof, b: rule */
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
	bool oom;
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

static void add_table(struct tx *tx, uint16_t family, bool del)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, PLAN_TABLE) < 0) {
		tx->oom = true;
		goto out;
	}
	nlh = tx_hdr(tx, del ? NFT_MSG_DELTABLE : NFT_MSG_NEWTABLE, family,
		     del ? 0 : NLM_F_CREATE, del ? OBJ_DELTABLE : OBJ_TABLE, family, 0);
	nftnl_table_nlmsg_build_payload(nlh, t);
	tx_next(tx);
out:
	if (t)
		nftnl_table_free(t);
}

/* hooknum < 0: a regular chain */
static void add_chain(struct tx *tx, uint16_t family, const char *name, int hooknum, int prio,
		      const char *dev, const char *comment, enum obj_kind kind, size_t a)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;

	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, PLAN_TABLE) < 0 ||
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
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, family == AF_INET ? 4 : 16);
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
};

static void elems_flush(struct elems *e)
{
	struct nlmsghdr *nlh;

	if (!e->s)
		return;
	nlh = tx_hdr(e->tx, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE, e->kind, e->a,
		     e->first);
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

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* out = start + 2^(bits - prefix), the first address after the prefix;
 * false when there is none (the prefix reaches the top of the space). */
static bool prefix_end(const uint8_t *start, unsigned prefix, size_t len, uint8_t *out)
{
	unsigned carry;
	size_t i;

	memcpy(out, start, len);
	if (prefix == 0)
		return false;
	i = (prefix - 1) / 8;
	carry = 1u << (7 - (prefix - 1) % 8);
	for (;;) {
		unsigned v = out[i] + carry;
		out[i] = (uint8_t)v;
		carry = v >> 8;
		if (!carry)
			return true;
		if (i == 0)
			return false;
		i--;
	}
}

static void prefix_start(const struct nf_cidr *c, uint8_t *out)
{
	size_t len = addr_len(c->family);

	for (size_t i = 0; i < len; i++) {
		int keep = (int)c->prefix - (int)(i * 8);
		uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		out[i] = c->addr[i] & mask;
	}
}

static void add_set_elems(struct tx *tx, const struct plan_set *ps, size_t si)
{
	struct elems e = { .tx = tx, .set = ps->name, .set_id = tx->plan_set_ids[si],
			   .kind = OBJ_SETELEM, .a = si };
	size_t len = addr_len(ps->family);
	static const uint8_t zero[16];

	for (size_t i = 0; i < ps->n && !tx->oom; i++) {
		const struct nf_cidr *c = &ps->elems[i];
		struct nftnl_set_elem *el;
		uint8_t start[16], end[16];

		if (!ps->interval) {
			el = elems_new(&e, i, ELEM_EST(len, 0));
			if (el)
				elem_key(&e, el, c->addr, len);
			continue;
		}
		prefix_start(c, start);
		/* As nftables does: an interval set starts with an end element
		 * at 0 unless the first range starts there. */
		if (i == 0 && memcmp(start, zero, len) != 0) {
			el = elems_new(&e, i, ELEM_EST(len, 8));
			if (!el)
				break;
			elem_key(&e, el, zero, len);
			nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
		}
		el = elems_new(&e, i, ELEM_EST(len, 16));
		if (!el)
			break;
		elem_key(&e, el, start, len);
		if (prefix_end(start, c->prefix, len, end)) {
			el = elems_new(&e, i, ELEM_EST(len, 8));
			if (!el)
				break;
			elem_key(&e, el, end, len);
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

static void add_map_elems(struct tx *tx, const struct plan *p, int family)
{
	int fi = family == AF_INET ? 0 : 1;
	struct elems e = { .tx = tx, .set = fi ? PLAN_MAP_V6 : PLAN_MAP_V4,
			   .set_id = tx->map_id[fi], .kind = OBJ_MAPELEM, .a = (size_t)family };
	size_t len = addr_len(family);

	for (size_t i = 0; i < p->ndispatch && !tx->oom; i++) {
		const struct plan_dispatch *d = &p->dispatch[i];
		struct nftnl_set_elem *el;

		if (d->addr.family != family)
			continue;
		el = elems_new(&e, i, ELEM_EST(len, 32 + strlen(d->chain)));
		if (!el)
			break;
		elem_key(&e, el, d->addr.addr, len);
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, (uint32_t)NFT_JUMP);
		if (nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, d->chain) < 0)
			tx->oom = true;
	}
	elems_flush(&e);
	if (e.s)
		nftnl_set_free(e.s);
}

/* ---- rule expressions, as nftables generates them ---- */

struct rb {
	struct nftnl_rule *r;
	bool oom;
};

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

static int rb_begin(struct rb *rb, const char *chain, const char *comment)
{
	struct nftnl_udata_buf *ud = NULL;

	rb->oom = false;
	rb->r = nftnl_rule_alloc();
	if (!rb->r || nftnl_rule_set_str(rb->r, NFTNL_RULE_TABLE, PLAN_TABLE) < 0 ||
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

static void rb_commit(struct rb *rb, struct tx *tx, uint16_t family, enum obj_kind kind, size_t a,
		      size_t b)
{
	struct nlmsghdr *nlh;

	if (rb->oom || !rb->r) {
		tx->oom = true;
	} else {
		nlh = tx_hdr(tx, NFT_MSG_NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND, kind, a, b);
		nftnl_rule_nlmsg_build_payload(nlh, rb->r);
		tx_next(tx);
	}
	if (rb->r)
		nftnl_rule_free(rb->r);
	rb->r = NULL;
}

/* ---- the layout ---- */

static void add_base_chain(struct tx *tx, int which)
{
	const char *name = which ? PLAN_CHAIN_INPUT : PLAN_CHAIN_FORWARD;
	uint32_t ctmask = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0;
	struct nftnl_expr *e;
	struct rb rb;
	size_t n = 0;

	add_chain(tx, NFPROTO_INET, name, which ? NF_INET_LOCAL_IN : NF_INET_FORWARD, 0, NULL,
		  NULL, OBJ_BASECHAIN, (size_t)which);

	/* ct state established,related accept */
	rb_begin(&rb, name, NULL);
	e = rb_expr(&rb, "ct");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	rb_bitwise(&rb, &ctmask, &zero, sizeof(ctmask));
	rb_cmp(&rb, NFT_CMP_NEQ, &zero, sizeof(zero));
	rb_verdict(&rb, NF_ACCEPT);
	rb_commit(&rb, tx, NFPROTO_INET, OBJ_BASERULE, (size_t)which, n++);

	/* icmpv6 type nd-router-solicit..nd-neighbor-advert accept: neighbour
	 * discovery must work for every pod, selected or not */
	rb_begin(&rb, name, NULL);
	rb_icmpv6_type(&rb, 133, 136);
	rb_verdict(&rb, NF_ACCEPT);
	rb_commit(&rb, tx, NFPROTO_INET, OBJ_BASERULE, (size_t)which, n++);

	for (int fi = 0; fi < 2; fi++) {
		int family = fi ? AF_INET6 : AF_INET;
		/* ip saddr vmap @egress4 / ip6 saddr vmap @egress6 */
		rb_begin(&rb, name, NULL);
		rb_nfproto(&rb, family);
		rb_addr(&rb, family, false);
		rb_lookup(&rb, fi ? PLAN_MAP_V6 : PLAN_MAP_V4, tx->map_id[fi], true);
		rb_commit(&rb, tx, NFPROTO_INET, OBJ_BASERULE, (size_t)which, n++);
	}
}

static int find_set(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nsets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void add_pod_rule(struct tx *tx, const struct plan *p, size_t ci, size_t ri)
{
	const struct plan_chain *c = &p->chains[ci];
	const struct plan_rule *r = &c->rules[ri];
	struct rb rb;

	rb_begin(&rb, c->name, r->comment);
	if (r->dst_set) {
		int si = find_set(p, r->dst_set);
		int family = p->sets[si].family;
		rb_nfproto(&rb, family);
		rb_addr(&rb, family, true);
		rb_lookup(&rb, r->dst_set, tx->plan_set_ids[si], false);
	} else if (r->family) {
		rb_nfproto(&rb, r->family);
	}
	if (r->l4proto)
		rb_l4proto(&rb, r->l4proto);
	if (r->port_lo) /* th dport */
		rb_th_range(&rb, 2, 2, r->port_lo, r->port_hi > r->port_lo ? r->port_hi : r->port_lo);
	rb_verdict(&rb, NF_ACCEPT);
	rb_commit(&rb, tx, NFPROTO_INET, OBJ_RULE, ci, ri);
}

static void add_pod_chain_rules(struct tx *tx, const struct plan *p, size_t ci)
{
	const struct plan_chain *c = &p->chains[ci];
	struct rb rb;

	for (size_t ri = 0; ri < c->nrules && !tx->oom; ri++)
		add_pod_rule(tx, p, ci, ri);
	rb_begin(&rb, c->name, NULL);
	rb_counter(&rb);
	rb_verdict(&rb, NF_DROP);
	rb_commit(&rb, tx, NFPROTO_INET, OBJ_RULE, ci, c->nrules);
}

static void add_antispoof(struct tx *tx, const struct plan_antispoof *as, size_t ai)
{
	static const uint8_t ll_mask[16] = { 0xff, 0xc0 }, ll_net[16] = { 0xfe, 0x80 },
			     any6[16] = { 0 };
	/* ND and MLDv2 reports from link-local sources; DAD probes and MLD
	 * reports from :: (RFC 4862, RFC 3810) */
	static const struct {
		bool unspec;
		uint8_t lo, hi;
	} nd[] = { { false, 133, 136 }, { false, 143, 143 }, { true, 135, 135 }, { true, 143, 143 } };
	size_t n = 0;
	struct rb rb;

	add_chain(tx, NFPROTO_NETDEV, as->chain, NF_NETDEV_INGRESS, PLAN_ANTISPOOF_PRIO, as->dev,
		  NULL, OBJ_ASCHAIN, ai);
	for (int fi = 0; fi < 2; fi++) {
		int family = fi ? AF_INET6 : AF_INET;
		size_t len = addr_len(family);

		for (size_t i = 0; i < as->naddrs; i++) {
			if (as->addrs[i].family != family)
				continue;
			rb_begin(&rb, as->chain, NULL);
			rb_ethproto(&rb, family);
			rb_addr(&rb, family, false);
			rb_cmp(&rb, NFT_CMP_EQ, as->addrs[i].addr, (uint32_t)len);
			rb_verdict(&rb, NF_ACCEPT);
			rb_commit(&rb, tx, NFPROTO_NETDEV, OBJ_ASRULE, ai, n++);
		}
		for (size_t i = 0; fi && i < NF_ARRAY_SIZE(nd); i++) {
			rb_begin(&rb, as->chain, NULL);
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
			rb_commit(&rb, tx, NFPROTO_NETDEV, OBJ_ASRULE, ai, n++);
		}
		/* a pod without an address of this family sends none of it */
		rb_begin(&rb, as->chain, NULL);
		rb_ethproto(&rb, family);
		rb_verdict(&rb, NF_DROP);
		rb_commit(&rb, tx, NFPROTO_NETDEV, OBJ_ASRULE, ai, n++);
	}
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
			    s->elems[i].prefix > addr_len(s->family) * 8)
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
	add_table(tx, NFPROTO_INET, false);
	add_table(tx, NFPROTO_INET, true);
	add_table(tx, NFPROTO_NETDEV, false);
	add_table(tx, NFPROTO_NETDEV, true);

	if (p && !plan_is_empty(p)) {
		add_table(tx, NFPROTO_INET, false);
		tx->map_id[0] = add_set(tx, PLAN_MAP_V4, AF_INET, false, true, NULL, OBJ_MAP, AF_INET);
		tx->map_id[1] = add_set(tx, PLAN_MAP_V6, AF_INET6, false, true, NULL, OBJ_MAP, AF_INET6);
		for (size_t i = 0; i < p->nsets; i++) {
			const struct plan_set *s = &p->sets[i];
			tx->plan_set_ids[i] = add_set(tx, s->name, s->family, s->interval, false,
						      s->comment, OBJ_SET, i);
			add_set_elems(tx, s, i);
		}
		/* in render.c's order (`nft list` lists chains in creation
		 * order); pod chains before the map elements that jump to them */
		add_base_chain(tx, 0);
		add_base_chain(tx, 1);
		for (size_t i = 0; i < p->nchains; i++)
			add_chain(tx, NFPROTO_INET, p->chains[i].name, -1, 0, NULL,
				  p->chains[i].comment, OBJ_CHAIN, i);
		for (size_t i = 0; i < p->nchains && !tx->oom; i++)
			add_pod_chain_rules(tx, p, i);
		add_map_elems(tx, p, AF_INET);
		add_map_elems(tx, p, AF_INET6);

		if (p->nantispoof)
			add_table(tx, NFPROTO_NETDEV, false);
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

static void describe(const struct plan *p, const struct obj *o, char *buf, size_t len)
{
	static const char *const base[] = { PLAN_CHAIN_FORWARD, PLAN_CHAIN_INPUT };

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
		snprintf(buf, len, "chain \"%s\"", base[o->a]);
		break;
	case OBJ_BASERULE:
		snprintf(buf, len, "chain \"%s\" (rule %u)", base[o->a], o->b);
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
	if (nkerrs) {
		const struct kerr *k = &kerrs[0];
		char what[512] = "";
		size_t used = 0;

		if (k->seq - tx->base < tx->seq - tx->base)
			describe(p, &tx->objs[k->seq - tx->base], what, sizeof(what));
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
				describe(p, &tx->objs[k->seq - tx->base], what, sizeof(what));
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
	mnl_socket_close(nl);
	return r;
}

static int run(const struct plan *p, struct nf_error *err)
{
	struct tx tx;
	int r;

	r = tx_init(&tx, p);
	if (r < 0) {
		tx_fini(&tx);
		return nf_error_set(err, -r, NF_ERR_KERNEL, "out of memory");
	}
	build(&tx, p);
	if (tx.oom)
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL,
				 "out of memory building the nftables transaction");
	else
		r = tx_talk(&tx, p, err);
	tx_fini(&tx);
	return r;
}

int nft_apply(const struct plan *p, struct nf_error *err)
{
	int r = p ? plan_check(p, err) : 0;

	if (r < 0)
		return r;
	return run(p, err);
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
	mnl_socket_close(nl);
	return r;
}
