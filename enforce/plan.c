/* plan.c: the plan's own helpers (compile.c builds it, render.c and nft.c
 * consume it). */
#include "plan.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void plan_free(struct plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->sets && i < p->nsets; i++) {
		free(p->sets[i].name);
		free(p->sets[i].comment);
		free(p->sets[i].elems);
	}
	free(p->sets);
	for (size_t i = 0; p->chains && i < p->nchains; i++) {
		struct plan_chain *c = &p->chains[i];
		for (size_t j = 0; c->rules && j < c->nrules; j++) {
			free(c->rules[j].dst_set);
			free(c->rules[j].comment);
		}
		free(c->rules);
		free(c->name);
		free(c->comment);
	}
	free(p->chains);
	for (size_t i = 0; p->dispatch && i < p->ndispatch; i++)
		free(p->dispatch[i].chain);
	free(p->dispatch);
	for (size_t i = 0; p->antispoof && i < p->nantispoof; i++) {
		free(p->antispoof[i].chain);
		free(p->antispoof[i].dev);
		free(p->antispoof[i].addrs);
	}
	free(p->antispoof);
	*p = (struct plan){ 0 };
}

const char *plan_proto_name(uint8_t proto)
{
	switch (proto) {
	case NF_PROTO_TCP: return "tcp";
	case NF_PROTO_UDP: return "udp";
	case NF_PROTO_SCTP: return "sctp";
	default: return NULL;
	}
}

bool plan_rule_ports_cover(const struct plan_rule *outer, const struct plan_rule *inner)
{
	if (outer->family && outer->family != inner->family)
		return false;
	if (!outer->l4proto)
		return true;
	if (outer->l4proto != inner->l4proto)
		return false;
	return !outer->port_lo || (inner->port_lo && outer->port_lo <= inner->port_lo && inner->port_hi <= outer->port_hi);
}

bool plan_set_of_chain(const char *set, const char *chain)
{
	size_t n;

	if (!chain)
		return strncmp(set, PLAN_KIND_PREFIX, strlen(PLAN_KIND_PREFIX)) == 0;
	n = strlen(chain);
	return strncmp(set, chain, n) == 0 && set[n] == '_';
}

bool plan_is_empty(const struct plan *p)
{
	return !p || (!p->tables && p->nchains == 0 && p->nantispoof == 0 && p->ndispatch == 0);
}

bool plan_antispoof_has6(const struct plan_antispoof *a)
{
	for (size_t i = 0; i < a->naddrs; i++)
		if (a->addrs[i].family == AF_INET6)
			return true;
	return false;
}

unsigned plan_as_shard(const char *chain)
{
	const char *dev = strncmp(chain, "as_", 3) == 0 ? chain + 3 : chain;
	uint32_t h = 2166136261u;

	for (; *dev; dev++)
		h = (h ^ (uint8_t)*dev) * 16777619u;
	return (unsigned)(h % PLAN_AS_SHARDS);
}

const char *plan_as_table(const char *chain, char buf[PLAN_AS_TABLE_LEN])
{
	snprintf(buf, PLAN_AS_TABLE_LEN, PLAN_AS_TABLE_PREFIX "%02u", plan_as_shard(chain));
	return buf;
}

bool plan_is_as_table(const char *name)
{
	return strcmp(name, PLAN_TABLE) == 0 ||
	       strncmp(name, PLAN_AS_TABLE_PREFIX, strlen(PLAN_AS_TABLE_PREFIX)) == 0;
}

size_t plan_addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

void plan_prefix_start(const struct nf_cidr *c, uint8_t *out)
{
	size_t len = plan_addr_len(c->family);

	for (size_t i = 0; i < len; i++) {
		int keep = (int)c->prefix - (int)(i * 8);
		uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		out[i] = c->addr[i] & mask;
	}
}

bool plan_prefix_end(const uint8_t *start, unsigned prefix, size_t len, uint8_t *out)
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

size_t plan_set_range(const struct plan_set *s, size_t i, struct plan_range *rg)
{
	size_t len = plan_addr_len(s->family);
	uint8_t next[16];

	memset(rg, 0, sizeof(*rg));
	plan_prefix_start(&s->elems[i], rg->lo);
	rg->open = !plan_prefix_end(rg->lo, s->elems[i].prefix, len, rg->hi);
	for (i++; i < s->n && !rg->open; i++) {
		plan_prefix_start(&s->elems[i], next);
		if (memcmp(next, rg->hi, len) != 0)
			break;
		rg->open = !plan_prefix_end(next, s->elems[i].prefix, len, rg->hi);
	}
	return i;
}

void plan_range_format(int family, const struct plan_range *rg, char *buf, size_t len)
{
	size_t alen = plan_addr_len(family);
	char a[INET6_ADDRSTRLEN] = "?", b[INET6_ADDRSTRLEN] = "?";
	uint8_t last[16];

	inet_ntop(family, rg->lo, a, sizeof(a));
	for (unsigned p = 0; p <= alen * 8; p++) {
		struct nf_cidr c = {.family = family, .prefix = (uint8_t)p};
		uint8_t start[16], end[16];
		bool has_end;

		memcpy(c.addr, rg->lo, alen);
		plan_prefix_start(&c, start);
		if (memcmp(start, rg->lo, alen) != 0)
			continue;
		has_end = plan_prefix_end(start, p, alen, end);
		if (has_end != !rg->open || (has_end && memcmp(end, rg->hi, alen) != 0))
			continue;
		snprintf(buf, len, "%s/%u", a, p);
		return;
	}
	if (rg->open) {
		memset(last, 0xff, alen);
	} else {
		/* hi - 1 */
		memcpy(last, rg->hi, alen);
		for (size_t i = alen; i-- > 0;)
			if (last[i]-- != 0)
				break;
	}
	inet_ntop(family, last, b, sizeof(b));
	snprintf(buf, len, "%s-%s", a, b);
}
