/* plugin/mnl.c, the part of libmnl's API the static plugin carries. This
 * file is built twice (Makefile): against plugin/mnl.c (test_mnl) and
 * against the system's libmnl (test_mnl_libmnl), so every expectation
 * here is also checked to be libmnl's own behaviour (NF_OWN_MNL: what
 * only plugin/mnl.c does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

static _Alignas(4) char buf[8192];

/* a message with an nfgenmsg header and attributes of every kind; the
 * buffer filled with 0xff first, so that padding left unset shows */
static struct nlmsghdr *build(void)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	struct nlattr *nest;

	memset(buf, 0xff, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	assert_int_equal(nlh->nlmsg_len, 16);
	assert_int_equal(nlh->nlmsg_type, 0);
	assert_int_equal(nlh->nlmsg_seq, 0);
	nlh->nlmsg_type = 0x1234;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	assert_ptr_equal(nfg, buf + 16);
	assert_int_equal(nfg->nfgen_family, 0);
	assert_int_equal(nlh->nlmsg_len, 20);
	mnl_attr_put_u32(nlh, 1, 0x01020304);
	assert_int_equal(nlh->nlmsg_len, 28);
	mnl_attr_put_str(nlh, 2, "abcde"); /* 5 bytes, 3 of padding */
	assert_int_equal(nlh->nlmsg_len, 40);
#ifdef NF_OWN_MNL /* libmnl 1.0.4 leaves the padding as it was */
	assert_memory_equal(buf + 28 + 4 + 5, "\0\0\0", 3);
#endif
	mnl_attr_put_strz(nlh, 3, "xy");
	assert_int_equal(nlh->nlmsg_len, 48);
	nest = mnl_attr_nest_start(nlh, 4);
	mnl_attr_put_u8(nlh, 5, 0xab);
	mnl_attr_put_u16(nlh, 6, 0xbeef);
	mnl_attr_nest_end(nlh, nest);
	assert_int_equal(nest->nla_type, NLA_F_NESTED | 4);
	assert_int_equal(nest->nla_len, 4 + 8 + 8);
	mnl_attr_put_u64(nlh, 7, 0x1122334455667788ULL);
	mnl_attr_put(nlh, 8, 0, NULL);
	assert_int_equal(nlh->nlmsg_len, 48 + 20 + 12 + 4);
	assert_int_equal(mnl_nlmsg_get_payload_len(nlh), nlh->nlmsg_len - 16);
	assert_ptr_equal(mnl_nlmsg_get_payload(nlh), nfg);
	assert_ptr_equal(mnl_nlmsg_get_payload_offset(nlh, sizeof(*nfg)), buf + 20);
	assert_ptr_equal(mnl_nlmsg_get_payload_tail(nlh), buf + nlh->nlmsg_len);
	assert_int_equal(mnl_nlmsg_size(4), 20);
	return nlh;
}

struct seen {
	int n;
	uint16_t types[16];
	const struct nlattr *attrs[16];
	int stop_at; /* the n at which to return MNL_CB_STOP, or -1 */
};

static int collect(const struct nlattr *attr, void *data)
{
	struct seen *s = data;

	if (s->n < 16) {
		s->types[s->n] = mnl_attr_get_type(attr);
		s->attrs[s->n] = attr;
	}
	return s->n++ == s->stop_at ? MNL_CB_STOP : MNL_CB_OK;
}

static void test_build_and_parse(void **state)
{
	struct nlmsghdr *nlh = build();
	struct seen s = { .stop_at = -1 }, n = { .stop_at = -1 };

	assert_int_equal(mnl_attr_parse(nlh, sizeof(struct nfgenmsg), collect, &s), MNL_CB_OK);
	assert_int_equal(s.n, 6);
	assert_int_equal(s.types[0], 1);
	assert_int_equal(mnl_attr_get_u32(s.attrs[0]), 0x01020304);
	assert_int_equal(mnl_attr_get_payload_len(s.attrs[1]), 5);
	assert_memory_equal(mnl_attr_get_str(s.attrs[1]), "abcde", 5);
	assert_int_equal(mnl_attr_get_len(s.attrs[2]), 4 + 3);
	assert_string_equal(mnl_attr_get_str(s.attrs[2]), "xy");
	assert_int_equal(s.types[3], 4); /* NLA_F_NESTED masked off */
	assert_true(mnl_attr_get_u64(s.attrs[4]) == 0x1122334455667788ULL);
	assert_int_equal(s.types[5], 8);
	assert_int_equal(mnl_attr_get_payload_len(s.attrs[5]), 0);

	assert_int_equal(mnl_attr_parse_nested(s.attrs[3], collect, &n), MNL_CB_OK);
	assert_int_equal(n.n, 2);
	assert_int_equal(mnl_attr_get_u8(n.attrs[0]), 0xab);
	assert_int_equal(mnl_attr_get_u16(n.attrs[1]), 0xbeef);

	/* a callback's STOP ends the walk and is returned */
	s = (struct seen){ .stop_at = 1 };
	assert_int_equal(mnl_attr_parse(nlh, sizeof(struct nfgenmsg), collect, &s), MNL_CB_STOP);
	assert_int_equal(s.n, 2);

	/* an attribute claiming more than the message holds ends the walk */
	s = (struct seen){ .stop_at = -1 };
	((struct nlattr *)(buf + 20))->nla_len = 4000;
	assert_int_equal(mnl_attr_parse(nlh, sizeof(struct nfgenmsg), collect, &s), MNL_CB_OK);
	assert_int_equal(s.n, 0);
}

static struct nlattr *attr_of(uint16_t len, const void *payload)
{
	struct nlattr *a = (struct nlattr *)buf;

	memset(buf, 0, 64);
	a->nla_type = 1;
	a->nla_len = (uint16_t)(MNL_ATTR_HDRLEN + len);
	memcpy(buf + MNL_ATTR_HDRLEN, payload, len);
	return a;
}

#define VALIDATE_FAILS(a, type, e)                                                                                     \
	do {                                                                                                           \
		errno = 0;                                                                                             \
		assert_int_equal(mnl_attr_validate((a), (type)), -1);                                                  \
		assert_int_equal(errno, (e));                                                                          \
	} while (0)

static void test_validate(void **state)
{
	struct nlattr *a;

	a = attr_of(4, "\1\2\3\4");
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_U32), 0);
	VALIDATE_FAILS(a, MNL_TYPE_U64, ERANGE);
	VALIDATE_FAILS(a, MNL_TYPE_U16, ERANGE);
	VALIDATE_FAILS(a, MNL_TYPE_FLAG, ERANGE);
	VALIDATE_FAILS(a, MNL_TYPE_NUL_STRING, EINVAL); /* not NUL-terminated */
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_STRING), 0);
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_BINARY), 0);
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_NESTED), 0);
	VALIDATE_FAILS(a, MNL_TYPE_MAX, EINVAL);
	assert_int_equal(mnl_attr_validate2(a, MNL_TYPE_BINARY, 4), 0);
	errno = 0;
	assert_int_equal(mnl_attr_validate2(a, MNL_TYPE_BINARY, 3), -1);
	assert_int_equal(errno, ERANGE);
	/* too long and not NUL-terminated: the type's check decides */
	errno = 0;
	assert_int_equal(mnl_attr_validate2(a, MNL_TYPE_NUL_STRING, 3), -1);
	assert_int_equal(errno, EINVAL);

	a = attr_of(3, "ab\0");
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_NUL_STRING), 0);
	VALIDATE_FAILS(a, MNL_TYPE_NESTED, ERANGE); /* neither empty nor one header */

	a = attr_of(0, "");
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_FLAG), 0);
	assert_int_equal(mnl_attr_validate(a, MNL_TYPE_NESTED), 0);
	VALIDATE_FAILS(a, MNL_TYPE_STRING, ERANGE);
	VALIDATE_FAILS(a, MNL_TYPE_NUL_STRING, ERANGE);
	VALIDATE_FAILS(a, MNL_TYPE_U8, ERANGE);

	a = attr_of(1, "\7");
	a->nla_type = NLA_F_NESTED | 9;
	assert_int_equal(mnl_attr_type_valid(a, 9), 1);
	errno = 0;
	assert_int_equal(mnl_attr_type_valid(a, 8), -1);
	assert_int_equal(errno, EOPNOTSUPP);
	assert_false(mnl_attr_ok(a, 4));
	assert_true(mnl_attr_ok(a, 5));
	assert_ptr_equal(mnl_attr_next(a), buf + 8);
}

/* appends a message of type, seq, pid (and an nlmsgerr with error for
 * NLMSG_ERROR) at *at; returns it */
static struct nlmsghdr *put_msg(char **at, uint16_t type, uint32_t seq, uint32_t pid, int error)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(*at);

	nlh->nlmsg_type = type;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = pid;
	if (type == NLMSG_ERROR) {
		struct nlmsgerr *e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));

		e->error = error;
	} else if (type >= NLMSG_MIN_TYPE) {
		mnl_attr_put_u32(nlh, 1, seq);
	}
	*at += MNL_ALIGN(nlh->nlmsg_len);
	return nlh;
}

static int count_data(const struct nlmsghdr *nlh, void *data)
{
	++*(int *)data;
	return MNL_CB_OK;
}

static int run(char *end, unsigned seq, unsigned pid, int *calls)
{
	*calls = 0;
	errno = 0;
	return mnl_cb_run(buf, (size_t)(end - buf), seq, pid, count_data, calls);
}

static void test_cb_run(void **state)
{
	char *at;
	int calls, r;

	/* two data messages, then DONE: STOP, DONE ends the walk */
	at = buf;
	put_msg(&at, 0x100, 7, 42, 0);
	put_msg(&at, 0x100, 7, 42, 0);
	put_msg(&at, NLMSG_DONE, 7, 42, 0);
	put_msg(&at, 0x100, 7, 42, 0);
	assert_int_equal(run(at, 7, 42, &calls), MNL_CB_STOP);
	assert_int_equal(calls, 2);

	/* no DONE: OK once the buffer ends; NOOP and OVERRUN are skipped */
	at = buf;
	put_msg(&at, NLMSG_NOOP, 7, 42, 0);
	put_msg(&at, 0x100, 7, 42, 0);
	put_msg(&at, NLMSG_OVERRUN, 7, 42, 0);
	assert_int_equal(run(at, 7, 42, &calls), MNL_CB_OK);
	assert_int_equal(calls, 1);

	/* an acknowledgement stops; an error fails with its errno */
	at = buf;
	put_msg(&at, NLMSG_ERROR, 7, 42, 0);
	assert_int_equal(run(at, 7, 42, &calls), MNL_CB_STOP);
	at = buf;
	put_msg(&at, 0x100, 7, 42, 0);
	put_msg(&at, NLMSG_ERROR, 7, 42, -ENOENT);
	put_msg(&at, 0x100, 7, 42, 0);
	r = run(at, 7, 42, &calls);
	assert_int_equal(r, MNL_CB_ERROR);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(calls, 1);

	/* an error message too short for its nlmsgerr */
	at = buf;
	put_msg(&at, NLMSG_ERROR, 7, 42, -EPERM)->nlmsg_len = 16;
	at = buf + 16;
	assert_int_equal(run(at, 7, 42, &calls), MNL_CB_ERROR);
	assert_int_equal(errno, EBADMSG);

	/* another sequence or port: refused; 0 on either side matches */
	at = buf;
	put_msg(&at, 0x100, 8, 42, 0);
	assert_int_equal(run(at, 7, 42, &calls), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(run(at, 0, 42, &calls), MNL_CB_OK);
	at = buf;
	put_msg(&at, 0x100, 7, 43, 0);
	assert_int_equal(run(at, 7, 42, &calls), -1);
	assert_int_equal(errno, ESRCH);
	at = buf;
	put_msg(&at, 0x100, 0, 0, 0);
	assert_int_equal(run(at, 7, 42, &calls), MNL_CB_OK);
	assert_int_equal(calls, 1);

	/* a dump interrupted by a change */
	at = buf;
	put_msg(&at, 0x100, 7, 42, 0)->nlmsg_flags |= NLM_F_DUMP_INTR;
	assert_int_equal(run(at, 7, 42, &calls), -1);
	assert_int_equal(errno, EINTR);

	/* a message longer than the bytes received is not looked at */
	at = buf;
	put_msg(&at, 0x100, 7, 42, 0);
	assert_int_equal(run(at - 1, 7, 42, &calls), MNL_CB_OK);
	assert_int_equal(calls, 0);
	assert_true(mnl_nlmsg_ok((struct nlmsghdr *)buf, (int)(at - buf)));
	assert_false(mnl_nlmsg_ok((struct nlmsghdr *)buf, (int)(at - buf) - 1));
	assert_true(mnl_nlmsg_seq_ok((struct nlmsghdr *)buf, 0));
	assert_false(mnl_nlmsg_portid_ok((struct nlmsghdr *)buf, 41));
}

static void test_batch(void **state)
{
	char *b = buf;
	struct mnl_nlmsg_batch *batch = mnl_nlmsg_batch_start(b, 64);
	struct nlmsghdr *nlh;
	int k;

	assert_non_null(batch);
	assert_true(mnl_nlmsg_batch_is_empty(batch));
	assert_ptr_equal(mnl_nlmsg_batch_head(batch), b);
	/* messages of 24 bytes: two fit in 64, the third does not */
	for (k = 0; k < 3; k++) {
		nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(batch));
		nlh->nlmsg_seq = (uint32_t)k;
		mnl_attr_put_u32(nlh, 1, (uint32_t)k);
		if (k < 2)
			assert_true(mnl_nlmsg_batch_next(batch));
	}
	assert_false(mnl_nlmsg_batch_next(batch));
	assert_false(mnl_nlmsg_batch_is_empty(batch));
	assert_int_equal(mnl_nlmsg_batch_size(batch), 48);
	assert_ptr_equal(mnl_nlmsg_batch_current(batch), b + 48);
	/* the reset keeps the message that did not fit, at the start */
	mnl_nlmsg_batch_reset(batch);
	assert_int_equal(mnl_nlmsg_batch_size(batch), 24);
	assert_int_equal(((struct nlmsghdr *)b)->nlmsg_seq, 2);
	assert_ptr_equal(mnl_nlmsg_batch_current(batch), b + 24);
	mnl_nlmsg_batch_reset(batch);
	assert_true(mnl_nlmsg_batch_is_empty(batch));
	assert_ptr_equal(mnl_nlmsg_batch_current(batch), b);
	mnl_nlmsg_batch_stop(batch);
}

static int count_links(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		++*(int *)data;
	return MNL_CB_OK;
}

/* a real socket: rtnetlink, which any process may read (the links of the
 * test's network namespace, at least lo) */
static void test_socket(void **state)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	_Alignas(4) char req[64], small[16];
	struct nlmsghdr *nlh;
	struct rtgenmsg *g;
	unsigned portid, seq = 99;
	int one = 1, links = 0, r;
	ssize_t n;

	assert_non_null(nl);
	assert_true(mnl_socket_get_fd(nl) >= 0);
	assert_int_equal(mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID), 0);
	portid = mnl_socket_get_portid(nl);
	assert_int_not_equal(portid, 0);
	assert_int_equal(mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one)), 0);

	nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->rtgen_family = AF_UNSPEC;
	assert_int_equal(mnl_socket_sendto(nl, nlh, nlh->nlmsg_len), (ssize_t)nlh->nlmsg_len);
	do {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		assert_true(n > 0);
		r = mnl_cb_run(buf, (size_t)n, seq, portid, count_links, &links);
	} while (r == MNL_CB_OK);
	assert_int_equal(r, MNL_CB_STOP);
	assert_true(links >= 1);

	/* a reply larger than the buffer: ENOSPC, not a cut message */
	nlh->nlmsg_seq = ++seq;
	assert_int_equal(mnl_socket_sendto(nl, nlh, nlh->nlmsg_len), (ssize_t)nlh->nlmsg_len);
	errno = 0;
	assert_int_equal(mnl_socket_recvfrom(nl, small, sizeof(small)), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(mnl_socket_close(nl), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_and_parse),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_cb_run),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
