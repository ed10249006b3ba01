/* CNI input (config, prevResult, CNI_ARGS) and the state file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tmpdirs.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../../netconf/cni.h"
#include "../../netconf/manifest.h"
#include "../../netconf/state.h"

static char *slurp(const char *rel, size_t *len)
{
	char path[1024];
	char *buf = NULL;
	struct nf_error err = {0};

	snprintf(path, sizeof(path), "%s/%s", SRCDIR, rel);
	assert_int_equal(nf_read_file(path, &buf, len, &err), 0);
	return buf;
}

static void test_conf_bridge(void **state)
{
	size_t len;
	char *buf = slurp("testdata/cni/add-bridge-1.0.0.json", &len);
	struct nf_cni_conf c = {0};
	struct nf_prev_result pr = {0};
	struct nf_error err = {0};
	char a[64];

	assert_int_equal(nf_cni_conf_parse(buf, len, &c, &err), 0);
	assert_string_equal(c.cni_version, "1.0.0");
	assert_string_equal(c.state_file, "/var/lib/netfence/state.json");
	assert_true(c.has_arg_labels);
	assert_string_equal(nf_labels_get(&c.arg_labels, "app"), "foo");
	assert_string_equal(nf_labels_get(&c.arg_labels, "tier"), "backend");
	assert_non_null(c.prev_result);
	assert_int_equal(nf_prev_result_parse(c.prev_result, "eth0", &pr, &err), 0);
	/* the bridge and the host veth both lack "sandbox" */
	assert_int_equal(pr.nhost, 2);
	assert_string_equal(pr.host_ifaces[0], "cni0");
	assert_string_equal(pr.host_ifaces[1], "veth1c2d3e4f");
	assert_int_equal(pr.naddrs, 2);
	nf_cidr_format(&pr.addrs[0], a, sizeof(a));
	assert_string_equal(a, "10.244.0.2/24");
	nf_cidr_format(&pr.addrs[1], a, sizeof(a));
	assert_string_equal(a, "fd00:10:244::2/64");
	nf_prev_result_free(&pr);
	nf_cni_conf_free(&c);
	free(buf);
}

/* an address on the host side (index 0) is not the pod's */
static void test_conf_ptp(void **state)
{
	size_t len;
	char *buf = slurp("testdata/cni/add-ptp-0.4.0.json", &len);
	struct nf_cni_conf c = {0};
	struct nf_prev_result pr = {0};
	struct nf_error err = {0};
	char a[64];

	assert_int_equal(nf_cni_conf_parse(buf, len, &c, &err), 0);
	assert_string_equal(c.state_file, NF_DEFAULT_STATE_FILE);
	assert_int_equal(c.idle_kinds, NF_DEFAULT_IDLE_KINDS);
	assert_false(c.has_arg_labels);
	assert_int_equal(nf_prev_result_parse(c.prev_result, "eth0", &pr, &err), 0);
	assert_int_equal(pr.nhost, 1);
	assert_int_equal(pr.naddrs, 1);
	nf_addr_format(&pr.addrs[0], a, sizeof(a));
	assert_string_equal(a, "10.1.1.5");
	nf_prev_result_free(&pr);
	/* another ifname: no address of the pod */
	assert_int_equal(nf_prev_result_parse(c.prev_result, "net1", &pr, &err), 0);
	assert_int_equal(pr.naddrs, 0);
	nf_prev_result_free(&pr);
	nf_cni_conf_free(&c);
	free(buf);
}

struct bad_conf {
	const char *json;
	int code;
	const char *needle; /* must appear in the message */
};

static void test_conf_bad(void **state)
{
	static const struct bad_conf cases[] = {
		{"{\"cniVersion\": \"1.0.0\", \"name\": \"x\"", CNI_ERR_DECODE, "invalid JSON"},
		{"[1,2]", CNI_ERR_DECODE, "must be a JSON object"},
		{"{\"name\": \"x\"}", CNI_ERR_INVALID_CONFIG, "cniVersion: missing"},
		{"{\"cniVersion\": \"0.2.0\"}", CNI_ERR_INCOMPATIBLE_VERSION, "\"0.2.0\""},
		{"{\"cniVersion\": 1}", CNI_ERR_INVALID_CONFIG, "cniVersion: must be a string, got 1"},
		{"{\"cniVersion\": \"1.0.0\", \"stateFile\": 42}", CNI_ERR_INVALID_CONFIG, "stateFile: must be a string, got 42"},
		{"{\"cniVersion\": \"1.0.0\", \"stateFile\": \"rel/state.json\"}", CNI_ERR_INVALID_CONFIG, "\"rel/state.json\""},
		{"{\"cniVersion\": \"1.0.0\", \"prevResult\": []}", CNI_ERR_INVALID_CONFIG, "prevResult: must be an object"},
		{"{\"cniVersion\": \"1.0.0\", \"args\": {\"cni\": {\"labels\": {\"app\": \"foo\"}}}}", CNI_ERR_INVALID_CONFIG, "args.cni.labels"},
		{"{\"cniVersion\": \"1.0.0\", \"args\": {\"cni\": {\"labels\": [{\"key\": \"app\", \"value\": \"a b\"}]}}}",
		 CNI_ERR_INVALID_CONFIG, "args.cni.labels[0].value"},
		{"{\"cniVersion\": \"1.0.0\", \"cniVersion\": \"1.0.0\"}", CNI_ERR_DECODE, "duplicate"},
		{"{\"cniVersion\": \"1.0.0\", \"idleKindChains\": -1}", CNI_ERR_INVALID_CONFIG,
		 "idleKindChains: must be a whole number from 0 to 1024, got -1"},
		{"{\"cniVersion\": \"1.0.0\", \"idleKindChains\": 1025}", CNI_ERR_INVALID_CONFIG, "got 1025"},
		{"{\"cniVersion\": \"1.0.0\", \"idleKindChains\": \"8\"}", CNI_ERR_INVALID_CONFIG, "got \"8\""},
		{"{\"cniVersion\": \"1.0.0\", \"idleKindChains\": 2.5}", CNI_ERR_INVALID_CONFIG, "got 2.5"},
		{"{\"cniVersion\": \"1.0.0\", \"idleKindChains\": true}", CNI_ERR_INVALID_CONFIG, "got true"},
		{"{\"cniVersion\": \"1.0.0\", \"idleKindChains\": null}", CNI_ERR_INVALID_CONFIG, "got null"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nf_cni_conf c = {0};
		struct nf_error err = {0};
		int r = nf_cni_conf_parse(cases[i].json, strlen(cases[i].json), &c, &err);
		if (r >= 0 || err.code != cases[i].code || !strstr(err.msg, cases[i].needle))
			fail_msg("case %zu (%s): r=%d code=%d msg=%s", i, cases[i].json, r, err.code, err.msg);
	}
	/* idleKindChains at its bounds */
	for (int v = 0; v <= NF_MAX_IDLE_KINDS; v += NF_MAX_IDLE_KINDS) {
		struct nf_cni_conf c = {0};
		struct nf_error err = {0};
		char json[96];
		snprintf(json, sizeof(json), "{\"cniVersion\": \"1.0.0\", \"idleKindChains\": %d}", v);
		assert_int_equal(nf_cni_conf_parse(json, strlen(json), &c, &err), 0);
		assert_int_equal(c.idle_kinds, (size_t)v);
		nf_cni_conf_free(&c);
	}
}

static void test_bad_prev_result(void **state)
{
	static const char *const cases[][2] = {
		{"{\"interfaces\": {}}", "prevResult.interfaces"},
		{"{\"interfaces\": [{\"mac\": \"x\"}]}", "prevResult.interfaces[0].name"},
		{"{\"ips\": [{\"address\": 7}]}", "prevResult.ips[0].address"},
		{"{\"ips\": [{\"address\": \"10.0.0.300/24\"}]}", "10.0.0.300/24"},
		{"{\"ips\": [{\"address\": \"10.0.0.3/24\", \"interface\": \"0\"}]}", "prevResult.ips[0].interface"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *pr = json_loads(cases[i][0], 0, NULL);
		struct nf_prev_result res = {0};
		struct nf_error err = {0};
		assert_non_null(pr);
		if (nf_prev_result_parse(pr, "eth0", &res, &err) >= 0 || !strstr(err.msg, cases[i][1]) ||
		    err.code != CNI_ERR_INVALID_CONFIG)
			fail_msg("case %zu: msg=%s code=%d", i, err.msg, err.code);
		json_decref(pr);
	}
}

static void test_args(void **state)
{
	struct nf_cni_args a = {0};
	struct nf_error err = {0};

	assert_int_equal(nf_cni_args_parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns-1;"
					   "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_LABELS=k8s-app:kube-dns,tier:",
					   &a, &err), 0);
	assert_string_equal(a.pod_ns, "kube-system");
	assert_string_equal(a.pod_name, "dns-1");
	assert_true(a.has_labels);
	assert_int_equal(a.labels.n, 2);
	assert_string_equal(nf_labels_get(&a.labels, "k8s-app"), "kube-dns");
	assert_string_equal(nf_labels_get(&a.labels, "tier"), "");
	nf_cni_args_free(&a);

	assert_int_equal(nf_cni_args_parse(NULL, &a, &err), 0);
	assert_null(a.pod_ns);
	assert_false(a.has_labels);
	nf_cni_args_free(&a);

	assert_true(nf_cni_args_parse("K8S_POD_LABELS=app=foo", &a, &err) < 0);
	assert_int_equal(err.code, CNI_ERR_INVALID_ENV);
	assert_non_null(strstr(err.msg, "\"app=foo\" is not key:value"));
	assert_true(nf_cni_args_parse("IgnoreUnknown", &a, &err) < 0);
	assert_non_null(strstr(err.msg, "invalid pair \"IgnoreUnknown\""));
	assert_true(nf_cni_args_parse("K8S_POD_NAMESPACE=Bad_NS", &a, &err) < 0);
	assert_non_null(strstr(err.msg, "Bad_NS"));
	assert_true(nf_cni_args_parse("K8S_POD_LABELS=app:foo bar", &a, &err) < 0);
	assert_non_null(strstr(err.msg, "foo bar"));
}

static void test_state_roundtrip(void **state)
{
	char dir[] = "/tmp/nf-state-XXXXXX", path[256], body[4096];
	struct nf_state s = {0}, back = {0};
	struct nf_state_lock lock = {-1};
	struct nf_error err = {0};
	struct nf_pod pod = {0};
	json_t *pj;
	struct stat st;
	FILE *f;

	assert_non_null(test_mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/state.json", dir);
	assert_int_equal(nf_state_lock(path, &lock, &err), 0);
	/* a missing file is an empty state */
	assert_int_equal(nf_state_load(path, &s, &err), 0);
	assert_int_equal(s.npods, 0);
	pj = json_loads("{\"containerID\":\"c1\",\"ifname\":\"eth0\",\"namespace\":\"default\",\"name\":\"foo\","
			"\"labels\":{\"app\":\"foo\"},\"hostVeth\":\"veth1\",\"ips\":[\"10.244.0.2/24\"]}", 0, NULL);
	assert_int_equal(nf_pod_from_json(pj, &pod, &err), 0);
	json_decref(pj);
	assert_int_equal(nf_state_put_pod(&s, &pod), NF_PUT_CREATED);
	assert_int_equal(nf_state_save(path, &s, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(body, sizeof(body), "%s/sub", dir);
	assert_int_equal(stat(body, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(nf_state_load(path, &back, &err), 0);
	assert_int_equal(back.npods, 1);
	assert_string_equal(back.pods[0].name, "foo");
	assert_string_equal(back.pods[0].host_veth, "veth1");
	assert_non_null(nf_state_find_pod(&back, "c1", "eth0"));
	assert_null(nf_state_find_pod(&back, "c1", "eth1"));
	assert_true(nf_state_remove_pod(&back, "c1", "eth0"));
	assert_false(nf_state_remove_pod(&back, "c1", "eth0"));
	nf_state_free(&back);
	nf_state_free(&s);
	nf_state_unlock(&lock);

	/* corrupt: the error names the file and the position */
	f = fopen(path, "w");
	fputs("{\"pods\": [", f);
	fclose(f);
	assert_true(nf_state_load(path, &s, &err) < 0);
	assert_int_equal(err.code, NF_ERR_STATE);
	assert_non_null(strstr(err.msg, path));
	/* a wrong type inside names the record */
	f = fopen(path, "w");
	fputs("{\"pods\": [{\"containerID\": 5}]}", f);
	fclose(f);
	assert_true(nf_state_load(path, &s, &err) < 0);
	assert_int_equal(err.code, NF_ERR_STATE);
	assert_non_null(strstr(err.msg, "pods[0]"));

	snprintf(body, sizeof(body), "rm -rf '%s'", dir);
	assert_int_equal(system(body), 0);
}

static void test_gc_attachments(void **state)
{
	static const char *good = "{\"cniVersion\":\"1.1.0\",\"name\":\"n\",\"cni.dev/valid-attachments\":"
				  "[{\"containerID\":\"c1\",\"ifname\":\"eth0\"},{\"containerID\":\"c2\",\"ifname\":\"net1\"}]}";
	static const char *bad = "{\"cniVersion\":\"1.1.0\",\"cni.dev/valid-attachments\":[{\"containerID\":3}]}";
	struct nf_cni_conf c = {0};
	struct nf_error err = {0};

	assert_int_equal(nf_cni_conf_parse(good, strlen(good), &c, &err), 0);
	assert_true(c.has_valid_attachments);
	assert_int_equal(c.nvalid, 2);
	assert_string_equal(c.valid[1].container_id, "c2");
	assert_string_equal(c.valid[1].ifname, "net1");
	nf_cni_conf_free(&c);
	assert_true(nf_cni_conf_parse(bad, strlen(bad), &c, &err) < 0);
	assert_non_null(strstr(err.msg, "cni.dev/valid-attachments[0]"));
	assert_true(nf_cni_version_supported("1.1.0"));
}

/* The state decides what pods may send: a symlink, or a file others can
 * write, is refused. */
static void test_state_refused(void **state)
{
	char dir[] = "/tmp/nf-sec-XXXXXX", path[256], target[256], cmd[512];
	struct nf_state s = {0};
	struct nf_error err = {0};
	FILE *f;

	assert_non_null(test_mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.json", dir);
	snprintf(target, sizeof(target), "%s/elsewhere.json", dir);
	f = fopen(target, "w");
	fputs("{}", f);
	fclose(f);
	assert_int_equal(chmod(target, 0600), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_true(nf_state_load(path, &s, &err) < 0);
	assert_int_equal(err.code, NF_ERR_STATE);
	assert_non_null(strstr(err.msg, "symbolic link"));
	/* saving replaces the link itself, never writes through it */
	assert_int_equal(nf_state_save(path, &s, &err), 0);
	f = fopen(target, "r");
	assert_int_equal(fgetc(f), '{');
	assert_int_equal(fgetc(f), '}');
	fclose(f);
	assert_int_equal(nf_state_load(path, &s, &err), 0);
	nf_state_free(&s);
	/* group- or world-writable */
	assert_int_equal(chmod(path, 0666), 0);
	assert_true(nf_state_load(path, &s, &err) < 0);
	assert_non_null(strstr(err.msg, "mode 0666"));
	assert_int_equal(chmod(path, 0620), 0);
	assert_true(nf_state_load(path, &s, &err) < 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_bridge),
		cmocka_unit_test(test_conf_ptp),
		cmocka_unit_test(test_conf_bad),
		cmocka_unit_test(test_bad_prev_result),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_gc_attachments),
		cmocka_unit_test(test_state_refused),
	};
	return cmocka_run_group_tests_name("cni", tests, NULL, test_tmpdirs_teardown);
}
