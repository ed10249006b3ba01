/* The plan: plain data describing the whole nftables state netfence wants.
 *
 * compile.c builds it from the node state, render.c prints it as nft text
 * (golden tests, `netfencectl show`), nft.c sends it as one libnftnl batch.
 *
 * Kernel layout (names are fixed here so render and nft agree):
 *
 *   table inet netfence
 *     map egress4 { ipv4_addr : verdict }    pod source address -> jump its kind's chain
 *     map egress6 { ipv6_addr : verdict }
 *     set rejudge4 { ipv4_addr }              pods whose flows a policy change
 *     set rejudge6 { ipv6_addr }              judges again (empty but for then)
 *     set <plan_set.name> ...                 peer addresses (selectors, ipBlocks): the
 *                                             sets of every egress policy's rules, used by a
 *                                             kind's chain or not (compile.c compile_policy_sets);
 *                                             the tables exist while the state has an
 *                                             egress policy (plan.tables)
 *     chain prerouting  hook prerouting priority filter, policy accept:
 *         (only while re-judging, inserted and removed outside the plan, txn.h:
 *          ip saddr @rejudge4 ct state established,related ct direction original ip saddr vmap @egress4
 *          ip6 saddr @rejudge6 ... ip6 saddr vmap @egress6)
 *         ct state established,related accept
 *         icmpv6 type nd-router-solicit..nd-neighbor-advert accept
 *         ip saddr vmap @egress4
 *         ip6 saddr vmap @egress6
 *     chain <plan_chain.name>: one per kind of selected pod (the set of
 *         policies that select it): the allow rules, then "counter drop"
 *
 *   table netdev netfence-<NN>            NN = 00..31, a hash of <dev> (plan_as_table)
 *     chain <plan_antispoof.chain> hook ingress device <dev> priority -500:
 *         only the pod's own source addresses pass (see render.c)
 *
 * One base chain at prerouting (priority filter: after conntrack, -200,
 * and after kube-proxy's Service DNAT, -100) sees everything a pod sends,
 * whether routed, bridged (br_netfilter runs the inet prerouting hook for
 * bridged frames) or to the node itself. Earlier builds had two, at
 * forward and input, the same rules in each; but nf_tables validates
 * the chains a base chain reaches once per hook, so adding a `jump`
 * element (every ADD) walked every kind's chain twice (bench/kvalidate.sh
 * and docs/performance-history.md). A full apply (`netfencectl sync`) replaces
 * the old layout: it recreates the table.
 *
 * The pods' anti-spoofing chains are spread over PLAN_AS_SHARDS netdev
 * tables, not kept in one: nf_tables validates a whole table (every chain
 * of it) when a rule with a verdict or a meta match is added to it, so a
 * pod's ADD into a shared table walked every other pod's chain
 * (docs/performance-history.md, bench/knetdev.sh); and not one table per pod
 * either: the kernel finds each message's table by walking the list of
 * all tables, so 500 tables cost each message of an ADD 500 name
 * compares. A full apply deletes every netdev table plan_is_as_table
 * names, including the single `table netdev netfence` and the per-pod
 * tables of earlier builds.
 */
#ifndef NETFENCE_PLAN_H
#define NETFENCE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../netconf/model.h"

#define PLAN_TABLE "netfence"
#define PLAN_MAP_V4 "egress4"
#define PLAN_MAP_V6 "egress6"
#define PLAN_SET_REJUDGE4 "rejudge4"
#define PLAN_SET_REJUDGE6 "rejudge6"
#define PLAN_REJUDGE_COMMENT "pods whose flows a policy change judges again"
#define PLAN_CHAIN_BASE "prerouting"
#define PLAN_BASE_HOOK_NAME "prerouting"
#define PLAN_ANTISPOOF_PRIO (-500)
#define PLAN_AS_TABLE_PREFIX "netfence-"
#define PLAN_AS_SHARDS 32
#define PLAN_AS_TABLE_LEN 16 /* "netfence-NN" */
#define PLAN_KIND_PREFIX "kind_" /* a kind's chain, and its ipBlock sets */

/* A named set of addresses (family AF_INET or AF_INET6). interval sets hold
 * prefixes (ipBlocks, already flattened: cidr minus except, no overlaps,
 * sorted); non-interval sets hold host addresses (pods).
 *
 * Two owners: the peer sets of the policies (a selector peer's pods,
 * "sel_<hash>_4"; "np_..." for named ports), and the sets of one kind's
 * chain: all the ipBlocks its policies allow on one port spec, in one
 * interval set, "<chain>_<spec>_4" (plan_set_of_chain), made and deleted
 * with the chain. */
struct plan_set {
	char *name;
	char *comment; /* what it stands for, e.g. "ns(k=v) pods(app=web)" */
	int family;
	bool interval;
	size_t n;
	struct nf_cidr *elems;
};

/* One allow rule in a pod chain. Matches are ANDed; absent ones match all. */
struct plan_rule {
	int family;       /* 0: both; AF_INET/AF_INET6: that family only */
	char *dst_set;    /* NULL: any destination; else a plan_set name of `family` */
	uint8_t l4proto;  /* 0: any protocol */
	uint16_t port_lo; /* 0: any port (requires l4proto) */
	uint16_t port_hi; /* == port_lo for a single port */
	char *comment;    /* "default/foo-deny-external-egress egress[0]" */
};

struct plan_chain {
	char *name;    /* "kind_<16 hex>" (plan_pod_chain_name) */
	char *comment; /* the kind: "default: foo-deny-external-egress, dns" */
	size_t nrules;
	struct plan_rule *rules; /* allow rules; the chain ends in counter drop */
};

/* Dispatch: a pod address -> its chain (map egress4/egress6). */
struct plan_dispatch {
	struct nf_cidr addr; /* host address (prefix 32/128) */
	char *chain;
};

struct plan_antispoof {
	char *chain;   /* "as_<dev>" */
	char *dev;     /* host-side veth */
	size_t naddrs;
	struct nf_cidr *addrs; /* host addresses the pod may use as source */
};

struct plan {
	size_t nsets;
	struct plan_set *sets;
	bool sets_sorted; /* by name (plan_compile does it) */
	/* the netfence tables exist, with the peer sets of every egress
	 * policy, even with no chain: the state has an egress policy
	 * (plan_compile) */
	bool tables;
	size_t nchains;
	struct plan_chain *chains;
	size_t ndispatch;
	struct plan_dispatch *dispatch;
	size_t nantispoof;
	struct plan_antispoof *antispoof;
};

void plan_free(struct plan *p); /* frees members, not p */
/* The netdev table of antispoof chain `chain` ("as_<dev>"):
 * "netfence-NN", NN the FNV-1a hash of <dev> modulo PLAN_AS_SHARDS, two
 * decimal digits; into buf. */
const char *plan_as_table(const char *chain, char buf[PLAN_AS_TABLE_LEN]);
/* NN of that table: 0 .. PLAN_AS_SHARDS - 1 */
unsigned plan_as_shard(const char *chain);
/* Is netdev table `name` netfence's: "netfence-..." (a shard's, or a pod's
 * of earlier builds) or the single table of earlier builds ("netfence")? */
bool plan_is_as_table(const char *name);
/* An address's bytes: 4 for AF_INET, 16 for AF_INET6 */
size_t plan_addr_len(int family);
/* An address range of an interval set: [lo, hi), or from lo to the top
 * of the address space (open: no address follows it). */
struct plan_range {
	uint8_t lo[16];
	uint8_t hi[16];
	bool open;
};
/* The first address of prefix c into out (its address length). */
void plan_prefix_start(const struct nf_cidr *c, uint8_t *out);
/* out = start + 2^(bits - prefix), the first address after the prefix;
 * false when there is none (the prefix reaches the top of the space). */
bool plan_prefix_end(const uint8_t *start, unsigned prefix, size_t len, uint8_t *out);
/* The range that the prefixes of interval set s from element i on make
 * while each starts where the one before ends (the elements sorted, none
 * inside another: compile.c sort_sets), into *rg; returns the index of
 * the element after them. The kernel keeps a range as two elements
 * however many prefixes make it: an ipBlock /16 with a /24 except is 8
 * prefixes and 2 ranges, and the elements are most of what making a set
 * costs it (docs/performance-history.md). */
size_t plan_set_range(const struct plan_set *s, size_t i, struct plan_range *rg);
/* "10.0.0.0/8" when the range is a prefix, "10.0.0.1-10.0.0.6" if not (as
 * nft lists it) */
void plan_range_format(int family, const struct plan_range *rg, char *buf, size_t len);
/* "tcp", "udp", "sctp" (nft's names), or NULL for another protocol number */
const char *plan_proto_name(uint8_t proto);
/* Does rule `outer`'s family, protocol and port match every packet that
 * rule `inner`'s do (destinations aside)? Any family, protocol or port
 * covers each; a port range covers the ports and ranges inside it. */
bool plan_rule_ports_cover(const struct plan_rule *outer, const struct plan_rule *inner);
/* Is set `set` one of chain `chain`'s own ("<chain>_...")? chain NULL:
 * of any kind's chain. */
bool plan_set_of_chain(const char *set, const char *chain);
/* true when the netfence tables should not exist: no egress policy
 * (tables unset) and nothing else in the plan */
bool plan_is_empty(const struct plan *p);
/* true when the pod has an IPv6 address: only then does its anti-spoofing
 * chain pass IPv6 neighbour discovery and MLD (render.c, nft.c) */
bool plan_antispoof_has6(const struct plan_antispoof *a);

/* compile.c: node state -> plan. Pure: no kernel, no I/O. */
int plan_compile(const struct nf_state *s, struct plan *out, struct nf_error *err);
/* The name of the chain of the pod's kind in state s: the policies that
 * select it (pods selected by the same policies share it, whatever their
 * labels), "kind_<16 hex>" (caller frees). */
char *plan_pod_chain_name(const struct nf_state *s, const struct nf_pod *pod);
/* Is this pod selected by any Egress policy? */
bool plan_pod_is_selected(const struct nf_state *s, const struct nf_pod *pod);

/* subtract.c: the plan of state s without `pod` (a pod of s), derived from
 * `with`, the plan of s; -EAGAIN when it cannot be derived exactly (then
 * compile the state without the pod). */
int plan_without_pod(const struct plan *with, const struct nf_state *s, const struct nf_pod *pod,
		     struct plan *out);

/* Can one pod's share of the plan be told apart from the others'? Not
 * when a policy uses named ports (a pod's containerPorts then change other
 * pods' chains), another record claims its address or veth (a stale
 * attachment: which one wins depends on them all), or it is the only pod
 * with an address of a family (every kind's rules of that family come or
 * go with it: plan_family_used). */
bool plan_pod_separable(const struct nf_state *s, const struct nf_pod *pod);
/* compile.c: has a pod of s other than except an address of family
 * (AF_INET, AF_INET6)? The rules of a family no pod has are left out. */
bool plan_family_used(const struct nf_state *s, int family, const struct nf_pod *except);

/* compile.c: one pod's share of the plan of s (a state that holds it),
 * without compiling the other pods, for an ADD or DEL to send just that:
 * `with` holds its dispatch entries and anti-spoofing chain, the chain of
 * its kind when no other pod has that kind, and the sets that chain uses
 * and those its addresses are in, with only its addresses; `without`
 * holds those sets, empty (the kernel has every peer set, filled). The kernel
 * goes from plan(s without pod) to plan(s) by the changes from `without`
 * to `with` (nft_apply_delta), and back the other way. -EAGAIN when the
 * share cannot be told apart (plan_pod_separable), or when the pod is the
 * only one selected (the tables come or go with it): compile. */
int plan_pod_delta(const struct nf_state *s, const struct nf_pod *pod, struct plan *without, struct plan *with);

/* tighten.c: the source addresses of the pods that lost a permission from
 * `before` to `after`: the chain an address jumps to lost a rule or a peer
 * address against the one it jumped to before (its kind's, or another
 * kind's after a relabel), or the address is newly selected while its pod
 * was attached (`existing`: the addresses of the attachments that existed
 * before). Caller frees *out. */
int plan_tightened_sources(const struct plan *before, const struct plan *after, const struct nf_cidr *existing,
			   size_t nexisting, struct nf_cidr **out, size_t *nout);

/* conntrack.c: deletes the conntrack entries whose original source is one
 * of srcs or whose original destination is one of dsts (both may be empty:
 * nothing to do). */
int conntrack_flush(const struct nf_cidr *srcs, size_t nsrcs, const struct nf_cidr *dsts, size_t ndsts,
		    struct nf_error *err);
int conntrack_flush_sources(const struct nf_cidr *addrs, size_t n, struct nf_error *err);


/* render.c: plan -> nft text, deterministic (golden tests). Caller frees. */
char *plan_render(const struct plan *p);

/* nft.c: make the kernel's netfence tables equal to the plan, in one netlink
 * transaction: the tables are created if missing, deleted, and re-created
 * with the plan's content (nothing when the plan is empty). Antispoof
 * chains whose device does not exist are skipped (the pod is gone). */
int nft_apply(const struct plan *p, struct nf_error *err);
/* Changes the kernel from `before` (what it holds) to `after` sending only
 * the differences, in one transaction; the full nft_apply when either plan
 * is empty. *changed: whether anything differed (nothing is sent if not).
 * rejudge (host addresses, may be empty): added to the sets rejudge4 /
 * rejudge6 in the same transaction, with the re-judging rules at the head
 * of the base chains if they are not there, so the established flows from
 * them are judged by their chains from the commit on (txn.h); *rejudging
 * says whether that was done (not by a full apply). */
int nft_apply_diff(const struct plan *before, const struct plan *after, const struct nf_cidr *rejudge,
		   size_t nrejudge, bool *changed, bool *rejudging, struct nf_error *err);
/* The addresses in the kernel's sets rejudge4/rejudge6 (none if the table
 * is missing). Caller frees *out. */
int nft_rejudge_list(struct nf_cidr **out, size_t *nout, struct nf_error *err);
/* Removes those of addrs that are in the sets rejudge4/rejudge6, and the
 * re-judging rules from the base chains (queries first; missing ones and
 * a missing table are not errors). */
int nft_rejudge_end(const struct nf_cidr *addrs, size_t naddrs, struct nf_error *err);
/* The changes from `before` to `after` alone, object by object, in one
 * transaction: for the partial plans of plan_pod_delta, which name only
 * what one pod changes (objects in neither are left alone). The tables
 * must exist: the kernel refuses the transaction otherwise, and nothing
 * changes. */
int nft_apply_delta(const struct plan *before, const struct plan *after, bool *changed, struct nf_error *err);
/* Deletes every netfence table (inet netfence, and each netdev one
 * plan_is_as_table names) in one transaction. */
int nft_delete_all(struct nf_error *err);
/* 1 if chain `name` exists in table inet netfence, 0 if not, <0 on error */
int nft_chain_exists(const char *name, struct nf_error *err);
/* CNI CHECK: is one pod's part of the kernel's ruleset exactly what the
 * plan says? Compares, for the plan chain `chain` (the pod's kind's): the
 * chain and its rules (in order, with comments; not handles or counter
 * values), the sets its rules use (their elements), the entries of maps
 * egress4/egress6 that lead to it (the plan's addresses, each `jump
 * chain`, and no other), the base chains forward and input, and the
 * antispoof chain of host veth `dev` in its table netdev netfence-<NN> (none is
 * checked if the plan has none for it, or dev is NULL): hook, device
 * (which must exist), rules. 0 if all match; else <0 and code
 * NF_ERR_KERNEL with a message that names the first difference (-ENOENT:
 * something is missing, -EEXIST: something is there that the plan does
 * not have, -EINVAL: it differs; others: nftables could not be asked).
 * Read only. */
int nft_check_pod(const struct plan *p, const char *chain, const char *dev, struct nf_error *err);
/* Best-effort removal of one pod without a plan (DEL with an unusable state
 * file): the map egress4/egress6 elements of `addrs` (or, when chain is
 * not NULL, every element that jumps to `chain`, and `chain` itself), the
 * chains those elements jumped to that no other element jumps to (the
 * last pod of a kind), flushed and deleted, and the netdev table of
 * `antispoof_chain` (plan_as_table; NULL: none), and the sets of the
 * chains it deletes (their ipBlock sets: plan_set_of_chain). The peer
 * sets are left alone (other pods may use them; the next nft_apply
 * rebuilds them). Missing objects or tables are
 * not errors. Queries first, deletes what it found in one transaction,
 * and checks again (up to 3 rounds, for concurrent changes). 0 when
 * nothing of the pod is left, <0 with a message naming what could not be
 * deleted. */
int nft_remove_pod(const char *chain, const struct nf_cidr *addrs, size_t naddrs,
		   const char *antispoof_chain, struct nf_error *err);

#endif
