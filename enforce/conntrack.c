/* conntrack over ctnetlink (libmnl): delete the entries whose original
 * source (or destination) is in a set of addresses. A dump cannot be
 * interleaved with deletes on one socket, so the matching entries' original tuples are collected first,
 * then deleted one message each; an entry that expired in between
 * (ENOENT) is fine. */
#include "nlsock.h"
#include "plan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

struct victim {
	uint8_t family;
	bool has_zone;
	uint16_t zone; /* network order, as dumped */
	uint16_t len;
	uint8_t tuple[512]; /* payload of CTA_TUPLE_ORIG */
};

struct collect {
	const struct nf_cidr *addrs; /* sources */
	size_t naddrs;
	const struct nf_cidr *dsts; /* destinations */
	size_t ndsts;
	size_t n;
	struct victim *v;
	int err;
};

static int host_cmp(const void *a, const void *b)
{
	return nf_cidr_cmp(a, b);
}

/* the sets are sorted (host addresses): a busy node dumps many entries */
static bool addr_in(const struct nf_cidr *set, size_t n, int family, const void *addr)
{
	struct nf_cidr key = {.family = family, .prefix = family == AF_INET ? 32 : 128};

	if (!addr || n == 0)
		return false;
	memcpy(key.addr, addr, plan_addr_len(family));
	return bsearch(&key, set, n, sizeof(*set), host_cmp) != NULL;
}

/* the original source and destination addresses */
static void orig_addrs(const struct nlattr *orig, int *family, const void **src, const void **dst)
{
	const struct nlattr *ip, *a;

	*src = *dst = NULL;
	mnl_attr_for_each_nested(ip, orig) {
		if (mnl_attr_get_type(ip) != CTA_TUPLE_IP)
			continue;
		mnl_attr_for_each_nested(a, ip) {
			uint16_t t = mnl_attr_get_type(a), len = mnl_attr_get_payload_len(a);

			if ((t == CTA_IP_V4_SRC || t == CTA_IP_V4_DST) && len == 4)
				*family = AF_INET;
			else if ((t == CTA_IP_V6_SRC || t == CTA_IP_V6_DST) && len == 16)
				*family = AF_INET6;
			else
				continue;
			if (t == CTA_IP_V4_SRC || t == CTA_IP_V6_SRC)
				*src = mnl_attr_get_payload(a);
			else
				*dst = mnl_attr_get_payload(a);
		}
	}
}

static int collect_cb(const struct nlmsghdr *nlh, void *data)
{
	struct collect *c = data;
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a, *orig = NULL, *zone = NULL;
	const void *src, *dst;
	struct victim *v;
	int family = 0;

	mnl_attr_for_each(a, nlh, sizeof(*nfg)) {
		if (mnl_attr_get_type(a) == CTA_TUPLE_ORIG)
			orig = a;
		else if (mnl_attr_get_type(a) == CTA_ZONE && mnl_attr_get_payload_len(a) == 2)
			zone = a;
	}
	if (!orig || mnl_attr_get_payload_len(orig) > sizeof(v->tuple))
		return MNL_CB_OK;
	orig_addrs(orig, &family, &src, &dst);
	if (!addr_in(c->addrs, c->naddrs, family, src) && !addr_in(c->dsts, c->ndsts, family, dst))
		return MNL_CB_OK;
	v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	if (!v) {
		c->err = -ENOMEM;
		return MNL_CB_ERROR;
	}
	c->v = v;
	v = &c->v[c->n++];
	memset(v, 0, sizeof(*v));
	v->family = nfg->nfgen_family;
	v->len = mnl_attr_get_payload_len(orig);
	memcpy(v->tuple, mnl_attr_get_payload(orig), v->len);
	if (zone) {
		v->has_zone = true;
		memcpy(&v->zone, mnl_attr_get_payload(zone), 2);
	}
	return MNL_CB_OK;
}

static struct nlmsghdr *ct_header(char *buf, uint16_t type, uint16_t flags, uint8_t family, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

/* a sorted copy, as hosts whatever prefix they carry */
static struct nf_cidr *hosts_sorted(const struct nf_cidr *addrs, size_t n)
{
	struct nf_cidr *sorted = calloc(n + 1, sizeof(*sorted));

	if (!sorted)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		sorted[i] = addrs[i];
		sorted[i].prefix = addrs[i].family == AF_INET ? 32 : 128;
	}
	qsort(sorted, n, sizeof(*sorted), host_cmp);
	return sorted;
}

int conntrack_flush_sources(const struct nf_cidr *addrs, size_t n, struct nf_error *err)
{
	return conntrack_flush(addrs, n, NULL, 0, err);
}

int conntrack_flush(const struct nf_cidr *srcs, size_t nsrcs, const struct nf_cidr *dsts, size_t ndsts,
		    struct nf_error *err)
{
	static char buf[1 << 16];
	struct collect c = {.naddrs = nsrcs, .ndsts = ndsts};
	struct nf_cidr *sorted = NULL, *sorted_dsts = NULL;
	struct mnl_socket *nl = NULL;
	uint32_t seq = (uint32_t)time(NULL), portid;
	struct nlmsghdr *nlh;
	ssize_t len;
	int r = 0;

	if (nsrcs == 0 && ndsts == 0)
		return 0;
	if (!(sorted = hosts_sorted(srcs, nsrcs)) || !(sorted_dsts = hosts_sorted(dsts, ndsts))) {
		r = nf_error_set(err, ENOMEM, NF_ERR_KERNEL, "conntrack: out of memory");
		goto out;
	}
	c.addrs = sorted;
	c.dsts = sorted_dsts;
	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = nf_error_set(err, errno, NF_ERR_KERNEL, "conntrack: netlink socket: %s", strerror(errno));
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = ct_header(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC, ++seq);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = nf_error_set(err, errno, NF_ERR_KERNEL, "conntrack: dump: %s", strerror(errno));
		goto out;
	}
	while ((len = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		int cr = mnl_cb_run(buf, (size_t)len, seq, portid, collect_cb, &c);
		if (cr == MNL_CB_STOP)
			break;
		if (cr < 0) {
			r = c.err ? c.err
				  : nf_error_set(err, errno, NF_ERR_KERNEL, "conntrack: dump: %s", strerror(errno));
			goto out;
		}
	}
	if (len < 0) {
		r = nf_error_set(err, errno, NF_ERR_KERNEL, "conntrack: dump: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < c.n; i++) {
		const struct victim *v = &c.v[i];

		nlh = ct_header(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, v->family, ++seq);
		mnl_attr_put(nlh, CTA_TUPLE_ORIG | NLA_F_NESTED, v->len, v->tuple);
		if (v->has_zone)
			mnl_attr_put(nlh, CTA_ZONE, 2, &v->zone);
		if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ||
		    (len = mnl_socket_recvfrom(nl, buf, sizeof(buf))) < 0) {
			r = nf_error_set(err, errno, NF_ERR_KERNEL, "conntrack: delete: %s", strerror(errno));
			goto out;
		}
		if (mnl_cb_run(buf, (size_t)len, seq, portid, NULL, NULL) < 0 && errno != ENOENT) {
			r = nf_error_set(err, errno, NF_ERR_KERNEL, "conntrack: delete: %s", strerror(errno));
			goto out;
		}
	}
out:
	free(sorted);
	free(sorted_dsts);
	free(c.v);
	if (nl)
		nlsock_close(nl);
	return r;
}
