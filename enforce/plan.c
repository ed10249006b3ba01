/* plan.c: the plan's own helpers (compile.c builds it, render.c and nft.c
 * consume it). */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
