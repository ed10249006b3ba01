/* Unit tests: YAML/JSON manifests (netconf/manifest.c) and the testdata
 * manifests parsed into the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../netconf/manifest.h"
#include "../../netconf/model.h"

#define assert_contains(hay, needle)                                                    \
	do {                                                                              \
		const char *h_ = (hay), *n_ = (needle);                                   \
		if (!strstr(h_, n_))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", h_, n_);               \
	} while (0)

static json_t *parse_ok(const char *text)
{
	struct nf_error err = { 0 };
	json_t *out = NULL;

	if (nf_manifest_parse(text, strlen(text), "test.yaml", &out, &err) != 0)
		fail_msg("%s\n---\n%s", err.msg, text);
	assert_true(json_is_array(out));
	return out;
}

static void parse_bad_n(const char *text, size_t len, const char *want1, const char *want2)
{
	struct nf_error err = { 0 };
	json_t *out = NULL;

	if (nf_manifest_parse(text, len, "test.yaml", &out, &err) >= 0)
		fail_msg("accepted:\n%s", text);
	assert_null(out);
	assert_int_equal(err.code, CNI_ERR_DECODE);
	assert_contains(err.msg, want1);
	assert_contains(err.msg, want2);
}

static void parse_bad(const char *text, const char *want1, const char *want2)
{
	parse_bad_n(text, strlen(text), want1, want2);
}

/* obj at a '.'-separated path of keys and indexes */
static json_t *at(json_t *v, const char *path)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, strtoul(tok, NULL, 10));
		else
			v = json_object_get(v, tok);
	}
	if (!v)
		fail_msg("no %s", path);
	return v;
}

/* ---- YAML scalars ---- */

static void test_yaml_scalars(void **state)
{
	json_t *out = parse_ok("kind: Test\n"
			       "port: 53\n"
			       "quoted: \"53\"\n"
			       "single: '53'\n"
			       "neg: -7\n"
			       "plus: +8\n"
			       "name: \"true\"\n"
			       "t1: true\n"
			       "t2: True\n"
			       "t3: TRUE\n"
			       "f1: false\n"
			       "f2: False\n"
			       "f3: FALSE\n"
			       "yes: yes\n"
			       "n1: null\n"
			       "n2: ~\n"
			       "n3:\n"
			       "n4: Null\n"
			       "qnull: \"null\"\n"
			       "real: 1.5\n"
			       "exp: 1e3\n"
			       "ver: 1.2.3\n"
			       "ip: 10.0.0.0/8\n"
			       "str: !!str 42\n"
			       "tagged: !!int \"42\"\n"
			       "anchored: &a 7\n"
			       "block: |\n  line1\n  line2\n"
			       "folded: >-\n  a\n  b\n"
			       "big: 99999999999999999999\n"
			       "empty: ''\n"
			       "flow: {a: 1, b: [x, 2]}\n");
	json_t *o = json_array_get(out, 0);

	assert_int_equal(json_array_size(out), 1);
	assert_true(json_is_integer(at(o, "port")));
	assert_int_equal(json_integer_value(at(o, "port")), 53);
	assert_string_equal(json_string_value(at(o, "quoted")), "53");
	assert_string_equal(json_string_value(at(o, "single")), "53");
	assert_int_equal(json_integer_value(at(o, "neg")), -7);
	assert_int_equal(json_integer_value(at(o, "plus")), 8);
	assert_string_equal(json_string_value(at(o, "name")), "true");
	assert_true(json_is_true(at(o, "t1")));
	assert_true(json_is_true(at(o, "t2")));
	assert_true(json_is_true(at(o, "t3")));
	assert_true(json_is_false(at(o, "f1")));
	assert_true(json_is_false(at(o, "f2")));
	assert_true(json_is_false(at(o, "f3")));
	assert_string_equal(json_string_value(at(o, "yes")), "yes");
	assert_true(json_is_null(at(o, "n1")));
	assert_true(json_is_null(at(o, "n2")));
	assert_true(json_is_null(at(o, "n3")));
	assert_true(json_is_null(at(o, "n4")));
	assert_string_equal(json_string_value(at(o, "qnull")), "null");
	assert_true(json_is_real(at(o, "real")));
	assert_true(json_real_value(at(o, "real")) == 1.5);
	assert_true(json_is_real(at(o, "exp")));
	assert_true(json_real_value(at(o, "exp")) == 1000.0);
	assert_string_equal(json_string_value(at(o, "ver")), "1.2.3");
	assert_string_equal(json_string_value(at(o, "ip")), "10.0.0.0/8");
	assert_string_equal(json_string_value(at(o, "str")), "42");
	assert_int_equal(json_integer_value(at(o, "tagged")), 42);
	assert_int_equal(json_integer_value(at(o, "anchored")), 7); /* an anchor alone is fine */
	assert_string_equal(json_string_value(at(o, "block")), "line1\nline2\n");
	assert_string_equal(json_string_value(at(o, "folded")), "a b");
	assert_true(json_is_real(at(o, "big")));
	assert_string_equal(json_string_value(at(o, "empty")), "");
	assert_int_equal(json_integer_value(at(o, "flow.a")), 1);
	assert_string_equal(json_string_value(at(o, "flow.b.0")), "x");
	assert_int_equal(json_integer_value(at(o, "flow.b.1")), 2);
	json_decref(out);
}

/* port: "53" is a string, which the API server refuses as a port name */
static void test_yaml_quoted_port_rejected(void **state)
{
	struct nf_error err = { 0 };
	struct nf_policy p;
	json_t *out = parse_ok("apiVersion: networking.k8s.io/v1\n"
			       "kind: NetworkPolicy\n"
			       "metadata:\n  name: np\n"
			       "spec:\n  egress:\n  - ports:\n    - port: \"53\"\n");

	assert_int_equal(nf_policy_from_json(json_array_get(out, 0), "default", &p, &err), -EINVAL);
	assert_contains(err.msg, "spec.egress[0].ports[0].port: invalid port name \"53\"");
	json_decref(out);
}

/* ---- documents and lists ---- */

static void test_multi_doc(void **state)
{
	json_t *out = parse_ok("# leading comment\n"
			       "---\n"
			       "kind: A\n"
			       "---\n"
			       "# an empty document\n"
			       "---\n"
			       "kind: B\n"
			       "...\n"
			       "---\n"
			       "~\n"
			       "---\n"
			       "kind: C\n");

	assert_int_equal(json_array_size(out), 3);
	assert_string_equal(json_string_value(at(out, "0.kind")), "A");
	assert_string_equal(json_string_value(at(out, "1.kind")), "B");
	assert_string_equal(json_string_value(at(out, "2.kind")), "C");
	json_decref(out);

	out = parse_ok("");
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	out = parse_ok("# nothing\n\n");
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	out = parse_ok("---\n---\n");
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
}

static void test_list_flatten(void **state)
{
	json_t *out = parse_ok("apiVersion: v1\n"
			       "kind: List\n"
			       "items:\n"
			       "- kind: A\n"
			       "- apiVersion: v1\n"
			       "  kind: List\n"
			       "  items:\n"
			       "  - kind: B\n"
			       "  - kind: C\n"
			       "- kind: D\n"
			       "---\n"
			       "kind: E\n"
			       "---\n"
			       "kind: List\n"
			       "items: []\n"
			       "---\n"
			       "apiVersion: networking.k8s.io/v1\n"
			       "kind: NetworkPolicyList\n"
			       "items:\n"
			       "- kind: F\n");
	const char *want[] = { "A", "B", "C", "D", "E", "F" };

	assert_int_equal(json_array_size(out), NF_ARRAY_SIZE(want));
	for (size_t i = 0; i < NF_ARRAY_SIZE(want); i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(out, i), "kind")),
				    want[i]);
	json_decref(out);

	parse_bad("kind: A\n---\nkind: List\nitems:\n- kind: B\n- 5\n",
		  "test.yaml: document 2: items[1]: expected an object", "an integer");
	parse_bad("kind: List\nitems:\n- kind: List\n  items:\n  - [a]\n",
		  "document 1: items[0]: items[0]: expected an object", "an array");
	parse_bad("kind: List\nitems: {}\n", "document 1: items: expected an array", "an object");
}

static void test_json(void **state)
{
	json_t *out;

	out = parse_ok("{\"kind\": \"A\", \"port\": 53, \"name\": \"53\"}");
	assert_int_equal(json_array_size(out), 1);
	assert_true(json_is_integer(at(out, "0.port")));
	assert_true(json_is_string(at(out, "0.name")));
	json_decref(out);

	out = parse_ok("\n  [{\"kind\": \"A\"}, {\"kind\": \"List\", \"items\": [{\"kind\": \"B\"}]}]\n");
	assert_int_equal(json_array_size(out), 2);
	assert_string_equal(json_string_value(at(out, "1.kind")), "B");
	json_decref(out);

	out = parse_ok("\xef\xbb\xbf{\"kind\": \"A\"}");
	assert_int_equal(json_array_size(out), 1);
	json_decref(out);

	parse_bad("{\"kind\": \"A\",\n \"x\": }", "test.yaml:2:", "invalid JSON");
	parse_bad("{\"kind\": \"A\", \"kind\": \"B\"}", "test.yaml:1:", "duplicate");
	parse_bad("[{\"kind\": \"A\"}, 3]", "test.yaml: item 2: expected an object", "an integer");
	parse_bad("{\"kind\": \"A\"} {\"kind\": \"B\"}", "test.yaml:1:", "invalid JSON");
	parse_bad("{\"a\": \"\\u0000\"}", "test.yaml:1:", "invalid JSON");
}

static void test_yaml_errors(void **state)
{
	parse_bad("kind: A\nkind: B\n", "test.yaml:2:1: duplicate key \"kind\"", "");
	parse_bad("a:\n  b: 1\n  b: 2\n", "test.yaml:3:3: duplicate key \"b\"", "");
	parse_bad("a: &x {b: 1}\nc: *x\n", "test.yaml:2:4: YAML aliases (*x) are not supported", "");
	parse_bad("a: [1, 2\n", "test.yaml:", "invalid YAML");
	parse_bad("a: b\n c: d\n", "test.yaml:2:", "invalid YAML");
	parse_bad("\tkind: A\n", "test.yaml:1:", "invalid YAML");
	parse_bad("kind: A\n---\n- a\n- b\n", "test.yaml: document 2: expected an object", "an array");
	parse_bad("just a string\n", "test.yaml: document 1: expected an object", "a string");
	parse_bad("kind: A\n---\n42\n", "test.yaml: document 2: expected an object", "an integer");
	parse_bad("? [a, b]\n: c\n", "test.yaml:1:3: mapping keys must be scalars", "sequences");
	parse_bad("? {a: b}\n: c\n", "test.yaml:1:3: mapping keys must be scalars", "mappings");
	parse_bad("a: .inf\n", "test.yaml:1:4:", "NaN");
	parse_bad("a: \"x\\0y\"\n", "test.yaml:1:4: NUL character", "");
	parse_bad_n("kind: A\nname: a\0b\n", 16, "test.yaml:2:8: NUL byte", "");
	parse_bad("kind: A\nname: caf\xc3\n", "test.yaml:2:10: invalid UTF-8", "0xc3");
	parse_bad("name: \xed\xa0\x80\n", "test.yaml:1:7: invalid UTF-8", "0xed");
	parse_bad("name: \xc0\xaf\n", "test.yaml:1:7: invalid UTF-8", "");
	parse_bad("{\"name\": \"\xff\"}", "test.yaml:1:11: invalid UTF-8", "0xff");
}

static void test_yaml_deep_nesting(void **state)
{
	size_t n = 300;
	char *s = malloc(2 * n + 4);

	assert_non_null(s);
	memcpy(s, "a: ", 3);
	for (size_t i = 0; i < n; i++)
		s[3 + i] = '[', s[3 + n + i] = ']';
	s[3 + 2 * n] = '\0';
	parse_bad(s, "test.yaml:1:", "nesting deeper than 256 levels");
	free(s);
}

static void test_utf8_ok(void **state)
{
	json_t *out = parse_ok("kind: A\nnote: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n");

	assert_string_equal(json_string_value(at(out, "0.note")), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	json_decref(out);
}

/* ---- files ---- */

static void test_read_file(void **state)
{
	struct nf_error err = { 0 };
	char *buf = NULL, path[] = "/tmp/nf-test-XXXXXX";
	size_t len = 0;
	int fd;

	assert_int_equal(nf_read_file("/nonexistent/x.yaml", &buf, &len, &err), -ENOENT);
	assert_int_equal(err.code, CNI_ERR_IO);
	assert_contains(err.msg, "\"/nonexistent/x.yaml\"");
	assert_contains(err.msg, strerror(ENOENT));
	assert_null(buf);

	assert_int_equal(nf_read_file("/tmp", &buf, &len, &err), -EISDIR);
	assert_contains(err.msg, "\"/tmp\"");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "kind: A\n", 8), 8);
	assert_int_equal(nf_read_file(path, &buf, &len, &err), 0);
	assert_int_equal(len, 8);
	assert_string_equal(buf, "kind: A\n");
	free(buf);

	/* too large: a sparse file just over the limit */
	assert_int_equal(ftruncate(fd, (16 << 20) + 1), 0);
	buf = NULL;
	assert_int_equal(nf_read_file(path, &buf, &len, &err), -EFBIG);
	assert_contains(err.msg, path);
	assert_contains(err.msg, "16 MiB");
	assert_null(buf);

	/* empty */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(nf_read_file(path, &buf, &len, &err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	close(fd);
	unlink(path);
}

static void test_read_stdin(void **state)
{
	struct nf_error err = { 0 };
	char *buf = NULL, path[] = "/tmp/nf-test-XXXXXX";
	size_t len = 0;
	int fd, saved;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"kind\": \"A\"}", 13), 13);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	saved = dup(STDIN_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	assert_int_equal(nf_read_file("-", &buf, &len, &err), 0);
	dup2(saved, STDIN_FILENO);
	close(saved);
	close(fd);
	unlink(path);
	assert_int_equal(len, 13);
	assert_string_equal(buf, "{\"kind\": \"A\"}");
	free(buf);
}

/* ---- testdata ---- */

static json_t *load_testdata(const char *name)
{
	struct nf_error err = { 0 };
	char path[512];
	char *buf = NULL;
	size_t len;
	json_t *out = NULL;

	snprintf(path, sizeof(path), "%s/testdata/%s", SRCDIR, name);
	if (nf_read_file(path, &buf, &len, &err) != 0)
		fail_msg("%s", err.msg);
	if (nf_manifest_parse(buf, len, path, &out, &err) != 0)
		fail_msg("%s", err.msg);
	free(buf);
	return out;
}

static void policy_from(json_t *docs, size_t i, struct nf_policy *p)
{
	struct nf_error err = { 0 };

	if (nf_policy_from_json(json_array_get(docs, i), "default", p, &err) != 0)
		fail_msg("%s", err.msg);
}

static void assert_sel(const struct nf_selector *s, const char *want)
{
	char *f = nf_selector_format(s);

	assert_non_null(f);
	assert_string_equal(f, want);
	free(f);
}

static void assert_cidr(const struct nf_cidr *c, const char *want)
{
	char buf[64];

	nf_cidr_format(c, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

/* kube-dns: to pods k8s-app=kube-dns in kube-system, 53/UDP and 53/TCP */
static void assert_dns_rule(const struct nf_rule *r)
{
	assert_true(r->has_to);
	assert_int_equal(r->npeers, 1);
	assert_int_equal(r->peers[0].kind, NF_PEER_SELECTOR);
	assert_true(r->peers[0].has_ns_sel);
	assert_true(r->peers[0].has_pod_sel);
	assert_sel(&r->peers[0].ns_sel, "kubernetes.io/metadata.name=kube-system");
	assert_sel(&r->peers[0].pod_sel, "k8s-app=kube-dns");
	assert_true(r->has_ports);
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[0].proto, NF_PROTO_UDP);
	assert_true(r->ports[0].has_port);
	assert_int_equal(r->ports[0].port, 53);
	assert_int_equal(r->ports[1].proto, NF_PROTO_TCP);
	assert_int_equal(r->ports[1].port, 53);
}

static void test_seed_manifest(void **state)
{
	json_t *docs = load_testdata("foo-deny-external-egress.yaml");
	struct nf_policy p;

	assert_int_equal(json_array_size(docs), 1);
	/* port: 53 in YAML is an integer */
	assert_true(json_is_integer(at(docs, "0.spec.egress.0.ports.0.port")));
	policy_from(docs, 0, &p);
	assert_string_equal(p.name, "foo-deny-external-egress");
	assert_string_equal(p.ns, "default");
	assert_sel(&p.pod_sel, "app=foo");
	assert_true(p.egress);
	assert_false(p.ingress);
	assert_int_equal(p.negress, 1);
	assert_dns_rule(&p.egress_rules[0]);
	nf_policy_free(&p);
	json_decref(docs);
}

static void test_incluster_manifest(void **state)
{
	json_t *docs = load_testdata("foo-deny-external-egress-incluster.yaml");
	struct nf_policy p;
	struct nf_rule *r;

	policy_from(docs, 0, &p);
	assert_string_equal(p.name, "foo-deny-external-egress");
	assert_sel(&p.pod_sel, "app=foo");
	assert_true(p.egress);
	assert_int_equal(p.negress, 2);
	r = &p.egress_rules[0];
	assert_false(r->has_to);
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[0].proto, NF_PROTO_UDP);
	assert_int_equal(r->ports[1].proto, NF_PROTO_TCP);
	r = &p.egress_rules[1];
	assert_true(r->has_to);
	assert_false(r->has_ports);
	assert_int_equal(r->npeers, 1);
	assert_true(r->peers[0].has_ns_sel);
	assert_false(r->peers[0].has_pod_sel);
	assert_true(nf_selector_is_empty(&r->peers[0].ns_sel));
	nf_policy_free(&p);
	json_decref(docs);
}

static void test_pattern_manifests(void **state)
{
	static const struct {
		const char *file, *name, *pod_sel, *cidr;
	} cases[] = {
		{ "db-internal-only.yaml", "db-internal-only", "app=database", NULL },
		{ "backend-limited-external.yaml", "backend-limited-external", "app=backend", "52.1.2.3/32" },
		{ "payment-service-gateway.yaml", "payment-service-gateway", "app=payment-service",
		  "52.123.45.67/32" },
	};

	for (size_t i = 0; i < NF_ARRAY_SIZE(cases); i++) {
		json_t *docs = load_testdata(cases[i].file);
		struct nf_policy p;
		struct nf_rule *r;

		policy_from(docs, 0, &p);
		assert_string_equal(p.name, cases[i].name);
		assert_sel(&p.pod_sel, cases[i].pod_sel);
		assert_true(p.egress);
		assert_false(p.ingress);
		assert_int_equal(p.negress, cases[i].cidr ? 2 : 1);
		assert_dns_rule(&p.egress_rules[0]);
		if (cases[i].cidr) {
			r = &p.egress_rules[1];
			assert_int_equal(r->npeers, 1);
			assert_int_equal(r->peers[0].kind, NF_PEER_IPBLOCK);
			assert_cidr(&r->peers[0].ipblock.cidr, cases[i].cidr);
			assert_int_equal(r->peers[0].ipblock.nexcept, 0);
			assert_int_equal(r->nports, 1);
			assert_int_equal(r->ports[0].proto, NF_PROTO_TCP);
			assert_int_equal(r->ports[0].port, 443);
		}
		nf_policy_free(&p);
		json_decref(docs);
	}
}

static void test_cidr_except_manifest(void **state)
{
	json_t *docs = load_testdata("internal-cidr-except.yaml");
	struct nf_policy p;
	struct nf_rule *r;

	policy_from(docs, 0, &p);
	assert_sel(&p.pod_sel, "app=foo");
	assert_int_equal(p.negress, 1);
	r = &p.egress_rules[0];
	assert_int_equal(r->npeers, 2);
	assert_int_equal(r->peers[0].kind, NF_PEER_IPBLOCK);
	assert_cidr(&r->peers[0].ipblock.cidr, "10.0.0.0/8");
	assert_int_equal(r->peers[0].ipblock.nexcept, 1);
	assert_cidr(&r->peers[0].ipblock.except[0], "10.0.1.0/24");
	assert_cidr(&r->peers[1].ipblock.cidr, "203.0.113.10/32");
	assert_int_equal(r->nports, 1);
	assert_int_equal(r->ports[0].port, 443);
	assert_int_equal(r->ports[0].proto, NF_PROTO_TCP);
	nf_policy_free(&p);
	json_decref(docs);
}

static void test_namespaces_manifest(void **state)
{
	json_t *docs = load_testdata("namespaces.yaml");
	struct nf_namespace n;

	assert_int_equal(json_array_size(docs), 2);
	assert_int_equal(nf_namespace_from_json(json_array_get(docs, 0), &n, NULL), 0);
	assert_string_equal(n.name, "kube-system");
	assert_string_equal(nf_labels_get(&n.labels, "kubernetes.io/metadata.name"), "kube-system");
	nf_namespace_free(&n);
	assert_int_equal(nf_namespace_from_json(json_array_get(docs, 1), &n, NULL), 0);
	assert_string_equal(n.name, "default");
	nf_namespace_free(&n);
	json_decref(docs);
}

/* Every testdata/ YAML file parses, and every object in it is a valid
 * NetworkPolicy or Namespace. */
static void test_all_testdata(void **state)
{
	char dir[512];
	struct dirent *de;
	DIR *d;
	size_t nfiles = 0;

	snprintf(dir, sizeof(dir), "%s/testdata", SRCDIR);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		json_t *docs, *obj;
		size_t i;

		if (fnmatch("*.yaml", de->d_name, 0) != 0)
			continue;
		docs = load_testdata(de->d_name);
		assert_true(json_array_size(docs) > 0);
		json_array_foreach(docs, i, obj) {
			struct nf_error err = { 0 };
			const char *kind = json_string_value(json_object_get(obj, "kind"));
			int r;

			if (kind && strcmp(kind, "NetworkPolicy") == 0) {
				struct nf_policy p;

				r = nf_policy_from_json(obj, "default", &p, &err);
				if (r == 0)
					nf_policy_free(&p);
			} else if (kind && strcmp(kind, "Namespace") == 0) {
				struct nf_namespace n;

				r = nf_namespace_from_json(obj, &n, &err);
				if (r == 0)
					nf_namespace_free(&n);
			} else {
				continue;
			}
			if (r != 0)
				fail_msg("%s: object %zu: %s", de->d_name, i, err.msg);
		}
		json_decref(docs);
		nfiles++;
	}
	closedir(d);
	assert_true(nfiles >= 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_scalars),
		cmocka_unit_test(test_yaml_quoted_port_rejected),
		cmocka_unit_test(test_multi_doc),
		cmocka_unit_test(test_list_flatten),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_yaml_deep_nesting),
		cmocka_unit_test(test_utf8_ok),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_read_stdin),
		cmocka_unit_test(test_seed_manifest),
		cmocka_unit_test(test_incluster_manifest),
		cmocka_unit_test(test_pattern_manifests),
		cmocka_unit_test(test_cidr_except_manifest),
		cmocka_unit_test(test_namespaces_manifest),
		cmocka_unit_test(test_all_testdata),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
