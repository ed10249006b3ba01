/* The part of libmnl's API that the plugin and libnftnl call (and the
 * batch's reset and an attribute's length, which complete the families
 * tests/unit/test_mnl.c checks against libmnl), for linking the plugin as
 * one static executable (Makefile, PLUGIN_LINK=static).
 *
 * Debian ships libmnl only as a shared library, and a static executable
 * cannot load one. The plugin is started for every pod ADD and DEL, and
 * the dynamic loader's work (mapping libc and libmnl, binding, relocating)
 * was ~0.3 ms of each call on a cold start (docs/performance-history.md); a static
 * plugin is also one file to copy to a node, as the upstream releases of
 * the reference plugins are (Debian's builds of them link libc).
 *
 * Compiled against <libmnl/libmnl.h>, so that every prototype, constant and
 * type (MNL_TYPE_*, MNL_CB_*, the iteration macros) is libmnl's own; the
 * behaviour follows libmnl's documentation: the same errno values on the
 * same failures (tests/unit/test_mnl.c checks them). netfencectl and the
 * tests link the system's libmnl: this file is only in bin/netfence. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>

/* libmnl's way of failing: errno set, -1 returned */
static int fail(int e)
{
	errno = e;
	return -1;
}

/* --- sockets --- */

struct mnl_socket {
	int fd;
	struct sockaddr_nl addr;
};

struct mnl_socket *mnl_socket_open(int bus)
{
	return mnl_socket_open2(bus, 0);
}

struct mnl_socket *mnl_socket_open2(int bus, int flags)
{
	struct mnl_socket *nl = calloc(1, sizeof(*nl));

	if (!nl)
		return NULL;
	nl->fd = socket(AF_NETLINK, SOCK_RAW | flags, bus);
	if (nl->fd < 0) {
		free(nl);
		return NULL;
	}
	return nl;
}

int mnl_socket_bind(struct mnl_socket *nl, unsigned int groups, pid_t pid)
{
	socklen_t len = sizeof(nl->addr);

	nl->addr.nl_family = AF_NETLINK;
	nl->addr.nl_groups = groups;
	nl->addr.nl_pid = (__u32)pid;
	if (bind(nl->fd, (struct sockaddr *)&nl->addr, sizeof(nl->addr)) < 0 ||
	    getsockname(nl->fd, (struct sockaddr *)&nl->addr, &len) < 0)
		return -1;
	if (len != sizeof(nl->addr) || nl->addr.nl_family != AF_NETLINK)
		return fail(EINVAL);
	return 0;
}

int mnl_socket_close(struct mnl_socket *nl)
{
	int r = close(nl->fd);

	free(nl);
	return r;
}

int mnl_socket_get_fd(const struct mnl_socket *nl)
{
	return nl->fd;
}

unsigned int mnl_socket_get_portid(const struct mnl_socket *nl)
{
	return nl->addr.nl_pid;
}

ssize_t mnl_socket_sendto(const struct mnl_socket *nl, const void *req, size_t siz)
{
	static const struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	return sendto(nl->fd, req, siz, 0, (const struct sockaddr *)&kernel, sizeof(kernel));
}

ssize_t mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t siz)
{
	struct sockaddr_nl from;
	struct iovec iov = { .iov_base = buf, .iov_len = siz };
	struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r = recvmsg(nl->fd, &msg, 0);

	if (r < 0)
		return r;
	if (msg.msg_flags & MSG_TRUNC)
		return fail(ENOSPC);
	if (msg.msg_namelen != sizeof(from))
		return fail(EINVAL);
	return r;
}

int mnl_socket_setsockopt(const struct mnl_socket *nl, int type, void *buf, socklen_t len)
{
	return setsockopt(nl->fd, SOL_NETLINK, type, buf, len);
}

/* --- messages --- */

size_t mnl_nlmsg_size(size_t len)
{
	return len + MNL_NLMSG_HDRLEN;
}

size_t mnl_nlmsg_get_payload_len(const struct nlmsghdr *nlh)
{
	return nlh->nlmsg_len - MNL_NLMSG_HDRLEN;
}

struct nlmsghdr *mnl_nlmsg_put_header(void *buf)
{
	struct nlmsghdr *nlh = buf;

	memset(buf, 0, MNL_NLMSG_HDRLEN);
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN;
	return nlh;
}

void *mnl_nlmsg_put_extra_header(struct nlmsghdr *nlh, size_t size)
{
	char *p = (char *)nlh + nlh->nlmsg_len;

	nlh->nlmsg_len += MNL_ALIGN(size);
	memset(p, 0, MNL_ALIGN(size));
	return p;
}

void *mnl_nlmsg_get_payload(const struct nlmsghdr *nlh)
{
	return (char *)nlh + MNL_NLMSG_HDRLEN;
}

void *mnl_nlmsg_get_payload_offset(const struct nlmsghdr *nlh, size_t offset)
{
	return (char *)nlh + MNL_NLMSG_HDRLEN + MNL_ALIGN(offset);
}

void *mnl_nlmsg_get_payload_tail(const struct nlmsghdr *nlh)
{
	return (char *)nlh + MNL_ALIGN(nlh->nlmsg_len);
}

bool mnl_nlmsg_ok(const struct nlmsghdr *nlh, int len)
{
	return len >= (int)sizeof(struct nlmsghdr) && nlh->nlmsg_len >= sizeof(struct nlmsghdr) &&
	       (int)nlh->nlmsg_len <= len;
}

struct nlmsghdr *mnl_nlmsg_next(const struct nlmsghdr *nlh, int *len)
{
	*len -= (int)MNL_ALIGN(nlh->nlmsg_len);
	return (struct nlmsghdr *)((char *)nlh + MNL_ALIGN(nlh->nlmsg_len));
}

/* 0 in the message (the kernel's notifications) or in the caller matches */
bool mnl_nlmsg_seq_ok(const struct nlmsghdr *nlh, unsigned int seq)
{
	return !nlh->nlmsg_seq || !seq || nlh->nlmsg_seq == seq;
}

bool mnl_nlmsg_portid_ok(const struct nlmsghdr *nlh, unsigned int portid)
{
	return !nlh->nlmsg_pid || !portid || nlh->nlmsg_pid == portid;
}

/* --- batches of messages in one buffer --- */

struct mnl_nlmsg_batch {
	char *buf;
	size_t limit, len;
	char *cur;
	bool overflow;
};

struct mnl_nlmsg_batch *mnl_nlmsg_batch_start(void *buf, size_t limit)
{
	struct mnl_nlmsg_batch *b = malloc(sizeof(*b));

	if (!b)
		return NULL;
	*b = (struct mnl_nlmsg_batch){ .buf = buf, .limit = limit, .cur = buf };
	return b;
}

/* takes the message at the current position in; false (and nothing taken)
 * once the batch would pass its limit */
bool mnl_nlmsg_batch_next(struct mnl_nlmsg_batch *b)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)b->cur;

	if (b->len + nlh->nlmsg_len > b->limit) {
		b->overflow = true;
		return false;
	}
	b->len += nlh->nlmsg_len;
	b->cur = b->buf + b->len;
	return true;
}

void mnl_nlmsg_batch_stop(struct mnl_nlmsg_batch *b)
{
	free(b);
}

size_t mnl_nlmsg_batch_size(struct mnl_nlmsg_batch *b)
{
	return b->len;
}

/* empties the batch; a message that did not fit moves to its start */
void mnl_nlmsg_batch_reset(struct mnl_nlmsg_batch *b)
{
	if (b->overflow) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)b->cur;

		memmove(b->buf, b->cur, nlh->nlmsg_len);
		b->len = nlh->nlmsg_len;
		b->cur = b->buf + b->len;
		b->overflow = false;
	} else {
		b->len = 0;
		b->cur = b->buf;
	}
}

void *mnl_nlmsg_batch_head(struct mnl_nlmsg_batch *b)
{
	return b->buf;
}

void *mnl_nlmsg_batch_current(struct mnl_nlmsg_batch *b)
{
	return b->cur;
}

bool mnl_nlmsg_batch_is_empty(struct mnl_nlmsg_batch *b)
{
	return b->len == 0;
}

/* --- attributes --- */

uint16_t mnl_attr_get_type(const struct nlattr *attr)
{
	return attr->nla_type & NLA_TYPE_MASK;
}

uint16_t mnl_attr_get_len(const struct nlattr *attr)
{
	return attr->nla_len;
}

uint16_t mnl_attr_get_payload_len(const struct nlattr *attr)
{
	return (uint16_t)(attr->nla_len - MNL_ATTR_HDRLEN);
}

void *mnl_attr_get_payload(const struct nlattr *attr)
{
	return (char *)attr + MNL_ATTR_HDRLEN;
}

bool mnl_attr_ok(const struct nlattr *attr, int len)
{
	return len >= (int)sizeof(struct nlattr) && attr->nla_len >= sizeof(struct nlattr) &&
	       (int)attr->nla_len <= len;
}

struct nlattr *mnl_attr_next(const struct nlattr *attr)
{
	return (struct nlattr *)((char *)attr + MNL_ALIGN(attr->nla_len));
}

int mnl_attr_type_valid(const struct nlattr *attr, uint16_t maxtype)
{
	if (mnl_attr_get_type(attr) > maxtype)
		return fail(EOPNOTSUPP);
	return 1;
}

/* the payload of a type of exp_len bytes (0: any length); the checks in
 * libmnl's order, which decides the errno when two fail */
int mnl_attr_validate2(const struct nlattr *attr, enum mnl_attr_data_type type, size_t exp_len)
{
	uint16_t len = mnl_attr_get_payload_len(attr);
	const char *data = mnl_attr_get_payload(attr);

	if ((unsigned)type >= MNL_TYPE_MAX)
		return fail(EINVAL);
	if (len < exp_len)
		return fail(ERANGE);
	switch (type) {
	case MNL_TYPE_FLAG:
		if (len > 0)
			return fail(ERANGE);
		break;
	case MNL_TYPE_NUL_STRING:
		if (len == 0)
			return fail(ERANGE);
		if (data[len - 1] != '\0')
			return fail(EINVAL);
		break;
	case MNL_TYPE_STRING:
		if (len == 0)
			return fail(ERANGE);
		break;
	case MNL_TYPE_NESTED: /* empty, or at least one attribute's header */
		if (len > 0 && len < MNL_ATTR_HDRLEN)
			return fail(ERANGE);
		break;
	default:
		break;
	}
	return exp_len && len > exp_len ? fail(ERANGE) : 0;
}

int mnl_attr_validate(const struct nlattr *attr, enum mnl_attr_data_type type)
{
	static const size_t fixed[MNL_TYPE_MAX] = {
		[MNL_TYPE_U8] = sizeof(uint8_t),   [MNL_TYPE_U16] = sizeof(uint16_t),
		[MNL_TYPE_U32] = sizeof(uint32_t), [MNL_TYPE_U64] = sizeof(uint64_t),
		[MNL_TYPE_MSECS] = sizeof(uint64_t),
	};

	return mnl_attr_validate2(attr, type, (unsigned)type < MNL_TYPE_MAX ? fixed[type] : 0);
}

int mnl_attr_parse(const struct nlmsghdr *nlh, unsigned int offset, mnl_attr_cb_t cb, void *data)
{
	const struct nlattr *attr;
	int r = MNL_CB_OK;

	mnl_attr_for_each(attr, nlh, offset)
		if ((r = cb(attr, data)) <= MNL_CB_STOP)
			return r;
	return r;
}

int mnl_attr_parse_nested(const struct nlattr *nested, mnl_attr_cb_t cb, void *data)
{
	const struct nlattr *attr;
	int r = MNL_CB_OK;

	mnl_attr_for_each_nested(attr, nested)
		if ((r = cb(attr, data)) <= MNL_CB_STOP)
			return r;
	return r;
}

uint8_t mnl_attr_get_u8(const struct nlattr *attr)
{
	return *(const uint8_t *)mnl_attr_get_payload(attr);
}

uint16_t mnl_attr_get_u16(const struct nlattr *attr)
{
	uint16_t v;

	memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
	return v;
}

uint32_t mnl_attr_get_u32(const struct nlattr *attr)
{
	uint32_t v;

	memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
	return v;
}

uint64_t mnl_attr_get_u64(const struct nlattr *attr)
{
	uint64_t v;

	memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
	return v;
}

const char *mnl_attr_get_str(const struct nlattr *attr)
{
	return mnl_attr_get_payload(attr);
}

/* appends an attribute at the message's end; the caller sized the buffer */
void mnl_attr_put(struct nlmsghdr *nlh, uint16_t type, size_t len, const void *data)
{
	struct nlattr *attr = mnl_nlmsg_get_payload_tail(nlh);
	char *payload = mnl_attr_get_payload(attr);

	attr->nla_type = type;
	attr->nla_len = (uint16_t)(MNL_ATTR_HDRLEN + len);
	if (len)
		memcpy(payload, data, len);
	memset(payload + len, 0, MNL_ALIGN(len) - len);
	nlh->nlmsg_len += MNL_ALIGN(MNL_ATTR_HDRLEN + len);
}

void mnl_attr_put_u8(struct nlmsghdr *nlh, uint16_t type, uint8_t data)
{
	mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_u16(struct nlmsghdr *nlh, uint16_t type, uint16_t data)
{
	mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_u32(struct nlmsghdr *nlh, uint16_t type, uint32_t data)
{
	mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_u64(struct nlmsghdr *nlh, uint16_t type, uint64_t data)
{
	mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_str(struct nlmsghdr *nlh, uint16_t type, const char *data)
{
	mnl_attr_put(nlh, type, strlen(data), data);
}

void mnl_attr_put_strz(struct nlmsghdr *nlh, uint16_t type, const char *data)
{
	mnl_attr_put(nlh, type, strlen(data) + 1, data);
}

struct nlattr *mnl_attr_nest_start(struct nlmsghdr *nlh, uint16_t type)
{
	struct nlattr *start = mnl_nlmsg_get_payload_tail(nlh);

	start->nla_type = NLA_F_NESTED | type; /* its length: mnl_attr_nest_end */
	nlh->nlmsg_len += MNL_ATTR_HDRLEN;
	return start;
}

void mnl_attr_nest_end(struct nlmsghdr *nlh, struct nlattr *start)
{
	start->nla_len = (uint16_t)((char *)mnl_nlmsg_get_payload_tail(nlh) - (char *)start);
}

/* --- running callbacks over a buffer of messages --- */

static int cb_noop(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_OK;
}

static int cb_stop(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_STOP;
}

/* an acknowledgement (error 0) stops; an error sets errno and fails */
static int cb_error(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nlmsgerr)))
		return fail(EBADMSG); /* MNL_CB_ERROR */
	errno = err->error < 0 ? -err->error : err->error;
	return err->error == 0 ? MNL_CB_STOP : MNL_CB_ERROR;
}

int mnl_cb_run(const void *buf, size_t numbytes, unsigned int seq, unsigned int portid, mnl_cb_t cb_data,
	       void *data)
{
	static const mnl_cb_t control[NLMSG_MIN_TYPE] = {
		[NLMSG_NOOP] = cb_noop,
		[NLMSG_ERROR] = cb_error,
		[NLMSG_DONE] = cb_stop,
		[NLMSG_OVERRUN] = cb_noop,
	};
	const struct nlmsghdr *nlh = buf;
	int len = (int)numbytes, r = MNL_CB_OK;

	while (mnl_nlmsg_ok(nlh, len)) {
		mnl_cb_t cb;

		if (!mnl_nlmsg_portid_ok(nlh, portid))
			return fail(ESRCH);
		if (!mnl_nlmsg_seq_ok(nlh, seq))
			return fail(EPROTO);
		if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) /* the dump changed under it */
			return fail(EINTR);
		cb = nlh->nlmsg_type >= NLMSG_MIN_TYPE ? cb_data : control[nlh->nlmsg_type];
		if (cb && (r = cb(nlh, data)) <= MNL_CB_STOP)
			return r;
		nlh = mnl_nlmsg_next(nlh, &len);
	}
	return r;
}
