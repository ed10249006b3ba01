/* IPv4/IPv6 prefixes: parsing as the API server validates ipBlock, and
 * formatting. */
#include "model.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* Zeroes the bits of addr beyond prefix. */
static void mask_host_bits(uint8_t *addr, size_t alen, unsigned prefix)
{
	for (size_t i = 0; i < alen; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= prefix)
			addr[i] = 0;
		else if (prefix - bit < 8)
			addr[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
	}
}

int nf_cidr_parse(const char *s, bool allow_host, bool strict, struct nf_cidr *out,
		  const char *field, struct nf_error *err)
{
	char addr[INET6_ADDRSTRLEN + 1];
	struct nf_cidr c = { 0 };
	const char *slash;
	size_t alen;
	unsigned prefix;

	if (!field)
		field = "cidr";
	if (!s)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: missing CIDR", field);

	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (!slash && !allow_host)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid CIDR \"%.256s\": missing /prefix", field, s);
	if (alen == 0 || alen >= sizeof(addr))
		goto invalid;
	memcpy(addr, s, alen);
	addr[alen] = '\0';

	if (inet_pton(AF_INET, addr, c.addr) == 1)
		c.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, c.addr) == 1)
		c.family = AF_INET6;
	else
		goto invalid;

	if (slash) {
		const char *p = slash + 1;
		size_t ndig = strspn(p, "0123456789");

		if (ndig == 0 || ndig > 3 || p[ndig] != '\0')
			goto invalid;
		prefix = (unsigned)atoi(p);
		if (prefix > addr_len(c.family) * 8)
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: invalid CIDR \"%.256s\": prefix length %u is out of range for %s (0-%zu)",
					    field, s, prefix, c.family == AF_INET ? "IPv4" : "IPv6",
					    addr_len(c.family) * 8);
	} else {
		prefix = (unsigned)addr_len(c.family) * 8;
	}
	c.prefix = (uint8_t)prefix;

	if (strict) {
		struct nf_cidr m = c;

		mask_host_bits(m.addr, addr_len(c.family), prefix);
		if (memcmp(m.addr, c.addr, sizeof(c.addr)) != 0) {
			char want[INET6_ADDRSTRLEN + 8];

			nf_cidr_format(&m, want, sizeof(want));
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: invalid CIDR \"%.256s\": host bits are set (did you mean \"%s\"?)",
					    field, s, want);
		}
	}
	*out = c;
	return 0;

invalid:
	return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: invalid CIDR \"%.256s\"", field, s);
}

void nf_addr_format(const struct nf_cidr *c, char *buf, size_t len)
{
	if (!len)
		return;
	if (!inet_ntop(c->family == AF_INET ? AF_INET : AF_INET6, c->addr, buf, (socklen_t)len))
		buf[0] = '\0';
}

void nf_cidr_format(const struct nf_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	nf_addr_format(c, a, sizeof(a));
	if (snprintf(buf, len, "%s/%u", a, (unsigned)c->prefix) >= (int)len && len)
		buf[len - 1] = '\0';
}

bool nf_cidr_contains(const struct nf_cidr *outer, const struct nf_cidr *inner)
{
	uint8_t a[16], b[16];
	size_t alen;

	if (outer->family != inner->family || inner->prefix < outer->prefix)
		return false;
	alen = addr_len(outer->family);
	memcpy(a, outer->addr, alen);
	memcpy(b, inner->addr, alen);
	mask_host_bits(a, alen, outer->prefix);
	mask_host_bits(b, alen, outer->prefix);
	return memcmp(a, b, alen) == 0;
}

int nf_cidr_cmp(const struct nf_cidr *a, const struct nf_cidr *b)
{
	int c;

	if (a->family != b->family)
		return a->family - b->family;
	c = memcmp(a->addr, b->addr, sizeof(a->addr));
	return c ? c : (int)a->prefix - (int)b->prefix;
}
