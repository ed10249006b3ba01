#include "cni.h"

#include <errno.h>
#include <string.h>

static const char *const supported_versions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

bool nf_cni_version_supported(const char *v)
{
	for (size_t i = 0; i < NF_ARRAY_SIZE(supported_versions); i++)
		if (strcmp(v, supported_versions[i]) == 0)
			return true;
	return false;
}

json_t *nf_cni_supported_versions(void)
{
	json_t *a = json_array();
	for (size_t i = 0; i < NF_ARRAY_SIZE(supported_versions); i++)
		json_array_append_new(a, json_string(supported_versions[i]));
	return a;
}

void nf_cni_conf_free(struct nf_cni_conf *c)
{
	if (!c)
		return;
	free(c->cni_version);
	free(c->name);
	free(c->state_file);
	json_decref(c->prev_result);
	nf_labels_free(&c->arg_labels);
	for (size_t i = 0; i < c->nvalid; i++) {
		free(c->valid[i].container_id);
		free(c->valid[i].ifname);
	}
	free(c->valid);
	memset(c, 0, sizeof(*c));
}

/* Optional string member: absent or null -> *out stays NULL. */
static int opt_string(const json_t *obj, const char *key, const char *path, char **out,
		      struct nf_error *err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		_cleanup_free_ char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				    "%s: must be a string, got %.200s", path, dump ? dump : "?");
	}
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static int parse_arg_labels(const json_t *root, struct nf_cni_conf *c, struct nf_error *err)
{
	const json_t *args = json_object_get(root, "args"), *cni, *labels;
	size_t i;
	json_t *item;

	if (!args || json_is_null(args))
		return 0;
	if (!json_is_object(args))
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "args: must be an object");
	cni = json_object_get(args, "cni");
	if (!cni || json_is_null(cni))
		return 0;
	if (!json_is_object(cni))
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "args.cni: must be an object");
	labels = json_object_get(cni, "labels");
	if (!labels || json_is_null(labels))
		return 0;
	if (!json_is_array(labels))
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				    "args.cni.labels: must be an array of {\"key\",\"value\"}");
	c->has_arg_labels = true;
	json_array_foreach(labels, i, item) {
		const json_t *k = json_object_get(item, "key"), *v = json_object_get(item, "value");
		char field[64];
		int r;

		snprintf(field, sizeof(field), "args.cni.labels[%zu]", i);
		if (!json_is_object(item) || !json_is_string(k) || !json_is_string(v))
			return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
					    "%s: must be {\"key\": string, \"value\": string}", field);
		strcat(field, ".key");
		r = nf_label_key_validate(json_string_value(k), field, err);
		if (r < 0)
			goto bad;
		snprintf(field, sizeof(field), "args.cni.labels[%zu].value", i);
		r = nf_label_value_validate(json_string_value(v), field, err);
		if (r < 0)
			goto bad;
		if (nf_labels_set(&c->arg_labels, json_string_value(k), json_string_value(v)) < 0)
			return -ENOMEM;
		continue;
	bad:
		err->code = CNI_ERR_INVALID_CONFIG;
		return r;
	}
	return 0;
}

/* GC (CNI 1.1): the attachments the runtime still has. */
static int parse_valid_attachments(const json_t *root, struct nf_cni_conf *c, struct nf_error *err)
{
	const json_t *list = json_object_get(root, "cni.dev/valid-attachments");
	json_t *item;
	size_t i;

	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				    "cni.dev/valid-attachments: must be an array of {\"containerID\", \"ifname\"}");
	c->has_valid_attachments = true;
	c->valid = calloc(json_array_size(list) + 1, sizeof(*c->valid));
	if (!c->valid)
		return -ENOMEM;
	json_array_foreach(list, i, item) {
		const json_t *cid = json_object_get(item, "containerID"), *ifn = json_object_get(item, "ifname");
		if (!json_is_object(item) || !json_is_string(cid) || !json_is_string(ifn))
			return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
					    "cni.dev/valid-attachments[%zu]: must be {\"containerID\": string, \"ifname\": string}", i);
		c->valid[c->nvalid].container_id = strdup(json_string_value(cid));
		c->valid[c->nvalid].ifname = strdup(json_string_value(ifn));
		c->nvalid++;
		if (!c->valid[c->nvalid - 1].container_id || !c->valid[c->nvalid - 1].ifname)
			return -ENOMEM;
	}
	return 0;
}

static int parse_idle_kinds(const json_t *root, struct nf_cni_conf *c, struct nf_error *err)
{
	const json_t *v = json_object_get(root, "idleKindChains");
	char *text;

	c->idle_kinds = NF_DEFAULT_IDLE_KINDS;
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= NF_MAX_IDLE_KINDS) {
		c->idle_kinds = (size_t)json_integer_value(v);
		return 0;
	}
	text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
		     "idleKindChains: must be a whole number from 0 to %d, got %.64s", NF_MAX_IDLE_KINDS,
		     text ? text : "another value");
	free(text);
	return -EINVAL;
}

int nf_cni_conf_parse(const char *buf, size_t len, struct nf_cni_conf *out, struct nf_error *err)
{
	struct nf_cni_conf c = {0};
	json_error_t jerr;
	json_t *root;
	const json_t *pr;
	int r;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
				    "network config on stdin: invalid JSON at line %d column %d: %s%s",
				    jerr.line, jerr.column, jerr.text, nf_json_error_hint(jerr.text));
	if (!json_is_object(root)) {
		r = nf_error_set(err, EINVAL, CNI_ERR_DECODE, "network config on stdin: must be a JSON object");
		goto fail;
	}
	if ((r = opt_string(root, "cniVersion", "cniVersion", &c.cni_version, err)) < 0 ||
	    (r = opt_string(root, "name", "name", &c.name, err)) < 0 ||
	    (r = opt_string(root, "stateFile", "stateFile", &c.state_file, err)) < 0)
		goto fail;
	if (!c.cni_version) {
		r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "cniVersion: missing");
		goto fail;
	}
	if (!nf_cni_version_supported(c.cni_version)) {
		r = nf_error_set(err, EINVAL, CNI_ERR_INCOMPATIBLE_VERSION,
				 "cniVersion: \"%s\" is not supported (netfence speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
				 c.cni_version);
		goto fail;
	}
	if (c.state_file && strlen(c.state_file) >= 4000) {
		r = nf_error_set(err, ENAMETOOLONG, CNI_ERR_INVALID_CONFIG,
				 "stateFile: \"%.64s...\" is too long (%zu bytes; at most 3999)", c.state_file,
				 strlen(c.state_file));
		goto fail;
	}
	if (c.state_file && c.state_file[0] != '/') {
		r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				 "stateFile: \"%s\" must be an absolute path", c.state_file);
		goto fail;
	}
	if (!c.state_file && !(c.state_file = strdup(NF_DEFAULT_STATE_FILE))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = parse_idle_kinds(root, &c, err)) < 0)
		goto fail;
	pr = json_object_get(root, "prevResult");
	if (pr && !json_is_null(pr)) {
		if (!json_is_object(pr)) {
			r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "prevResult: must be an object");
			goto fail;
		}
		c.prev_result = json_incref((json_t *)pr);
	}
	if ((r = parse_arg_labels(root, &c, err)) < 0 || (r = parse_valid_attachments(root, &c, err)) < 0)
		goto fail;
	json_decref(root);
	*out = c;
	return 0;
fail:
	json_decref(root);
	nf_cni_conf_free(&c);
	return r;
}

void nf_cni_args_free(struct nf_cni_args *a)
{
	if (!a)
		return;
	free(a->pod_ns);
	free(a->pod_name);
	nf_labels_free(&a->labels);
	memset(a, 0, sizeof(*a));
}

/* K8S_POD_LABELS=app:foo,tier:web. ':' separates key and value because a
 * second '=' makes every Go plugin in the chain reject the whole CNI_ARGS. */
static int parse_labels_arg(const char *s, struct nf_labels *out, struct nf_error *err)
{
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL, *tok;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		int r;

		if (!colon)
			return nf_error_set(err, EINVAL, CNI_ERR_INVALID_ENV,
					    "CNI_ARGS K8S_POD_LABELS: \"%s\" is not key:value", tok);
		*colon = '\0';
		if ((r = nf_label_key_validate(tok, "CNI_ARGS K8S_POD_LABELS key", err)) < 0 ||
		    (r = nf_label_value_validate(colon + 1, "CNI_ARGS K8S_POD_LABELS value", err)) < 0) {
			err->code = CNI_ERR_INVALID_ENV;
			return r;
		}
		if (nf_labels_set(out, tok, colon + 1) < 0)
			return -ENOMEM;
	}
	return 0;
}

int nf_cni_args_parse(const char *s, struct nf_cni_args *out, struct nf_error *err)
{
	struct nf_cni_args a = {0};
	_cleanup_free_ char *copy = NULL;
	char *save = NULL, *pair;
	int r = 0;

	if (!s || !*s) {
		*out = a;
		return 0;
	}
	if (!(copy = strdup(s)))
		return -ENOMEM;
	for (pair = strtok_r(copy, ";", &save); pair; pair = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(pair, '=');
		const char *val;

		if (!eq || eq == pair) {
			r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_ENV,
					 "CNI_ARGS: invalid pair \"%s\" (want KEY=VALUE)", pair);
			goto fail;
		}
		*eq = '\0';
		val = eq + 1;
		if (strcmp(pair, "K8S_POD_NAMESPACE") == 0) {
			if (*val && (r = nf_dns1123_label_validate(val, "CNI_ARGS K8S_POD_NAMESPACE", err)) < 0)
				goto bad_env;
			free(a.pod_ns);
			a.pod_ns = *val ? strdup(val) : NULL;
		} else if (strcmp(pair, "K8S_POD_NAME") == 0) {
			if (*val && (r = nf_dns1123_subdomain_validate(val, "CNI_ARGS K8S_POD_NAME", err)) < 0)
				goto bad_env;
			free(a.pod_name);
			a.pod_name = *val ? strdup(val) : NULL;
		} else if (strcmp(pair, "K8S_POD_LABELS") == 0) {
			a.has_labels = true;
			nf_labels_free(&a.labels);
			if ((r = parse_labels_arg(val, &a.labels, err)) < 0)
				goto fail;
		}
		/* other keys (IgnoreUnknown, K8S_POD_UID, ...) are not ours */
	}
	*out = a;
	return 0;
bad_env:
	err->code = CNI_ERR_INVALID_ENV;
fail:
	nf_cni_args_free(&a);
	return r;
}

void nf_prev_result_free(struct nf_prev_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nhost; i++)
		free(r->host_ifaces[i]);
	free(r->host_ifaces);
	free(r->addrs);
	memset(r, 0, sizeof(*r));
}

int nf_prev_result_parse(const json_t *pr, const char *ifname, struct nf_prev_result *out,
			 struct nf_error *err)
{
	struct nf_prev_result res = {0};
	const json_t *ifaces = json_object_get(pr, "interfaces"), *ips = json_object_get(pr, "ips");
	size_t nifaces = 0, i;
	json_t *item;
	int r, pod_idx = -1;

	if (ifaces && !json_is_array(ifaces))
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "prevResult.interfaces: must be an array");
	if (ips && !json_is_array(ips))
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "prevResult.ips: must be an array");
	nifaces = ifaces ? json_array_size(ifaces) : 0;
	res.host_ifaces = calloc(nifaces + 1, sizeof(char *));
	res.addrs = calloc((ips ? json_array_size(ips) : 0) + 1, sizeof(struct nf_cidr));
	if (!res.host_ifaces || !res.addrs) {
		r = -ENOMEM;
		goto fail;
	}
	json_array_foreach(ifaces, i, item) {
		const json_t *name = json_object_get(item, "name"), *sb = json_object_get(item, "sandbox");

		if (!json_is_object(item) || !json_is_string(name)) {
			r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
					 "prevResult.interfaces[%zu].name: must be a string", i);
			goto fail;
		}
		if (sb && !json_is_null(sb) && !json_is_string(sb)) {
			r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
					 "prevResult.interfaces[%zu].sandbox: must be a string", i);
			goto fail;
		}
		if (sb && json_is_string(sb) && json_string_length(sb) > 0) {
			if (strcmp(json_string_value(name), ifname) == 0)
				pod_idx = (int)i;
		} else if (!(res.host_ifaces[res.nhost++] = strdup(json_string_value(name)))) {
			r = -ENOMEM;
			goto fail;
		}
	}
	json_array_foreach(ips, i, item) {
		const json_t *addr = json_object_get(item, "address"), *idx = json_object_get(item, "interface");
		char field[64];

		snprintf(field, sizeof(field), "prevResult.ips[%zu].address", i);
		if (!json_is_object(item) || !json_is_string(addr)) {
			r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "%s: must be a string", field);
			goto fail;
		}
		if (idx && !json_is_null(idx) && !json_is_integer(idx)) {
			r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
					 "prevResult.ips[%zu].interface: must be an integer", i);
			goto fail;
		}
		/* An ip without "interface" cannot be tied to an interface: take it
		 * as the pod's, which only widens the anti-spoofing allow-list to
		 * an address the main plugin gave this attachment. */
		if (json_is_integer(idx) && json_integer_value(idx) != pod_idx)
			continue;
		if ((r = nf_cidr_parse(json_string_value(addr), false, false, &res.addrs[res.naddrs], field, err)) < 0) {
			err->code = CNI_ERR_INVALID_CONFIG;
			goto fail;
		}
		res.naddrs++;
	}
	*out = res;
	return 0;
fail:
	nf_prev_result_free(&res);
	return r;
}
