/* Unit tests: CIDRs, labels, selectors, names, NetworkPolicy, Namespace and
 * pod records (netconf/cidr.c, labels.c, policy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tmpdirs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../netconf/model.h"
#include "../../netconf/state.h"

/* JSON with ' for " so that test objects stay readable. */
static json_t *J(const char *text)
{
	char *s = strdup(text);
	json_error_t jerr;
	json_t *v;

	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(s, JSON_DECODE_ANY, &jerr);
	if (!v)
		fail_msg("bad test JSON: %s: %s", jerr.text, s);
	free(s);
	return v;
}

#define assert_contains(hay, needle)                                                    \
	do {                                                                              \
		const char *h_ = (hay), *n_ = (needle);                                   \
		if (!strstr(h_, n_))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", h_, n_);               \
	} while (0)

/* ---- CIDRs ---- */

static void cidr_ok(const char *s, bool allow_host, bool strict, const char *want)
{
	struct nf_error err = { 0 };
	struct nf_cidr c;
	char buf[INET6_ADDRSTRLEN + 8];

	if (nf_cidr_parse(s, allow_host, strict, &c, "f", &err) != 0)
		fail_msg("%s: %s", s, err.msg);
	nf_cidr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void cidr_bad(const char *s, bool allow_host, bool strict, const char *want)
{
	struct nf_error err = { 0 };
	struct nf_cidr c;

	assert_int_equal(nf_cidr_parse(s, allow_host, strict, &c, "spec.x.cidr", &err), -EINVAL);
	assert_int_equal(err.code, NF_ERR_POLICY);
	assert_contains(err.msg, "spec.x.cidr: ");
	assert_contains(err.msg, want);
}

static void test_cidr_parse(void **state)
{
	struct nf_cidr c;

	cidr_ok("10.0.0.0/8", false, true, "10.0.0.0/8");
	cidr_ok("0.0.0.0/0", false, true, "0.0.0.0/0");
	cidr_ok("203.0.113.10/32", false, true, "203.0.113.10/32");
	cidr_ok("fd00::/64", false, true, "fd00::/64");
	cidr_ok("::/0", false, true, "::/0");
	cidr_ok("2001:db8::1/128", false, true, "2001:db8::1/128");
	/* interface addresses keep their host bits */
	cidr_ok("10.1.0.5/24", true, false, "10.1.0.5/24");
	cidr_ok("fd00::5/64", true, false, "fd00::5/64");
	cidr_ok("10.1.0.5", true, false, "10.1.0.5/32");
	cidr_ok("fd00::5", true, true, "fd00::5/128");

	assert_int_equal(nf_cidr_parse("fd00::5/64", false, false, &c, "f", NULL), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 64);
	assert_int_equal(nf_cidr_parse("10.1.2.3/8", false, false, &c, "f", NULL), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.addr[3], 3);

	cidr_bad("10.0.0.0/33", false, true, "invalid CIDR \"10.0.0.0/33\"");
	cidr_bad("fd00::/129", false, true, "\"fd00::/129\"");
	cidr_bad("10.0.0.1/8", false, true, "\"10.0.0.1/8\": host bits are set (did you mean \"10.0.0.0/8\"?)");
	cidr_bad("fd00::1/64", false, true, "did you mean \"fd00::/64\"");
	cidr_bad("10.0.0.0", false, true, "\"10.0.0.0\": missing /prefix");
	cidr_bad("10.0.0/8", false, true, "\"10.0.0/8\"");
	cidr_bad("10.0.0.0/", false, true, "\"10.0.0.0/\"");
	cidr_bad("10.0.0.0/8x", false, true, "\"10.0.0.0/8x\"");
	cidr_bad("10.0.0.0/-1", false, true, "\"10.0.0.0/-1\"");
	cidr_bad("/8", false, true, "\"/8\"");
	cidr_bad("", true, false, "invalid CIDR \"\"");
	cidr_bad("foo", true, false, "\"foo\"");
	cidr_bad(" 10.0.0.0/8", false, true, "\" 10.0.0.0/8\"");
}

static void test_cidr_contains(void **state)
{
	struct nf_cidr a, b, c, d, e, v6;

	assert_int_equal(nf_cidr_parse("10.0.0.0/8", false, true, &a, "a", NULL), 0);
	assert_int_equal(nf_cidr_parse("10.0.1.0/24", false, true, &b, "b", NULL), 0);
	assert_int_equal(nf_cidr_parse("11.0.1.0/24", false, true, &c, "c", NULL), 0);
	assert_int_equal(nf_cidr_parse("0.0.0.0/0", false, true, &d, "d", NULL), 0);
	assert_int_equal(nf_cidr_parse("10.1.0.5", true, false, &e, "e", NULL), 0);
	assert_int_equal(nf_cidr_parse("::/0", false, true, &v6, "v6", NULL), 0);
	assert_true(nf_cidr_contains(&a, &b));
	assert_false(nf_cidr_contains(&b, &a));
	assert_false(nf_cidr_contains(&a, &c));
	assert_true(nf_cidr_contains(&a, &a));
	assert_true(nf_cidr_contains(&d, &c));
	assert_true(nf_cidr_contains(&a, &e));
	assert_false(nf_cidr_contains(&v6, &a));
	assert_false(nf_cidr_contains(&d, &v6));
}

static void test_addr_format(void **state)
{
	struct nf_cidr c;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(nf_cidr_parse("10.1.0.5/24", true, false, &c, "f", NULL), 0);
	nf_addr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "10.1.0.5");
	assert_int_equal(nf_cidr_parse("FD00:0::5/64", true, false, &c, "f", NULL), 0);
	nf_addr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "fd00::5");
}

/* ---- names ---- */

static void test_dns1123(void **state)
{
	struct nf_error err = { 0 };
	char long64[65], long254[255];

	memset(long64, 'a', 64);
	long64[64] = '\0';
	memset(long254, 'a', 254);
	long254[254] = '\0';

	assert_int_equal(nf_dns1123_label_validate("kube-system", "metadata.namespace", &err), 0);
	assert_int_equal(nf_dns1123_label_validate("a", "f", &err), 0);
	assert_int_equal(nf_dns1123_label_validate("0abc9", "f", &err), 0);
	assert_int_equal(nf_dns1123_label_validate("Foo", "metadata.namespace", &err), -EINVAL);
	assert_contains(err.msg, "metadata.namespace: invalid value \"Foo\"");
	assert_int_equal(nf_dns1123_label_validate("a.b", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_label_validate("-a", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_label_validate("a-", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_label_validate("", "f", &err), -EINVAL);
	assert_contains(err.msg, "f: must not be empty");
	assert_int_equal(nf_dns1123_label_validate(long64, "f", &err), -EINVAL);
	assert_contains(err.msg, "no more than 63");
	long64[63] = '\0';
	assert_int_equal(nf_dns1123_label_validate(long64, "f", &err), 0);

	assert_int_equal(nf_dns1123_subdomain_validate("foo-deny-external-egress", "f", &err), 0);
	assert_int_equal(nf_dns1123_subdomain_validate("a.b-c.d", "f", &err), 0);
	assert_int_equal(nf_dns1123_subdomain_validate("a..b", "metadata.name", &err), -EINVAL);
	assert_contains(err.msg, "metadata.name: invalid value \"a..b\"");
	assert_int_equal(nf_dns1123_subdomain_validate(".a", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_subdomain_validate("a.", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_subdomain_validate("a_b", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_subdomain_validate("A", "f", &err), -EINVAL);
	assert_int_equal(nf_dns1123_subdomain_validate(long254, "f", &err), -EINVAL);
	assert_contains(err.msg, "253");
	long254[253] = '\0';
	assert_int_equal(nf_dns1123_subdomain_validate(long254, "f", &err), 0);
}

static void test_label_key_value(void **state)
{
	struct nf_error err = { 0 };
	char name64[65], prefix254[260];

	assert_int_equal(nf_label_key_validate("app", "f", &err), 0);
	assert_int_equal(nf_label_key_validate("kubernetes.io/metadata.name", "f", &err), 0);
	assert_int_equal(nf_label_key_validate("k8s-app", "f", &err), 0);
	assert_int_equal(nf_label_key_validate("A_b.C-9", "f", &err), 0);
	assert_int_equal(nf_label_key_validate("example.com/Tier", "f", &err), 0);

	assert_int_equal(nf_label_key_validate("", "m", &err), -EINVAL);
	assert_int_equal(nf_label_key_validate("-app", "m", &err), -EINVAL);
	assert_contains(err.msg, "m: invalid label key \"-app\"");
	assert_int_equal(nf_label_key_validate("app_", "m", &err), -EINVAL);
	assert_int_equal(nf_label_key_validate("a b", "m", &err), -EINVAL);
	assert_int_equal(nf_label_key_validate("a/b/c", "m", &err), -EINVAL);
	assert_contains(err.msg, "\"a/b/c\"");
	assert_int_equal(nf_label_key_validate("/b", "m", &err), -EINVAL);
	assert_contains(err.msg, "prefix");
	assert_int_equal(nf_label_key_validate("a/", "m", &err), -EINVAL);
	assert_contains(err.msg, "name part must not be empty");
	assert_int_equal(nf_label_key_validate("Example.com/b", "m", &err), -EINVAL);
	assert_contains(err.msg, "prefix");
	memset(name64, 'a', 64);
	name64[64] = '\0';
	assert_int_equal(nf_label_key_validate(name64, "m", &err), -EINVAL);
	assert_contains(err.msg, "63");
	memset(prefix254, 'a', 254);
	strcpy(prefix254 + 254, "/x");
	assert_int_equal(nf_label_key_validate(prefix254, "m", &err), -EINVAL);
	assert_contains(err.msg, "253");

	assert_int_equal(nf_label_value_validate("", "v", &err), 0);
	assert_int_equal(nf_label_value_validate("foo", "v", &err), 0);
	assert_int_equal(nf_label_value_validate("Foo_1.2-x", "v", &err), 0);
	assert_int_equal(nf_label_value_validate("a/b", "v", &err), -EINVAL);
	assert_contains(err.msg, "v: invalid label value \"a/b\"");
	assert_int_equal(nf_label_value_validate("-a", "v", &err), -EINVAL);
	assert_int_equal(nf_label_value_validate("a:b", "v", &err), -EINVAL);
	assert_int_equal(nf_label_value_validate(name64, "v", &err), -EINVAL);
	assert_contains(err.msg, "63");
}

/* ---- labels ---- */

static void test_labels_sorted(void **state)
{
	struct nf_labels l = { 0 }, c = { 0 };
	char *s;

	assert_int_equal(nf_labels_set(&l, "tier", "web"), 0);
	assert_int_equal(nf_labels_set(&l, "app", "foo"), 0);
	assert_int_equal(nf_labels_set(&l, "env", "prod"), 0);
	assert_int_equal(nf_labels_set(&l, "zz", ""), 0);
	assert_int_equal(nf_labels_set(&l, "app", "bar"), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[0].key, "app");
	assert_string_equal(l.v[1].key, "env");
	assert_string_equal(l.v[2].key, "tier");
	assert_string_equal(l.v[3].key, "zz");
	assert_string_equal(nf_labels_get(&l, "app"), "bar");
	assert_string_equal(nf_labels_get(&l, "zz"), "");
	assert_null(nf_labels_get(&l, "nope"));
	assert_null(nf_labels_get(NULL, "app"));

	s = nf_labels_format(&l);
	assert_string_equal(s, "app=bar,env=prod,tier=web,zz=");
	free(s);

	assert_int_equal(nf_labels_copy(&c, &l), 0);
	nf_labels_free(&l);
	assert_int_equal(c.n, 4);
	assert_string_equal(nf_labels_get(&c, "tier"), "web");
	nf_labels_free(&c);
	nf_labels_free(&c);
	nf_labels_free(NULL);

	s = nf_labels_format(&c);
	assert_string_equal(s, "");
	free(s);
}

static void test_labels_json(void **state)
{
	struct nf_error err = { 0 };
	struct nf_labels l;
	json_t *j, *back;

	j = J("{'b': '2', 'a': '1', 'kubernetes.io/metadata.name': 'kube-system'}");
	assert_int_equal(nf_labels_from_json(j, &l, "metadata.labels", &err), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].key, "a");
	assert_string_equal(l.v[2].key, "kubernetes.io/metadata.name");
	back = nf_labels_to_json(&l);
	assert_true(json_equal(back, j));
	json_decref(back);
	json_decref(j);
	nf_labels_free(&l);

	assert_int_equal(nf_labels_from_json(NULL, &l, "x", &err), 0);
	assert_int_equal(l.n, 0);

	j = J("{'app': 5}");
	assert_int_equal(nf_labels_from_json(j, &l, "metadata.labels", &err), -EINVAL);
	assert_contains(err.msg, "metadata.labels[\"app\"]: label value must be a string, got an integer");
	json_decref(j);

	j = J("{'app': 'ok', 'bad key': 'x'}");
	assert_int_equal(nf_labels_from_json(j, &l, "metadata.labels", &err), -EINVAL);
	assert_contains(err.msg, "metadata.labels: invalid label key \"bad key\"");
	json_decref(j);

	j = J("{'app': 'bad value'}");
	assert_int_equal(nf_labels_from_json(j, &l, "metadata.labels", &err), -EINVAL);
	assert_contains(err.msg, "metadata.labels[\"app\"]: invalid label value \"bad value\"");
	json_decref(j);

	j = J("['app']");
	assert_int_equal(nf_labels_from_json(j, &l, "metadata.labels", &err), -EINVAL);
	assert_contains(err.msg, "metadata.labels: expected an object, got an array");
	json_decref(j);
}

/* ---- selectors ---- */

static struct nf_selector sel(const char *text)
{
	struct nf_error err = { 0 };
	struct nf_selector s;
	json_t *j = J(text);

	if (nf_selector_from_json(j, &s, "sel", &err) != 0)
		fail_msg("%s: %s", text, err.msg);
	json_decref(j);
	return s;
}

static void sel_bad(const char *text, const char *want1, const char *want2)
{
	struct nf_error err = { 0 };
	struct nf_selector s;
	json_t *j = J(text);

	assert_int_equal(nf_selector_from_json(j, &s, "spec.podSelector", &err), -EINVAL);
	assert_int_equal(err.code, NF_ERR_POLICY);
	assert_contains(err.msg, want1);
	assert_contains(err.msg, want2);
	json_decref(j);
}

static struct nf_labels labels(const char *text)
{
	struct nf_labels l;
	json_t *j = J(text);

	assert_int_equal(nf_labels_from_json(j, &l, "labels", NULL), 0);
	json_decref(j);
	return l;
}

static void check_format(const char *selector, const char *want)
{
	struct nf_selector s = sel(selector);
	char *f = nf_selector_format(&s);

	assert_non_null(f);
	assert_string_equal(f, want);
	free(f);
	nf_selector_free(&s);
}

static void test_selector_parse_format(void **state)
{
	struct nf_selector s;

	check_format("{}", "");
	check_format("{'matchLabels': {}, 'matchExpressions': []}", "");
	check_format("{'matchLabels': null, 'matchExpressions': null}", "");
	check_format("{'matchLabels': {'app': 'foo'}}", "app=foo");
	check_format("{'matchLabels': {'tier': 'web', 'app': 'foo'}}", "app=foo,tier=web");
	check_format("{'matchExpressions': ["
		     "{'key': 'x', 'operator': 'DoesNotExist'},"
		     "{'key': 'k', 'operator': 'Exists'},"
		     "{'key': 'env', 'operator': 'NotIn', 'values': ['c']},"
		     "{'key': 'env', 'operator': 'In', 'values': ['b', 'a', 'b']}],"
		     "'matchLabels': {'app': 'foo'}}",
		     "app=foo,env in (a,b),env notin (c),k,!x");

	s = sel("{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['b', 'a', 'b']},"
		"{'key': 'a', 'operator': 'Exists', 'values': []}]}");
	assert_int_equal(s.nexprs, 2);
	assert_string_equal(s.exprs[0].key, "a");
	assert_int_equal(s.exprs[0].op, NF_SEL_EXISTS);
	assert_int_equal(s.exprs[1].nvalues, 2);
	assert_string_equal(s.exprs[1].values[0], "a");
	assert_string_equal(s.exprs[1].values[1], "b");
	assert_false(nf_selector_is_empty(&s));
	nf_selector_free(&s);
	nf_selector_free(&s);
	nf_selector_free(NULL);

	s = sel("{}");
	assert_true(nf_selector_is_empty(&s));
	nf_selector_free(&s);
	assert_int_equal(nf_selector_from_json(NULL, &s, "x", NULL), 0);
	assert_true(nf_selector_is_empty(&s));
}

static void test_selector_errors(void **state)
{
	sel_bad("{'matchLabel': {'app': 'foo'}}", "spec.podSelector: unknown field", "\"matchLabel\"");
	sel_bad("[]", "spec.podSelector: expected an object", "an array");
	sel_bad("{'matchLabels': {'app': 'foo bar'}}",
		"spec.podSelector.matchLabels[\"app\"]: invalid label value", "\"foo bar\"");
	sel_bad("{'matchLabels': {'-app': 'x'}}", "spec.podSelector.matchLabels: invalid label key",
		"\"-app\"");
	sel_bad("{'matchExpressions': {}}", "spec.podSelector.matchExpressions: expected an array",
		"an object");
	sel_bad("{'matchExpressions': [{'key': 'env', 'operator': 'in', 'values': ['a']}]}",
		"spec.podSelector.matchExpressions[0].operator: unsupported operator", "\"in\"");
	sel_bad("{'matchExpressions': [{'key': 'env', 'operator': 'Equals', 'values': ['a']}]}",
		"matchExpressions[0].operator", "\"Equals\"");
	sel_bad("{'matchExpressions': [{'key': 'k', 'operator': 'Exists'}, {'key': 'env', 'operator': 'In'}]}",
		"spec.podSelector.matchExpressions[1].values: must be specified", "\"In\"");
	sel_bad("{'matchExpressions': [{'key': 'env', 'operator': 'NotIn', 'values': []}]}",
		"matchExpressions[0].values: must be specified", "\"NotIn\"");
	sel_bad("{'matchExpressions': [{'key': 'env', 'operator': 'Exists', 'values': ['a']}]}",
		"matchExpressions[0].values: may not be specified", "\"Exists\"");
	sel_bad("{'matchExpressions': [{'key': 'env', 'operator': 'DoesNotExist', 'values': ['a']}]}",
		"matchExpressions[0].values: may not be specified", "\"DoesNotExist\"");
	sel_bad("{'matchExpressions': [{'operator': 'Exists'}]}",
		"matchExpressions[0].key: required value", "");
	sel_bad("{'matchExpressions': [{'key': 'a b', 'operator': 'Exists'}]}",
		"matchExpressions[0].key: invalid label key", "\"a b\"");
	sel_bad("{'matchExpressions': [{'key': 'a'}]}", "matchExpressions[0].operator: required value", "");
	sel_bad("{'matchExpressions': [{'key': 'a', 'operator': 'In', 'values': ['ok', 'not ok']}]}",
		"matchExpressions[0].values[1]: invalid label value", "\"not ok\"");
	sel_bad("{'matchExpressions': [{'key': 'a', 'operator': 'In', 'values': [1]}]}",
		"matchExpressions[0].values[0]: expected a string", "an integer");
	sel_bad("{'matchExpressions': [{'key': 'a', 'operator': 'Exists', 'value': 'x'}]}",
		"matchExpressions[0]: unknown field", "\"value\"");
	sel_bad("{'matchExpressions': ['a']}", "matchExpressions[0]: expected an object", "a string");
}

struct truth {
	const char *selector;
	const char *labels;
	bool want;
};

static void test_selector_matches(void **state)
{
	static const struct truth cases[] = {
		/* empty selector: everything */
		{ "{}", "{}", true },
		{ "{}", "{'app': 'foo'}", true },
		/* matchLabels: all must be equal */
		{ "{'matchLabels': {'app': 'foo'}}", "{'app': 'foo'}", true },
		{ "{'matchLabels': {'app': 'foo'}}", "{'app': 'foo', 'x': 'y'}", true },
		{ "{'matchLabels': {'app': 'foo'}}", "{'app': 'bar'}", false },
		{ "{'matchLabels': {'app': 'foo'}}", "{}", false },
		{ "{'matchLabels': {'app': 'foo', 'tier': 'web'}}", "{'app': 'foo'}", false },
		{ "{'matchLabels': {'app': ''}}", "{'app': ''}", true },
		{ "{'matchLabels': {'app': ''}}", "{}", false },
		/* In: key present and value in set */
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a', 'b']}]}", "{'env': 'a'}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a', 'b']}]}", "{'env': 'b'}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a', 'b']}]}", "{'env': 'c'}", false },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a', 'b']}]}", "{}", false },
		/* NotIn: key absent or value not in set */
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'NotIn', 'values': ['a']}]}", "{'env': 'a'}", false },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'NotIn', 'values': ['a']}]}", "{'env': 'b'}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'NotIn', 'values': ['a']}]}", "{}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'NotIn', 'values': ['a']}]}", "{'other': 'a'}", true },
		/* Exists / DoesNotExist */
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'Exists'}]}", "{'env': ''}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'Exists'}]}", "{}", false },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'DoesNotExist'}]}", "{}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'DoesNotExist'}]}", "{'env': 'x'}", false },
		/* everything is ANDed */
		{ "{'matchLabels': {'app': 'foo'}, 'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a']}]}",
		  "{'app': 'foo', 'env': 'a'}", true },
		{ "{'matchLabels': {'app': 'foo'}, 'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a']}]}",
		  "{'app': 'foo', 'env': 'b'}", false },
		{ "{'matchLabels': {'app': 'foo'}, 'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a']}]}",
		  "{'app': 'bar', 'env': 'a'}", false },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a', 'b']},"
		  "{'key': 'env', 'operator': 'NotIn', 'values': ['b']}]}", "{'env': 'a'}", true },
		{ "{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': ['a', 'b']},"
		  "{'key': 'env', 'operator': 'NotIn', 'values': ['b']}]}", "{'env': 'b'}", false },
		{ "{'matchExpressions': [{'key': 'kubernetes.io/metadata.name', 'operator': 'In', 'values': ['kube-system']}]}",
		  "{'kubernetes.io/metadata.name': 'kube-system'}", true },
	};

	for (size_t i = 0; i < NF_ARRAY_SIZE(cases); i++) {
		struct nf_selector s = sel(cases[i].selector);
		struct nf_labels l = labels(cases[i].labels);

		if (nf_selector_matches(&s, &l) != cases[i].want)
			fail_msg("case %zu: %s on %s: want %d", i, cases[i].selector, cases[i].labels,
				 cases[i].want);
		nf_selector_free(&s);
		nf_labels_free(&l);
	}

	/* In/NotIn without values: the parser refuses them, a model cache
	 * decoded from bytes need not (fuzz_cache found bsearch given NULL):
	 * In matches nothing, NotIn everything */
	{
		struct nf_sel_expr e = {.key = "env", .op = NF_SEL_IN};
		struct nf_selector s = {.nexprs = 1, .exprs = &e};
		struct nf_labels l = labels("{'env': 'a'}");

		assert_false(nf_selector_matches(&s, &l));
		e.op = NF_SEL_NOT_IN;
		assert_true(nf_selector_matches(&s, &l));
		nf_labels_free(&l);
	}
}

/* ---- NetworkPolicy ---- */

#define NP_HEAD "'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy', 'metadata': {'name': 'np'}"

static void policy_ok(const char *text, struct nf_policy *p)
{
	struct nf_error err = { 0 };
	json_t *j = J(text);

	if (nf_policy_from_json(j, "default", p, &err) != 0)
		fail_msg("%s: %s", text, err.msg);
	json_decref(j);
}

static void policy_bad(const char *text, const char *want1, const char *want2)
{
	struct nf_error err = { 0 };
	struct nf_policy p = { 0 };
	json_t *j = J(text);

	if (nf_policy_from_json(j, "default", &p, &err) != -EINVAL)
		fail_msg("accepted: %s", text);
	assert_int_equal(err.code, NF_ERR_POLICY);
	assert_contains(err.msg, want1);
	assert_contains(err.msg, want2);
	assert_null(p.obj);
	json_decref(j);
}

/* The seed's manifest (testdata/foo-deny-external-egress.yaml) as JSON. */
static void test_policy_seed(void **state)
{
	struct nf_policy p;
	struct nf_rule *r;
	char *f;

	policy_ok("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',"
		  " 'metadata': {'name': 'foo-deny-external-egress'},"
		  " 'spec': {'podSelector': {'matchLabels': {'app': 'foo'}},"
		  "  'policyTypes': ['Egress'],"
		  "  'egress': [{'to': [{'namespaceSelector': {'matchLabels': {'kubernetes.io/metadata.name': 'kube-system'}},"
		  "                      'podSelector': {'matchLabels': {'k8s-app': 'kube-dns'}}}],"
		  "              'ports': [{'port': 53, 'protocol': 'UDP'}, {'port': 53, 'protocol': 'TCP'}]}]}}",
		  &p);
	assert_string_equal(p.name, "foo-deny-external-egress");
	assert_string_equal(p.ns, "default");
	assert_true(p.egress);
	assert_false(p.ingress);
	f = nf_selector_format(&p.pod_sel);
	assert_string_equal(f, "app=foo");
	free(f);
	assert_int_equal(p.negress, 1);
	r = &p.egress_rules[0];
	assert_true(r->has_to);
	assert_int_equal(r->npeers, 1);
	assert_int_equal(r->peers[0].kind, NF_PEER_SELECTOR);
	assert_true(r->peers[0].has_pod_sel);
	assert_true(r->peers[0].has_ns_sel);
	f = nf_selector_format(&r->peers[0].ns_sel);
	assert_string_equal(f, "kubernetes.io/metadata.name=kube-system");
	free(f);
	f = nf_selector_format(&r->peers[0].pod_sel);
	assert_string_equal(f, "k8s-app=kube-dns");
	free(f);
	assert_true(r->has_ports);
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[0].proto, NF_PROTO_UDP);
	assert_true(r->ports[0].has_port);
	assert_int_equal(r->ports[0].port, 53);
	assert_int_equal(r->ports[0].end_port, 0);
	assert_null(r->ports[0].name);
	assert_int_equal(r->ports[1].proto, NF_PROTO_TCP);
	assert_int_equal(r->ports[1].port, 53);
	/* the stored object gained metadata.namespace */
	assert_string_equal(json_string_value(json_object_get(json_object_get(p.obj, "metadata"),
							      "namespace")), "default");
	nf_policy_free(&p);
	nf_policy_free(&p);
	nf_policy_free(NULL);
}

static void test_policy_namespace(void **state)
{
	struct nf_error err = { 0 };
	struct nf_policy p;
	json_t *j;

	j = J("{" NP_HEAD "}");
	assert_int_equal(nf_policy_from_json(j, "team-a", &p, &err), 0);
	assert_string_equal(p.ns, "team-a");
	assert_string_equal(json_string_value(json_object_get(json_object_get(p.obj, "metadata"),
							      "namespace")), "team-a");
	/* the input is not modified */
	assert_null(json_object_get(json_object_get(j, "metadata"), "namespace"));
	nf_policy_free(&p);
	assert_int_equal(nf_policy_from_json(j, NULL, &p, &err), 0);
	assert_string_equal(p.ns, "default");
	nf_policy_free(&p);
	assert_int_equal(nf_policy_from_json(j, "Bad_NS", &p, &err), -EINVAL);
	assert_contains(err.msg, "metadata.namespace: invalid value \"Bad_NS\"");
	json_decref(j);

	j = J("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',"
	      " 'metadata': {'name': 'np', 'namespace': 'prod'}}");
	assert_int_equal(nf_policy_from_json(j, "team-a", &p, &err), 0);
	assert_string_equal(p.ns, "prod");
	nf_policy_free(&p);
	json_decref(j);
}

static void test_policy_types(void **state)
{
	struct nf_policy p;

	/* omitted: Ingress, plus Egress when there are egress rules */
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}}}", &p);
	assert_true(p.ingress);
	assert_false(p.egress);
	nf_policy_free(&p);
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}, 'egress': [{}]}}", &p);
	assert_true(p.ingress);
	assert_true(p.egress);
	assert_int_equal(p.negress, 1);
	assert_false(p.egress_rules[0].has_to);
	assert_false(p.egress_rules[0].has_ports);
	nf_policy_free(&p);
	/* as the API server: an empty egress list does not imply Egress */
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}, 'egress': []}}", &p);
	assert_true(p.ingress);
	assert_false(p.egress);
	nf_policy_free(&p);
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}, 'policyTypes': [], 'egress': [{}]}}", &p);
	assert_true(p.ingress);
	assert_true(p.egress);
	nf_policy_free(&p);
	/* explicit */
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}, 'policyTypes': ['Egress']}}", &p);
	assert_false(p.ingress);
	assert_true(p.egress);
	assert_int_equal(p.negress, 0); /* deny all egress */
	nf_policy_free(&p);
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}, 'policyTypes': ['Egress'], 'egress': []}}", &p);
	assert_true(p.egress);
	assert_int_equal(p.negress, 0);
	nf_policy_free(&p);
	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {}, 'policyTypes': ['Ingress']}}", &p);
	assert_true(p.ingress);
	assert_false(p.egress);
	nf_policy_free(&p);
	policy_ok("{" NP_HEAD ", 'spec': {'policyTypes': ['Ingress', 'Egress'], 'egress': [{}]}}", &p);
	assert_true(p.ingress);
	assert_true(p.egress);
	assert_true(nf_selector_is_empty(&p.pod_sel)); /* absent podSelector = {} */
	nf_policy_free(&p);
	policy_ok("{" NP_HEAD "}", &p);
	assert_true(p.ingress);
	assert_false(p.egress);
	nf_policy_free(&p);

	policy_bad("{" NP_HEAD ", 'spec': {'policyTypes': ['egress']}}", "spec.policyTypes[0]: unsupported value",
		   "\"egress\"");
	policy_bad("{" NP_HEAD ", 'spec': {'policyTypes': ['Egress', 'Foo']}}", "spec.policyTypes[1]", "\"Foo\"");
	policy_bad("{" NP_HEAD ", 'spec': {'policyTypes': 'Egress'}}", "spec.policyTypes: expected an array",
		   "a string");
	policy_bad("{" NP_HEAD ", 'spec': {'policyTypes': ['Egress', 'Ingress', 'Egress']}}",
		   "spec.policyTypes: may not specify more than two", "3");
}

static void test_policy_rules(void **state)
{
	struct nf_policy p;
	struct nf_rule *r;
	char *f;

	policy_ok("{" NP_HEAD ", 'spec': {'podSelector': {'matchLabels': {'app': 'foo'}},"
		  " 'policyTypes': ['Egress'], 'egress': ["
		  "  {'ports': [{'port': 53, 'protocol': 'UDP'}, {'port': 53, 'protocol': 'TCP'}]},"
		  "  {'to': [{'namespaceSelector': {}}]},"
		  "  {'to': [], 'ports': []},"
		  "  {'to': [{'podSelector': {'matchLabels': {'app': 'web'}}}],"
		  "   'ports': [{'protocol': 'SCTP'}, {'port': 'http'}, {'port': 8000, 'endPort': 8080},"
		  "             {'port': 9000, 'endPort': 9000}, {'protocol': null, 'port': 1}]},"
		  "  {'to': [{'ipBlock': {'cidr': '10.0.0.0/8', 'except': ['10.0.1.0/24', '10.2.0.0/16']}},"
		  "          {'ipBlock': {'cidr': 'fd00::/48', 'except': ['fd00:0:0:1::/64']}},"
		  "          {'ipBlock': {'cidr': '203.0.113.10/32', 'except': null}}]}]}}",
		  &p);
	assert_int_equal(p.negress, 5);

	r = &p.egress_rules[0];
	assert_false(r->has_to);
	assert_int_equal(r->npeers, 0);
	assert_true(r->has_ports);
	assert_int_equal(r->nports, 2);

	r = &p.egress_rules[1];
	assert_true(r->has_to);
	assert_false(r->has_ports);
	assert_int_equal(r->peers[0].kind, NF_PEER_SELECTOR);
	assert_false(r->peers[0].has_pod_sel);
	assert_true(r->peers[0].has_ns_sel);
	assert_true(nf_selector_is_empty(&r->peers[0].ns_sel));

	r = &p.egress_rules[2];
	assert_false(r->has_to);
	assert_false(r->has_ports);

	r = &p.egress_rules[3];
	assert_true(r->peers[0].has_pod_sel);
	assert_false(r->peers[0].has_ns_sel);
	f = nf_selector_format(&r->peers[0].pod_sel);
	assert_string_equal(f, "app=web");
	free(f);
	assert_int_equal(r->nports, 5);
	assert_int_equal(r->ports[0].proto, NF_PROTO_SCTP);
	assert_false(r->ports[0].has_port);
	assert_int_equal(r->ports[1].proto, NF_PROTO_TCP);
	assert_true(r->ports[1].has_port);
	assert_string_equal(r->ports[1].name, "http");
	assert_int_equal(r->ports[2].port, 8000);
	assert_int_equal(r->ports[2].end_port, 8080);
	assert_int_equal(r->ports[3].port, 9000);
	assert_int_equal(r->ports[3].end_port, 9000);
	assert_int_equal(r->ports[4].proto, NF_PROTO_TCP);
	assert_int_equal(r->ports[4].port, 1);

	r = &p.egress_rules[4];
	assert_int_equal(r->npeers, 3);
	assert_int_equal(r->peers[0].kind, NF_PEER_IPBLOCK);
	assert_false(r->peers[0].has_pod_sel);
	assert_false(r->peers[0].has_ns_sel);
	assert_int_equal(r->peers[0].ipblock.cidr.family, AF_INET);
	assert_int_equal(r->peers[0].ipblock.cidr.prefix, 8);
	assert_int_equal(r->peers[0].ipblock.nexcept, 2);
	assert_int_equal(r->peers[0].ipblock.except[0].prefix, 24);
	assert_int_equal(r->peers[1].ipblock.cidr.family, AF_INET6);
	assert_int_equal(r->peers[1].ipblock.nexcept, 1);
	assert_int_equal(r->peers[2].ipblock.nexcept, 0);
	assert_int_equal(r->peers[2].ipblock.cidr.prefix, 32);
	nf_policy_free(&p);
}

static void test_policy_errors(void **state)
{
	/* envelope */
	policy_bad("[]", "NetworkPolicy: expected an object", "an array");
	policy_bad("{'kind': 'NetworkPolicy', 'metadata': {'name': 'np'}}", "apiVersion: required value", "");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1beta1', 'kind': 'NetworkPolicy', 'metadata': {'name': 'np'}}",
		   "apiVersion: unsupported value", "\"networking.k8s.io/v1beta1\"");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'Networkpolicy', 'metadata': {'name': 'np'}}",
		   "kind: unsupported value", "\"Networkpolicy\"");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy'}", "metadata: required value", "");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy', 'metadata': {}}",
		   "metadata.name: required value", "");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy', 'metadata': {'name': 7}}",
		   "metadata.name: expected a string", "an integer");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy', 'metadata': {'name': 'Foo_Bar'}}",
		   "metadata.name: invalid value", "\"Foo_Bar\"");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',"
		   " 'metadata': {'name': 'np', 'namespace': 'a.b'}}",
		   "metadata.namespace: invalid value", "\"a.b\"");
	policy_bad("{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',"
		   " 'metadata': {'name': 'np', 'labels': {'x': 'a b'}}}",
		   "metadata.labels[\"x\"]: invalid label value", "\"a b\"");
	policy_bad("{" NP_HEAD ", 'spec': []}", "spec: expected an object", "an array");
	policy_bad("{" NP_HEAD ", 'spec': {'podSelector': {'matchLabels': {'app': 'foo'}, 'foo': 1}}}",
		   "spec.podSelector: unknown field", "\"foo\"");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': {}}}", "spec.egress: expected an array", "an object");
	policy_bad("{" NP_HEAD ", 'spec': {'ingress': 'all'}}", "spec.ingress: expected an array", "a string");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': ['x']}}", "spec.egress[0]: expected an object", "a string");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{}, {'to': {}}]}}", "spec.egress[1].to: expected an array", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': 53}]}}", "spec.egress[0].ports: expected an array",
		   "an integer");

	/* peers */
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'podSelector': {}}, {}]}]}}",
		   "spec.egress[0].to[1]: must specify a peer", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/8'}, 'podSelector': {}}]}]}}",
		   "spec.egress[0].to[0]: may not specify more than 1 peer", "podSelector");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/8'}, 'namespaceSelector': {}}]}]}}",
		   "spec.egress[0].to[0]: may not specify more than 1 peer", "namespaceSelector");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'namespaceSelector': {'matchLabels': {'a': 'b'}},"
		   " 'podSelector': {'matchExpressions': [{'key': 'k', 'operator': 'Exists', 'values': ['v']}]}}]}]}}",
		   "spec.egress[0].to[0].podSelector.matchExpressions[0].values: may not be specified", "\"Exists\"");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'namespaceSelector': {'matchLabel': {}}}]}]}}",
		   "spec.egress[0].to[0].namespaceSelector: unknown field", "\"matchLabel\"");

	/* ipBlock */
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/8'}}, {'ipBlock': {'cidr': '10.0.0.0/33'}}]}]}}",
		   "spec.egress[0].to[1].ipBlock.cidr: invalid CIDR", "\"10.0.0.0/33\"");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.1/8'}}]}]}}",
		   "spec.egress[0].to[0].ipBlock.cidr: invalid CIDR \"10.0.0.1/8\"", "host bits");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {}}]}]}}",
		   "spec.egress[0].to[0].ipBlock.cidr: required value", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': '10.0.0.0/8'}]}]}}",
		   "spec.egress[0].to[0].ipBlock: expected an object", "a string");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.9.0.0/24']}}]}]}}",
		   "spec.egress[0].to[0].ipBlock.except[0]: invalid value \"10.9.0.0/24\"",
		   "must be a strict subset of cidr \"10.0.0.0/16\"");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.0.0/16']}}]}]}}",
		   "ipBlock.except[0]: invalid value \"10.0.0.0/16\"", "strict subset");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.0.0/8']}}]}]}}",
		   "ipBlock.except[0]: invalid value \"10.0.0.0/8\"", "strict subset");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.1.0/24', 'fd00::/64']}}]}]}}",
		   "ipBlock.except[1]: invalid value \"fd00::/64\"", "strict subset");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.1.1/24']}}]}]}}",
		   "ipBlock.except[0]: invalid CIDR \"10.0.1.1/24\"", "host bits");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': '10.0.1.0/24'}}]}]}}",
		   "ipBlock.except: expected an array", "a string");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'to': [{'ipBlock': {'cidr': '10.0.0.0/16', 'except': [5]}}]}]}}",
		   "ipBlock.except[0]: expected a string", "an integer");

	/* ports */
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 53, 'protocol': 'ICMP'}]}]}}",
		   "spec.egress[0].ports[0].protocol: unsupported value", "\"ICMP\"");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 53, 'protocol': 'udp'}]}]}}",
		   "spec.egress[0].ports[0].protocol: unsupported value", "\"udp\"");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 53}, {'port': 0}]}]}}",
		   "spec.egress[0].ports[1].port: invalid value 0", "between 1 and 65535");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 65536}]}]}}",
		   "spec.egress[0].ports[0].port: invalid value 65536", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': -1}]}]}}",
		   "spec.egress[0].ports[0].port: invalid value -1", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': '53'}]}]}}",
		   "spec.egress[0].ports[0].port: invalid port name \"53\"", "at least one letter");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 'HTTP'}]}]}}",
		   "ports[0].port: invalid port name \"HTTP\"", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 'a--b'}]}]}}",
		   "ports[0].port: invalid port name \"a--b\"", "consecutive");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': '-http'}]}]}}",
		   "ports[0].port: invalid port name \"-http\"", "hyphen");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 'a-very-long-port-name'}]}]}}",
		   "ports[0].port: invalid port name \"a-very-long-port-name\"", "15");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': ''}]}]}}",
		   "ports[0].port: invalid port name \"\"", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 53.5}]}]}}",
		   "ports[0].port: expected an integer", "a number");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': true}]}]}}",
		   "ports[0].port: expected an integer", "a boolean");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 80, 'endPort': 79}]}]}}",
		   "spec.egress[0].ports[0].endPort: invalid value 79", "greater than or equal to port 80");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'endPort': 80}]}]}}",
		   "spec.egress[0].ports[0].endPort: invalid value 80", "when port is not specified");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 'http', 'endPort': 80}]}]}}",
		   "spec.egress[0].ports[0].endPort: invalid value 80", "non-numeric (\"http\")");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 80, 'endPort': 70000}]}]}}",
		   "spec.egress[0].ports[0].endPort: invalid value 70000", "");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'port': 80, 'endPort': '90'}]}]}}",
		   "spec.egress[0].ports[0].endPort: expected an integer", "a string");
	policy_bad("{" NP_HEAD ", 'spec': {'egress': [{'ports': [{'protocol': 6}]}]}}",
		   "spec.egress[0].ports[0].protocol: expected a string", "an integer");
}

static void test_policy_unknown_fields_ignored(void **state)
{
	struct nf_policy p;

	policy_ok("{" NP_HEAD ", 'status': {}, 'spec': {'podSelector': {}, 'x-extra': 1,"
		  " 'ingress': [{'from': [{'podSelector': {}}]}],"
		  " 'egress': [{'extra': true, 'to': [{'ipBlock': {'cidr': '10.0.0.0/8', 'note': 'x'}}]}]}}",
		  &p);
	assert_true(p.ingress);
	assert_true(p.egress);
	assert_int_equal(p.negress, 1);
	nf_policy_free(&p);
}

/* ---- Namespace ---- */

static void test_namespace(void **state)
{
	struct nf_error err = { 0 };
	struct nf_namespace n;
	json_t *j;
	char *f;

	j = J("{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'kube-system'}}");
	assert_int_equal(nf_namespace_from_json(j, &n, &err), 0);
	assert_string_equal(n.name, "kube-system");
	assert_int_equal(n.labels.n, 1);
	assert_string_equal(nf_labels_get(&n.labels, "kubernetes.io/metadata.name"), "kube-system");
	/* stored as the API serves it: with the name label */
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(n.obj, "metadata"), "labels"),
							       "kubernetes.io/metadata.name")),
			    "kube-system");
	assert_true(n.obj != j);
	nf_namespace_free(&n);
	nf_namespace_free(&n);
	nf_namespace_free(NULL);
	json_decref(j);

	/* the name label always wins over the user's */
	j = J("{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'prod',"
	      " 'labels': {'team': 'a', 'kubernetes.io/metadata.name': 'other'}}}");
	assert_int_equal(nf_namespace_from_json(j, &n, &err), 0);
	f = nf_labels_format(&n.labels);
	assert_string_equal(f, "kubernetes.io/metadata.name=prod,team=a");
	free(f);
	nf_namespace_free(&n);
	json_decref(j);

	static const struct {
		const char *text, *want1, *want2;
	} bad[] = {
		{ "{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'a.b'}}",
		  "metadata.name: invalid value", "\"a.b\"" },
		{ "{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {}}", "metadata.name: required value", "" },
		{ "{'apiVersion': 'v1', 'kind': 'Namespace'}", "metadata: required value", "" },
		{ "{'apiVersion': 'v2', 'kind': 'Namespace', 'metadata': {'name': 'a'}}",
		  "apiVersion: unsupported value", "\"v2\"" },
		{ "{'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'a'}}", "kind: unsupported value", "\"Pod\"" },
		{ "{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'a', 'labels': {'k': 'a b'}}}",
		  "metadata.labels[\"k\"]: invalid label value", "\"a b\"" },
		{ "{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'a', 'labels': []}}",
		  "metadata.labels: expected an object", "an array" },
		{ "'ns'", "Namespace: expected an object", "a string" },
	};
	for (size_t i = 0; i < NF_ARRAY_SIZE(bad); i++) {
		j = J(bad[i].text);
		assert_int_equal(nf_namespace_from_json(j, &n, &err), -EINVAL);
		assert_int_equal(err.code, NF_ERR_POLICY);
		assert_contains(err.msg, bad[i].want1);
		assert_contains(err.msg, bad[i].want2);
		json_decref(j);
	}
}

/* ---- pods ---- */

static void test_pod_roundtrip(void **state)
{
	struct nf_error err = { 0 };
	struct nf_pod p, q;
	json_t *j, *back, *again;

	j = J("{'containerID': 'c0ffee', 'ifname': 'eth0', 'namespace': 'default', 'name': 'foo',"
	      " 'labels': {'app': 'foo', 'tier': 'web'}, 'hostVeth': 'veth1234',"
	      " 'ips': ['10.1.0.5/24', 'fd00::5/64']}");
	assert_int_equal(nf_pod_from_json(j, &p, &err), 0);
	assert_string_equal(p.container_id, "c0ffee");
	assert_string_equal(p.ifname, "eth0");
	assert_string_equal(p.ns, "default");
	assert_string_equal(p.name, "foo");
	assert_string_equal(p.host_veth, "veth1234");
	assert_string_equal(nf_labels_get(&p.labels, "tier"), "web");
	assert_int_equal(p.naddrs, 2);
	assert_int_equal(p.addrs[0].family, AF_INET);
	assert_int_equal(p.addrs[0].prefix, 24);
	assert_int_equal(p.addrs[0].addr[3], 5); /* host bits kept */
	assert_int_equal(p.addrs[1].family, AF_INET6);
	back = nf_pod_to_json(&p);
	assert_non_null(back);
	assert_true(json_equal(back, j));
	assert_int_equal(nf_pod_from_json(back, &q, &err), 0);
	again = nf_pod_to_json(&q);
	assert_true(json_equal(again, j));
	json_decref(again);
	json_decref(back);
	nf_pod_free(&q);
	nf_pod_free(&p);
	nf_pod_free(&p);
	nf_pod_free(NULL);
	json_decref(j);

	/* minimal record: namespace defaults, optional fields absent */
	j = J("{'containerID': 'c1', 'ifname': 'eth0'}");
	assert_int_equal(nf_pod_from_json(j, &p, &err), 0);
	assert_string_equal(p.ns, "default");
	assert_null(p.name);
	assert_null(p.host_veth);
	assert_int_equal(p.naddrs, 0);
	assert_int_equal(p.labels.n, 0);
	back = nf_pod_to_json(&p);
	assert_int_equal(nf_pod_from_json(back, &q, &err), 0);
	assert_string_equal(q.ns, "default");
	assert_null(q.name);
	nf_pod_free(&q);
	json_decref(back);
	nf_pod_free(&p);
	json_decref(j);

	/* an idle kind: a namespace and labels, nothing else */
	j = J("{'idle': true, 'namespace': 'web', 'labels': {'app': 'w'}}");
	assert_int_equal(nf_pod_from_json(j, &p, &err), 0);
	assert_true(p.idle);
	assert_null(p.container_id);
	assert_null(p.ifname);
	assert_string_equal(p.ns, "web");
	back = nf_pod_to_json(&p);
	again = J("{'idle': true, 'namespace': 'web', 'labels': {'app': 'w'}, 'ips': []}");
	assert_true(json_equal(back, again));
	json_decref(again);
	json_decref(back);
	nf_pod_free(&p);
	json_decref(j);
	j = J("{'idle': false, 'containerID': 'c1', 'ifname': 'eth0'}");
	assert_int_equal(nf_pod_from_json(j, &p, &err), 0);
	assert_false(p.idle);
	back = nf_pod_to_json(&p);
	assert_null(json_object_get(back, "idle"));
	json_decref(back);
	nf_pod_free(&p);
	json_decref(j);

	/* a bare address is a /32 */
	j = J("{'containerID': 'c1', 'ifname': 'eth0', 'ips': ['10.1.0.7']}");
	assert_int_equal(nf_pod_from_json(j, &p, &err), 0);
	assert_int_equal(p.addrs[0].prefix, 32);
	nf_pod_free(&p);
	json_decref(j);
}

static void test_pod_errors(void **state)
{
	static const struct {
		const char *text, *want1, *want2;
	} bad[] = {
		{ "[]", "pod: expected an object", "an array" },
		{ "{'ifname': 'eth0'}", "containerID: required value", "" },
		{ "{'containerID': 5, 'ifname': 'eth0'}", "containerID: expected a string", "an integer" },
		{ "{'containerID': 'c', 'ifname': ['eth0']}", "ifname: expected a string", "an array" },
		{ "{'containerID': 'c'}", "ifname: required value", "" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'namespace': 'Bad'}", "namespace: invalid value", "\"Bad\"" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'name': 'x_y'}", "name: invalid value", "\"x_y\"" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'hostVeth': 1}", "hostVeth: expected a string", "" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'labels': {'a': 1}}", "labels[\"a\"]: label value must be a string", "" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'labels': 'app=foo'}", "labels: expected an object", "a string" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'ips': '10.0.0.1/24'}", "ips: expected an array", "a string" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'ips': ['10.0.0.1/24', 'nope']}", "ips[1]: invalid CIDR", "\"nope\"" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'ips': [4]}", "ips[0]: expected a string", "an integer" },
		{ "{'containerID': 'c', 'ifname': 'eth0', 'idle': 'yes'}", "idle: expected a boolean", "a string" },
		{ "{'idle': true, 'ips': ['10.0.0.1/24']}", "idle: an idle kind has no ips", "got 1" },
		{ "{'idle': true, 'hostVeth': 'veth1'}", "idle: an idle kind has no hostVeth", "\"veth1\"" },
		{ "{'idle': true, 'containerID': 'c'}", "idle: an idle kind has no containerID", "\"c\"" },
		{ "{'idle': true, 'ifname': 'eth0'}", "idle: an idle kind has no ifname", "\"eth0\"" },
		{ "{'idle': true, 'labels': {'a': 1}}", "labels[\"a\"]: label value must be a string", "" },
	};

	for (size_t i = 0; i < NF_ARRAY_SIZE(bad); i++) {
		struct nf_error err = { 0 };
		struct nf_pod p;
		json_t *j = J(bad[i].text);

		if (nf_pod_from_json(j, &p, &err) != -EINVAL)
			fail_msg("accepted: %s", bad[i].text);
		assert_int_equal(err.code, CNI_ERR_INVALID_CONFIG);
		assert_contains(err.msg, bad[i].want1);
		assert_contains(err.msg, bad[i].want2);
		json_decref(j);
	}
}

/* ---- state ---- */

static void test_state_namespace_labels(void **state)
{
	struct nf_state s = { 0 };
	struct nf_labels l;
	json_t *j;

	s.namespaces = calloc(1, sizeof(*s.namespaces));
	assert_non_null(s.namespaces);
	j = J("{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'prod', 'labels': {'team': 'a'}}}");
	assert_int_equal(nf_namespace_from_json(j, &s.namespaces[0], NULL), 0);
	s.nnamespaces = 1;
	json_decref(j);

	assert_int_equal(nf_state_namespace_labels(&s, "prod", &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(nf_labels_get(&l, "team"), "a");
	assert_string_equal(nf_labels_get(&l, "kubernetes.io/metadata.name"), "prod");
	nf_labels_free(&l);

	assert_int_equal(nf_state_namespace_labels(&s, "kube-system", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(nf_labels_get(&l, "kubernetes.io/metadata.name"), "kube-system");
	nf_labels_free(&l);

	nf_state_free(&s);
	nf_state_free(&s);
	nf_state_free(NULL);

	assert_int_equal(nf_state_namespace_labels(&s, "default", &l), 0);
	assert_int_equal(l.n, 1);
	nf_labels_free(&l);
}

/* A new temp dir from dir (a mkdtemp template), the state file's path in
 * it (path, plen bytes) and, unless cpath is NULL, its model cache's */
static void state_in_tmp(char *dir, char *path, size_t plen, char *cpath, size_t clen)
{
	assert_non_null(test_mkdtemp(dir));
	snprintf(path, plen, "%s/state.json", dir);
	if (cpath)
		snprintf(cpath, clen, "%s.model", path);
}

/* rmdir, after the "<state>.prev", "<state>.synced" and "<state>.old.N"
 * files the saves leave (state.h) */
static int rmdir_state(const char *dir)
{
	static const char *const kept[] = {"prev", "synced", "old.[0-9]"};
	char pattern[256];
	glob_t g;

	for (size_t k = 0; k < 3; k++) {
		snprintf(pattern, sizeof(pattern), "%s/*.%s", dir, kept[k]);
		if (glob(pattern, 0, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
	}
	return rmdir(dir);
}

/* s gets the pod of the JSON record doc (J's quoting) */
static void put_pod_json(struct nf_state *s, const char *doc)
{
	struct nf_error err = { 0 };
	struct nf_pod pod;
	json_t *j = J(doc);

	assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
	json_decref(j);
	assert_int_equal(nf_state_put_pod(s, &pod), NF_PUT_CREATED);
}

/* nf_state_save_pods replaces just the "pods" value of the loaded text:
 * found at the top level, whatever the layout, key order and strings that
 * look like it; the result reads back as the whole state would. */
static void test_state_save_pods(void **state)
{
	static const char text[] =
		"{ \"apiVersion\": \"netfence.dev/v1\",\n"
		"  \"kind\" : \"NetfenceNodeState\",\n"
		"  \"networkPolicies\": [ {\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\","
		" \"metadata\": {\"name\": \"p\", \"namespace\": \"default\", \"annotations\": {\"pods\": \"]}\\\\\\\"\", \"x\": \"pods\", \"y\": \"[{\\\"pods\\\": [\"}},"
		" \"spec\": {\"podSelector\": {}, \"policyTypes\": [\"Egress\"]}} ],\n"
		"  \"pods\" :\n [ {\"containerID\": \"c1\", \"ifname\": \"eth0\", \"namespace\": \"default\", \"name\": \"a\","
		" \"labels\": {\"k\": \"v\"}, \"hostVeth\": \"veth1\", \"ips\": [\"10.0.0.1/24\"]} ] ,\n"
		"  \"registeredPods\": [], \"namespaces\": [] }\n\n";
	char dir[] = "/tmp/nf-test-state-XXXXXX", path[64], raw[4096];
	struct nf_error err = { 0 };
	struct nf_state s = { 0 }, back = { 0 }, empty = { 0 };
	struct nf_pod pod;
	json_t *j, *want, *got;
	FILE *f;
	size_t n;

	state_in_tmp(dir, path, sizeof(path), NULL, 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
	if (nf_state_load(path, &s, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(s.npods, 1);
	assert_int_equal(s.npolicies, 1);
	assert_true(s.pods_end > s.pods_at);
	assert_int_equal(s.raw[s.pods_at], '[');
	assert_int_equal(s.raw[s.pods_end - 1], ']');

	/* one pod in, the loaded one out */
	j = J("{'containerID': 'c2', 'ifname': 'eth0', 'namespace': 'default', 'name': 'b',"
	      " 'labels': {'app': 'b'}, 'hostVeth': 'veth2', 'ips': ['10.0.0.2/24', 'fd00::2/64']}");
	assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
	json_decref(j);
	assert_int_equal(nf_state_put_pod(&s, &pod), NF_PUT_CREATED);
	assert_true(nf_state_remove_pod(&s, "c1", "eth0"));
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);

	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(raw, 1, sizeof(raw) - 1, f);
	fclose(f);
	raw[n] = '\0';
	assert_true(n > 0 && raw[n - 1] == '\n' && raw[n - 2] == '}'); /* one newline at the end */
	assert_non_null(strstr(raw, "\"]}\\\\\\\"\"")); /* the rest is the loaded text, byte for byte */
	assert_int_equal(nf_state_load(path, &back, &err), 0);
	want = nf_state_to_json(&s);
	got = nf_state_to_json(&back);
	assert_true(json_equal(want, got));
	assert_int_equal(back.npods, 1);
	assert_string_equal(back.pods[0].name, "b");
	json_decref(want);
	json_decref(got);
	nf_state_free(&back);

	/* a state that was never loaded from a file is saved whole */
	snprintf(path, sizeof(path), "%s/new.json", dir);
	assert_int_equal(nf_state_save_pods(path, &empty, &err), 0);
	assert_int_equal(nf_state_load(path, &back, &err), 0);
	assert_int_equal(back.npods, 0);
	assert_true(back.pods_end > back.pods_at);
	nf_state_free(&back);

	nf_state_free(&s);
	unlink(path);
	snprintf(path, sizeof(path), "%s/new.json.model", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.json.model", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.json", dir);
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static size_t read_text(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

/* "<state>.old.<i>" in buf */
static const char *old_name(const char *path, int i, char *buf, size_t size)
{
	snprintf(buf, size, "%s.old.%d", path, i);
	return buf;
}

/* How many of "<state>.old.N" exist. */
static int parked_files(const char *path)
{
	char name[128];
	int n = 0;

	for (int i = 0; i < NF_STATE_OLD_SLOTS; i++)
		n += access(old_name(path, i, name, sizeof(name)), F_OK) == 0;
	return n;
}

/* Files in dir other than the state file, the one it replaced, the ones
 * parked before (parked_files) and its model cache. */
static int stray_files(const char *dir)
{
	char cmd[128], line[256];
	int n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls -A %s", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		if (strcmp(line, "state.json\n") && strcmp(line, "state.json.model\n") &&
		    strcmp(line, "state.json.prev\n") && strcmp(line, "state.json.synced\n") &&
		    !(strncmp(line, "state.json.old.", 15) == 0 && line[15] >= '0' &&
		      line[15] < '0' + NF_STATE_OLD_SLOTS && strcmp(line + 16, "\n") == 0))
			n++;
	pclose(p);
	return n;
}

/* The loaded text is mapped (state.c read_state): a file of whole pages,
 * or one byte short or over, loads, reads as a NUL-terminated string, and
 * saves back (its pieces written from the mapping). */
static void test_state_mapped(void **state)
{
	static const char head[] = "{\"apiVersion\": \"netfence.dev/v1\", \"kind\": \"NetfenceNodeState\","
				   " \"pods\": [], \"namespaces\": []}";
	const size_t sizes[] = { 4096, 4095, 4097, 8192 };
	char dir[] = "/tmp/nf-test-mapped-XXXXXX", path[64];
	(void)state;

	state_in_tmp(dir, path, sizeof(path), NULL, 0);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct nf_error err = { 0 };
		struct nf_state s = { 0 }, back = { 0 };
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs(head, f);
		for (size_t i = strlen(head); i < sizes[k]; i++) /* white space up to the size */
			fputc(i + 1 == sizes[k] ? '\n' : ' ', f);
		fclose(f);
		chmod(path, 0600);
		for (int fast = 0; fast < 2; fast++) {
			if ((fast ? nf_state_load_fast(path, &s, &err) : nf_state_load(path, &s, &err)) < 0)
				fail_msg("%zu bytes: %s", sizes[k], err.msg);
			assert_int_equal(s.raw_len, sizes[k]);
			assert_int_equal(strlen(s.raw), sizes[k]);
			if (!fast)
				nf_state_free(&s);
		}
		put_pod_json(&s, "{'containerID': 'c1', 'ifname': 'eth0', 'namespace': 'default', 'name': 'a',"
				 " 'hostVeth': 'veth1', 'ips': ['10.0.0.1/24']}");
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		nf_state_free(&s);
		assert_int_equal(nf_state_load(path, &back, &err), 0);
		assert_int_equal(back.npods, 1);
		assert_string_equal(back.pods[0].name, "a");
		nf_state_free(&back);
		/* from the cache (mapped): another pod in, a out, saved; the new
		 * cache, written in place, puts b's record where a's was */
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_non_null(s.frozen_map);
		put_pod_json(&s, "{'containerID': 'c2', 'ifname': 'eth0', 'namespace': 'other', 'name': 'bbbbbbbbbbbb',"
				 " 'hostVeth': 'veth2', 'ips': ['10.0.0.2/24']}");
		assert_true(nf_state_remove_pod(&s, "c1", "eth0"));
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		assert_int_equal(s.npods, 1);
		assert_string_equal(s.pods[0].name, "bbbbbbbbbbbb");
		nf_state_free(&s);
		assert_int_equal(nf_state_load_fast(path, &back, &err), 0);
		assert_non_null(back.frozen); /* the cache of the new text */
		assert_int_equal(back.npods, 1);
		assert_string_equal(back.pods[0].name, "bbbbbbbbbbbb");
		assert_string_equal(back.pods[0].ns, "other");
		/* a third pod, saved; then, both decoded from the cache, the
		 * first goes: the second's record, which s still uses, is
		 * overwritten in the file (and cut off it) by the save */
		put_pod_json(&back, "{'containerID': 'c3', 'ifname': 'eth0', 'namespace': 'third', 'name': 'cc',"
				    " 'hostVeth': 'veth3', 'ips': ['10.0.0.3/24']}");
		assert_int_equal(nf_state_save_pods(path, &back, &err), 0);
		nf_state_free(&back);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_non_null(s.frozen_map);
		assert_int_equal(s.npods, 2);
		assert_true(s.pods[1].borrowed);
		assert_true(nf_state_remove_pod(&s, "c2", "eth0"));
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		assert_string_equal(s.pods[0].name, "cc");
		assert_string_equal(s.pods[0].ns, "third");
		assert_string_equal(s.pods[0].host_veth, "veth3");
		nf_state_free(&s);
		unlink(path);
		snprintf(path, sizeof(path), "%s/state.json.model", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/state.json", dir);
	}
	assert_int_equal(rmdir_state(dir), 0); /* nothing else left behind */
}

/* A cache file's bytes at off (n of them) read into buf, or written */
static void cache_bytes(const char *cpath, off_t off, void *buf, size_t n, bool write)
{
	int fd = open(cpath, write ? O_WRONLY : O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(write ? pwrite(fd, buf, n, off) : pread(fd, buf, n, off), (ssize_t)n);
	close(fd);
}

/* The state at path loaded from its cache (a hit) and its pods saved:
 * the new cache, written in place, flags its frozen part whole (the
 * flags are at flags_at in cpath) */
static void hit_and_save(const char *path, const char *cpath, off_t flags_at)
{
	struct nf_error err = {0};
	struct nf_state s = {0};
	uint32_t flags;

	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	cache_bytes(cpath, flags_at, &flags, sizeof(flags), false);
	assert_int_equal(flags, htole32(1));
}

/* Where needle first is in the cache file (it must be) */
static off_t cache_find(const char *cpath, const char *needle)
{
	static char buf[65536];
	int fd = open(cpath, O_RDONLY);
	ssize_t n;
	const char *at;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_true(n > 0);
	at = memmem(buf, (size_t)n, needle, strlen(needle));
	assert_non_null(at);
	return at - buf;
}

/* The model cache (netconf/cache.c) names the state file it was made from
 * (device, inode, mtime) and the boot it was written in, instead of a hash
 * of its text: a copy of the same text under the same name, the same file
 * touched, or another boot, is a miss (the state comes from its text).
 * Its frozen part (the policies, namespaces and pod registrations) is
 * checked by the first load after it was written whole; the cache of an
 * ADD or DEL, which leaves that part where it is, flags it whole, and a
 * load in the same boot does not read those bytes again: a byte changed
 * in them behind its back is used (the proof that they are not checked).
 * Without the flag the change is seen: a miss. The pods, which every ADD
 * or DEL writes in place, are always checked. */
static void test_cache_names_its_file(void **state)
{
	static const char text[] =
		"{\"apiVersion\": \"netfence.dev/v1\", \"kind\": \"NetfenceNodeState\", \"namespaces\": [],"
		" \"networkPolicies\": [{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\","
		" \"metadata\": {\"name\": \"stamp-probe\", \"namespace\": \"default\"},"
		" \"spec\": {\"podSelector\": {}, \"policyTypes\": [\"Egress\"]}}], \"pods\": []}\n";
	char dir[] = "/tmp/nf-test-names-XXXXXX", path[64], cpath[80], copy[80], id[64], c, body[1024];
	uint8_t boot[16] = {0}, hb[16];
	const off_t boot_at = 96, flags_at = 112; /* struct cache_header */
	struct nf_error err = {0};
	struct nf_state s = {0};
	struct timespec later[2] = {{0, UTIME_OMIT}, {2000000000, 0}};
	uint32_t flags;
	size_t k = 0, n;
	FILE *f;
	(void)state;

	/* this boot's ID, as the kernel prints it */
	if (!(f = fopen("/proc/sys/kernel/random/boot_id", "r")))
		skip();
	assert_non_null(fgets(id, sizeof(id), f));
	fclose(f);
	for (size_t i = 0; id[i] && k < 32; i++)
		if (isxdigit((unsigned char)id[i])) {
			unsigned d = isdigit((unsigned char)id[i]) ? (unsigned)(id[i] - '0') : (unsigned)(id[i] - 'a' + 10);
			boot[k / 2] = (uint8_t)(boot[k / 2] << 4 | d);
			k++;
		}
	assert_int_equal(k, 32);

	state_in_tmp(dir, path, sizeof(path), cpath, sizeof(cpath));
	snprintf(copy, sizeof(copy), "%s.copy", path);
	write_text(path, text, 0600);
	/* parsed; the cache written whole: this boot, the frozen part not
	 * flagged */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	nf_state_free(&s);
	cache_bytes(cpath, boot_at, hb, sizeof(hb), false);
	assert_memory_equal(hb, boot, sizeof(boot));
	cache_bytes(cpath, flags_at, &flags, sizeof(flags), false);
	assert_int_equal(flags, 0);
	/* the same text in another file under the same name, or the file
	 * touched: a miss (each writes the cache anew) */
	n = read_text(path, body, sizeof(body));
	write_text(copy, body, 0600);
	assert_int_equal(rename(copy, path), 0);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	nf_state_free(&s);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	nf_state_free(&s);
	assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	nf_state_free(&s);
	assert_int_equal(read_text(path, body, sizeof(body)), n);

	/* an ADD's save: the frozen part left where it is, flagged whole */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	put_pod_json(&s, "{'containerID': 'c-stamp', 'ifname': 'eth0', 'namespace': 'default', 'name': 'a',"
			 " 'hostVeth': 'veth1', 'ips': ['10.0.0.1/24']}");
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	cache_bytes(cpath, flags_at, &flags, sizeof(flags), false);
	assert_int_equal(flags, htole32(1));
	/* the policy's name changed in the frozen part: not read again */
	c = 'X';
	cache_bytes(cpath, cache_find(cpath, "stamp-probe") + 10, &c, 1, true);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	assert_int_equal(s.npolicies, 1);
	assert_string_equal(s.policies[0].name, "stamp-probX");
	assert_int_equal(s.npods, 1);
	nf_state_free(&s);
	/* ... but without the flag it is: a miss, parsed */
	flags = 0;
	cache_bytes(cpath, flags_at, &flags, sizeof(flags), true);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	assert_string_equal(s.policies[0].name, "stamp-probe");
	assert_int_equal(s.npods, 1);
	nf_state_free(&s);

	/* the cache that miss wrote, flagged by a save; written in another
	 * boot: a miss */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	hb[0] ^= 1;
	cache_bytes(cpath, boot_at, hb, sizeof(hb), true);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	nf_state_free(&s);
	/* flagged again; then one of its pod's bytes changed: a miss */
	hit_and_save(path, cpath, flags_at);
	cache_bytes(cpath, cache_find(cpath, "c-stamp") + 2, &c, 1, true);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	assert_string_equal(s.pods[0].container_id, "c-stamp");
	nf_state_free(&s);

	/* where the header says the parts are: the pods past the file's
	 * end, the frozen part past the pods' start, or the pods' start past
	 * their end: each a miss, also with the frozen part flagged whole (a
	 * save's cache) and so not hashed (the cache made again, then a hit,
	 * then saved) */
	for (int bad = 0; bad < 3; bad++) {
		const off_t pods_off_at = 12, body_len_at = 64, frozen_len_at = 116; /* struct cache_header */
		uint32_t pods_off, frozen_len;
		uint64_t body_len;
		struct stat st;
		hit_and_save(path, cpath, flags_at);
		cache_bytes(cpath, pods_off_at, &pods_off, sizeof(pods_off), false);
		cache_bytes(cpath, body_len_at, &body_len, sizeof(body_len), false);
		cache_bytes(cpath, frozen_len_at, &frozen_len, sizeof(frozen_len), false);
		assert_int_equal(stat(cpath, &st), 0);
		assert_true(le32toh(frozen_len) <= le32toh(pods_off) && le32toh(pods_off) <= le64toh(body_len) &&
			    le64toh(body_len) + NF_CACHE_HEADER_LEN <= (uint64_t)st.st_size);
		if (bad == 0) {
			body_len = htole64((uint64_t)st.st_size - NF_CACHE_HEADER_LEN + 1);
			cache_bytes(cpath, body_len_at, &body_len, sizeof(body_len), true);
		} else if (bad == 1) {
			frozen_len = htole32(le32toh(pods_off) + 1);
			cache_bytes(cpath, frozen_len_at, &frozen_len, sizeof(frozen_len), true);
		} else {
			pods_off = htole32((uint32_t)le64toh(body_len) + 1);
			cache_bytes(cpath, pods_off_at, &pods_off, sizeof(pods_off), true);
		}
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_null(s.frozen);
		assert_string_equal(s.pods[0].container_id, "c-stamp");
		nf_state_free(&s);
	}

	unlink(cpath);
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

/* The two-step save (written on a thread while the kernel changes): nothing
 * is visible before nf_state_stage_finish; keep=false leaves the file as it
 * was and no temporary file; a DEL's staged text skips the pod still in s,
 * and the model cache written at the finish (for s without it) reads back;
 * a write error is reported at the finish, naming the file. */
static void test_state_stage(void **state)
{
	static const char text[] =
		"{\"pods\": [{\"containerID\": \"c1\", \"ifname\": \"eth0\", \"name\": \"a\"},"
		" {\"containerID\": \"c2\", \"ifname\": \"eth0\", \"name\": \"b\"},"
		" {\"containerID\": \"c3\", \"ifname\": \"eth0\", \"name\": \"c\"}], \"networkPolicies\": []}\n";
	static const char rec_a[] = "{\"containerID\": \"c1\", \"ifname\": \"eth0\", \"name\": \"a\"}";
	static const char rec_c[] = "{\"containerID\": \"c3\", \"ifname\": \"eth0\", \"name\": \"c\"}";
	char dir[] = "/tmp/nf-test-stage-XXXXXX", path[64], cpath[80], prev[80], oname[96], buf[2048];
	struct nf_error err = {0};
	struct nf_state s = {0}, t = {0}, fresh = {0};
	struct nf_state_stage st;

	state_in_tmp(dir, path, sizeof(path), cpath, sizeof(cpath));
	write_text(path, text, 0600);
	assert_int_equal(nf_state_load(path, &s, &err), 0);
	assert_int_equal(s.npods, 3);

	/* staged, then dropped (the kernel refused): nothing changed */
	assert_int_equal(nf_state_stage_pods(path, &s, &s.pods[1], &st, &err), 0);
	read_text(path, buf, sizeof(buf));
	assert_string_equal(buf, text);
	assert_int_equal(nf_state_stage_finish(&st, false, &err), 0);
	read_text(path, buf, sizeof(buf));
	assert_string_equal(buf, text);
	assert_int_equal(stray_files(dir), 0);

	/* a DEL: b skipped in the text, removed from s after the kernel
	 * changed and the thread is done with s, then kept */
	assert_int_equal(nf_state_stage_pods(path, &s, &s.pods[1], &st, &err), 0);
	nf_state_stage_wait(&st);
	assert_true(nf_state_remove_pod(&s, "c2", "eth0"));
	assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
	assert_int_equal(stray_files(dir), 0);
	/* the replaced file is still linked, whole, as "<state>.prev" */
	snprintf(prev, sizeof(prev), "%s.prev", path);
	read_text(prev, buf, sizeof(buf));
	assert_string_equal(buf, text);
	read_text(path, buf, sizeof(buf));
	assert_null(strstr(buf, "\"c2\""));
	assert_int_equal(nf_state_load_fast(path, &t, &err), 0);
	assert_non_null(t.frozen); /* from the cache the finish wrote */
	assert_int_equal(t.npods, 2);
	assert_string_equal(t.pods[0].name, "a");
	assert_string_equal(t.pods[1].name, "c");
	/* with the records' places in the text, which the next save copies */
	assert_int_equal(t.pods[0].raw_len, strlen(rec_a));
	assert_memory_equal(t.raw + t.pods[0].raw_at, rec_a, strlen(rec_a));
	assert_int_equal(t.pods[1].raw_len, strlen(rec_c));
	assert_memory_equal(t.raw + t.pods[1].raw_at, rec_c, strlen(rec_c));
	nf_state_free(&t);

	/* another DEL: the former "<state>.prev" is unlinked but handed over
	 * open (nf_state_stage_take_prev), for the caller to close off its
	 * clock; the file it replaces is the new "<state>.prev". Not for a
	 * save that is no DEL. */
	{
		char before[2048];
		struct stat sb;
		ssize_t n;
		int fd;

		read_text(path, before, sizeof(before));
		assert_int_equal(nf_state_load(path, &t, &err), 0);
		assert_int_equal(nf_state_stage_pods(path, &t, &t.pods[1], &st, &err), 0);
		nf_state_stage_wait(&st);
		fd = nf_state_stage_take_prev(&st);
		assert_true(fd >= 0);
		assert_int_equal(nf_state_stage_take_prev(&st), -1); /* once */
		assert_int_equal(fstat(fd, &sb), 0);
		assert_int_equal(sb.st_nlink, 0);
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		assert_true(n > 0);
		buf[n] = '\0';
		assert_string_equal(buf, text);
		close(fd);
		assert_true(nf_state_remove_pod(&t, "c3", "eth0"));
		assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
		read_text(prev, buf, sizeof(buf));
		assert_string_equal(buf, before);
		nf_state_free(&t);
		assert_int_equal(nf_state_load(path, &t, &err), 0);
		assert_int_equal(nf_state_stage_pods(path, &t, NULL, &st, &err), 0);
		nf_state_stage_wait(&st);
		assert_int_equal(nf_state_stage_take_prev(&st), -1);
		assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
		nf_state_free(&t);
		/* ... which parks the former "<state>.prev" instead */
		assert_int_equal(parked_files(path), 1);
		read_text(old_name(path, 0, oname, sizeof(oname)), buf, sizeof(buf));
		assert_string_equal(buf, before);
		nf_state_unlink_old(path);
		assert_int_equal(parked_files(path), 0);
	}

	/* saves that are no DEL park the file "<state>.prev" named before in
	 * the first free "<state>.old.N", whole; with every one taken, the
	 * next save unlinks it; nf_state_unlink_old (the next DEL's child)
	 * removes them all */
	{
		char texts[NF_STATE_OLD_SLOTS + 2][2048];

		for (int i = 0; i < NF_STATE_OLD_SLOTS + 2; i++) {
			char one[128];

			read_text(prev, texts[i], sizeof(texts[i]));
			/* a state of its own each time: the files parked differ */
			snprintf(one, sizeof(one),
				 "{\"pods\": [{\"containerID\": \"c%d\", \"ifname\": \"eth0\", \"name\": \"p\"}]}\n", i);
			write_text(path, one, 0600);
			assert_int_equal(nf_state_load(path, &t, &err), 0);
			assert_int_equal(nf_state_stage_pods(path, &t, NULL, &st, &err), 0);
			assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
			nf_state_free(&t);
			assert_int_equal(stray_files(dir), 0);
			assert_int_equal(parked_files(path), i < NF_STATE_OLD_SLOTS ? i + 1 : NF_STATE_OLD_SLOTS);
		}
		for (int i = 0; i < NF_STATE_OLD_SLOTS; i++) {
			read_text(old_name(path, i, oname, sizeof(oname)), buf, sizeof(buf));
			assert_string_equal(buf, texts[i]);
			if (i > 0)
				assert_non_null(strstr(buf, "\"c"));
		}
		assert_int_equal(access(old_name(path, NF_STATE_OLD_SLOTS, oname, sizeof(oname)), F_OK), -1);
		nf_state_unlink_old(path);
		assert_int_equal(parked_files(path), 0);
	}

	/* a state never loaded from a file is staged whole, without skip */
	assert_int_equal(nf_state_stage(path, &s, &s.pods[0], &st, &err), 0);
	assert_int_equal(nf_state_stage_finish(&st, false, &err), 0);
	assert_int_equal(stray_files(dir), 0);
	fresh.pods = s.pods;
	fresh.npods = s.npods;
	assert_int_equal(nf_state_stage_pods(path, &fresh, &fresh.pods[0], &st, &err), 0);
	nf_state_stage_wait(&st);
	fresh.pods++; /* finished with s as it is then: without the skipped pod */
	fresh.npods--;
	assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
	assert_int_equal(nf_state_load(path, &t, &err), 0);
	assert_int_equal(t.npods, 1);
	assert_string_equal(t.pods[0].name, "c");
	nf_state_free(&t);
	/* a finish with pods that are not the text's (a caller's bug) leaves
	 * no cache to be believed: the load (which takes the pods from a
	 * matching cache) still finds the text's */
	fresh.pods = s.pods;
	fresh.npods = s.npods;
	assert_int_equal(nf_state_stage_pods(path, &fresh, &fresh.pods[0], &st, &err), 0);
	assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
	assert_int_equal(nf_state_load(path, &t, &err), 0);
	assert_int_equal(t.npods, 1);
	assert_string_equal(t.pods[0].name, "c");
	nf_state_free(&t);
	nf_state_free(&s);

	/* a whole-state save (a policy change) writes what nf_state_to_json
	 * says, but copies the pods' records as loaded (their spaces kept) and
	 * re-makes only a changed one; the cache it writes reads back with
	 * the records' places */
	{
		static const char whole[] =
			"{\"apiVersion\": \"netfence.dev/v1\", \"kind\": \"NetfenceNodeState\","
			" \"registeredPods\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"r\", \"namespace\": \"default\", \"labels\": {\"x\": \"y\"}}}],"
			" \"pods\": [{\"containerID\": \"c1\", \"ifname\": \"eth0\", \"name\": \"a\"},"
			" {\"containerID\": \"c3\", \"ifname\": \"eth0\", \"name\": \"c\"}],"
			" \"networkPolicies\": [{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\","
			" \"metadata\": {\"name\": \"p\", \"namespace\": \"default\"}, \"spec\": {\"podSelector\": {}, \"policyTypes\": [\"Egress\"]}}]}\n";
		json_t *want, *got;
		struct nf_pod pod;
		json_t *j;

		write_text(path, whole, 0600);
		assert_int_equal(nf_state_load(path, &s, &err), 0);
		assert_int_equal(s.npods, 2);
		assert_int_equal(s.npodspecs, 1);
		j = J("{'containerID': 'c3', 'ifname': 'eth0', 'name': 'c2', 'labels': {'k': 'v'}}");
		assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
		json_decref(j);
		assert_int_equal(nf_state_put_pod(&s, &pod), NF_PUT_CONFIGURED);
		assert_int_equal(nf_state_save(path, &s, &err), 0);
		assert_int_equal(stray_files(dir), 0);
		read_text(path, buf, sizeof(buf));
		assert_non_null(strstr(buf, rec_a));                  /* as loaded */
		assert_non_null(strstr(buf, "\"name\":\"c2\""));       /* made anew */
		assert_true(strstr(buf, "\"pods\":") < strstr(buf, "\"registeredPods\":"));
		assert_int_equal(buf[strlen(buf) - 1], '\n');
		/* reads back to the same state (a record copied as loaded may
		 * lack the defaults a made one spells out) */
		assert_int_equal(nf_state_load(path, &t, &err), 0);
		want = nf_state_to_json(&s);
		got = nf_state_to_json(&t);
		assert_true(json_equal(want, got));
		json_decref(want);
		json_decref(got);
		nf_state_free(&t);
		nf_state_free(&s);
		assert_int_equal(nf_state_load_fast(path, &t, &err), 0);
		assert_non_null(t.frozen);
		assert_int_equal(t.npods, 2);
		assert_int_equal(t.pods[0].raw_len, strlen(rec_a));
		assert_memory_equal(t.raw + t.pods[0].raw_at, rec_a, strlen(rec_a));
		assert_string_equal(t.pods[1].name, "c2");
		assert_true(t.pods[1].raw_len > 0);
		assert_int_equal(t.raw[t.pods[1].raw_at], '{');
		assert_int_equal(t.raw[t.pods[1].raw_at + t.pods[1].raw_len - 1], '}');
		nf_state_free(&t);
	}

	/* the new file cannot be made: an error at the finish if kept */
	snprintf(path, sizeof(path), "%s/gone/state.json", dir);
	assert_int_equal(nf_state_stage(path, &t, NULL, &st, &err), 0);
	assert_int_equal(nf_state_stage_finish(&st, false, &err), 0);
	assert_int_equal(nf_state_stage(path, &t, NULL, &st, &err), 0);
	assert_true(nf_state_stage_finish(&st, true, &err) < 0);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));

	snprintf(path, sizeof(path), "%s/state.json", dir);
	unlink(path);
	unlink(cpath);
	assert_int_equal(rmdir_state(dir), 0);
}

/* The pods of s as JSON (s without skip): what a save of s must read
 * back as. */
static json_t *pods_json(const struct nf_state *s, const struct nf_pod *skip)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->npods; i++)
		if (&s->pods[i] != skip)
			json_array_append_new(a, nf_pod_to_json(&s->pods[i]));
	return a;
}

/* A save of the pods writes the loaded records that stay, in order, as
 * pieces of the loaded text, and the others anew (pods_pieces), or, past
 * its room for pieces, all of them into one array: random ADDs, DELs,
 * re-ADDs and DELs staged with the pod skipped, on states loaded by a
 * parse and from the cache, with odd white space between the records;
 * each save reads back, parsed and from the cache, as the pods saved,
 * and each record's place in the text holds that record. */
static void test_state_pods_pieces_random(void **state)
{
	static const char *const seps[] = {",", " ,", ",\n  ", "\t,\r\n"};
	char dir[] = "/tmp/nf-test-pieces-XXXXXX", path[64], name[32], cid[32], *text = NULL;
	struct nf_error err = {0};
	unsigned seed = 20261127, next = 0;
	size_t tlen = 0;
	FILE *f;

	(void)state;
	state_in_tmp(dir, path, sizeof(path), NULL, 0);
	f = open_memstream(&text, &tlen);
	assert_non_null(f);
	fputs("{\"networkPolicies\": [], \"pods\":[", f);
	for (int i = 0; i < 12; i++)
		fprintf(f, "%s{\"containerID\": \"c%d\", \"ifname\": \"eth0\", \"name\": \"p%d\", \"ips\": [\"10.0.0.%d/24\"]}",
			i ? seps[i % 4] : " ", i, i, i + 1);
	fputs(" ] , \"namespaces\": []}\n", f);
	fclose(f);
	write_text(path, text, 0600);
	free(text);
	next = 12;

	for (int round = 0; round < 300; round++) {
		struct nf_state s = {0}, back = {0};
		const struct nf_pod *skip = NULL;
		int ops = 1 + (int)(rand_r(&seed) % (round % 10 == 9 ? 24 : 3));
		json_t *want, *got;

		if (rand_r(&seed) % 2)
			assert_int_equal(nf_state_load(path, &s, &err), 0);
		else
			assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		for (int o = 0; o < ops; o++) {
			unsigned op = rand_r(&seed) % 4;
			struct nf_pod pod = {0};
			json_t *j;
			if ((op == 1 || op == 2) && s.npods == 0)
				op = 0;
			if (op == 1) { /* a DEL */
				const struct nf_pod *p = &s.pods[rand_r(&seed) % s.npods];
				snprintf(cid, sizeof(cid), "%s", p->container_id);
				assert_true(nf_state_remove_pod(&s, cid, "eth0"));
				continue;
			}
			if (op == 2) /* a re-ADD of a pod there: its record made anew, in place */
				snprintf(cid, sizeof(cid), "%s", s.pods[rand_r(&seed) % s.npods].container_id);
			else
				snprintf(cid, sizeof(cid), "c%u", next++);
			snprintf(name, sizeof(name), "n%u-%d", next, round);
			j = json_pack("{s:s, s:s, s:s, s:{s:s}, s:[s]}", "containerID", cid, "ifname", "eth0", "name", name,
				      "labels", "app", op == 2 ? "again" : "new", "ips", "10.1.0.1/24");
			assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
			json_decref(j);
			assert_true(nf_state_put_pod(&s, &pod) >= 0);
		}
		want = pods_json(&s, NULL);
		if (s.npods && rand_r(&seed) % 3 == 0) { /* a DEL's stage: the pod skipped */
			struct nf_state_stage st;
			skip = &s.pods[rand_r(&seed) % s.npods];
			json_decref(want);
			want = pods_json(&s, skip);
			assert_int_equal(nf_state_stage_pods(path, &s, skip, &st, &err), 0);
			assert_int_equal(nf_state_stage_finish(&st, true, &err), 0);
		} else {
			assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		}
		nf_state_free(&s);

		/* parsed */
		assert_int_equal(nf_state_load(path, &back, &err), 0);
		got = pods_json(&back, NULL);
		assert_true(json_equal(want, got));
		json_decref(got);
		nf_state_free(&back);
		/* from the cache, with each record's place */
		assert_int_equal(nf_state_load_fast(path, &back, &err), 0);
		assert_non_null(back.frozen);
		got = pods_json(&back, NULL);
		assert_true(json_equal(want, got));
		json_decref(got);
		for (size_t i = 0; i < back.npods; i++) {
			json_t *rec = json_loadb(back.raw + back.pods[i].raw_at, back.pods[i].raw_len, 0, NULL), *canon;
			struct nf_pod p = {0};
			assert_true(back.pods[i].raw_len > 0);
			assert_non_null(rec);
			assert_int_equal(nf_pod_from_json(rec, &p, &err), 0);
			canon = nf_pod_to_json(&p);
			assert_true(json_equal(canon, json_array_get(want, i)));
			json_decref(canon);
			json_decref(rec);
			nf_pod_free(&p);
		}
		nf_state_free(&back);
		json_decref(want);
	}
	assert_int_equal(stray_files(dir), 0);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.json.model", dir);
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

/* nf_state_save_pods copies the records of unchanged pods as they are in
 * the loaded text (parsed or from the model cache), writes changed ones
 * anew, and a relabel by a Pod registration counts as a change. */
static void test_state_pod_records(void **state)
{
	static const char rec1[] = "{\"containerID\":  \"c1\", \"ifname\": \"eth0\", \"name\": \"a\", \"labels\": {\"k\": \"v\"}}";
	static const char rec2[] = "{ \"containerID\": \"c2\", \"ifname\": \"eth0\", \"name\": \"b\" }";
	char dir[] = "/tmp/nf-test-recs-XXXXXX", path[64], cpath[80], text[1024], *got;
	struct nf_error err = {0};
	struct nf_state s = {0}, t = {0};
	struct nf_pod pod;
	struct nf_podspec spec = {0};
	json_t *j;
	size_t n;
	FILE *f;

	state_in_tmp(dir, path, sizeof(path), cpath, sizeof(cpath));
	snprintf(text, sizeof(text), "{\"pods\": [ %s ,\n %s ], \"networkPolicies\": []}\n", rec1, rec2);
	write_text(path, text, 0600);

	/* parsed: one pod added; both records stay byte for byte */
	assert_int_equal(nf_state_load(path, &s, &err), 0);
	assert_int_equal(s.pods[0].raw_len, strlen(rec1));
	j = json_loads("{\"containerID\": \"c3\", \"ifname\": \"eth0\", \"name\": \"c\"}", 0, NULL);
	assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
	json_decref(j);
	assert_int_equal(nf_state_put_pod(&s, &pod), NF_PUT_CREATED);
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_non_null(strstr(text, rec1));
	assert_non_null(strstr(text, rec2));
	assert_non_null(strstr(text, "\"containerID\":\"c3\""));

	/* from the cache: c1 removed, c2 and c3 kept as they are */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	assert_true(nf_state_remove_pod(&s, "c1", "eth0"));
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	f = fopen(path, "r");
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_null(strstr(text, "\"c1\""));
	assert_non_null(strstr(text, rec2));
	assert_int_equal(nf_state_load(path, &t, &err), 0);
	assert_int_equal(t.npods, 2);
	assert_string_equal(t.pods[0].name, "b");
	assert_string_equal(t.pods[1].name, "c");

	/* a registration relabels b: its record counts as changed (and is
	 * written anew by any save) */
	assert_true(t.pods[0].raw_len > 0);
	j = json_loads("{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\", \"labels\": {\"app\": \"x\"}}}",
		       0, NULL);
	assert_int_equal(nf_podspec_from_json(j, "default", &spec, &err), 0);
	json_decref(j);
	assert_true(nf_state_put_podspec(&t, &spec) >= 0);
	nf_podspec_free(&spec);
	assert_int_equal(t.pods[0].raw_len, 0);
	assert_true(t.pods[1].raw_len > 0);
	assert_int_equal(nf_state_save(path, &t, &err), 0);
	nf_state_free(&t);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	got = nf_labels_format(&s.pods[0].labels);
	assert_string_equal(got, "app=x");
	free(got);
	nf_state_free(&s);

	unlink(cpath);
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

static uint64_t ino_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (uint64_t)sb.st_ino : 0;
}

/* A save of the pods alone is synced only when the policies are not on
 * disk already in "<state>.synced" (the cache records which file that
 * is): a synced save links its file under that name, an unsynced one
 * leaves the name alone. A state file that is empty or zero-filled (what
 * a power loss leaves of an unsynced file) is read from "<state>.synced";
 * without a whole one it is an error, as before. */
static void test_state_synced(void **state)
{
	static const char text[] =
		"{\"networkPolicies\": [{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\","
		" \"metadata\": {\"name\": \"p\", \"namespace\": \"default\"},"
		" \"spec\": {\"podSelector\": {}, \"policyTypes\": [\"Egress\"]}}], \"pods\": []}\n";
	char dir[] = "/tmp/nf-test-synced-XXXXXX", path[64], cpath[80], synced[80], zeros[4096];
	struct nf_error err = {0};
	struct nf_state s = {0};
	uint64_t ino;
	int fd;

	state_in_tmp(dir, path, sizeof(path), cpath, sizeof(cpath));
	snprintf(synced, sizeof(synced), "%s.synced", path);
	write_text(path, text, 0600);

	/* an earlier build's file (no "<state>.synced"): synced and linked */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_int_equal(s.synced_ino, 0);
	put_pod_json(&s, "{'containerID': 'c1', 'ifname': 'eth0', 'name': 'a', 'ips': ['10.0.0.1/24']}");
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	ino = ino_of(synced);
	assert_true(ino != 0);
	assert_true(ino == ino_of(path));

	/* from the cache, which knows that file: not synced, the name stays */
	for (int round = 0; round < 2; round++) {
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_non_null(s.frozen);
		assert_true(s.synced_ino == ino);
		put_pod_json(&s, round ? "{'containerID': 'c3', 'ifname': 'eth0', 'name': 'c'}"
				       : "{'containerID': 'c2', 'ifname': 'eth0', 'name': 'b'}");
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		nf_state_free(&s);
		assert_true(ino_of(synced) == ino);
		assert_true(ino_of(path) != ino);
	}
	/* a parsed state does not know it: synced again */
	assert_int_equal(nf_state_load(path, &s, &err), 0);
	assert_int_equal(s.npods, 3);
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	assert_true(ino_of(synced) == ino_of(path));
	ino = ino_of(synced);

	/* the name gone: synced again */
	assert_int_equal(unlink(synced), 0);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_true(s.synced_ino == ino);
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	assert_true(ino_of(synced) == ino_of(path));

	/* a whole save (a policy change) is always synced and linked */
	assert_int_equal(nf_state_load(path, &s, &err), 0);
	assert_true(nf_state_remove_pod(&s, "c1", "eth0"));
	assert_int_equal(nf_state_save(path, &s, &err), 0);
	nf_state_free(&s);
	ino = ino_of(synced);
	assert_true(ino == ino_of(path));
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	put_pod_json(&s, "{'containerID': 'c4', 'ifname': 'eth0', 'name': 'd'}");
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	assert_true(ino_of(synced) == ino);

	/* torn: empty, then zero-filled; both loads take "<state>.synced"
	 * (its pods: b and c, not d), which the next save of the pods need
	 * not sync */
	for (int round = 0; round < 2; round++) {
		assert_true((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
		memset(zeros, 0, sizeof(zeros));
		if (round)
			assert_int_equal(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
		close(fd);
		assert_int_equal(nf_state_load(path, &s, &err), 0);
		assert_int_equal(s.npolicies, 1);
		assert_int_equal(s.npods, 2);
		nf_state_free(&s);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_int_equal(s.npolicies, 1);
		assert_int_equal(s.npods, 2);
		assert_true(s.synced_ino == ino);
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		nf_state_free(&s);
		assert_true(ino_of(synced) == ino);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_int_equal(s.npods, 2);
		assert_string_equal(s.pods[1].name, "c");
		nf_state_free(&s);
	}

	/* a stray zero byte is corruption, not a power loss: an error */
	write_text(path, text, 0600);
	assert_true((fd = open(path, O_WRONLY)) >= 0);
	assert_int_equal(pwrite(fd, "", 1, 10), 1);
	close(fd);
	assert_int_equal(nf_state_load_fast(path, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "is corrupt"));
	assert_int_equal(nf_state_load(path, &s, &err), -EINVAL);

	/* torn, and "<state>.synced" torn too, or missing: an error */
	assert_true((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
	close(fd);
	for (int round = 0; round < 2; round++) {
		if (round) {
			assert_int_equal(unlink(synced), 0);
		} else {
			assert_true((fd = open(synced, O_WRONLY | O_TRUNC)) >= 0);
			close(fd);
		}
		assert_int_equal(nf_state_load_fast(path, &s, &err), -EINVAL);
		assert_int_equal(err.code, NF_ERR_STATE);
		assert_non_null(strstr(err.msg, "is corrupt"));
	}

	unlink(cpath);
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

/* nf_state_load_fast: the model cache is used for exactly the text it was
 * made from; a state loaded from it saves its pods like a parsed one, and
 * refuses a whole save; another text, or a cache that is a symlink or
 * writable by others, is parsed instead (and the cache made again). */
/* Idle kinds in the state file and the model cache: loaded, cached and
 * saved as they are; the lookups by container, interface or name pass
 * them over. */
static void test_state_idle(void **state)
{
	static const char text[] =
		"{\"apiVersion\": \"netfence.dev/v1\", \"kind\": \"NetfenceNodeState\",\n"
		" \"pods\": [{\"containerID\": \"c1\", \"ifname\": \"eth0\", \"namespace\": \"default\", \"name\": \"a\","
		" \"labels\": {\"k\": \"v\"}, \"hostVeth\": \"veth1\", \"ips\": [\"10.0.0.1/24\"]},"
		" {\"idle\": true, \"namespace\": \"default\", \"labels\": {\"k\": \"w\"}}]}\n";
	char dir[] = "/tmp/nf-test-idle-XXXXXX", path[64];
	struct nf_error err = {0};
	struct nf_state s = {0}, t = {0};
	struct nf_pod named = {.ns = (char *)"default", .name = NULL};

	state_in_tmp(dir, path, sizeof(path), NULL, 0);
	write_text(path, text, 0600);
	for (int pass = 0; pass < 3; pass++) { /* parsed (cache made), from the cache, parsed */
		assert_int_equal(pass == 2 ? nf_state_load(path, &s, &err) : nf_state_load_fast(path, &s, &err), 0);
		if (pass == 1)
			assert_non_null(s.frozen);
		assert_int_equal(s.npods, 2);
		assert_true(s.pods[1].idle);
		assert_false(s.pods[0].idle);
		assert_null(s.pods[1].container_id);
		assert_string_equal(nf_labels_get(&s.pods[1].labels, "k"), "w");
		assert_int_equal(nf_state_nidle(&s), 1);
		/* made the state's own (an ADD that takes it over): still idle */
		assert_int_equal(nf_state_own_pod(&s, &s.pods[1]), 0);
		assert_false(s.pods[1].borrowed);
		assert_true(s.pods[1].idle);
		assert_int_equal(nf_state_nidle(&s), 1);
		nf_state_free(&s);
	}
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	/* a twin of pod a's labels made idle: found as a's twin, and the
	 * lookups do not find it */
	assert_null(nf_state_twin(&s, &s.pods[0], false));
	assert_int_equal(nf_state_add_idle(&s, &s.pods[0]), 0);
	assert_int_equal(nf_state_nidle(&s), 2);
	assert_ptr_equal(nf_state_twin(&s, &s.pods[0], true), &s.pods[2]);
	assert_ptr_equal(nf_state_find_pod(&s, "c1", "eth0"), &s.pods[0]);
	named.name = (char *)"a";
	assert_ptr_equal(nf_state_find_pod_by_name(&s, "default", "a"), &s.pods[0]);
	assert_true(nf_state_remove_pod(&s, "c1", "eth0"));
	assert_null(nf_state_find_pod_by_name(&s, named.ns, named.name));
	assert_false(nf_state_remove_pod(&s, "c1", "eth0"));
	assert_int_equal(s.npods, 2);
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	nf_state_free(&s);
	for (int pass = 0; pass < 2; pass++) {
		json_t *a, *want;
		assert_int_equal(pass ? nf_state_load(path, &t, &err) : nf_state_load_fast(path, &t, &err), 0);
		assert_int_equal(t.npods, 2);
		assert_int_equal(nf_state_nidle(&t), 2);
		a = nf_pod_to_json(&t.pods[1]);
		want = json_loads("{\"idle\": true, \"namespace\": \"default\", \"labels\": {\"k\": \"v\"}, \"ips\": []}", 0, NULL);
		assert_true(json_equal(a, want));
		json_decref(a);
		json_decref(want);
		/* the oldest first */
		assert_string_equal(nf_labels_get(&t.pods[0].labels, "k"), "w");
		nf_state_remove_pod_at(&t, 0);
		assert_int_equal(t.npods, 1);
		nf_state_free(&t);
	}
	{
		char name[96];
		snprintf(name, sizeof(name), "%s.model", path);
		unlink(name);
		snprintf(name, sizeof(name), "%s.lock", path);
		unlink(name);
	}
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

/* The pods of a state loaded from the model cache point into the cache's
 * mapping, not into a copy: a save of that state writes the next cache
 * in the same file without changing a byte they point into (an ADD's
 * records in place, a DEL's beside the old ones unless it was the last),
 * and the file stays bounded, whatever the mix of saves. Each round
 * loads the state, takes a pod out (anywhere; or as a DEL does, made the
 * state's own and skipped by a staged save) or puts one in, saves, and
 * checks both the state it saved and what loads back. */
static void test_state_pods_stay_put(void **state)
{
	static const char head[] = "{\"apiVersion\": \"netfence.dev/v1\", \"kind\": \"NetfenceNodeState\",\n"
				   " \"networkPolicies\": [], \"pods\": []}\n";
	char dir[] = "/tmp/nf-test-stay-XXXXXX", path[64], cpath[80], doc[256], want[64][32];
	struct nf_error err = {0};
	struct nf_state s = {0};
	size_t n = 0, next = 0, most = 0;
	unsigned seed = 7;

	state_in_tmp(dir, path, sizeof(path), cpath, sizeof(cpath));
	write_text(path, head, 0600);
	for (int round = 0; round < 200; round++) {
		struct stat st;
		int what = (int)(rand_r(&seed) % 4);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_int_equal(s.npods, n);
		if (round > 0)
			assert_non_null(s.frozen_map); /* from the cache, mapped */
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(s.pods[i].name, want[i]);
			assert_true(s.pods[i].borrowed || round == 0);
		}
		if (n > 0 && what == 1 && round % 2) { /* one out as a DEL does it */
			/* made the state's own, then skipped by the save: its
			 * record's bytes are free, and it still reads right */
			size_t at = round % 4 == 1 ? n - 1 : (size_t)rand_r(&seed) % n;
			struct nf_state_stage stage;
			char cid[32];
			assert_int_equal(nf_state_own_pod(&s, &s.pods[at]), 0);
			assert_false(s.pods[at].borrowed);
			assert_int_equal(nf_state_stage_pods(path, &s, &s.pods[at], &stage, &err), 0);
			assert_int_equal(nf_state_stage_finish(&stage, true, &err), 0);
			for (size_t i = 0; i < n; i++)
				assert_string_equal(s.pods[i].name, want[i]);
			snprintf(cid, sizeof(cid), "c-%s", want[at]);
			assert_true(nf_state_remove_pod(&s, cid, "eth0"));
			memmove(want[at], want[at + 1], (n - at - 1) * sizeof(want[0]));
			n--;
			nf_state_free(&s);
			continue;
		}
		if (n > 0 && (what == 0 || n == 60)) { /* one out */
			size_t at = (size_t)rand_r(&seed) % n;
			char cid[32];
			snprintf(cid, sizeof(cid), "c-%s", want[at]);
			assert_true(nf_state_remove_pod(&s, cid, "eth0"));
			memmove(want[at], want[at + 1], (n - at - 1) * sizeof(want[0]));
			n--;
		} else { /* one in, with a name of a length of its own */
			snprintf(want[n], sizeof(want[n]), "p%zu%.*s", next, (int)(next % 13), "xxxxxxxxxxxxx");
			snprintf(doc, sizeof(doc),
				 "{'containerID': 'c-%s', 'ifname': 'eth0', 'namespace': 'ns%zu', 'name': '%s',"
				 " 'labels': {'app': 'a%zu'}, 'hostVeth': 'veth%zu', 'ips': ['10.0.%zu.%zu/16']}",
				 want[n], next % 3, want[n], next % 5, next, next / 200, next % 200 + 1);
			put_pod_json(&s, doc);
			n++;
			next++;
		}
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		/* what the saved state points into did not change under it */
		assert_int_equal(s.npods, n);
		for (size_t i = 0; i < n; i++) {
			char cid[40];
			snprintf(cid, sizeof(cid), "c-%s", want[i]);
			assert_string_equal(s.pods[i].name, want[i]);
			assert_string_equal(s.pods[i].container_id, cid);
			assert_string_equal(s.pods[i].ifname, "eth0");
		}
		nf_state_free(&s);
		/* bounded: the frozen part and at most three pods' worth */
		assert_int_equal(stat(cpath, &st), 0);
		most = (size_t)st.st_size > most ? (size_t)st.st_size : most;
	}
	assert_true(most < NF_CACHE_HEADER_LEN + 64 + 3 * (4 + 60 * 200));
	/* and the last cache reads back as the text does */
	{
		struct nf_state t = {0};
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_non_null(s.frozen_map);
		assert_int_equal(nf_state_load(path, &t, &err), 0);
		assert_int_equal(s.npods, t.npods);
		for (size_t i = 0; i < s.npods; i++) {
			json_t *a = nf_pod_to_json(&s.pods[i]), *b = nf_pod_to_json(&t.pods[i]);
			assert_true(json_equal(a, b));
			json_decref(a);
			json_decref(b);
		}
		nf_state_free(&t);
		nf_state_free(&s);
	}
	unlink(path);
	unlink(cpath);
	assert_int_equal(rmdir_state(dir), 0);
}

static void test_state_model_cache(void **state)
{
	static const char text[] =
		"{\"apiVersion\": \"netfence.dev/v1\", \"kind\": \"NetfenceNodeState\",\n"
		" \"networkPolicies\": [{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\","
		" \"metadata\": {\"name\": \"p\", \"namespace\": \"default\"},"
		" \"spec\": {\"podSelector\": {\"matchLabels\": {\"k\": \"v\"}}, \"policyTypes\": [\"Egress\"],"
		" \"egress\": [{\"to\": [{\"ipBlock\": {\"cidr\": \"10.0.0.0/8\", \"except\": [\"10.1.0.0/16\"]}}],"
		" \"ports\": [{\"port\": 53, \"protocol\": \"UDP\"}]}]}}],\n"
		" \"pods\": [{\"containerID\": \"c1\", \"ifname\": \"eth0\", \"namespace\": \"default\", \"name\": \"a\","
		" \"labels\": {\"k\": \"v\"}, \"hostVeth\": \"veth1\", \"ips\": [\"10.0.0.1/24\"]}]}\n";
	char dir[] = "/tmp/nf-test-cache-XXXXXX", path[64], cpath[80], other[80];
	struct nf_error err = {0};
	struct nf_state s = {0}, t = {0};
	struct nf_pod pod;
	json_t *j;

	state_in_tmp(dir, path, sizeof(path), cpath, sizeof(cpath));
	snprintf(other, sizeof(other), "%s/copy.model", dir);
	write_text(path, text, 0600);

	/* no cache yet: parsed, and the cache made */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	assert_non_null(s.policies[0].obj);
	nf_state_free(&s);
	assert_int_equal(access(cpath, F_OK), 0);
	/* now from the cache */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	assert_int_equal(s.npolicies, 1);
	assert_null(s.policies[0].obj);
	assert_int_equal(s.policies[0].egress_rules[0].peers[0].ipblock.except[0].prefix, 16);
	assert_int_equal(s.npods, 1);
	assert_string_equal(s.pods[0].host_veth, "veth1");
	/* a whole save needs the objects: refused, nothing written */
	assert_true(nf_state_save(path, &s, &err) < 0);
	/* pods are saved as from a parsed state; the cache follows */
	j = json_loads("{\"containerID\": \"c2\", \"ifname\": \"eth0\", \"namespace\": \"default\", \"name\": \"b\","
		       " \"labels\": {}, \"ips\": [\"fd00::2/64\"]}", 0, NULL);
	assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
	json_decref(j);
	assert_int_equal(nf_state_put_pod(&s, &pod), NF_PUT_CREATED);
	assert_non_null(s.frozen_map); /* decoded from a mapping of the cache */
	assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
	/* the new cache was written in place under it: what s points into
	 * (the frozen part and the pods' records, both in the mapping) is
	 * intact */
	assert_string_equal(s.policies[0].egress_rules[0].id, "default/p egress[0]");
	assert_string_equal(s.policies[0].name, "p");
	assert_string_equal(s.pods[0].host_veth, "veth1");
	assert_string_equal(s.pods[0].container_id, "c1");
	nf_state_free(&s);
	assert_int_equal(nf_state_load(path, &t, &err), 0);
	assert_int_equal(t.npods, 2);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	assert_int_equal(s.npods, 2);
	assert_int_equal(s.npolicies, 1); /* the frozen part, carried over */
	assert_int_equal(s.policies[0].egress_rules[0].peers[0].ipblock.except[0].prefix, 16);
	assert_string_equal(s.policies[0].egress_rules[0].id, "default/p egress[0]");
	{
		json_t *a = nf_state_to_json(&t), *b;
		/* the objects are not in s: compare the pods */
		b = json_object_get(a, "pods");
		for (size_t i = 0; i < 2; i++) {
			json_t *x = nf_pod_to_json(&s.pods[i]);
			assert_true(json_equal(x, json_array_get(b, i)));
			json_decref(x);
		}
		json_decref(a);
	}
	nf_state_free(&s);
	nf_state_free(&t);
	/* the cache is rewritten in place (same inode), also when it shrinks
	 * (the file need not: the removed pod's record, which the saving
	 * state still has, stays in it) */
	{
		struct stat st1, st2;
		assert_int_equal(stat(cpath, &st1), 0);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_true(nf_state_remove_pod(&s, "c2", "eth0"));
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		nf_state_free(&s);
		assert_int_equal(stat(cpath, &st2), 0);
		assert_true(st1.st_ino == st2.st_ino);
		assert_true(st2.st_size <= st1.st_size);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_non_null(s.frozen);
		assert_int_equal(s.npods, 1);
		assert_int_equal(s.npolicies, 1);
		/* and grows back (the text the rest of this test expects) */
		j = json_loads("{\"containerID\": \"c2\", \"ifname\": \"eth0\", \"namespace\": \"default\","
			       " \"name\": \"b\", \"labels\": {}, \"ips\": [\"fd00::2/64\"]}", 0, NULL);
		assert_int_equal(nf_pod_from_json(j, &pod, &err), 0);
		json_decref(j);
		assert_int_equal(nf_state_put_pod(&s, &pod), NF_PUT_CREATED);
		assert_int_equal(nf_state_save_pods(path, &s, &err), 0);
		nf_state_free(&s);
		assert_int_equal(stat(cpath, &st2), 0);
		assert_true(st1.st_ino == st2.st_ino);
		assert_int_equal(st2.st_size, st1.st_size);
	}

	/* the same state, written differently: another text, parsed */
	assert_int_equal(rename(cpath, other), 0);
	assert_int_equal(nf_state_load_fast(path, &t, &err), 0); /* makes the cache again */
	assert_null(t.frozen);
	assert_int_equal(unlink(cpath), 0);
	assert_int_equal(link(other, cpath), 0);
	write_text(path, text, 0600); /* the first text, not the one the cache was made from */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	assert_int_equal(s.npods, 1);
	nf_state_free(&s);
	nf_state_free(&t);
	{ /* the cache had another name: replaced, not written through it */
		struct stat so, sc;
		assert_int_equal(stat(other, &so), 0);
		assert_int_equal(stat(cpath, &sc), 0);
		assert_true(so.st_ino != sc.st_ino);
		assert_int_equal(so.st_nlink, 1);
	}
	/* a cache others could write, or a symlink to a good one: not used */
	assert_int_equal(rename(cpath, other), 0);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0); /* a good cache again */
	nf_state_free(&s);
	assert_int_equal(chmod(cpath, 0666), 0);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	nf_state_free(&s);
	assert_int_equal(rename(cpath, other), 0);
	assert_int_equal(chmod(other, 0600), 0);
	assert_int_equal(symlink(other, cpath), 0);
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_null(s.frozen);
	nf_state_free(&s);
	/* (that parse replaced the symlink with a cache of its own) */
	assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
	assert_non_null(s.frozen);
	nf_state_free(&s);
	/* a cache cut short (in its header, in its body) or with a byte of
	 * its body changed: parsed instead, and made again */
	for (int k = 0; k < 3; k++) {
		struct stat st;
		assert_int_equal(stat(cpath, &st), 0);
		if (k < 2) {
			assert_int_equal(truncate(cpath, k ? st.st_size - 1 : 20), 0);
		} else {
			int fd = open(cpath, O_WRONLY);
			assert_true(fd >= 0);
			assert_int_equal(pwrite(fd, "\x5a", 1, st.st_size - 3), 1);
			close(fd);
		}
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_null(s.frozen);
		assert_int_equal(s.npods, 1);
		nf_state_free(&s);
		assert_int_equal(nf_state_load_fast(path, &s, &err), 0);
		assert_non_null(s.frozen);
		assert_int_equal(s.npods, 1);
		nf_state_free(&s);
	}

	unlink(other);
	unlink(cpath);
	unlink(path);
	assert_int_equal(rmdir_state(dir), 0);
}

/* v1 Pod registrations: labels and containerPorts, validated */
static void test_podspec(void **state)
{
	static const char *const bad[][2] = {
		{"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":0}]}]}}",
		 "spec.containers[0].ports[0].containerPort"},
		{"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":80,\"protocol\":\"ICMP\"}]}]}}",
		 "\"ICMP\""},
		{"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":80,\"name\":\"Web_Port\"}]}]}}",
		 "\"Web_Port\""},
		{"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":80,\"name\":\"web\"}]},"
		 "{\"ports\":[{\"containerPort\":81,\"name\":\"web\"}]}]}}",
		 "duplicate value \"web\""},
		{"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"labels\":{\"k\":\"a b\"}}}", "\"a b\""},
		{"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":{}}}", "spec.containers"},
	};
	struct nf_podspec p = {0};
	struct nf_error err = {0};
	json_t *o;

	o = J("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"labels\":{\"pod\":\"a\"}},"
	      "\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":80,\"name\":\"serve-80-tcp\"},"
	      "{\"containerPort\":81,\"protocol\":\"UDP\"}]}]}}");
	assert_int_equal(nf_podspec_from_json(o, "x", &p, &err), 0);
	assert_string_equal(p.ns, "x");
	assert_string_equal(p.name, "a");
	assert_string_equal(nf_labels_get(&p.labels, "pod"), "a");
	assert_int_equal(p.nports, 2);
	assert_string_equal(p.ports[0].name, "serve-80-tcp");
	assert_int_equal(p.ports[0].proto, NF_PROTO_TCP);
	assert_null(p.ports[1].name);
	assert_int_equal(p.ports[1].proto, NF_PROTO_UDP);
	assert_string_equal(json_string_value(json_object_get(json_object_get(p.obj, "metadata"), "namespace")), "x");
	nf_podspec_free(&p);
	json_decref(o);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = J(bad[i][0]);
		if (nf_podspec_from_json(o, "x", &p, &err) >= 0 || !strstr(err.msg, bad[i][1]))
			fail_msg("case %zu: %s", i, err.msg);
		json_decref(o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_contains),
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_dns1123),
		cmocka_unit_test(test_label_key_value),
		cmocka_unit_test(test_labels_sorted),
		cmocka_unit_test(test_labels_json),
		cmocka_unit_test(test_selector_parse_format),
		cmocka_unit_test(test_selector_errors),
		cmocka_unit_test(test_selector_matches),
		cmocka_unit_test(test_policy_seed),
		cmocka_unit_test(test_policy_namespace),
		cmocka_unit_test(test_policy_types),
		cmocka_unit_test(test_policy_rules),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_policy_unknown_fields_ignored),
		cmocka_unit_test(test_namespace),
		cmocka_unit_test(test_pod_roundtrip),
		cmocka_unit_test(test_pod_errors),
		cmocka_unit_test(test_state_namespace_labels),
		cmocka_unit_test(test_state_save_pods),
		cmocka_unit_test(test_state_mapped),
		cmocka_unit_test(test_cache_names_its_file),
		cmocka_unit_test(test_state_stage),
		cmocka_unit_test(test_state_model_cache),
		cmocka_unit_test(test_state_pods_stay_put),
		cmocka_unit_test(test_state_idle),
		cmocka_unit_test(test_state_pod_records),
		cmocka_unit_test(test_state_pods_pieces_random),
		cmocka_unit_test(test_state_synced),
		cmocka_unit_test(test_podspec),
	};

	return cmocka_run_group_tests(tests, NULL, test_tmpdirs_teardown);
}
