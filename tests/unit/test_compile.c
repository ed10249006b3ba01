/* compile + render: NP-14 and the seed's patterns, checked two ways:
 * semantic assertions on the plan, and the rendered nft text against a
 * golden file in testdata/golden (NETFENCE_UPDATE_GOLDEN=1 rewrites them;
 * review the diff). No kernel needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <endian.h>
#include <sys/socket.h>

#include "../../enforce/plan.h"
#include "../../netconf/manifest.h"
#include "../../netconf/state.h"

static char *slurp(const char *rel)
{
	char path[1024];
	char *buf = NULL;
	size_t len;
	struct nf_error err = {0};

	snprintf(path, sizeof(path), "%s/%s", SRCDIR, rel);
	if (nf_read_file(path, &buf, &len, &err) < 0)
		return NULL;
	return buf;
}

static void add_manifest(struct nf_state *s, const char *rel)
{
	char *buf = slurp(rel);
	struct nf_error err = {0};
	json_t *docs = NULL, *item;
	size_t i;

	assert_non_null(buf);
	assert_int_equal(nf_manifest_parse(buf, strlen(buf), rel, &docs, &err), 0);
	json_array_foreach(docs, i, item) {
		const char *kind = json_string_value(json_object_get(item, "kind"));
		if (strcmp(kind, "Namespace") == 0) {
			struct nf_namespace n = {0};
			assert_int_equal(nf_namespace_from_json(item, &n, &err), 0);
			assert_true(nf_state_put_namespace(s, &n) >= 0);
		} else {
			struct nf_policy p = {0};
			if (nf_policy_from_json(item, "default", &p, &err) < 0)
				fail_msg("%s: %s", rel, err.msg);
			assert_true(nf_state_put_policy(s, &p) >= 0);
		}
	}
	json_decref(docs);
	free(buf);
}

static void add_pods(struct nf_state *s, const char *rel)
{
	char *buf = slurp(rel);
	json_t *arr, *item;
	json_error_t jerr;
	struct nf_error err = {0};
	size_t i;

	assert_non_null(buf);
	arr = json_loads(buf, 0, &jerr);
	assert_non_null(arr);
	json_array_foreach(arr, i, item) {
		struct nf_pod pod = {0};
		if (nf_pod_from_json(item, &pod, &err) < 0)
			fail_msg("%s: %s", rel, err.msg);
		assert_true(nf_state_put_pod(s, &pod) >= 0);
	}
	json_decref(arr);
	free(buf);
}

static void check_golden(const char *text, const char *name)
{
	char rel[256], path[1024];
	char *want;

	snprintf(rel, sizeof(rel), "testdata/golden/%s.nft", name);
	if (getenv("NETFENCE_UPDATE_GOLDEN")) {
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s", SRCDIR, rel);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(text, f);
		fclose(f);
	}
	want = slurp(rel);
	if (!want)
		fail_msg("missing golden file %s (run with NETFENCE_UPDATE_GOLDEN=1 and review it)", rel);
	if (strcmp(want, text) != 0) {
		fprintf(stderr, "--- want %s\n%s--- got\n%s", rel, want, text);
		free(want);
		fail_msg("rendered plan differs from %s", rel);
	}
	free(want);
}

static const struct plan_chain *chain_of(const struct plan *p, const struct nf_state *s, const char *name)
{
	for (size_t i = 0; i < s->npods; i++) {
		char *cn;
		if (strcmp(s->pods[i].name, name) != 0)
			continue;
		cn = plan_pod_chain_name(s, &s->pods[i]);
		for (size_t j = 0; j < p->nchains; j++) {
			if (strcmp(p->chains[j].name, cn) == 0) {
				free(cn);
				return &p->chains[j];
			}
		}
		free(cn);
	}
	return NULL;
}

static const struct plan_set *set_named(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nsets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return &p->sets[i];
	return NULL;
}

static bool set_has(const struct plan_set *s, const char *addr)
{
	char buf[INET6_ADDRSTRLEN + 8];
	for (size_t i = 0; i < s->n; i++) {
		if (s->interval)
			nf_cidr_format(&s->elems[i], buf, sizeof(buf));
		else
			nf_addr_format(&s->elems[i], buf, sizeof(buf));
		if (strcmp(buf, addr) == 0)
			return true;
	}
	return false;
}

static void build(struct nf_state *s, const char *manifest, struct plan *p)
{
	struct nf_error err = {0};

	add_manifest(s, "testdata/namespaces.yaml");
	if (manifest)
		add_manifest(s, manifest);
	add_pods(s, "testdata/pods-np14.json");
	if (plan_compile(s, p, &err) < 0)
		fail_msg("compile: %s", err.msg);
}

/* The seed's manifest: foo may reach kube-dns on 53/udp and 53/tcp, in
 * both families, and nothing else; no other pod is touched. */
static void test_seed_manifest(void **state)
{
	struct nf_state s = {0};
	struct plan p = {0};
	const struct plan_chain *foo;
	char *text;

	build(&s, "testdata/foo-deny-external-egress.yaml", &p);
	assert_int_equal(p.nchains, 1);
	foo = chain_of(&p, &s, "foo");
	assert_non_null(foo);
	assert_int_equal(foo->nrules, 4);
	for (size_t i = 0; i < foo->nrules; i++) {
		const struct plan_rule *r = &foo->rules[i];
		const struct plan_set *set = set_named(&p, r->dst_set);
		assert_non_null(set);
		assert_int_equal(r->port_lo, 53);
		assert_int_equal(r->port_hi, 53);
		assert_true(r->l4proto == NF_PROTO_UDP || r->l4proto == NF_PROTO_TCP);
		assert_int_equal(set->n, 1); /* only the kube-dns pod */
		assert_true(set_has(set, r->family == AF_INET ? "10.244.0.4" : "fd00:10:244::4"));
	}
	assert_int_equal(p.ndispatch, 2);  /* foo's two addresses */
	assert_int_equal(p.nantispoof, 1); /* foo's veth */
	assert_string_equal(p.antispoof[0].dev, "vethfoo");
	assert_string_equal(p.antispoof[0].chain, "as_vethfoo");
	text = plan_render(&p);
	check_golden(text, "np14-seed");
	free(text);
	plan_free(&p);
	nf_state_free(&s);
}

/* The anti-spoofing chains are spread over PLAN_AS_SHARDS netdev tables by
 * a hash of the veth's name; a full apply deletes the tables of netfence's
 * by name. */
static void test_as_table(void **state)
{
	char tb[PLAN_AS_TABLE_LEN], dev[32];
	unsigned used[PLAN_AS_SHARDS] = {0};

	(void)state;
	/* FNV-1a 32 of the name, modulo 32: fixed, the kernel keeps the names */
	assert_string_equal(plan_as_table("as_veth1a2b3c4d", tb), "netfence-08");
	assert_string_equal(plan_as_table("as_vethfoo", tb), "netfence-16");
	assert_string_equal(plan_as_table("as_x", tb), "netfence-07");
	assert_string_equal(plan_as_table("odd", tb), "netfence-30"); /* no as_: the whole name */
	assert_ptr_equal(plan_as_table("as_x", tb), tb);
	/* 512 bridge-style names reach every table, none by more than 3x its share */
	for (unsigned i = 0; i < 512; i++) {
		unsigned k;
		snprintf(dev, sizeof(dev), "as_veth%08x", i * 2654435761u);
		plan_as_table(dev, tb);
		assert_int_equal(strlen(tb), strlen(PLAN_AS_TABLE_PREFIX) + 2);
		k = (unsigned)atoi(tb + strlen(PLAN_AS_TABLE_PREFIX));
		assert_true(k < PLAN_AS_SHARDS);
		used[k]++;
	}
	for (unsigned k = 0; k < PLAN_AS_SHARDS; k++)
		assert_true(used[k] > 0 && used[k] <= 3 * 512 / PLAN_AS_SHARDS);
	assert_true(plan_is_as_table("netfence-08"));
	assert_true(plan_is_as_table("netfence-veth1")); /* an earlier build's per-pod table */
	assert_true(plan_is_as_table("netfence")); /* earlier builds' single table */
	assert_false(plan_is_as_table("netfence2"));
	assert_false(plan_is_as_table("filter"));
	assert_false(plan_is_as_table("netfenc"));
}

/* The in-cluster variant: port 53 anywhere, any port to any pod. */
static void test_incluster_variant(void **state)
{
	struct nf_state s = {0};
	struct plan p = {0};
	const struct plan_chain *foo;
	const struct plan_set *pods4 = NULL;
	bool any53udp = false, any53tcp = false;
	char *text;

	build(&s, "testdata/foo-deny-external-egress-incluster.yaml", &p);
	foo = chain_of(&p, &s, "foo");
	assert_non_null(foo);
	for (size_t i = 0; i < foo->nrules; i++) {
		const struct plan_rule *r = &foo->rules[i];
		if (!r->dst_set && r->port_lo == 53) {
			if (r->l4proto == NF_PROTO_UDP)
				any53udp = true;
			else
				any53tcp = true;
		}
		if (r->dst_set && r->family == AF_INET) {
			assert_int_equal(r->l4proto, 0);
			pods4 = set_named(&p, r->dst_set);
		}
	}
	assert_true(any53udp && any53tcp);
	assert_non_null(pods4);
	assert_int_equal(pods4->n, 4); /* every pod of every namespace */
	assert_true(set_has(pods4, "10.244.0.3") && set_has(pods4, "10.244.0.4"));
	text = plan_render(&p);
	check_golden(text, "np14-incluster");
	free(text);
	plan_free(&p);
	nf_state_free(&s);
}

/* ipBlock 10.0.0.0/8 except 10.0.1.0/24, flattened into disjoint prefixes;
 * blocks of one rule that nest are reduced to the outer one */
static void test_ipblock_except(void **state)
{
	struct nf_state s = {0};
	struct plan p = {0};
	const struct plan_set *set = NULL;
	char *text;

	build(&s, "testdata/internal-cidr-except.yaml", &p);
	for (size_t i = 0; i < p.nsets; i++)
		if (p.sets[i].interval && p.sets[i].n > 1)
			set = &p.sets[i];
	assert_non_null(set);
	assert_true(set_has(set, "10.0.0.0/24"));
	assert_true(set_has(set, "10.0.2.0/23"));
	assert_true(set_has(set, "10.128.0.0/9"));
	assert_false(set_has(set, "10.0.1.0/24"));
	/* one prefix per level from /9 to /24, and the rule's other block:
	 * all the blocks of a rule share one set (one lookup per packet) */
	assert_true(set_has(set, "203.0.113.10/32"));
	assert_int_equal(set->n, 17);
	assert_int_equal(p.nsets, 1);
	text = plan_render(&p);
	check_golden(text, "internal-cidr-except");
	free(text);
	plan_free(&p);
	nf_state_free(&s);
}

static void test_patterns_golden(void **state)
{
	static const char *const cases[][2] = {
		{"testdata/db-internal-only.yaml", "db-internal-only"},
		{"testdata/backend-limited-external.yaml", "backend-limited-external"},
		{"testdata/payment-service-gateway.yaml", "payment-service-gateway"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nf_state s = {0};
		struct plan p = {0};
		char *text;

		add_pods(&s, "testdata/pods-patterns.json");
		build(&s, cases[i][0], &p);
		/* every pattern selects exactly one of the pattern pods */
		assert_int_equal(p.nchains, 1);
		assert_int_equal(p.nantispoof, 1);
		text = plan_render(&p);
		check_golden(text, cases[i][1]);
		free(text);
		plan_free(&p);
		nf_state_free(&s);
	}
}

/* No policy: nothing selected, the plan is empty (no tables at all). */
static void test_no_policy_empty(void **state)
{
	struct nf_state s = {0};
	struct plan p = {0};

	build(&s, NULL, &p);
	assert_true(plan_is_empty(&p));
	plan_free(&p);
	nf_state_free(&s);
}

/* egress: [] denies everything: a chain with no allow rule. */
static void test_deny_all(void **state)
{
	static const char *doc = "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
				 "\"metadata\":{\"name\":\"deny\",\"namespace\":\"default\"},"
				 "\"spec\":{\"podSelector\":{},\"policyTypes\":[\"Egress\"],\"egress\":[]}}";
	struct nf_state s = {0};
	struct nf_policy pol = {0};
	struct nf_error err = {0};
	struct plan p = {0};
	json_t *obj = json_loads(doc, 0, NULL);

	assert_int_equal(nf_policy_from_json(obj, "default", &pol, &err), 0);
	assert_true(nf_state_put_policy(&s, &pol) >= 0);
	add_pods(&s, "testdata/pods-np14.json");
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	/* foo, web and bar (not kube-dns: kube-system) are of one kind, the
	 * pods this policy alone selects, whatever their labels */
	assert_int_equal(p.nchains, 1);
	assert_int_equal(p.chains[0].nrules, 0);
	assert_string_equal(p.chains[0].comment, "default: deny");
	{
		size_t n = 0, want = 0;
		for (size_t i = 0; i < p.ndispatch; i++)
			n += strcmp(p.dispatch[i].chain, p.chains[0].name) == 0;
		for (size_t i = 0; i < s.npods; i++)
			if (strcmp(s.pods[i].ns, "default") == 0)
				want += s.pods[i].naddrs;
		assert_int_equal(n, p.ndispatch);
		assert_int_equal(n, want);
		assert_true(want >= 3);
	}
	plan_free(&p);
	nf_state_free(&s);
	json_decref(obj);
}

/* A peer pod going away changes the set, not the chain. */
static void test_peer_follows_pods(void **state)
{
	struct nf_state s = {0};
	struct plan p1 = {0}, p2 = {0};
	struct nf_error err = {0};
	const struct plan_chain *c1, *c2;

	build(&s, "testdata/foo-deny-external-egress.yaml", &p1);
	assert_true(nf_state_remove_pod(&s, "c-dns", "eth0"));
	assert_int_equal(plan_compile(&s, &p2, &err), 0);
	c1 = chain_of(&p1, &s, "foo");
	c2 = chain_of(&p2, &s, "foo");
	assert_non_null(c1);
	assert_non_null(c2);
	assert_int_equal(c1->nrules, c2->nrules);
	assert_int_equal(set_named(&p1, c1->rules[0].dst_set)->n, 1);
	assert_int_equal(set_named(&p2, c2->rules[0].dst_set)->n, 0);
	plan_free(&p1);
	plan_free(&p2);
	nf_state_free(&s);
}

static void add_json_policy(struct nf_state *s, const char *doc)
{
	struct nf_error err = {0};
	struct nf_policy pol = {0};
	json_t *obj = json_loads(doc, 0, NULL);

	assert_non_null(obj);
	if (nf_policy_from_json(obj, "default", &pol, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(nf_state_put_policy(s, &pol) >= 0);
	json_decref(obj);
}

static void add_podspec(struct nf_state *s, const char *doc)
{
	struct nf_error err = {0};
	struct nf_podspec ps = {0};
	json_t *obj = json_loads(doc, 0, NULL);

	assert_non_null(obj);
	if (nf_podspec_from_json(obj, "default", &ps, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(nf_state_put_podspec(s, &ps) >= 0);
	json_decref(obj);
}

/* Named ports resolve against the destination pods' registered
 * containerPorts, by name and protocol; non-pods never match. */
static void test_named_ports(void **state)
{
	struct nf_state s = {0};
	struct nf_error err = {0};
	struct plan p = {0};
	const struct plan_chain *foo;
	size_t n80 = 0, n8080 = 0;

	add_pods(&s, "testdata/pods-np14.json");
	add_podspec(&s, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"}},"
			"\"spec\":{\"containers\":[{\"name\":\"n\",\"ports\":[{\"name\":\"http\",\"containerPort\":80}]}]}}");
	add_podspec(&s, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"bar\",\"labels\":{\"app\":\"bar\"}},"
			"\"spec\":{\"containers\":[{\"name\":\"n\",\"ports\":[{\"name\":\"http\",\"containerPort\":8080},"
			"{\"name\":\"dns\",\"containerPort\":53,\"protocol\":\"UDP\"}]}]}}");
	/* to any destination, port http/TCP; dns with the wrong protocol; to an
	 * ipBlock holding web only */
	add_json_policy(&s, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
			    "\"metadata\":{\"name\":\"np\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"foo\"}},"
			    "\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":[{\"port\":\"http\"}]},"
			    "{\"ports\":[{\"port\":\"dns\",\"protocol\":\"TCP\"}]},"
			    "{\"to\":[{\"ipBlock\":{\"cidr\":\"10.244.0.3/32\"}}],\"ports\":[{\"port\":\"http\"}]}]}}");
	/* the registration relabels web: still app=web */
	assert_string_equal(nf_labels_get(&nf_state_find_pod(&s, "c-web", "eth0")->labels, "app"), "web");
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	foo = chain_of(&p, &s, "foo");
	assert_non_null(foo);
	for (size_t i = 0; i < foo->nrules; i++) {
		const struct plan_rule *r = &foo->rules[i];
		const struct plan_set *set = set_named(&p, r->dst_set);
		assert_non_null(set);
		assert_int_equal(r->l4proto, NF_PROTO_TCP); /* dns/TCP matched nothing */
		if (r->port_lo == 80) {
			n80++;
			if (r->family == AF_INET) {
				assert_int_equal(set->n, 1);
				assert_true(set_has(set, "10.244.0.3"));
			}
		} else {
			assert_int_equal(r->port_lo, 8080);
			n8080++;
			if (r->family == AF_INET) {
				assert_int_equal(set->n, 1);
				assert_true(set_has(set, "10.244.0.5"));
			}
		}
	}
	/* the ipBlock 10.244.0.3/32 holds web's IPv4 address only: its v6 set
	 * for the named port stays empty */
	for (size_t i = 0; i < p.nsets; i++)
		if (strstr(p.sets[i].comment, "ipBlock") && p.sets[i].family == AF_INET6)
			assert_int_equal(p.sets[i].n, 0);
	/* v4+v6 for http on web (any destination), v4+v6 for http on web (the
	 * ipBlock peer: another set), v4+v6 for 8080 on bar */
	assert_int_equal(n80, 4);
	assert_int_equal(n8080, 2);
	plan_free(&p);
	nf_state_free(&s);
}

static size_t tightened(const struct plan *a, const struct plan *b, const struct nf_state *before)
{
	struct nf_cidr addrs[64];
	struct nf_cidr *v = NULL;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < before->npods; i++)
		for (size_t j = 0; j < before->pods[i].naddrs && k < 64; j++)
			addrs[k++] = before->pods[i].addrs[j];
	assert_int_equal(plan_tightened_sources(a, b, addrs, k, &v, &n), 0);
	free(v);
	return n;
}

/* Which pods' established flows must be judged again after a change. */
static void test_tightened_sources(void **state)
{
	struct nf_state s = {0}, none = {0};
	struct nf_error err = {0};
	struct plan p1 = {0}, p2 = {0}, p3 = {0}, empty = {0};

	build(&s, "testdata/foo-deny-external-egress.yaml", &p1);
	/* a peer pod leaves: foo lost an address, both its addresses flush */
	assert_true(nf_state_remove_pod(&s, "c-dns", "eth0"));
	assert_int_equal(plan_compile(&s, &p2, &err), 0);
	assert_int_equal(tightened(&p1, &p2, &s), 2);
	/* the peer comes back: pure loosening, nothing flushes */
	add_pods(&none, "testdata/pods-np14.json");
	assert_int_equal(tightened(&p2, &p1, &none), 0);
	/* the policy goes: foo is no longer selected, nothing flushes */
	assert_int_equal(tightened(&p1, &empty, &none), 0);
	/* the policy arrives while foo runs: foo flushes; a brand-new foo does not */
	assert_int_equal(tightened(&empty, &p1, &none), 2);
	assert_int_equal(tightened(&empty, &p1, &s /* has no record of c-dns, but has foo */), 2);
	{
		struct nf_state only_web = {0};
		assert_int_equal(tightened(&empty, &p1, &only_web), 0);
	}
	/* the same plan: nothing */
	assert_int_equal(plan_compile(&s, &p3, &err), 0);
	assert_int_equal(tightened(&p2, &p3, &s), 0);
	plan_free(&p1);
	plan_free(&p2);
	plan_free(&p3);
	nf_state_free(&s);
	nf_state_free(&none);
}

static struct nf_state *relabel_state(const char *app)
{
	static const char *const open_all = "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
		"\"metadata\":{\"name\":\"open\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"foo\"}},"
		"\"policyTypes\":[\"Egress\"],\"egress\":[{}]}}";
	static const char *const dns_only = "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
		"\"metadata\":{\"name\":\"dns\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"bar\"}},"
		"\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":[{\"port\":53,\"protocol\":\"UDP\"}]}]}}";
	struct nf_state *s = calloc(1, sizeof(*s));
	struct nf_error err = {0};
	struct nf_pod pod = {0};
	char doc[512];
	json_t *obj;

	assert_non_null(s);
	add_json_policy(s, open_all);
	add_json_policy(s, dns_only);
	snprintf(doc, sizeof(doc), "{\"containerID\": \"c-x\", \"ifname\": \"eth0\", \"namespace\": \"default\","
		 " \"name\": \"x\", \"labels\": {\"app\": \"%s\"}, \"hostVeth\": \"vethx\","
		 " \"ips\": [\"10.244.0.30/24\"]}", app);
	obj = json_loads(doc, 0, NULL);
	assert_non_null(obj);
	assert_int_equal(nf_pod_from_json(obj, &pod, &err), 0);
	json_decref(obj);
	assert_true(nf_state_put_pod(s, &pod) >= 0);
	return s;
}

/* A relabelled pod jumps to another kind's chain: judged against the
 * chain it jumped to before (which the chain names alone cannot tell). */
static void test_tightened_relabel(void **state)
{
	struct nf_state *foo = relabel_state("foo"), *bar = relabel_state("bar");
	struct nf_error err = {0};
	struct plan pf = {0}, pb = {0};

	assert_int_equal(plan_compile(foo, &pf, &err), 0);
	assert_int_equal(plan_compile(bar, &pb, &err), 0);
	assert_string_not_equal(pf.dispatch[0].chain, pb.dispatch[0].chain);
	assert_int_equal(tightened(&pf, &pb, foo), 1); /* open -> DNS only */
	/* DNS only -> open: the open chain's rule covers the DNS rule's
	 * ports and destination, so nothing is lost and no flow is re-judged */
	assert_int_equal(tightened(&pb, &pf, bar), 0);
	plan_free(&pb);
	assert_int_equal(plan_compile(foo, &pb, &err), 0);
	assert_int_equal(tightened(&pf, &pb, foo), 0); /* same kind, same rules */
	plan_free(&pf);
	plan_free(&pb);
	nf_state_free(foo);
	nf_state_free(bar);
	free(foo);
	free(bar);
}

/* The fuzzing seed state: loads, and uses every kind of rule. */
static void test_state_seed(void **state)
{
	char path[1024];
	struct nf_state s = {0};
	struct nf_error err = {0};
	struct plan p = {0};
	const struct plan_chain *foo;
	bool named = false, range = false, cidr = false;

	snprintf(path, sizeof(path), "%s/testdata/state/np14-state.json", SRCDIR);
	if (nf_state_load(path, &s, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	foo = chain_of(&p, &s, "foo");
	assert_non_null(foo);
	for (size_t i = 0; i < foo->nrules; i++) {
		const struct plan_rule *r = &foo->rules[i];
		named |= r->port_lo == 80 && strncmp(r->dst_set, "np_", 3) == 0;
		range |= r->port_lo == 8000 && r->port_hi == 8080;
		cidr |= plan_set_of_chain(r->dst_set, foo->name); /* its kind's ipBlock set */
	}
	assert_true(named && range && cidr);
	plan_free(&p);
	nf_state_free(&s);
}

/* The plan without a pod, derived from the plan with it, is the plan the
 * state without the pod compiles to; and named ports make it decline. */
static void test_plan_without_pod(void **state)
{
	static const char *const manifests[] = {
		"testdata/foo-deny-external-egress.yaml", "testdata/foo-deny-external-egress-incluster.yaml",
		"testdata/internal-cidr-except.yaml",
	};
	for (size_t m = 0; m < sizeof(manifests) / sizeof(manifests[0]); m++) {
		for (const char *who = "c-foo"; who; who = strcmp(who, "c-foo") == 0 ? "c-dns" : NULL) {
			struct nf_state s = {0};
			struct nf_error err = {0};
			struct plan with = {0}, derived = {0}, compiled = {0};
			char *a, *b;

			build(&s, manifests[m], &with);
			assert_int_equal(plan_without_pod(&with, &s, nf_state_find_pod(&s, who, "eth0"), &derived), 0);
			assert_true(nf_state_remove_pod(&s, who, "eth0"));
			assert_int_equal(plan_compile(&s, &compiled, &err), 0);
			a = plan_render(&derived);
			b = plan_render(&compiled);
			if (strcmp(a, b) != 0)
				fail_msg("%s without %s:\n--- derived\n%s--- compiled\n%s", manifests[m], who, a, b);
			free(a);
			free(b);
			plan_free(&with);
			plan_free(&derived);
			plan_free(&compiled);
			nf_state_free(&s);
		}
	}
	{
		struct nf_state s = {0};
		struct plan with = {0}, out = {0};
		add_pods(&s, "testdata/pods-np14.json");
		add_json_policy(&s, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
				    "\"metadata\":{\"name\":\"np\"},\"spec\":{\"podSelector\":{},"
				    "\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":[{\"port\":\"http\"}]}]}}");
		assert_int_equal(plan_compile(&s, &with, NULL), 0);
		assert_int_equal(plan_without_pod(&with, &s, &s.pods[0], &out), -EAGAIN);
		plan_free(&with);
		nf_state_free(&s);
	}
}

/* ---- plan_pod_delta, checked against whole compiles ---- */

static char *dup0(const char *x)
{
	return x ? strdup(x) : NULL;
}

static long chain_idx(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nchains; i++)
		if (strcmp(p->chains[i].name, name) == 0)
			return (long)i;
	return -1;
}

static long set_idx(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nsets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return (long)i;
	return -1;
}

static long as_idx(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nantispoof; i++)
		if (strcmp(p->antispoof[i].chain, name) == 0)
			return (long)i;
	return -1;
}

static bool has_elem(const struct nf_cidr *v, size_t n, const struct nf_cidr *c)
{
	for (size_t i = 0; i < n; i++)
		if (nf_cidr_cmp(&v[i], c) == 0)
			return true;
	return false;
}

static void drop_chain(struct plan *p, long i)
{
	struct plan one = {.nchains = 1};

	one.chains = malloc(sizeof(*one.chains));
	*one.chains = p->chains[i];
	plan_free(&one);
	memmove(&p->chains[i], &p->chains[i + 1], (p->nchains - (size_t)i - 1) * sizeof(*p->chains));
	p->nchains--;
}

/* adds a copy of c to p, replacing p's chain of that name */
static void put_chain(struct plan *p, const struct plan_chain *c)
{
	struct plan_chain n = {.name = dup0(c->name), .comment = dup0(c->comment), .nrules = c->nrules};
	long i = chain_idx(p, c->name);

	n.rules = calloc(c->nrules + 1, sizeof(*n.rules));
	for (size_t k = 0; k < c->nrules; k++) {
		n.rules[k] = c->rules[k];
		n.rules[k].dst_set = dup0(c->rules[k].dst_set);
		n.rules[k].comment = dup0(c->rules[k].comment);
	}
	if (i >= 0)
		drop_chain(p, i);
	p->chains = realloc(p->chains, (p->nchains + 1) * sizeof(*p->chains));
	p->chains[p->nchains++] = n;
}

/* What build_diff (nft.c) does to the kernel, done to a plan: base becomes
 * base + (to - from), object by object. */
static void patch(struct plan *base, const struct plan *from, const struct plan *to)
{
	/* chains and anti-spoofing chains */
	for (size_t i = 0; i < from->nchains; i++)
		if (chain_idx(to, from->chains[i].name) < 0) {
			long j = chain_idx(base, from->chains[i].name);
			assert_true(j >= 0);
			drop_chain(base, j);
		}
	for (size_t i = 0; i < to->nchains; i++)
		put_chain(base, &to->chains[i]);
	for (size_t i = 0; i < from->nantispoof; i++)
		if (as_idx(to, from->antispoof[i].chain) < 0) {
			long j = as_idx(base, from->antispoof[i].chain);
			assert_true(j >= 0);
			free(base->antispoof[j].chain);
			free(base->antispoof[j].dev);
			free(base->antispoof[j].addrs);
			memmove(&base->antispoof[j], &base->antispoof[j + 1],
				(base->nantispoof - (size_t)j - 1) * sizeof(*base->antispoof));
			base->nantispoof--;
		}
	for (size_t i = 0; i < to->nantispoof; i++) {
		const struct plan_antispoof *a = &to->antispoof[i];
		struct plan_antispoof n = {.chain = dup0(a->chain), .dev = dup0(a->dev), .naddrs = a->naddrs};
		assert_true(as_idx(base, a->chain) < 0 || as_idx(from, a->chain) >= 0);
		n.addrs = calloc(a->naddrs + 1, sizeof(*n.addrs));
		if (a->naddrs)
			memcpy(n.addrs, a->addrs, a->naddrs * sizeof(*n.addrs));
		if (as_idx(base, a->chain) >= 0) {
			long j = as_idx(base, a->chain);
			free(base->antispoof[j].chain);
			free(base->antispoof[j].dev);
			free(base->antispoof[j].addrs);
			base->antispoof[j] = n;
		} else {
			base->antispoof = realloc(base->antispoof, (base->nantispoof + 1) * sizeof(*base->antispoof));
			base->antispoof[base->nantispoof++] = n;
		}
	}
	/* sets: new ones whole; changed ones by their elements; gone ones */
	for (size_t i = 0; i < to->nsets; i++) {
		const struct plan_set *t = &to->sets[i];
		long f = set_idx(from, t->name), j = set_idx(base, t->name);
		if (f < 0) {
			struct plan_set n = *t;
			assert_true(j < 0); /* a new set must not be there yet */
			n.name = dup0(t->name);
			n.comment = dup0(t->comment);
			n.elems = calloc(t->n + 1, sizeof(*n.elems));
			if (t->n)
				memcpy(n.elems, t->elems, t->n * sizeof(*n.elems));
			base->sets = realloc(base->sets, (base->nsets + 1) * sizeof(*base->sets));
			base->sets[base->nsets++] = n;
			continue;
		}
		assert_true(j >= 0); /* a changed set must be there */
		{
			const struct plan_set *o = &from->sets[f];
			struct plan_set *b = &base->sets[j];
			struct nf_cidr *v = calloc(b->n + t->n + 1, sizeof(*v));
			size_t n = 0;
			for (size_t k = 0; k < b->n; k++)
				if (!has_elem(o->elems, o->n, &b->elems[k]) || has_elem(t->elems, t->n, &b->elems[k]))
					v[n++] = b->elems[k];
			for (size_t k = 0; k < t->n; k++)
				if (!has_elem(o->elems, o->n, &t->elems[k]) && !has_elem(v, n, &t->elems[k]))
					v[n++] = t->elems[k];
			free(b->elems);
			b->elems = v;
			b->n = n;
		}
	}
	for (size_t i = 0; i < from->nsets; i++)
		if (set_idx(to, from->sets[i].name) < 0) {
			long j = set_idx(base, from->sets[i].name);
			assert_true(j >= 0);
			free(base->sets[j].name);
			free(base->sets[j].comment);
			free(base->sets[j].elems);
			memmove(&base->sets[j], &base->sets[j + 1], (base->nsets - (size_t)j - 1) * sizeof(*base->sets));
			base->nsets--;
		}
	/* dispatch entries */
	for (size_t i = 0; i < from->ndispatch; i++) {
		bool kept = false;
		for (size_t k = 0; k < to->ndispatch; k++)
			kept |= nf_cidr_cmp(&to->dispatch[k].addr, &from->dispatch[i].addr) == 0;
		for (size_t k = 0; !kept && k < base->ndispatch; k++)
			if (nf_cidr_cmp(&base->dispatch[k].addr, &from->dispatch[i].addr) == 0) {
				free(base->dispatch[k].chain);
				memmove(&base->dispatch[k], &base->dispatch[k + 1],
					(base->ndispatch - k - 1) * sizeof(*base->dispatch));
				base->ndispatch--;
				break;
			}
	}
	for (size_t i = 0; i < to->ndispatch; i++) {
		base->dispatch = realloc(base->dispatch, (base->ndispatch + 1) * sizeof(*base->dispatch));
		base->dispatch[base->ndispatch] = to->dispatch[i];
		base->dispatch[base->ndispatch++].chain = dup0(to->dispatch[i].chain);
	}
}

static int by_chain(const void *a, const void *b)
{
	return strcmp(((const struct plan_chain *)a)->name, ((const struct plan_chain *)b)->name);
}

static int by_as(const void *a, const void *b)
{
	return strcmp(((const struct plan_antispoof *)a)->chain, ((const struct plan_antispoof *)b)->chain);
}

static int by_addr(const void *a, const void *b)
{
	return nf_cidr_cmp(&((const struct plan_dispatch *)a)->addr, &((const struct plan_dispatch *)b)->addr);
}

static int by_set(const void *a, const void *b)
{
	return strcmp(((const struct plan_set *)a)->name, ((const struct plan_set *)b)->name);
}

static int by_cidr(const void *a, const void *b)
{
	return nf_cidr_cmp(a, b);
}

/* the plan in one order, whatever the order things were added in */
static char *canonical(struct plan *p)
{
	if (p->nchains)
		qsort(p->chains, p->nchains, sizeof(*p->chains), by_chain);
	if (p->nantispoof)
		qsort(p->antispoof, p->nantispoof, sizeof(*p->antispoof), by_as);
	if (p->ndispatch)
		qsort(p->dispatch, p->ndispatch, sizeof(*p->dispatch), by_addr);
	if (p->nsets)
		qsort(p->sets, p->nsets, sizeof(*p->sets), by_set);
	for (size_t i = 0; i < p->nsets; i++)
		if (p->sets[i].n)
			qsort(p->sets[i].elems, p->sets[i].n, sizeof(struct nf_cidr), by_cidr);
	p->sets_sorted = true;
	return plan_render(p);
}

/* For every pod of s: plan(s without it) + (without -> with) == plan(s),
 * and plan(s) + (with -> without) == plan(s without it). Returns how many
 * pods could be checked (-EAGAIN ones are not). */
static size_t check_deltas(struct nf_state *s)
{
	size_t checked = 0;

	for (size_t i = 0; i < s->npods; i++) {
		struct nf_state v = *s;
		struct nf_error err = {0};
		struct plan full = {0}, less = {0}, with = {0}, without = {0}, derived = {0};
		char *want, *got;
		int r;

		if (s->pods[i].idle) /* no ADD or DEL is one's */
			continue;
		r = plan_pod_delta(s, &s->pods[i], &without, &with);
		if (r == -EAGAIN)
			continue;
		assert_int_equal(r, 0);
		checked++;
		/* the state without pod i: a view on s's pods */
		v.pods = calloc(s->npods, sizeof(*v.pods));
		v.npods = 0;
		for (size_t k = 0; k < s->npods; k++)
			if (k != i)
				v.pods[v.npods++] = s->pods[k];
		assert_int_equal(plan_compile(s, &full, &err), 0);
		assert_int_equal(plan_compile(&v, &less, &err), 0);
		free(v.pods);

		patch(&less, &without, &with); /* ADD */
		want = canonical(&full);
		got = canonical(&less);
		if (strcmp(want, got) != 0) {
			fprintf(stderr, "--- compiled\n%s--- patched\n%s", want, got);
			fail_msg("ADD of %s/%s: the patched plan differs (above)", s->pods[i].ns, s->pods[i].name);
		}
		free(got);
		plan_free(&less);
		memset(&v, 0, sizeof(v));
		v = *s;
		v.pods = calloc(s->npods, sizeof(*v.pods));
		v.npods = 0;
		for (size_t k = 0; k < s->npods; k++)
			if (k != i)
				v.pods[v.npods++] = s->pods[k];
		assert_int_equal(plan_compile(&v, &less, &err), 0);
		free(v.pods);
		/* plan_without_pod (a DEL's, and an ADD's whole path) */
		assert_int_equal(plan_without_pod(&full, s, &s->pods[i], &derived), 0);
		free(want);
		want = canonical(&less);
		got = canonical(&derived);
		if (strcmp(want, got) != 0) {
			fprintf(stderr, "--- compiled\n%s--- derived\n%s", want, got);
			fail_msg("%s/%s: the derived plan without it differs (above)", s->pods[i].ns, s->pods[i].name);
		}
		free(want);
		free(got);
		plan_free(&derived);
		patch(&full, &with, &without); /* DEL */
		want = canonical(&less);
		got = canonical(&full);
		if (strcmp(want, got) != 0) {
			fprintf(stderr, "--- compiled\n%s--- patched\n%s", want, got);
			fail_msg("DEL of %s/%s: the patched plan differs (above)", s->pods[i].ns, s->pods[i].name);
		}
		free(want);
		free(got);
		plan_free(&full);
		plan_free(&less);
		plan_free(&with);
		plan_free(&without);
	}
	return checked;
}

/* ---- random states for plan_pod_delta ---- */

static uint32_t rnd_state;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 16) % n;
}

static const char *rnd_selector(bool allow_empty)
{
	static const char *const sels[] = {
		"{}",
		"{\"matchLabels\":{\"app\":\"a\"}}",
		"{\"matchLabels\":{\"app\":\"b\"}}",
		"{\"matchLabels\":{\"app\":\"a\",\"tier\":\"x\"}}",
		"{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[\"b\",\"c\"]}]}",
		"{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"NotIn\",\"values\":[\"a\"]}]}",
		"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}",
		"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}",
	};
	return sels[allow_empty ? rnd(NF_ARRAY_SIZE(sels)) : 1 + rnd(NF_ARRAY_SIZE(sels) - 1)];
}

static void rnd_peer(FILE *f)
{
	static const char *const nssels[] = {
		"{}", "{\"matchLabels\":{\"team\":\"a\"}}", "{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"ns1\"}}",
	};
	switch (rnd(5)) {
	case 0:
		fprintf(f, "{\"podSelector\":%s}", rnd_selector(true));
		break;
	case 1:
		fprintf(f, "{\"namespaceSelector\":%s}", nssels[rnd(NF_ARRAY_SIZE(nssels))]);
		break;
	case 2:
		fprintf(f, "{\"namespaceSelector\":%s,\"podSelector\":%s}", nssels[rnd(NF_ARRAY_SIZE(nssels))],
			rnd_selector(true));
		break;
	case 3:
		fprintf(f, "{\"ipBlock\":{\"cidr\":\"10.0.0.0/16\",\"except\":[\"10.0.%u.0/24\"]}}", rnd(3));
		break;
	default:
		fprintf(f, "{\"ipBlock\":{\"cidr\":\"fd00:%x::/32\"}}", rnd(3));
	}
}

/* A state of 3 namespaces, 5 policies and 12 pods drawn from small sets
 * of labels, selectors, peers and ports, so that pods share kinds, sets
 * and peers in many ways (seeded: the same states every run). */
static void rnd_fill(struct nf_state *s, int only_fam)
{
	static const char *const ports[] = {
		"", ",\"ports\":[{\"port\":53,\"protocol\":\"UDP\"}]",
		",\"ports\":[{\"port\":80},{\"port\":8080}]", ",\"ports\":[{\"port\":8000,\"endPort\":8100}]",
	};
	struct nf_error err = {0};

	for (int n = 0; n < 3; n++) {
		char doc[256];
		struct nf_namespace ns = {0};
		json_t *j;
		snprintf(doc, sizeof(doc), "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"ns%d\","
			 "\"labels\":{\"team\":\"%s\"}}}", n, n == 2 ? "b" : "a");
		j = json_loads(doc, 0, NULL);
		assert_int_equal(nf_namespace_from_json(j, &ns, &err), 0);
		json_decref(j);
		assert_true(nf_state_put_namespace(s, &ns) >= 0);
	}
	for (int k = 0; k < 5; k++) {
		char *doc = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&doc, &len);
		uint32_t nrules = rnd(3);

		fprintf(f, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":"
			   "{\"name\":\"p%d\",\"namespace\":\"ns%u\"},\"spec\":{\"podSelector\":%s,"
			   "\"policyTypes\":[\"Egress\"],\"egress\":[", k, rnd(3), rnd_selector(true));
		for (uint32_t r = 0; r < nrules; r++) {
			uint32_t npeers = rnd(3);
			fprintf(f, "%s{", r ? "," : "");
			if (npeers) {
				fprintf(f, "\"to\":[");
				for (uint32_t p = 0; p < npeers; p++) {
					if (p)
						fputc(',', f);
					rnd_peer(f);
				}
				fputc(']', f);
			} else {
				fprintf(f, "\"to\":[]");
			}
			fprintf(f, "%s}", ports[rnd(NF_ARRAY_SIZE(ports))]);
		}
		fprintf(f, "]}}");
		fclose(f);
		add_json_policy(s, doc);
		free(doc);
	}
	for (int i = 0; i < 12; i++) {
		static const char *const apps[] = {"a", "b", "c"};
		char doc[512], ips[96];
		struct nf_pod pod = {0};
		json_t *j;
		uint32_t fam = only_fam >= 0 ? (uint32_t)only_fam : rnd(3); /* 0: v4, 1: v6, 2: both */

		if (fam == 0)
			snprintf(ips, sizeof(ips), "\"10.0.1.%d/24\"", 10 + i);
		else if (fam == 1)
			snprintf(ips, sizeof(ips), "\"fd00:1::%x/64\"", 16 + i);
		else
			snprintf(ips, sizeof(ips), "\"10.0.1.%d/24\",\"fd00:1::%x/64\"", 10 + i, 16 + i);
		snprintf(doc, sizeof(doc),
			 "{\"containerID\":\"c%d\",\"ifname\":\"eth0\",\"namespace\":\"ns%u\",\"name\":\"q%d\","
			 "\"labels\":{\"app\":\"%s\"%s},\"hostVeth\":\"veth%d\",\"ips\":[%s]}",
			 i, rnd(3), i, apps[rnd(3)], rnd(2) ? ",\"tier\":\"x\"" : "", i, ips);
		j = json_loads(doc, 0, NULL);
		if (!j)
			fail_msg("bad pod doc: %s", doc);
		assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
		json_decref(j);
		assert_true(nf_state_put_pod(s, &pod) >= 0);
	}
}

static void put_pod_doc(struct nf_state *s, const char *doc);

/* n idle kinds (txn.h) of random namespaces and labels of rnd_fill's */
static void rnd_idle(struct nf_state *s, int n)
{
	static const char *const apps[] = {"a", "b", "c"};

	for (int i = 0; i < n; i++) {
		char doc[256];
		snprintf(doc, sizeof(doc), "{\"idle\":true,\"namespace\":\"ns%u\",\"labels\":{\"app\":\"%s\"%s}}",
			 rnd(3), apps[rnd(3)], rnd(2) ? ",\"tier\":\"x\"" : "");
		put_pod_doc(s, doc);
	}
}

/* check_deltas on 300 random states, and on 200 with idle kinds. */
static void test_pod_delta_random(void **state)
{
	size_t checked = 0;

	rnd_state = 20261126;
	for (int k = 0; k < 300; k++) {
		struct nf_state s = {0};
		rnd_fill(&s, -1);
		checked += check_deltas(&s);
		nf_state_free(&s);
	}
	/* most pods are not the only selected one */
	assert_true(checked > 300 * 12 / 2);
	/* idle kinds: their chains are in the plans, and a pod of the kind
	 * of one has none of its own in its share */
	checked = 0;
	for (int k = 0; k < 200; k++) {
		struct nf_state s = {0};
		rnd_fill(&s, -1);
		rnd_idle(&s, 1 + (int)rnd(4));
		checked += check_deltas(&s);
		nf_state_free(&s);
	}
	assert_true(checked > 200 * 12 / 2);
	/* single-stack nodes, either family: no rule or set of the other */
	for (int fam = 0; fam < 2; fam++) {
		checked = 0;
		for (int k = 0; k < 100; k++) {
			struct nf_state s = {0};
			struct nf_error err = {0};
			struct plan p = {0};
			rnd_fill(&s, fam);
			checked += check_deltas(&s);
			assert_int_equal(plan_compile(&s, &p, &err), 0);
			for (size_t i = 0; i < p.nsets; i++)
				assert_int_equal(p.sets[i].family, fam ? AF_INET6 : AF_INET);
			for (size_t i = 0; i < p.nchains; i++)
				for (size_t j = 0; j < p.chains[i].nrules; j++)
					assert_true(p.chains[i].rules[j].family == 0 ||
						    p.chains[i].rules[j].family == (fam ? AF_INET6 : AF_INET));
			plan_free(&p);
			nf_state_free(&s);
		}
		assert_true(checked > 100 * 12 / 2);
	}
}

static void put_pod_doc(struct nf_state *s, const char *doc)
{
	struct nf_error err = {0};
	struct nf_pod pod = {0};
	json_t *j = json_loads(doc, 0, NULL);

	assert_non_null(j);
	assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
	json_decref(j);
	assert_true(nf_state_put_pod(s, &pod) >= 0);
}

/* A policy selecting pods of app in (x, y), one of app=y, and pods x1, x2
 * (app=x, different tiers), y1 (app=y), z1 (app=z): kind = the set of
 * selecting policies. */
static void kinds_state(struct nf_state *s, bool reversed)
{
	static const char *const pols[] = {
		"{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":{\"name\":\"a\"},"
		"\"spec\":{\"podSelector\":{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[\"x\",\"y\"]}]},"
		"\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":[{\"port\":53,\"protocol\":\"UDP\"}]}]}}",
		"{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":{\"name\":\"b\"},"
		"\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"y\"}},\"policyTypes\":[\"Egress\"],"
		"\"egress\":[{\"ports\":[{\"port\":443}]}]}}",
	};
	static const char *const pods[] = {
		"{\"containerID\":\"c-x1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"x1\","
		"\"labels\":{\"app\":\"x\",\"tier\":\"1\"},\"hostVeth\":\"vx1\",\"ips\":[\"10.0.0.1/24\"]}",
		"{\"containerID\":\"c-x2\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"x2\","
		"\"labels\":{\"app\":\"x\",\"tier\":\"2\"},\"hostVeth\":\"vx2\",\"ips\":[\"10.0.0.2/24\"]}",
		"{\"containerID\":\"c-y1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"y1\","
		"\"labels\":{\"app\":\"y\"},\"hostVeth\":\"vy1\",\"ips\":[\"10.0.0.3/24\"]}",
		"{\"containerID\":\"c-z1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"z1\","
		"\"labels\":{\"app\":\"z\"},\"hostVeth\":\"vz1\",\"ips\":[\"10.0.0.4/24\"]}",
	};

	memset(s, 0, sizeof(*s));
	add_json_policy(s, pols[reversed]);
	add_json_policy(s, pols[!reversed]);
	for (size_t i = 0; i < NF_ARRAY_SIZE(pods); i++)
		put_pod_doc(s, pods[i]);
}

/* Pods are of one kind when the same policies select them, whatever
 * their labels: one chain per set of selecting policies, named after
 * that set in any order; a pod of a kind other pods have brings no chain
 * of its own (plan_pod_delta), the first one of a kind does. */
static void test_kinds_by_policies(void **state)
{
	struct nf_state s, r;
	struct nf_error err = {0};
	struct plan p = {0}, q = {0}, with = {0}, without = {0};
	const struct plan_chain *x1, *x2, *y1;
	char *name;

	kinds_state(&s, false);
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	assert_int_equal(p.nchains, 2);
	x1 = chain_of(&p, &s, "x1");
	x2 = chain_of(&p, &s, "x2");
	y1 = chain_of(&p, &s, "y1");
	assert_non_null(x1);
	assert_ptr_equal(x1, x2);
	assert_non_null(y1);
	assert_ptr_not_equal(x1, y1);
	assert_null(chain_of(&p, &s, "z1"));
	assert_string_equal(x1->comment, "default: a");
	assert_string_equal(y1->comment, "default: a, b");
	assert_int_equal(x1->nrules, 1);
	assert_int_equal(y1->nrules, 2);
	assert_int_equal(p.ndispatch, 3);

	/* the same set listed in the other order: the same names */
	kinds_state(&r, true);
	assert_int_equal(plan_compile(&r, &q, &err), 0);
	for (size_t i = 0; i < 3; i++) {
		char *a = plan_pod_chain_name(&s, &s.pods[i]), *b = plan_pod_chain_name(&r, &r.pods[i]);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	name = plan_pod_chain_name(&s, &s.pods[0]);
	assert_string_equal(name, x1->name);
	free(name);

	/* x2's share: its entries, no chain (x1 has the kind); y1's: its chain */
	assert_int_equal(plan_pod_delta(&s, &s.pods[1], &without, &with), 0);
	assert_int_equal(with.nchains, 0);
	assert_int_equal(with.ndispatch, 1);
	assert_string_equal(with.dispatch[0].chain, x1->name);
	plan_free(&with);
	plan_free(&without);
	assert_int_equal(plan_pod_delta(&s, &s.pods[2], &without, &with), 0);
	assert_int_equal(with.nchains, 1);
	assert_string_equal(with.chains[0].name, y1->name);
	plan_free(&with);
	plan_free(&without);
	assert_true(check_deltas(&s) >= 3);

	plan_free(&p);
	plan_free(&q);
	nf_state_free(&s);
	nf_state_free(&r);
}

/* Idle kinds (txn.h): y1 deleted, the last of its kind, and an idle
 * record of its namespace and labels in its place: its kind's chain is
 * in the plan as it was, nothing jumps to it; a new pod of its labels
 * brings no chain in its share; an idle kind no policy selects has no
 * chain; removing the idle record takes the chain away. */
static void test_idle_kinds(void **state)
{
	struct nf_state s;
	struct nf_error err = {0};
	struct plan p = {0}, q = {0}, with = {0}, without = {0}, derived = {0};
	const struct plan_chain *y1, *idle;
	char *a, *b;

	kinds_state(&s, false);
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	y1 = chain_of(&p, &s, "y1");
	assert_non_null(y1);
	assert_null(nf_state_twin(&s, nf_state_find_pod(&s, "c-y1", "eth0"), false));
	assert_int_equal(nf_state_add_idle(&s, nf_state_find_pod(&s, "c-y1", "eth0")), 0);
	assert_int_equal(nf_state_nidle(&s), 1);
	assert_true(s.pods[s.npods - 1].idle);
	assert_null(s.pods[s.npods - 1].container_id);
	assert_ptr_equal(nf_state_twin(&s, nf_state_find_pod(&s, "c-y1", "eth0"), true), &s.pods[s.npods - 1]);
	assert_true(nf_state_remove_pod(&s, "c-y1", "eth0"));
	assert_int_equal(nf_state_nidle(&s), 1); /* the removal passed it over */
	assert_int_equal(plan_compile(&s, &q, &err), 0);
	assert_int_equal(q.nchains, 2);
	idle = NULL;
	for (size_t i = 0; i < q.nchains; i++)
		if (strcmp(q.chains[i].name, y1->name) == 0)
			idle = &q.chains[i];
	assert_non_null(idle);
	assert_string_equal(idle->comment, y1->comment);
	assert_int_equal(idle->nrules, y1->nrules);
	assert_int_equal(q.ndispatch, 2); /* x1's, x2's */
	for (size_t i = 0; i < q.ndispatch; i++)
		assert_string_not_equal(q.dispatch[i].chain, y1->name);
	assert_int_equal(q.nantispoof, 2); /* x1, x2 (no policy selects z1) */
	plan_free(&q);

	/* y2 (app=y) comes: no chain in its share, and the plan with it is the
	 * plan with y1 (addresses, veth and name aside) */
	put_pod_doc(&s, "{\"containerID\":\"c-y2\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"y2\","
			"\"labels\":{\"app\":\"y\"},\"hostVeth\":\"vy1\",\"ips\":[\"10.0.0.3/24\"]}");
	assert_int_equal(plan_pod_delta(&s, nf_state_find_pod(&s, "c-y2", "eth0"), &without, &with), 0);
	assert_int_equal(with.nchains, 0);
	assert_int_equal(with.ndispatch, 1);
	assert_string_equal(with.dispatch[0].chain, y1->name);
	plan_free(&with);
	plan_free(&without);
	assert_int_equal(plan_compile(&s, &q, &err), 0);
	a = plan_render(&p);
	b = plan_render(&q);
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* ... and y2 deleted again: the chain stays, derived or compiled */
	assert_int_equal(plan_without_pod(&q, &s, nf_state_find_pod(&s, "c-y2", "eth0"), &derived), 0);
	assert_int_equal(derived.nchains, 2);
	assert_true(check_deltas(&s) >= 3);
	plan_free(&derived);
	plan_free(&q);

	/* an idle kind that no policy selects (app=z): no chain */
	assert_int_equal(nf_state_add_idle(&s, nf_state_find_pod(&s, "c-z1", "eth0")), 0);
	assert_true(nf_state_remove_pod(&s, "c-z1", "eth0"));
	assert_true(nf_state_remove_pod(&s, "c-y2", "eth0"));
	assert_int_equal(nf_state_nidle(&s), 2);
	assert_int_equal(plan_compile(&s, &q, &err), 0);
	assert_int_equal(q.nchains, 2);
	plan_free(&q);
	/* the idle record of app=y removed: its chain goes */
	for (size_t i = 0; i < s.npods; i++)
		if (s.pods[i].idle && strcmp(nf_labels_get(&s.pods[i].labels, "app"), "y") == 0)
			nf_state_remove_pod_at(&s, i);
	assert_int_equal(nf_state_nidle(&s), 1);
	assert_int_equal(plan_compile(&s, &q, &err), 0);
	assert_int_equal(q.nchains, 1);
	plan_free(&q);

	plan_free(&p);
	nf_state_free(&s);
}

/* A kind's comment names its policies, within the 128 bytes nft loads. */
static void test_kind_comment_long(void **state)
{
	struct nf_state s = {0};
	struct nf_error err = {0};
	struct plan p = {0};
	char doc[512];

	for (int i = 0; i < 30; i++) {
		snprintf(doc, sizeof(doc),
			 "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":"
			 "{\"name\":\"a-rather-long-policy-name-%02d\"},\"spec\":{\"podSelector\":{},"
			 "\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":[{\"port\":%d}]}]}}",
			 i, 1000 + i);
		add_json_policy(&s, doc);
	}
	put_pod_doc(&s, "{\"containerID\":\"c1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"p\","
			"\"hostVeth\":\"vp\",\"ips\":[\"10.0.0.1/24\"]}");
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	assert_int_equal(p.nchains, 1);
	assert_true(strlen(p.chains[0].comment) < 128);
	assert_non_null(strstr(p.chains[0].comment, "default: a-rather-long-policy-name-00, "));
	assert_non_null(strstr(p.chains[0].comment, " more)"));
	plan_free(&p);
	nf_state_free(&s);
}

/* The rules and peer sets of a family no pod has are left out; the pod
 * that brings the first address of a family, or takes the last, is not
 * one pod's share (plan_pod_separable): every kind's chain changes. */
static void test_family_used(void **state)
{
	static const char *const pods[] = {
		"{\"containerID\":\"c1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"a\","
		"\"labels\":{\"app\":\"a\"},\"hostVeth\":\"veth1\",\"ips\":[\"10.0.1.1/24\"]}",
		"{\"containerID\":\"c2\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"b\","
		"\"labels\":{\"app\":\"b\"},\"hostVeth\":\"veth2\",\"ips\":[\"10.0.1.2/24\"]}",
		"{\"containerID\":\"c3\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"c\","
		"\"labels\":{\"app\":\"a\"},\"hostVeth\":\"veth3\",\"ips\":[\"10.0.1.3/24\",\"fd00:1::3/64\"]}",
	};
	struct nf_state s = {0};
	struct nf_error err = {0};
	struct plan p = {0}, a = {0}, b = {0};
	char *text;
	(void)state;

	add_json_policy(&s, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
			    "\"metadata\":{\"name\":\"np\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"a\"}},"
			    "\"policyTypes\":[\"Egress\"],\"egress\":[{\"to\":[{\"podSelector\":{\"matchLabels\":{\"app\":\"b\"}}},"
			    "{\"ipBlock\":{\"cidr\":\"10.9.0.0/16\"}},{\"ipBlock\":{\"cidr\":\"fd00:9::/32\"}}],"
			    "\"ports\":[{\"port\":80}]},{\"ports\":[{\"port\":53,\"protocol\":\"UDP\"}]}]}}");
	for (size_t i = 0; i < 2; i++)
		put_pod_doc(&s, pods[i]);
	/* IPv4 only: one rule per (peer, port) of IPv4, none of IPv6 */
	assert_true(plan_family_used(&s, AF_INET, NULL));
	assert_false(plan_family_used(&s, AF_INET6, NULL));
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	text = plan_render(&p);
	assert_non_null(strstr(text, "ip daddr @sel_"));
	assert_non_null(strstr(text, "ip daddr @kind_"));
	assert_non_null(strstr(text, "meta l4proto udp th dport 53 accept"));
	assert_null(strstr(text, "ip6 daddr"));
	assert_null(strstr(text, "ipv6_addr\n\t\telements")); /* no IPv6 peer set */
	for (size_t i = 0; i < p.nsets; i++)
		assert_int_equal(p.sets[i].family, AF_INET);
	free(text);
	plan_free(&p);
	/* the first pod with an IPv6 address changes every kind's chain */
	put_pod_doc(&s, pods[2]);
	assert_false(plan_pod_separable(&s, nf_state_find_pod(&s, "c3", "eth0")));
	assert_int_equal(plan_pod_delta(&s, nf_state_find_pod(&s, "c3", "eth0"), &a, &b), -EAGAIN);
	assert_true(plan_pod_separable(&s, nf_state_find_pod(&s, "c2", "eth0")));
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	text = plan_render(&p);
	assert_non_null(strstr(text, "ip6 daddr @sel_"));
	assert_non_null(strstr(text, "ip6 daddr @kind_"));
	free(text);
	/* ... and when it goes, its kind loses its IPv6 rules: nothing an
	 * IPv4 address of that kind could match, no flow to judge again */
	{
		struct plan less = {0};
		nf_state_remove_pod(&s, "c3", "eth0");
		assert_int_equal(plan_compile(&s, &less, &err), 0);
		assert_int_equal(tightened(&p, &less, &s), 0);
		plan_free(&less);
		put_pod_doc(&s, pods[2]);
	}
	plan_free(&p);
	/* the last pod with an IPv4 address is not separable either */
	nf_state_remove_pod(&s, "c1", "eth0");
	nf_state_remove_pod(&s, "c2", "eth0");
	assert_false(plan_pod_separable(&s, nf_state_find_pod(&s, "c3", "eth0")));
	nf_state_free(&s);
}

static void test_pod_delta(void **state)
{
	static const char *const manifests[] = {
		"testdata/foo-deny-external-egress.yaml", "testdata/foo-deny-external-egress-incluster.yaml",
		"testdata/internal-cidr-except.yaml", "testdata/backend-limited-external.yaml",
		"testdata/db-internal-only.yaml", "testdata/payment-service-gateway.yaml",
	};
	static const char extra[] =
		"[{\"containerID\": \"c-foo2\", \"ifname\": \"eth0\", \"namespace\": \"default\", \"name\": \"foo2\","
		" \"labels\": {\"app\": \"foo\"}, \"hostVeth\": \"vethfoo2\", \"ips\": [\"10.244.0.12/24\", \"fd00:10:244::12/64\"]},"
		" {\"containerID\": \"c-dns2\", \"ifname\": \"eth0\", \"namespace\": \"kube-system\", \"name\": \"kube-dns-2\","
		" \"labels\": {\"k8s-app\": \"kube-dns\"}, \"hostVeth\": \"vethdns2\", \"ips\": [\"10.244.0.14/24\"]},"
		" {\"containerID\": \"c-x\", \"ifname\": \"eth0\", \"namespace\": \"team\", \"name\": \"x\","
		" \"labels\": {\"app\": \"foo\"}, \"hostVeth\": \"vethx\", \"ips\": [\"fd00:10:244::15/64\"]}]";
	size_t total = 0;

	/* each manifest alone, then all at once; with twins, a second DNS
	 * pod, and a pod of another namespace with foo's labels */
	for (size_t m = 0; m <= 2 * sizeof(manifests) / sizeof(manifests[0]) + 1; m++) {
		/* the second round without foo's twin: then only a pod of another
		 * namespace has foo's labels */
		bool twin = m <= sizeof(manifests) / sizeof(manifests[0]);
		size_t mm = twin ? m : m - sizeof(manifests) / sizeof(manifests[0]) - 1;
		struct nf_state s = {0};
		struct nf_error err = {0};
		json_t *arr = json_loads(extra, 0, NULL), *item;
		size_t i;

		add_manifest(&s, "testdata/namespaces.yaml");
		for (size_t k = 0; k < sizeof(manifests) / sizeof(manifests[0]); k++)
			if (k == mm || mm == sizeof(manifests) / sizeof(manifests[0]))
				add_manifest(&s, manifests[k]);
		add_pods(&s, "testdata/pods-np14.json");
		add_pods(&s, "testdata/pods-patterns.json");
		json_array_foreach(arr, i, item) {
			struct nf_pod pod = {0};
			assert_int_equal(nf_pod_from_json(item, &pod, &err), 0);
			if (!twin && strcmp(pod.name, "foo2") == 0)
				nf_pod_free(&pod);
			else
				assert_true(nf_state_put_pod(&s, &pod) >= 0);
		}
		json_decref(arr);
		total += check_deltas(&s);
		nf_state_free(&s);
	}
	/* every pod of every state, the sole selected ones (9 of 133) too */
	assert_int_equal(total, 133);
	/* the only selected pod: the tables exist without it (the state has
	 * an egress policy); its share is its kind's chain and entries */
	{
		struct nf_state s = {0};
		struct plan a = {0}, b = {0};
		add_manifest(&s, "testdata/namespaces.yaml");
		add_manifest(&s, "testdata/foo-deny-external-egress.yaml");
		add_pods(&s, "testdata/pods-np14.json");
		assert_int_equal(plan_pod_delta(&s, nf_state_find_pod(&s, "c-foo", "eth0"), &a, &b), 0);
		assert_int_equal(b.nchains, 1);
		assert_int_equal(b.nantispoof, 1);
		assert_int_equal(a.nchains + a.nantispoof + a.ndispatch, 0);
		plan_free(&a);
		plan_free(&b);
		assert_int_equal(plan_pod_delta(&s, nf_state_find_pod(&s, "c-web", "eth0"), &a, &b), 0);
		plan_free(&a);
		plan_free(&b);
		nf_state_free(&s);
	}
	/* named ports: not separable */
	{
		struct nf_state s = {0};
		struct plan a = {0}, b = {0};
		add_pods(&s, "testdata/pods-np14.json");
		add_json_policy(&s, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
				    "\"metadata\":{\"name\":\"np\"},\"spec\":{\"podSelector\":{},"
				    "\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":[{\"port\":\"http\"}]}]}}");
		assert_int_equal(plan_pod_delta(&s, &s.pods[0], &a, &b), -EAGAIN);
		nf_state_free(&s);
	}
}

/* Pods with the same namespace and labels get their chain rules copied
 * from the first one's: exactly what compiling them would give. */
static void test_twins(void **state)
{
	static const char twin[] = "[{\"containerID\": \"c-foo2\", \"ifname\": \"eth0\", \"namespace\": \"default\","
				   " \"name\": \"foo2\", \"labels\": {\"app\": \"foo\"}, \"hostVeth\": \"vethfoo2\","
				   " \"ips\": [\"10.244.0.12/24\"]}]";
	/* the seed's policy, its in-cluster variant, and named ports (rules
	 * that depend on the destination pods) */
	static const char *const manifests[] = {
		"testdata/foo-deny-external-egress.yaml", "testdata/foo-deny-external-egress-incluster.yaml", NULL,
	};
	for (size_t m = 0; m < sizeof(manifests) / sizeof(manifests[0]); m++) {
		struct nf_state s = {0};
		struct nf_error err = {0};
		struct plan with = {0}, alone = {0};
		const struct plan_chain *a, *b, *c;
		json_t *arr = json_loads(twin, 0, NULL);
		struct nf_pod pod = {0};

		assert_int_equal(nf_pod_from_json(json_array_get(arr, 0), &pod, &err), 0);
		json_decref(arr);
		assert_true(nf_state_put_pod(&s, &pod) >= 0); /* first: foo2 is compiled */
		if (!manifests[m]) {
			add_podspec(&s, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\","
					"\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"n\","
					"\"ports\":[{\"name\":\"http\",\"containerPort\":80}]}]}}");
			add_json_policy(&s, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
					    "\"metadata\":{\"name\":\"np\"},\"spec\":{\"podSelector\":{\"matchLabels\":"
					    "{\"app\":\"foo\"}},\"policyTypes\":[\"Egress\"],\"egress\":[{\"ports\":"
					    "[{\"port\":\"http\"}]},{\"to\":[{\"podSelector\":{}}]}]}}");
		}
		build(&s, manifests[m], &with);
		a = chain_of(&with, &s, "foo2");
		b = chain_of(&with, &s, "foo");
		assert_non_null(a);
		assert_non_null(b);
		/* one chain for the kind: both pods' addresses jump to it */
		assert_ptr_equal(a, b);
		{
			size_t n = 0, want = 0;
			for (size_t i = 0; i < with.ndispatch; i++)
				n += strcmp(with.dispatch[i].chain, a->name) == 0;
			for (size_t i = 0; i < s.npods; i++)
				if (strcmp(s.pods[i].ns, "default") == 0 && s.pods[i].labels.n == 1 &&
				    strcmp(s.pods[i].labels.v[0].value, "foo") == 0)
					want += s.pods[i].naddrs;
			assert_int_equal(n, want);
			assert_true(want >= 2);
		}
		assert_true(a->nrules > 0);
		assert_int_equal(a->nrules, b->nrules);
		for (size_t i = 0; i < a->nrules; i++) {
			const struct plan_rule *x = &a->rules[i], *y = &b->rules[i];
			assert_int_equal(x->family, y->family);
			assert_int_equal(x->l4proto, y->l4proto);
			assert_int_equal(x->port_lo, y->port_lo);
			assert_int_equal(x->port_hi, y->port_hi);
			assert_string_equal(x->dst_set ? x->dst_set : "-", y->dst_set ? y->dst_set : "-");
			assert_string_equal(x->comment, y->comment);
		}
		/* foo alone compiles to the rules foo got as foo2's twin */
		assert_true(nf_state_remove_pod(&s, "c-foo2", "eth0"));
		assert_int_equal(plan_compile(&s, &alone, &err), 0);
		c = chain_of(&alone, &s, "foo");
		assert_non_null(c);
		assert_int_equal(c->nrules, b->nrules);
		for (size_t i = 0; i < c->nrules; i++) {
			assert_string_equal(c->rules[i].comment, b->rules[i].comment);
			assert_string_equal(c->rules[i].dst_set ? c->rules[i].dst_set : "-",
					    b->rules[i].dst_set ? b->rules[i].dst_set : "-");
			assert_int_equal(c->rules[i].port_lo, b->rules[i].port_lo);
		}
		plan_free(&with);
		plan_free(&alone);
		nf_state_free(&s);
	}
}

/* The file a test's cache names (netconf/state.h) */
static const struct nf_text_id tid = {.dev = 0x801, .ino = 4242, .mtime_ns = 1764300000123456789};

/* The model cache (netconf/cache.c): the state decoded from its bytes
 * compiles to the same plan and encodes to the same bytes; any other file,
 * any other length, any truncation, any corrupted byte (even with the
 * checksum fixed up) is refused or decodes to some state, never a crash or
 * a leak (ASan). */
static void cache_roundtrip(struct nf_state *s, const char *text, size_t len)
{
	struct nf_state d = {0};
	struct nf_error err = {0};
	struct plan p1 = {0}, p2 = {0};
	char *buf = NULL, *buf2 = NULL, *a, *b, *other;
	size_t blen = 0, blen2 = 0;

	assert_int_equal(nf_state_cache_encode(s, text, len, 0, len, &tid, &buf, &blen), 0);
	assert_int_equal(nf_state_cache_decode(buf, blen, len, &tid, &d), 0);
	assert_non_null(d.frozen);
	/* its structs are the cache's image, mapped where it was made for */
	if (sizeof(void *) == 8)
		assert_true(d.frozen_image);
	/* with that place taken (d has it), the records are decoded: the same
	 * plan, and the same bytes for the next cache */
	{
		struct nf_state e = {0};
		char *a2, *b2, *buf3 = NULL;
		size_t blen3 = 0;
		assert_int_equal(nf_state_cache_decode(buf, blen, len, &tid, &e), 0);
		assert_false(e.frozen_image);
		assert_int_equal(plan_compile(&d, &p1, &err), 0);
		assert_int_equal(plan_compile(&e, &p2, &err), 0);
		a2 = plan_render(&p1);
		b2 = plan_render(&p2);
		assert_string_equal(a2, b2);
		free(a2);
		free(b2);
		plan_free(&p1);
		plan_free(&p2);
		memset(&p1, 0, sizeof(p1));
		memset(&p2, 0, sizeof(p2));
		assert_int_equal(nf_state_cache_encode(&e, text, len, 0, len, &tid, &buf3, &blen3), 0);
		assert_int_equal(blen3, blen);
		assert_memory_equal(buf3, buf, blen);
		free(buf3);
		nf_state_free(&e);
	}
	assert_int_equal(d.npolicies, s->npolicies);
	/* the keys' hashes (the sets' names) come back as made */
	for (size_t i = 0; i < d.npolicies; i++)
		for (size_t j = 0; j < d.policies[i].negress; j++) {
			const struct nf_rule *ru = &d.policies[i].egress_rules[j];
			for (size_t k = 0; k < ru->npeers; k++)
				assert_true(ru->peers[k].key_hash == nf_fnv1a64(ru->peers[k].key));
		}
	assert_int_equal(d.npods, s->npods);
	for (size_t i = 0; i < s->npods; i++) {
		json_t *x = nf_pod_to_json(&s->pods[i]), *y = nf_pod_to_json(&d.pods[i]);
		assert_true(json_equal(x, y));
		json_decref(x);
		json_decref(y);
	}
	/* the pods alone (nf_state_load's way): the same pods, nothing else */
	{
		struct nf_state q;
		assert_int_equal(nf_state_cache_decode_pods(buf, blen, len, &tid, &q), 0);
		assert_null(q.frozen);
		assert_int_equal(q.npolicies, 0);
		assert_int_equal(q.npods, s->npods);
		assert_int_equal(q.pods_at, d.pods_at);
		assert_int_equal(q.pods_end, d.pods_end);
		for (size_t i = 0; i < s->npods; i++) {
			json_t *x = nf_pod_to_json(&s->pods[i]), *y = nf_pod_to_json(&q.pods[i]);
			assert_true(json_equal(x, y));
			assert_int_equal(q.pods[i].raw_at, d.pods[i].raw_at);
			assert_int_equal(q.pods[i].raw_len, d.pods[i].raw_len);
			json_decref(x);
			json_decref(y);
		}
		nf_state_free(&q);
	}
	assert_int_equal(plan_compile(s, &p1, &err), 0);
	assert_int_equal(plan_compile(&d, &p2, &err), 0);
	a = plan_render(&p1);
	b = plan_render(&p2);
	assert_string_equal(a, b);
	/* the next cache reuses the frozen part's bytes: the same bytes */
	assert_int_equal(nf_state_cache_encode(&d, text, len, 0, len, &tid, &buf2, &blen2), 0);
	assert_int_equal(blen2, blen);
	assert_memory_equal(buf2, buf, blen);
	free(buf2);
	/* and every field made it: encoded again from the decoded structs,
	 * the same bytes (the frozen bytes only hidden: the decoded strings
	 * point into them) */
	other = d.frozen_enc;
	d.frozen_enc = NULL;
	assert_int_equal(nf_state_cache_encode(&d, text, len, 0, len, &tid, &buf2, &blen2), 0);
	d.frozen_enc = other;
	assert_int_equal(blen2, blen);
	assert_memory_equal(buf2, buf, blen);
	free(a);
	free(b);
	free(buf2);
	plan_free(&p1);
	plan_free(&p2);
	/* the pods borrow the cache's bytes and arena (nf_pod.borrowed): one
	 * made its own reads the same and can change; one removed, and the
	 * rest, are left to nf_state_free (ASan: no bad free, no leak) */
	for (size_t i = 0; i < d.npods; i++)
		assert_true(d.pods[i].borrowed);
	if (d.npods) {
		struct nf_pod *p = &d.pods[0];
		json_t *x = nf_pod_to_json(p), *y;
		size_t at = p->raw_at, rlen = p->raw_len;
		assert_int_equal(nf_pod_own(p), 0);
		assert_false(p->borrowed);
		y = nf_pod_to_json(p);
		assert_true(json_equal(x, y));
		assert_int_equal(p->raw_at, at); /* still the record it was */
		assert_int_equal(p->raw_len, rlen);
		json_decref(x);
		json_decref(y);
		assert_int_equal(nf_labels_set(&p->labels, "owned", "yes"), 0);
		assert_int_equal(nf_pod_own(p), 0); /* already its own */
		if (d.npods > 1)
			assert_true(nf_state_remove_pod(&d, d.pods[d.npods - 1].container_id,
							d.pods[d.npods - 1].ifname));
	}
	nf_state_free(&d);

	/* another file (device, inode or mtime), or another length: a miss */
	for (int k = 0; k < 3; k++) {
		struct nf_text_id o = tid;
		*(k == 0 ? &o.dev : k == 1 ? &o.ino : (uint64_t *)&o.mtime_ns) += 1;
		assert_int_equal(nf_state_cache_decode(buf, blen, len, &o, &d), -EINVAL);
		assert_int_equal(nf_state_cache_decode_pods(buf, blen, len, &o, &d), -EINVAL);
	}
	assert_int_equal(nf_state_cache_decode(buf, blen, len - 1, &tid, &d), -EINVAL);
	/* written in another boot (header bytes 96-111), or with flags or
	 * reserved bytes this build does not know (112-127): a miss. The
	 * flag that the frozen part is whole is not trusted in a buffer. */
	for (size_t i = 96; i < NF_CACHE_HEADER_LEN; i++) {
		buf[i] ^= i == 112 ? 2 : 1;
		assert_int_equal(nf_state_cache_decode(buf, blen, len, &tid, &d), -EINVAL);
		assert_int_equal(nf_state_cache_decode_pods(buf, blen, len, &tid, &d), -EINVAL);
		buf[i] ^= i == 112 ? 2 : 1;
	}
	for (size_t n = 0; n < blen; n++) {
		assert_int_equal(nf_state_cache_decode(buf, n, len, &tid, &d), -EINVAL);
		assert_int_equal(nf_state_cache_decode_pods(buf, n, len, &tid, &d), -EINVAL);
	}
	/* where the pods begin (header bytes 12-15, outside the checksum):
	 * anything else is refused or decodes to some pods, never a crash */
	for (size_t i = 12; i < 16; i++) {
		static const uint8_t flips[] = {0x01, 0x04, 0x80, 0xff};
		for (size_t f = 0; f < sizeof(flips); f++) {
			buf[i] ^= flips[f];
			if (nf_state_cache_decode_pods(buf, blen, len, &tid, &d) == 0)
				nf_state_free(&d);
			buf[i] ^= flips[f];
		}
	}
	/* a flipped byte: the checksum catches it; with the checksum made to
	 * match, the decoder's own checks must hold (every 3rd byte, 3 ways) */
	for (size_t i = NF_CACHE_HEADER_LEN; i < blen; i += 3) {
		static const uint8_t flips[] = {0x01, 0x80, 0xff};
		for (size_t f = 0; f < sizeof(flips); f++) {
			buf[i] ^= flips[f];
			assert_int_equal(nf_state_cache_decode(buf, blen, len, &tid, &d), -EINVAL);
			nf_state_cache_rehash(buf, blen);
			if (nf_state_cache_decode(buf, blen, len, &tid, &d) == 0)
				nf_state_free(&d);
			if (nf_state_cache_decode_pods(buf, blen, len, &tid, &d) == 0)
				nf_state_free(&d);
			buf[i] ^= flips[f];
			nf_state_cache_rehash(buf, blen);
		}
	}
	/* the image's words (pointers, counts, flags) made to say something
	 * else, each alone, with the checksum made to match: refused, or
	 * decoded from the records (the image does not check), or some state,
	 * never a read outside the cache (ASan) */
	{
		uint64_t ilen;
		memcpy(&ilen, buf + NF_CACHE_HEADER_LEN, 8);
		ilen = le64toh(ilen);
		assert_true(ilen >= 64 && ilen < blen - NF_CACHE_HEADER_LEN);
		for (size_t i = NF_CACHE_HEADER_LEN; i + 8 <= NF_CACHE_HEADER_LEN + ilen; i += 8) {
			uint64_t was, next, vals[6];
			memcpy(&was, buf + i, 8);
			memcpy(&next, buf + (i + 16 <= blen ? i + 8 : i), 8);
			vals[0] = 0;
			vals[1] = next;
			vals[2] = was + 16;
			vals[3] = was - 16;
			vals[4] = was + ((uint64_t)1 << 40);
			vals[5] = ~(uint64_t)0;
			for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
				memcpy(buf + i, &vals[v], 8);
				nf_state_cache_rehash(buf, blen);
				if (nf_state_cache_decode(buf, blen, len, &tid, &d) == 0) {
					struct plan pv = {0};
					if (plan_compile(&d, &pv, &err) == 0)
						plan_free(&pv);
					nf_state_free(&d);
				}
			}
			memcpy(buf + i, &was, 8);
		}
		nf_state_cache_rehash(buf, blen);
	}
	assert_int_equal(nf_state_cache_decode(buf, blen, len, &tid, &d), 0);
	assert_true(d.frozen_image || sizeof(void *) != 8);
	nf_state_free(&d);
	free(buf);
}

static void test_model_cache(void **state)
{
	static const char *const manifests[] = {
		"testdata/foo-deny-external-egress.yaml", "testdata/foo-deny-external-egress-incluster.yaml",
		"testdata/internal-cidr-except.yaml", "testdata/backend-limited-external.yaml",
		"testdata/db-internal-only.yaml", "testdata/payment-service-gateway.yaml",
	};
	char path[1024];
	struct nf_state s = {0};
	struct nf_error err = {0};

	/* the NP-14 state file: named ports, ranges, ipBlocks, registrations */
	snprintf(path, sizeof(path), "%s/testdata/state/np14-state.json", SRCDIR);
	if (nf_state_load(path, &s, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(s.npodspecs > 0);
	cache_roundtrip(&s, s.raw, s.raw_len);
	nf_state_free(&s);
	/* every pattern at once */
	add_manifest(&s, "testdata/namespaces.yaml");
	for (size_t m = 0; m < sizeof(manifests) / sizeof(manifests[0]); m++)
		add_manifest(&s, manifests[m]);
	add_pods(&s, "testdata/pods-np14.json");
	add_pods(&s, "testdata/pods-patterns.json");
	s.pods[0].network = strdup("net1"); /* the test pods have none */
	cache_roundtrip(&s, "any text", 8);
	nf_state_free(&s);
}

/* Two blocks of one rule whose pieces nest: the union keeps the outer
 * prefixes only (an interval set refuses overlaps) and covers both. */
static void test_ipblock_union(void **state)
{
	struct nf_state s = {0};
	struct nf_error err = {0};
	struct plan p = {0};
	const struct plan_set *set;

	add_pods(&s, "testdata/pods-np14.json");
	add_json_policy(&s, "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
			    "\"metadata\":{\"name\":\"u\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"foo\"}},"
			    "\"policyTypes\":[\"Egress\"],\"egress\":[{\"to\":["
			    "{\"ipBlock\":{\"cidr\":\"10.0.0.0/8\",\"except\":[\"10.1.0.0/16\"]}},"
			    "{\"ipBlock\":{\"cidr\":\"10.0.0.0/8\",\"except\":[\"10.2.0.0/16\"]}},"
			    "{\"ipBlock\":{\"cidr\":\"10.9.9.0/24\"}}]}]}}");
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	assert_int_equal(p.nsets, 1);
	set = &p.sets[0];
	assert_true(set->interval);
	assert_true(set_has(set, "10.0.0.0/15"));  /* from the second block: holds 10.1/16 */
	assert_true(set_has(set, "10.2.0.0/15"));  /* from the first: holds 10.2/16 */
	assert_false(set_has(set, "10.9.9.0/24")); /* inside 10.8.0.0/13 */
	for (size_t i = 0; i + 1 < set->n; i++)
		assert_false(nf_cidr_contains(&set->elems[i], &set->elems[i + 1]));
	assert_int_equal(p.chains[0].nrules, 1);
	plan_free(&p);
	nf_state_free(&s);
}

/* ipBlock policies "m1" / "m2" (default, app=m): blocks on 443/TCP and on
 * any port; m2's 443 block holds m1's except and more. */
#define MERGE_POL(name, body)                                                                              \
	"{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":{\"name\":\"" name \
	"\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"m\"}},\"policyTypes\":[\"Egress\"],"       \
	"\"egress\":[" body "]}}"
static const char *const merge_m1 = MERGE_POL("m1",
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"10.1.0.0/16\",\"except\":[\"10.1.1.0/24\"]}}],"
	"\"ports\":[{\"port\":443,\"protocol\":\"TCP\"}]},"
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"192.0.2.0/24\"}},{\"ipBlock\":{\"cidr\":\"fd00:1::/32\"}}]}");
static const char *const merge_m2 = MERGE_POL("m2",
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"10.1.1.0/24\"}},{\"ipBlock\":{\"cidr\":\"203.0.113.0/24\"}}],"
	"\"ports\":[{\"port\":443,\"protocol\":\"TCP\"},{\"port\":443,\"protocol\":\"TCP\"}]},"
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"198.51.100.0/24\"}}]}");
static const char *const merge_pods[] = {
	"{\"containerID\":\"c-m1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"m1\","
	"\"labels\":{\"app\":\"m\"},\"hostVeth\":\"vm1\",\"ips\":[\"10.0.0.1/24\"]}",
	"{\"containerID\":\"c-m2\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"m2\","
	"\"labels\":{\"app\":\"m\"},\"hostVeth\":\"vm2\",\"ips\":[\"10.0.0.2/24\"]}",
};

static const char *const wide = MERGE_POL("wide",
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"10.1.0.0/16\"}}],\"ports\":[{\"port\":443}]}");
static const char *const halves = MERGE_POL("halves",
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"10.1.128.0/17\"}},{\"ipBlock\":{\"cidr\":\"203.0.113.0/24\"}}],"
	"\"ports\":[{\"port\":443}]},{\"to\":[{\"ipBlock\":{\"cidr\":\"10.1.0.0/17\"}}],\"ports\":[{\"port\":443}]}");
static const char *const half = MERGE_POL("half",
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"10.1.0.0/17\"}},{\"ipBlock\":{\"cidr\":\"10.1.129.0/24\"}}],"
	"\"ports\":[{\"port\":443}]}");

/* merge_pods with policy doc1 (and doc2), compiled into p */
static void merge_plan(struct nf_state *s, struct plan *p, const char *doc1, const char *doc2)
{
	struct nf_error err = {0};

	memset(s, 0, sizeof(*s));
	add_json_policy(s, doc1);
	if (doc2)
		add_json_policy(s, doc2);
	for (size_t i = 0; i < NF_ARRAY_SIZE(merge_pods); i++)
		put_pod_doc(s, merge_pods[i]);
	assert_int_equal(plan_compile(s, p, &err), 0);
}

static const struct plan_set *set_named_(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nsets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return &p->sets[i];
	return NULL;
}

/* The ipBlocks a kind's policies allow on one port spec are one interval
 * set of the kind's chain and one rule: 2 rules for 4 policy rules here,
 * whatever the number of policies. */
static void test_ipblock_merge(void **state)
{
	struct nf_state s = {0}, one = {0};
	struct plan p = {0}, p1 = {0}, with = {0}, without = {0};
	const struct plan_chain *ch;
	const struct plan_set *t443, *any;
	char n443[96], nany[96];
	size_t blocks = 0;

	(void)state;
	merge_plan(&s, &p, merge_m1, merge_m2);
	assert_int_equal(p.nchains, 1);
	ch = &p.chains[0];
	snprintf(n443, sizeof(n443), "%s_tcp443_4", ch->name);
	snprintf(nany, sizeof(nany), "%s_any_4", ch->name);
	for (size_t i = 0; i < ch->nrules; i++) {
		const struct plan_rule *r = &ch->rules[i];
		assert_non_null(r->dst_set);
		assert_true(plan_set_of_chain(r->dst_set, ch->name));
		blocks++;
		if (strcmp(r->dst_set, n443) == 0) {
			assert_int_equal(r->l4proto, IPPROTO_TCP);
			assert_int_equal(r->port_lo, 443);
			assert_string_equal(r->comment, "default/m1 egress[0] (+1 more)");
		} else {
			assert_string_equal(r->dst_set, nany);
			assert_int_equal(r->l4proto, 0);
			assert_string_equal(r->comment, "default/m1 egress[1] (+1 more)");
		}
	}
	assert_int_equal(blocks, 2); /* no IPv6 rule: no pod has IPv6 */
	t443 = set_named_(&p, n443);
	any = set_named_(&p, nany);
	assert_non_null(t443);
	assert_non_null(any);
	assert_true(t443->interval && any->interval);
	assert_string_equal(t443->comment, "ipBlocks of default/m1 egress[0] (+1 more)");
	/* m1's 10.1/16 minus 10.1.1/24 is 8 prefixes, m2 adds 10.1.1/24 and 203.0.113/24 */
	assert_int_equal(t443->n, 10);
	assert_true(set_has(t443, "10.1.1.0/24") && set_has(t443, "10.1.0.0/24") && set_has(t443, "203.0.113.0/24"));
	assert_false(set_has(t443, "192.0.2.0/24"));
	assert_int_equal(any->n, 2);
	assert_true(set_has(any, "192.0.2.0/24") && set_has(any, "198.51.100.0/24"));
	for (size_t i = 0; i < p.nsets; i++) /* no other set: no selector peer */
		assert_true(&p.sets[i] == t443 || &p.sets[i] == any);

	/* a replica's share has no set; the first pod's has the chain's, in
	 * `with` only (made and deleted with the chain) */
	assert_int_equal(plan_pod_delta(&s, &s.pods[1], &without, &with), 0);
	assert_int_equal(with.nchains + with.nsets + without.nsets, 0);
	plan_free(&with);
	plan_free(&without);
	/* m1 alone of its kind (o1, selected by nothing, keeps IPv4 in use) */
	nf_state_remove_pod(&s, "c-m2", "eth0");
	put_pod_doc(&s, "{\"containerID\":\"c-o1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"o1\","
			"\"labels\":{\"app\":\"o\"},\"hostVeth\":\"vo1\",\"ips\":[\"10.0.0.9/24\"]}");
	assert_int_equal(plan_pod_delta(&s, nf_state_find_pod(&s, "c-m1", "eth0"), &without, &with), 0);
	assert_int_equal(with.nchains, 1);
	assert_int_equal(with.nsets, 2);
	assert_int_equal(without.nsets, 0);
	plan_free(&with);
	plan_free(&without);
	assert_true(check_deltas(&s) >= 2);
	put_pod_doc(&s, merge_pods[1]);
	assert_true(check_deltas(&s) >= 3);

	/* m2 comes to pods that had m1 alone: their kind changes, and the new
	 * kind's sets (other names) hold all the old ones did: nothing to
	 * judge again. m2 going is a loss. */
	merge_plan(&one, &p1, merge_m1, NULL);
	assert_string_not_equal(p1.chains[0].name, p.chains[0].name);
	assert_int_equal(tightened(&p1, &p, &one), 0);
	assert_int_equal(tightened(&p, &p1, &one), 2);
	plan_free(&p1);
	plan_free(&p);
	nf_state_free(&s);
	nf_state_free(&one);

	/* by the addresses, not the prefixes: 10.1/16 is in two adjacent
	 * halves, not in one half, and 203.0.113/24 is in neither */
	merge_plan(&s, &p, wide, NULL);
	merge_plan(&one, &p1, halves, NULL);
	assert_int_equal(tightened(&p, &p1, &s), 0);
	assert_int_equal(tightened(&p1, &p, &s), 2);
	plan_free(&p1);
	nf_state_free(&one);
	merge_plan(&one, &p1, half, NULL);
	assert_int_equal(tightened(&p, &p1, &s), 2);
	plan_free(&p1);
	plan_free(&p);
	nf_state_free(&s);
	nf_state_free(&one);
}

/* covered_c1..c3: policies of app=m whose rules other rules of the
 * kind's chain cover (to app=db on 8080/TCP and 8000-8100/TCP; to app=dns
 * on 53/UDP and on any port; to app=web on 443/TCP and to anywhere on
 * 443/TCP) and rules nothing covers (8080/UDP, 8101/TCP, 443/TCP to an
 * ipBlock, 53/UDP to app=db). */
#define SEL(app) "{\"podSelector\":{\"matchLabels\":{\"app\":\"" app "\"}}}"
static const char *const covered_c1 = MERGE_POL("c1",
	"{\"to\":[" SEL("db") "],\"ports\":[{\"port\":8080,\"protocol\":\"TCP\"},{\"port\":8080,\"protocol\":\"UDP\"}]},"
	"{\"to\":[" SEL("dns") "],\"ports\":[{\"port\":53,\"protocol\":\"UDP\"}]},"
	"{\"to\":[" SEL("web") "],\"ports\":[{\"port\":443,\"protocol\":\"TCP\"}]},"
	"{\"to\":[{\"ipBlock\":{\"cidr\":\"192.0.2.0/24\"}}],\"ports\":[{\"port\":443,\"protocol\":\"TCP\"}]},"
	"{\"to\":[" SEL("db") "],\"ports\":[{\"port\":8101,\"protocol\":\"TCP\"},{\"port\":53,\"protocol\":\"UDP\"}]}");
static const char *const covered_c2 = MERGE_POL("c2",
	"{\"to\":[" SEL("db") "],\"ports\":[{\"port\":8000,\"endPort\":8100,\"protocol\":\"TCP\"}]},"
	"{\"to\":[" SEL("dns") "]}");
static const char *const covered_c3 = MERGE_POL("c3", "{\"ports\":[{\"port\":443,\"protocol\":\"TCP\"}]}");

/* the rule of ch to set (NULL: any destination) on proto and port_lo */
static const struct plan_rule *rule_to(const struct plan_chain *ch, const char *set, uint8_t proto, uint16_t lo)
{
	for (size_t i = 0; i < ch->nrules; i++) {
		const struct plan_rule *r = &ch->rules[i];
		if (((!set && !r->dst_set) || (set && r->dst_set && strcmp(set, r->dst_set) == 0)) &&
		    r->l4proto == proto && r->port_lo == lo)
			return r;
	}
	return NULL;
}

/* the name of the IPv4 selector set of app=<app> in the plan (the set of
 * that key: its comment) */
static const char *sel_set(const struct plan *p, const char *app)
{
	char key[64];

	snprintf(key, sizeof(key), "app=%s", app);
	for (size_t i = 0; i < p->nsets; i++)
		if (p->sets[i].family == AF_INET && p->sets[i].comment && strstr(p->sets[i].comment, key))
			return p->sets[i].name;
	fail_msg("no set of %s", key);
	return NULL;
}

/* A kind's chain leaves out the rules its other rules cover: the same
 * destination set or any destination, on ports around theirs. */
static void test_covered_rules(void **state)
{
	struct nf_state s = {0}, s12 = {0}, s1 = {0};
	struct plan p = {0}, p12 = {0}, p1 = {0};
	const struct plan_chain *ch;
	const char *db, *dns, *web;
	const struct plan_rule *blocks;
	struct plan_rule tcp8080 = {.family = AF_INET, .l4proto = IPPROTO_TCP, .port_lo = 8080, .port_hi = 8080};
	struct plan_rule outer = tcp8080, inner;

	(void)state;
	/* the match alone */
	assert_true(plan_rule_ports_cover(&tcp8080, &tcp8080));
	outer.port_lo = 8000, outer.port_hi = 8100;
	assert_true(plan_rule_ports_cover(&outer, &tcp8080));
	assert_false(plan_rule_ports_cover(&tcp8080, &outer));
	outer.port_lo = 8081;
	assert_false(plan_rule_ports_cover(&outer, &tcp8080)); /* 8081-8100 */
	outer.port_lo = 8000, outer.port_hi = 8079;
	assert_false(plan_rule_ports_cover(&outer, &tcp8080));
	inner = tcp8080, inner.port_hi = 8200; /* 8080-8200: not in 8000-8100 */
	outer.port_hi = 8100;
	assert_false(plan_rule_ports_cover(&outer, &inner));
	inner.port_hi = 8100;
	assert_true(plan_rule_ports_cover(&outer, &inner));
	outer = (struct plan_rule){.family = AF_INET, .l4proto = IPPROTO_TCP};
	assert_true(plan_rule_ports_cover(&outer, &tcp8080)); /* any TCP port */
	outer.l4proto = IPPROTO_UDP;
	assert_false(plan_rule_ports_cover(&outer, &tcp8080));
	outer = (struct plan_rule){0};
	assert_true(plan_rule_ports_cover(&outer, &tcp8080)); /* anything, either family */
	assert_false(plan_rule_ports_cover(&tcp8080, &outer));
	outer.family = AF_INET6;
	assert_false(plan_rule_ports_cover(&outer, &tcp8080));

	/* the chain of c1 + c2 + c3 */
	memset(&s, 0, sizeof(s));
	add_json_policy(&s, covered_c1);
	add_json_policy(&s, covered_c2);
	add_json_policy(&s, covered_c3);
	for (size_t i = 0; i < NF_ARRAY_SIZE(merge_pods); i++)
		put_pod_doc(&s, merge_pods[i]);
	assert_int_equal(plan_compile(&s, &p, &(struct nf_error){0}), 0);
	assert_int_equal(p.nchains, 1);
	ch = &p.chains[0];
	db = sel_set(&p, "db"), dns = sel_set(&p, "dns"), web = sel_set(&p, "web");
	/* left out: 8080/TCP to db (8000-8100), 53/UDP to dns (any port),
	 * 443/TCP to web (443/TCP anywhere) */
	assert_null(rule_to(ch, db, IPPROTO_TCP, 8080));
	assert_null(rule_to(ch, dns, IPPROTO_UDP, 53));
	assert_null(rule_to(ch, web, IPPROTO_TCP, 443));
	/* kept, each with its own comment */
	assert_string_equal(rule_to(ch, db, IPPROTO_TCP, 8000)->comment, "default/c2 egress[0]");
	assert_string_equal(rule_to(ch, dns, 0, 0)->comment, "default/c2 egress[1]");
	assert_string_equal(rule_to(ch, NULL, IPPROTO_TCP, 443)->comment, "default/c3 egress[0]");
	assert_non_null(rule_to(ch, db, IPPROTO_UDP, 8080));
	assert_non_null(rule_to(ch, db, IPPROTO_TCP, 8101));
	assert_non_null(rule_to(ch, db, IPPROTO_UDP, 53));
	/* the ipBlock rule names the chain's own set: kept, though the rule
	 * of any destination covers it (its set would be left unused) */
	blocks = NULL;
	for (size_t i = 0; i < ch->nrules; i++)
		if (ch->rules[i].dst_set && plan_set_of_chain(ch->rules[i].dst_set, ch->name))
			blocks = &ch->rules[i];
	assert_non_null(blocks);
	assert_int_equal(blocks->port_lo, 443);
	assert_non_null(set_named_(&p, blocks->dst_set));
	assert_int_equal(ch->nrules, 7);
	/* the same whole compile and pod shares */
	assert_true(check_deltas(&s) >= 2);

	/* tightening compares what the rules match: c2 going loses 8081-8100
	 * and the other ports of dns; c2 coming keeps all c1 allowed (its
	 * 8080/TCP and 53/UDP rules are covered), nothing to judge again */
	merge_plan(&s1, &p1, covered_c1, NULL);
	merge_plan(&s12, &p12, covered_c1, covered_c2);
	assert_int_equal(tightened(&p1, &p12, &s1), 0);
	assert_int_equal(tightened(&p12, &p1, &s1), 2);
	plan_free(&p);
	plan_free(&p1);
	plan_free(&p12);
	nf_state_free(&s);
	nf_state_free(&s1);
	nf_state_free(&s12);
}

/* The ranges of an interval set of family holding prefixes in[0..n)
 * are want[0..nwant); returns whether the last one is open. */
static bool check_ranges(int family, const char *const *in, size_t n, const char *const *want, size_t nwant)
{
	struct nf_cidr e[8];
	struct plan_set set = {.family = family, .interval = true, .n = n, .elems = e};
	struct plan_range rg = {0};
	char buf[2 * INET6_ADDRSTRLEN + 8];
	size_t k = 0;

	assert_true(n <= NF_ARRAY_SIZE(e));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(nf_cidr_parse(in[i], false, true, &e[i], "cidr", NULL), 0);
	for (size_t i = 0; i < set.n; k++) {
		i = plan_set_range(&set, i, &rg);
		assert_true(k < nwant);
		plan_range_format(family, &rg, buf, sizeof(buf));
		assert_string_equal(buf, want[k]);
	}
	assert_int_equal(k, nwant);
	return rg.open;
}

/* Adjacent prefixes of an interval set are one range, as nft.c sends
 * them and render.c prints them; nft lists a range that is a prefix as
 * the prefix. */
static void test_set_ranges(void **state)
{
	static const char *const v4[] = {"10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24", "10.0.4.0/22",
					  "10.0.9.0/32", "255.255.255.0/25", "255.255.255.128/25"};
	static const char *const want4[] = {"10.0.0.0/23", "10.0.3.0-10.0.7.255", "10.0.9.0/32", "255.255.255.0/24"};
	static const char *const v6[] = {"fd00::/64", "fd00:0:0:1::/64", "ffff::/16"};
	static const char *const want6[] = {"fd00::/63", "ffff::/16"};

	(void)state;
	/* the last reaches the top: no end element */
	assert_true(check_ranges(AF_INET, v4, NF_ARRAY_SIZE(v4), want4, NF_ARRAY_SIZE(want4)));
	check_ranges(AF_INET6, v6, NF_ARRAY_SIZE(v6), want6, NF_ARRAY_SIZE(want6));
}

static const struct plan_set *set_with(const struct plan *p, const char *elem)
{
	for (size_t i = 0; i < p->nsets; i++)
		if (set_has(&p->sets[i], elem))
			return &p->sets[i];
	return NULL;
}

/* Pods no policy selects (as kinds_state's z1), app=z and app=w */
static const char *const z1_doc =
	"{\"containerID\":\"c-z1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"z1\","
	"\"labels\":{\"app\":\"z\"},\"hostVeth\":\"vz1\",\"ips\":[\"10.0.0.4/24\"]}";
static const char *const w1_doc =
	"{\"containerID\":\"c-w1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"w1\","
	"\"labels\":{\"app\":\"w\"},\"hostVeth\":\"vw1\",\"ips\":[\"10.0.0.5/24\"]}";

/* A state of z1 and w1 alone, with the policy policy_doc (NULL: none),
 * compiled into p */
static void unselected_state(struct nf_state *s, const char *policy_doc, struct plan *p)
{
	struct nf_error err = {0};

	memset(s, 0, sizeof(*s));
	if (policy_doc)
		add_json_policy(s, policy_doc);
	put_pod_doc(s, z1_doc);
	put_pod_doc(s, w1_doc);
	assert_int_equal(plan_compile(s, p, &err), 0);
}

/* Every egress policy's peer sets are in the plan while the state has an
 * egress policy, whether a kind's chain uses them or not: an ADD then only
 * changes set elements and (for a new kind) one chain; it never makes a
 * set or fills one whole. */
static void test_sets_always(void **state)
{
	struct nf_state s;
	struct nf_error err = {0};
	struct plan p = {0}, with = {0}, without = {0};
	const struct plan_set *z;
	static const char *const c_doc =
		"{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":"
		"{\"name\":\"c\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"nobody\"}},"
		"\"policyTypes\":[\"Egress\"],\"egress\":[{\"to\":[{\"podSelector\":{\"matchLabels\":"
		"{\"app\":\"z\"}}},{\"ipBlock\":{\"cidr\":\"192.0.2.0/24\"}}],\"ports\":[{\"port\":80}]}]}}";
	static const char *const d_doc =
		"{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\",\"metadata\":"
		"{\"name\":\"d\"},\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"y\"}},"
		"\"policyTypes\":[\"Egress\"],\"egress\":[{\"to\":[{\"podSelector\":{\"matchLabels\":"
		"{\"app\":\"x\"}}},{\"ipBlock\":{\"cidr\":\"198.51.100.0/24\"}}]}]}}";

	(void)state;
	kinds_state(&s, false);
	/* c selects no pod; its peers are z1 and a block */
	add_json_policy(&s, c_doc);
	/* d selects y1 with a: y1's kind is new (a, b, d), its rules' sets
	 * hold x1 and x2, and a block */
	add_json_policy(&s, d_doc);
	assert_int_equal(plan_compile(&s, &p, &err), 0);
	z = set_with(&p, "10.0.0.4");
	assert_non_null(z); /* c's peer set: no chain uses it */
	assert_int_equal(z->n, 1);
	/* ipBlocks are the sets of the kinds' chains: none for c */
	assert_null(set_with(&p, "192.0.2.0/24"));
	assert_non_null(set_with(&p, "198.51.100.0/24"));
	for (size_t i = 0; i < p.nchains; i++)
		for (size_t j = 0; j < p.chains[i].nrules; j++)
			assert_true(!p.chains[i].rules[j].dst_set || strcmp(p.chains[i].rules[j].dst_set, z->name) != 0);

	/* y1, alone of its kind: its chain; the selector sets of its rules
	 * in both plans, as they were (x1's and x2's addresses are in the
	 * kernel): nothing is sent for them; the chain's ipBlock set in
	 * `with` only, filled: made with the chain */
	assert_int_equal(plan_pod_delta(&s, &s.pods[2], &without, &with), 0);
	assert_int_equal(with.nchains, 1);
	assert_int_equal(with.nsets, without.nsets + 1);
	assert_true(without.nsets >= 1);
	for (size_t i = 0, k = 0; i < with.nsets; i++) {
		if (plan_set_of_chain(with.sets[i].name, with.chains[0].name)) {
			assert_true(with.sets[i].interval);
			assert_int_equal(with.sets[i].n, 1);
			continue;
		}
		assert_string_equal(with.sets[i].name, without.sets[k].name);
		assert_int_equal(with.sets[i].n, 0);
		assert_int_equal(without.sets[k++].n, 0);
	}
	plan_free(&with);
	plan_free(&without);
	/* z1, selected by nothing: its address in c's set, which it does not make */
	assert_int_equal(plan_pod_delta(&s, &s.pods[3], &without, &with), 0);
	assert_int_equal(with.nchains + with.ndispatch + with.nantispoof, 0);
	assert_int_equal(with.nsets, 1);
	assert_string_equal(with.sets[0].name, z->name);
	assert_int_equal(with.sets[0].n, 1);
	assert_int_equal(without.nsets, 1);
	assert_int_equal(without.sets[0].n, 0);
	plan_free(&with);
	plan_free(&without);
	assert_true(check_deltas(&s) >= 4);
	plan_free(&p);
	nf_state_free(&s);

	/* no pod selected: the tables and sets all the same (the state has
	 * an egress policy), z1's address in c's set */
	unselected_state(&s, c_doc, &p);
	assert_false(plan_is_empty(&p));
	assert_int_equal(p.nchains + p.ndispatch + p.nantispoof, 0);
	assert_non_null(set_with(&p, "10.0.0.4"));
	assert_int_equal(plan_pod_delta(&s, &s.pods[0], &without, &with), 0);
	assert_int_equal(with.nchains + with.ndispatch, 0);
	assert_int_equal(with.nsets, 1);
	assert_int_equal(with.sets[0].n, 1);
	plan_free(&with);
	plan_free(&without);
	assert_true(check_deltas(&s) >= 2);
	plan_free(&p);
	nf_state_free(&s);

	/* no egress policy: no tables, nothing of a pod in the kernel */
	unselected_state(&s, NULL, &p);
	assert_true(plan_is_empty(&p));
	assert_int_equal(plan_pod_delta(&s, &s.pods[0], &without, &with), 0);
	assert_int_equal(with.nchains + with.nsets + with.ndispatch + without.nsets, 0);
	plan_free(&p);
	nf_state_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_manifest),
		cmocka_unit_test(test_incluster_variant),
		cmocka_unit_test(test_as_table),
		cmocka_unit_test(test_ipblock_except),
		cmocka_unit_test(test_patterns_golden),
		cmocka_unit_test(test_no_policy_empty),
		cmocka_unit_test(test_deny_all),
		cmocka_unit_test(test_kinds_by_policies),
		cmocka_unit_test(test_idle_kinds),
		cmocka_unit_test(test_kind_comment_long),
		cmocka_unit_test(test_sets_always),
		cmocka_unit_test(test_ipblock_merge),
		cmocka_unit_test(test_covered_rules),
		cmocka_unit_test(test_set_ranges),
		cmocka_unit_test(test_peer_follows_pods),
		cmocka_unit_test(test_named_ports),
		cmocka_unit_test(test_tightened_sources),
		cmocka_unit_test(test_state_seed),
		cmocka_unit_test(test_tightened_relabel),
		cmocka_unit_test(test_plan_without_pod),
		cmocka_unit_test(test_ipblock_union),
		cmocka_unit_test(test_model_cache),
		cmocka_unit_test(test_twins),
		cmocka_unit_test(test_pod_delta),
		cmocka_unit_test(test_pod_delta_random),
		cmocka_unit_test(test_family_used),
	};
	return cmocka_run_group_tests_name("compile", tests, NULL, NULL);
}
