/* NetworkPolicy, Namespace and pod records: JSON -> model, validated as the
 * API server validates them (k8s.io/kubernetes/pkg/apis/networking/validation). */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PATH_MAX_LEN 1024


/* A member that is absent or null is "not set", as Go's JSON decoder has it. */
static const json_t *member(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

static int want_type(const json_t *v, json_type t, const char *path, int code,
		     struct nf_error *err)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
		[JSON_STRING] = "a string",  [JSON_INTEGER] = "an integer",
	};

	if (json_typeof(v) == t)
		return 0;
	return nf_error_set(err, EINVAL, code, "%s: expected %s, got %s", path,
			    t < NF_ARRAY_SIZE(names) && names[t] ? names[t] : "another type",
			    nf_json_type_name(v));
}

/* Optional string member: *out is NULL when absent. */
static int opt_string(const json_t *obj, const char *key, const char *prefix, const char **out,
		      int code, struct nf_error *err)
{
	const json_t *v = member(obj, key);
	char path[PATH_MAX_LEN];

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v)) {
		nf_pathf(path, sizeof(path), "%s%s", prefix, key);
		return want_type(v, JSON_STRING, path, code, err);
	}
	*out = json_string_value(v);
	return 0;
}

static int req_string(const json_t *obj, const char *key, const char *prefix, const char **out,
		      int code, struct nf_error *err)
{
	int r = opt_string(obj, key, prefix, out, code, err);

	if (r < 0)
		return r;
	if (!*out || !**out)
		return nf_error_set(err, EINVAL, code, "%s%s: required value", prefix, key);
	return 0;
}

static int expect_kind(const json_t *obj, const char *api_version, const char *kind,
		       struct nf_error *err)
{
	const char *av, *k;
	int r;

	if (!json_is_object(obj))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an object, got %s",
				    kind, nf_json_type_name(obj));
	r = req_string(obj, "apiVersion", "", &av, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	r = req_string(obj, "kind", "", &k, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	if (strcmp(k, kind) != 0)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "kind: unsupported value \"%.256s\": expected \"%s\"", k, kind);
	if (strcmp(av, api_version) != 0)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "apiVersion: unsupported value \"%.256s\" for kind %s: expected \"%s\"",
				    av, kind, api_version);
	return 0;
}

/* ---- NetworkPolicy ---- */

static void peer_free(struct nf_peer *p)
{
	nf_selector_free(&p->pod_sel);
	nf_selector_free(&p->ns_sel);
	free(p->ipblock.except);
	free(p->key);
}

static void rule_free(struct nf_rule *r)
{
	for (size_t i = 0; i < r->npeers; i++)
		peer_free(&r->peers[i]);
	free(r->peers);
	for (size_t i = 0; i < r->nports; i++)
		free(r->ports[i].name);
	free(r->ports);
	free(r->id);
}

static char *peer_key(const char *ns, const struct nf_peer *peer)
{
	_cleanup_free_ char *pods = NULL, *nss = NULL;
	char *key = NULL, buf[INET6_ADDRSTRLEN + 8];
	size_t len = 0;
	FILE *f;
	int r;

	if (peer->kind == NF_PEER_IPBLOCK) {
		if (!(f = open_memstream(&key, &len)))
			return NULL;
		nf_cidr_format(&peer->ipblock.cidr, buf, sizeof(buf));
		fprintf(f, "ipBlock %s", buf);
		for (size_t i = 0; i < peer->ipblock.nexcept; i++) {
			nf_cidr_format(&peer->ipblock.except[i], buf, sizeof(buf));
			fprintf(f, "%s%s", i ? "," : " except ", buf);
		}
		fclose(f);
		return key;
	}
	pods = peer->has_pod_sel ? nf_selector_format(&peer->pod_sel) : strdup("");
	nss = peer->has_ns_sel ? nf_selector_format(&peer->ns_sel) : NULL;
	if (!pods || (peer->has_ns_sel && !nss))
		return NULL;
	if (peer->has_ns_sel)
		r = asprintf(&key, "namespaces(%s) pods(%s)", nss, pods);
	else
		r = asprintf(&key, "namespace %s pods(%s)", ns, pods);
	return r < 0 ? NULL : key;
}

/* The keys of a parsed policy's rules and peers (struct nf_rule, nf_peer). */
static int make_keys(struct nf_policy *p)
{
	for (size_t i = 0; i < p->negress; i++) {
		struct nf_rule *ru = &p->egress_rules[i];
		if (asprintf(&ru->id, "%s/%s egress[%zu]", p->ns, p->name, i) < 0) {
			ru->id = NULL;
			return -ENOMEM;
		}
		for (size_t j = 0; j < ru->npeers; j++) {
			struct nf_peer *pe = &ru->peers[j];
			if (!(pe->key = peer_key(p->ns, pe)))
				return -ENOMEM;
			pe->key_hash = nf_fnv1a64(pe->key);
		}
	}
	return 0;
}

uint64_t nf_fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void nf_policy_free(struct nf_policy *p)
{
	if (!p)
		return;
	free(p->ns);
	free(p->name);
	nf_selector_free(&p->pod_sel);
	for (size_t i = 0; i < p->negress; i++)
		rule_free(&p->egress_rules[i]);
	free(p->egress_rules);
	json_decref(p->obj);
	memset(p, 0, sizeof(*p));
}

static int ipblock_from_json(const json_t *obj, struct nf_ipblock *out, const char *field,
			     struct nf_error *err)
{
	struct nf_ipblock b = { 0 };
	const json_t *jexc, *v;
	const char *cidr;
	char path[PATH_MAX_LEN], prefix[PATH_MAX_LEN];
	size_t i;
	int r;

	r = want_type(obj, JSON_OBJECT, field, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	nf_pathf(prefix, sizeof(prefix), "%s.", field);
	r = req_string(obj, "cidr", prefix, &cidr, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	nf_pathf(path, sizeof(path), "%s.cidr", field);
	r = nf_cidr_parse(cidr, false, true, &b.cidr, path, err);
	if (r < 0)
		return r;

	jexc = member(obj, "except");
	nf_pathf(path, sizeof(path), "%s.except", field);
	if (jexc) {
		r = want_type(jexc, JSON_ARRAY, path, NF_ERR_POLICY, err);
		if (r < 0)
			return r;
		if (json_array_size(jexc)) {
			b.except = calloc(json_array_size(jexc), sizeof(*b.except));
			if (!b.except)
				return nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", path);
		}
	}
	json_array_foreach(jexc, i, v) {
		char epath[PATH_MAX_LEN];
		struct nf_cidr c;

		nf_pathf(epath, sizeof(epath), "%s[%zu]", path, i);
		r = want_type(v, JSON_STRING, epath, NF_ERR_POLICY, err);
		if (r < 0)
			goto fail;
		r = nf_cidr_parse(json_string_value(v), false, true, &c, epath, err);
		if (r < 0)
			goto fail;
		/* the API server: "must be a strict subset of `cidr`" */
		if (c.prefix <= b.cidr.prefix || !nf_cidr_contains(&b.cidr, &c)) {
			r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
					 "%s: invalid value \"%.256s\": must be a strict subset of cidr \"%.256s\"",
					 epath, json_string_value(v), cidr);
			goto fail;
		}
		b.except[b.nexcept++] = c;
	}
	*out = b;
	return 0;
fail:
	free(b.except);
	return r;
}

static int peer_from_json(const json_t *obj, struct nf_peer *out, const char *field,
			  struct nf_error *err)
{
	struct nf_peer p = { 0 };
	const json_t *ps, *ns, *ipb;
	char path[PATH_MAX_LEN];
	int r;

	r = want_type(obj, JSON_OBJECT, field, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	ps = member(obj, "podSelector");
	ns = member(obj, "namespaceSelector");
	ipb = member(obj, "ipBlock");
	if (!ps && !ns && !ipb)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: must specify a peer: one of podSelector, namespaceSelector or ipBlock",
				    field);
	if (ipb && (ps || ns))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: may not specify more than 1 peer: ipBlock cannot be combined with %s",
				    field, ps ? "podSelector" : "namespaceSelector");
	if (ipb) {
		p.kind = NF_PEER_IPBLOCK;
		nf_pathf(path, sizeof(path), "%s.ipBlock", field);
		r = ipblock_from_json(ipb, &p.ipblock, path, err);
		if (r < 0)
			return r;
		*out = p;
		return 0;
	}
	p.kind = NF_PEER_SELECTOR;
	if (ps) {
		nf_pathf(path, sizeof(path), "%s.podSelector", field);
		r = nf_selector_from_json(ps, &p.pod_sel, path, err);
		if (r < 0)
			return r;
		p.has_pod_sel = true;
	}
	if (ns) {
		nf_pathf(path, sizeof(path), "%s.namespaceSelector", field);
		r = nf_selector_from_json(ns, &p.ns_sel, path, err);
		if (r < 0) {
			peer_free(&p);
			return r;
		}
		p.has_ns_sel = true;
	}
	*out = p;
	return 0;
}

/* IANA_SVC_NAME, as validation.IsValidPortName checks it. */
static const char *port_name_problem(const char *s)
{
	size_t len = strlen(s);
	bool letter = false;

	if (len < 1 || len > 15)
		return "must be no more than 15 characters";
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'a' && c <= 'z')
			letter = true;
		else if (!(c >= '0' && c <= '9') && c != '-')
			return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
	}
	if (strstr(s, "--"))
		return "must not contain consecutive hyphens";
	if (s[0] == '-' || s[len - 1] == '-')
		return "must not begin or end with a hyphen";
	if (!letter)
		return "must contain at least one letter (a-z); a port number must be an integer, not a string";
	return NULL;
}

static int port_number(const json_t *v, const char *path, uint16_t *out, struct nf_error *err)
{
	json_int_t n;

	if (!json_is_integer(v))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an integer, got %s",
				    path, nf_json_type_name(v));
	n = json_integer_value(v);
	if (n < 1 || n > 65535)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid value %" JSON_INTEGER_FORMAT ": must be between 1 and 65535, inclusive",
				    path, n);
	*out = (uint16_t)n;
	return 0;
}

static int port_from_json(const json_t *obj, struct nf_port *out, const char *field,
			  struct nf_error *err)
{
	static const struct {
		const char *name;
		uint8_t proto;
	} protos[] = {
		{ "TCP", NF_PROTO_TCP },
		{ "UDP", NF_PROTO_UDP },
		{ "SCTP", NF_PROTO_SCTP },
	};
	struct nf_port p = { .proto = NF_PROTO_TCP };
	const json_t *jport, *jend;
	const char *proto;
	char path[PATH_MAX_LEN], prefix[PATH_MAX_LEN];
	int r;

	r = want_type(obj, JSON_OBJECT, field, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	nf_pathf(prefix, sizeof(prefix), "%s.", field);
	r = opt_string(obj, "protocol", prefix, &proto, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	if (proto) {
		size_t i;

		for (i = 0; i < NF_ARRAY_SIZE(protos); i++)
			if (strcmp(proto, protos[i].name) == 0)
				break;
		if (i == NF_ARRAY_SIZE(protos))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s.protocol: unsupported value \"%.256s\": must be one of \"TCP\", \"UDP\", \"SCTP\"",
					    field, proto);
		p.proto = protos[i].proto;
	}

	jport = member(obj, "port");
	nf_pathf(path, sizeof(path), "%s.port", field);
	if (jport && json_is_string(jport)) {
		const char *name = json_string_value(jport);
		const char *why = port_name_problem(name);

		if (why)
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: invalid port name \"%.256s\": %s", path, name, why);
		p.has_port = true;
		p.name = strdup(name);
		if (!p.name)
			return nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", path);
	} else if (jport) {
		r = port_number(jport, path, &p.port, err);
		if (r < 0)
			return r;
		p.has_port = true;
	}

	jend = member(obj, "endPort");
	nf_pathf(path, sizeof(path), "%s.endPort", field);
	if (jend) {
		r = port_number(jend, path, &p.end_port, err);
		if (r < 0)
			goto fail;
		if (!p.has_port) {
			r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
					 "%s: invalid value %u: may not be specified when port is not specified",
					 path, p.end_port);
			goto fail;
		}
		if (p.name) {
			r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
					 "%s: invalid value %u: may not be specified when port is non-numeric (\"%.256s\")",
					 path, p.end_port, p.name);
			goto fail;
		}
		if (p.end_port < p.port) {
			r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
					 "%s: invalid value %u: must be greater than or equal to port %u",
					 path, p.end_port, p.port);
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	free(p.name);
	return r;
}

static int rule_from_json(const json_t *obj, struct nf_rule *out, const char *field,
			  struct nf_error *err)
{
	struct nf_rule rule = { 0 };
	const json_t *to, *ports, *v;
	char path[PATH_MAX_LEN];
	size_t i;
	int r;

	r = want_type(obj, JSON_OBJECT, field, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	to = member(obj, "to");
	ports = member(obj, "ports");
	nf_pathf(path, sizeof(path), "%s.to", field);
	if (to && (r = want_type(to, JSON_ARRAY, path, NF_ERR_POLICY, err)) < 0)
		return r;
	nf_pathf(path, sizeof(path), "%s.ports", field);
	if (ports && (r = want_type(ports, JSON_ARRAY, path, NF_ERR_POLICY, err)) < 0)
		return r;

	if (json_array_size(to)) {
		rule.peers = calloc(json_array_size(to), sizeof(*rule.peers));
		if (!rule.peers)
			return nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
		rule.has_to = true;
	}
	json_array_foreach(to, i, v) {
		nf_pathf(path, sizeof(path), "%s.to[%zu]", field, i);
		r = peer_from_json(v, &rule.peers[rule.npeers], path, err);
		if (r < 0)
			goto fail;
		rule.npeers++;
	}
	if (json_array_size(ports)) {
		rule.ports = calloc(json_array_size(ports), sizeof(*rule.ports));
		if (!rule.ports) {
			r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
			goto fail;
		}
		rule.has_ports = true;
	}
	json_array_foreach(ports, i, v) {
		nf_pathf(path, sizeof(path), "%s.ports[%zu]", field, i);
		r = port_from_json(v, &rule.ports[rule.nports], path, err);
		if (r < 0)
			goto fail;
		rule.nports++;
	}
	*out = rule;
	return 0;
fail:
	rule_free(&rule);
	return r;
}

static int policy_types(const json_t *spec, bool *ingress, bool *egress, struct nf_error *err)
{
	const json_t *types = member(spec, "policyTypes"), *v;
	size_t i;
	int r;

	*ingress = *egress = false;
	if (types && (r = want_type(types, JSON_ARRAY, "spec.policyTypes", NF_ERR_POLICY, err)) < 0)
		return r;
	if (json_array_size(types) > 2)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "spec.policyTypes: may not specify more than two policyTypes (got %zu)",
				    json_array_size(types));
	json_array_foreach(types, i, v) {
		char path[64];
		const char *t;

		nf_pathf(path, sizeof(path), "spec.policyTypes[%zu]", i);
		r = want_type(v, JSON_STRING, path, NF_ERR_POLICY, err);
		if (r < 0)
			return r;
		t = json_string_value(v);
		if (strcmp(t, "Ingress") == 0)
			*ingress = true;
		else if (strcmp(t, "Egress") == 0)
			*egress = true;
		else
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: unsupported value \"%.256s\": must be \"Ingress\" or \"Egress\"",
					    path, t);
	}
	/* Defaulting (SetDefaults_NetworkPolicy): an empty or absent list means
	 * Ingress, plus Egress when there is at least one egress rule. Like the
	 * API server, `egress: []` alone does not make the policy an Egress one:
	 * Go sees a zero-length slice either way. */
	if (json_array_size(types) == 0) {
		*ingress = true;
		*egress = json_array_size(member(spec, "egress")) > 0;
	}
	return 0;
}

/* The stored object: the one given (shared, no copy) when it already says
 * what we would write into it, which is the case for everything loaded
 * from the state file; else a copy with metadata.namespace set. */
static json_t *stored_obj(const json_t *obj, const char *ns)
{
	const char *has = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	json_t *copy;

	if (has && strcmp(has, ns) == 0)
		return json_incref((json_t *)obj);
	copy = json_deep_copy(obj);
	if (copy && json_object_set_new(json_object_get(copy, "metadata"), "namespace", json_string(ns)) < 0) {
		json_decref(copy);
		return NULL;
	}
	return copy;
}

int nf_policy_from_json(const json_t *obj, const char *default_ns, struct nf_policy *out,
			struct nf_error *err)
{
	struct nf_policy p = { 0 };
	const json_t *meta, *spec, *ingress, *egress, *v;
	const char *name, *ns;
	char path[PATH_MAX_LEN];
	size_t i;
	int r;

	r = expect_kind(obj, "networking.k8s.io/v1", "NetworkPolicy", err);
	if (r < 0)
		return r;
	meta = member(obj, "metadata");
	if (!meta)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "metadata: required value");
	r = want_type(meta, JSON_OBJECT, "metadata", NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	r = req_string(meta, "name", "metadata.", &name, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	r = nf_dns1123_subdomain_validate(name, "metadata.name", err);
	if (r < 0)
		return r;
	r = opt_string(meta, "namespace", "metadata.", &ns, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	if (!ns || !*ns)
		ns = default_ns && *default_ns ? default_ns : "default";
	r = nf_dns1123_label_validate(ns, "metadata.namespace", err);
	if (r < 0)
		return r;
	if (member(meta, "labels")) {
		struct nf_labels l;

		r = nf_labels_from_json(member(meta, "labels"), &l, "metadata.labels", err);
		if (r < 0)
			return r;
		nf_labels_free(&l);
	}

	spec = member(obj, "spec");
	if (spec && (r = want_type(spec, JSON_OBJECT, "spec", NF_ERR_POLICY, err)) < 0)
		return r;
	ingress = member(spec, "ingress");
	if (ingress && (r = want_type(ingress, JSON_ARRAY, "spec.ingress", NF_ERR_POLICY, err)) < 0)
		return r;
	egress = member(spec, "egress");
	if (egress && (r = want_type(egress, JSON_ARRAY, "spec.egress", NF_ERR_POLICY, err)) < 0)
		return r;
	r = policy_types(spec, &p.ingress, &p.egress, err);
	if (r < 0)
		return r;

	/* the API server defaults an absent podSelector to {} (all pods) */
	r = nf_selector_from_json(member(spec, "podSelector"), &p.pod_sel, "spec.podSelector", err);
	if (r < 0)
		return r;

	if (json_array_size(egress)) {
		p.egress_rules = calloc(json_array_size(egress), sizeof(*p.egress_rules));
		if (!p.egress_rules) {
			r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "spec.egress: out of memory");
			goto fail;
		}
	}
	json_array_foreach(egress, i, v) {
		nf_pathf(path, sizeof(path), "spec.egress[%zu]", i);
		r = rule_from_json(v, &p.egress_rules[p.negress], path, err);
		if (r < 0)
			goto fail;
		p.negress++;
	}

	p.name = strdup(name);
	p.ns = strdup(ns);
	p.obj = stored_obj(obj, ns);
	if (!p.name || !p.ns || !p.obj || make_keys(&p) < 0) {
		r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "NetworkPolicy: out of memory");
		goto fail;
	}
	*out = p;
	return 0;
fail:
	nf_policy_free(&p);
	return r;
}

/* ---- Namespace ---- */

#define NS_NAME_LABEL "kubernetes.io/metadata.name"

void nf_namespace_free(struct nf_namespace *n)
{
	if (!n)
		return;
	free(n->name);
	nf_labels_free(&n->labels);
	json_decref(n->obj);
	memset(n, 0, sizeof(*n));
}

int nf_namespace_from_json(const json_t *obj, struct nf_namespace *out, struct nf_error *err)
{
	struct nf_namespace n = { 0 };
	const json_t *meta;
	const char *name;
	int r;

	r = expect_kind(obj, "v1", "Namespace", err);
	if (r < 0)
		return r;
	meta = member(obj, "metadata");
	if (!meta)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "metadata: required value");
	r = want_type(meta, JSON_OBJECT, "metadata", NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	r = req_string(meta, "name", "metadata.", &name, NF_ERR_POLICY, err);
	if (r < 0)
		return r;
	r = nf_dns1123_label_validate(name, "metadata.name", err);
	if (r < 0)
		return r;
	r = nf_labels_from_json(member(meta, "labels"), &n.labels, "metadata.labels", err);
	if (r < 0)
		return r;
	/* Kubernetes (1.21+) always sets this label to the name, whatever the
	 * user wrote, and serves the object with it */
	n.name = strdup(name);
	{
		const char *has = json_string_value(
			json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), NS_NAME_LABEL));
		bool shared = has && strcmp(has, name) == 0; /* as loaded from the state */
		n.obj = shared ? json_incref((json_t *)obj) : json_deep_copy(obj);
		if (n.obj && nf_labels_set(&n.labels, NS_NAME_LABEL, name) == 0 && !shared &&
		    json_object_set_new(json_object_get(n.obj, "metadata"), "labels", nf_labels_to_json(&n.labels)) < 0) {
			json_decref(n.obj);
			n.obj = NULL;
		}
	}
	if (!n.name || !n.obj || !nf_labels_get(&n.labels, NS_NAME_LABEL)) {
		nf_namespace_free(&n);
		return nf_error_set(err, ENOMEM, NF_ERR_POLICY, "Namespace: out of memory");
	}
	*out = n;
	return 0;
}

/* ---- pod records ---- */

void nf_pod_free(struct nf_pod *p)
{
	if (!p)
		return;
	if (p->borrowed) {
		memset(p, 0, sizeof(*p));
		return;
	}
	free(p->container_id);
	free(p->ifname);
	free(p->ns);
	free(p->name);
	nf_labels_free(&p->labels);
	free(p->host_veth);
	free(p->network);
	free(p->addrs);
	memset(p, 0, sizeof(*p));
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

int nf_pod_own(struct nf_pod *p)
{
	/* not its cache record: it is owned to be changed; still what it
	 * was, an idle kind or an attachment */
	struct nf_pod o = {.naddrs = p->naddrs, .raw_at = p->raw_at, .raw_len = p->raw_len, .idle = p->idle};

	if (!p->borrowed)
		return 0;
	if (dup_opt(p->container_id, &o.container_id) < 0 || dup_opt(p->ifname, &o.ifname) < 0 ||
	    dup_opt(p->ns, &o.ns) < 0 || dup_opt(p->name, &o.name) < 0 || dup_opt(p->host_veth, &o.host_veth) < 0 ||
	    dup_opt(p->network, &o.network) < 0 || nf_labels_copy(&o.labels, &p->labels) < 0 ||
	    !(o.addrs = calloc(p->naddrs + 1, sizeof(*o.addrs)))) {
		nf_pod_free(&o);
		return -ENOMEM;
	}
	if (p->naddrs)
		memcpy(o.addrs, p->addrs, p->naddrs * sizeof(*o.addrs));
	*p = o;
	return 0;
}

int nf_pod_from_json(const json_t *obj, struct nf_pod *out, struct nf_error *err)
{
	const int code = CNI_ERR_INVALID_CONFIG;
	struct nf_pod p = { 0 };
	const char *cid, *ifname, *ns, *name, *veth, *network;
	const json_t *ips, *v;
	size_t i;
	int r;

	if (!json_is_object(obj))
		return nf_error_set(err, EINVAL, code, "pod: expected an object, got %s",
				    nf_json_type_name(obj));
	v = member(obj, "idle");
	if (v && !json_is_boolean(v))
		return nf_error_set(err, EINVAL, code, "idle: expected a boolean, got %s", nf_json_type_name(v));
	p.idle = v && json_is_true(v);
	/* an idle kind is no attachment: a namespace and labels */
	if ((r = (p.idle ? opt_string : req_string)(obj, "containerID", "", &cid, code, err)) < 0 ||
	    (r = (p.idle ? opt_string : req_string)(obj, "ifname", "", &ifname, code, err)) < 0 ||
	    (r = opt_string(obj, "namespace", "", &ns, code, err)) < 0 ||
	    (r = opt_string(obj, "name", "", &name, code, err)) < 0 ||
	    (r = opt_string(obj, "hostVeth", "", &veth, code, err)) < 0 ||
	    (r = opt_string(obj, "network", "", &network, code, err)) < 0)
		return r;
	if (!ns || !*ns)
		ns = "default";
	r = nf_dns1123_label_validate(ns, "namespace", err);
	if (r == 0 && name)
		r = nf_dns1123_subdomain_validate(name, "name", err);
	if (r == 0)
		r = nf_labels_from_json(member(obj, "labels"), &p.labels, "labels", err);
	if (r < 0) {
		if (err)
			err->code = code;
		return r;
	}

	ips = member(obj, "ips");
	if (ips && (r = want_type(ips, JSON_ARRAY, "ips", code, err)) < 0)
		goto fail;
	if (p.idle && (json_array_size(ips) || veth || cid || ifname)) {
		if (veth || cid || ifname)
			r = nf_error_set(err, EINVAL, code, "idle: an idle kind has no %s, got \"%s\"",
					 veth ? "hostVeth" : cid ? "containerID" : "ifname", veth ? veth : cid ? cid : ifname);
		else
			r = nf_error_set(err, EINVAL, code, "idle: an idle kind has no ips, got %zu",
					 json_array_size(ips));
		goto fail;
	}
	if (json_array_size(ips)) {
		p.addrs = calloc(json_array_size(ips), sizeof(*p.addrs));
		if (!p.addrs) {
			r = nf_error_set(err, ENOMEM, code, "ips: out of memory");
			goto fail;
		}
	}
	json_array_foreach(ips, i, v) {
		char path[32];

		nf_pathf(path, sizeof(path), "ips[%zu]", i);
		if ((r = want_type(v, JSON_STRING, path, code, err)) < 0)
			goto fail;
		r = nf_cidr_parse(json_string_value(v), true, false, &p.addrs[p.naddrs], path, err);
		if (r < 0) {
			if (err)
				err->code = code;
			goto fail;
		}
		p.naddrs++;
	}

	if (dup_opt(cid, &p.container_id) < 0 || dup_opt(ifname, &p.ifname) < 0 ||
	    dup_opt(ns, &p.ns) < 0 || dup_opt(name, &p.name) < 0 ||
	    dup_opt(veth, &p.host_veth) < 0 || dup_opt(network, &p.network) < 0) {
		r = nf_error_set(err, ENOMEM, code, "pod: out of memory");
		goto fail;
	}
	*out = p;
	return 0;
fail:
	nf_pod_free(&p);
	return r;
}

json_t *nf_pod_to_json(const struct nf_pod *p)
{
	json_t *o = json_object(), *ips = json_array(), *labels = nf_labels_to_json(&p->labels);
	int r = 0;

	if (!o || !ips || !labels)
		goto fail;
	if (!p->idle) {
		r |= json_object_set_new(o, "containerID", json_string(p->container_id ? p->container_id : ""));
		r |= json_object_set_new(o, "ifname", json_string(p->ifname ? p->ifname : ""));
	}
	if (p->ns)
		r |= json_object_set_new(o, "namespace", json_string(p->ns));
	if (p->name)
		r |= json_object_set_new(o, "name", json_string(p->name));
	r |= json_object_set_new(o, "labels", labels);
	labels = NULL;
	if (p->host_veth)
		r |= json_object_set_new(o, "hostVeth", json_string(p->host_veth));
	if (p->network)
		r |= json_object_set_new(o, "network", json_string(p->network));
	for (size_t i = 0; i < p->naddrs; i++) {
		char buf[INET6_ADDRSTRLEN + 8];

		nf_cidr_format(&p->addrs[i], buf, sizeof(buf));
		r |= json_array_append_new(ips, json_string(buf));
	}
	r |= json_object_set_new(o, "ips", ips);
	ips = NULL;
	if (p->idle)
		r |= json_object_set_new(o, "idle", json_true());
	if (r)
		goto fail;
	return o;
fail:
	json_decref(o);
	json_decref(ips);
	json_decref(labels);
	return NULL;
}

/* ---- state ---- */

void nf_text_free(char *text, size_t map)
{
	if (map)
		munmap(text, map);
	else
		free(text);
}

void nf_state_free(struct nf_state *s)
{
	if (!s)
		return;
	if (s->frozen) {
		nf_state_arena_free(s->frozen);
		if (s->frozen_map)
			munmap(s->frozen_map, s->frozen_map_len);
		else
			free(s->frozen_enc);
	} else {
		for (size_t i = 0; i < s->npolicies; i++)
			nf_policy_free(&s->policies[i]);
		free(s->policies);
		for (size_t i = 0; i < s->nnamespaces; i++)
			nf_namespace_free(&s->namespaces[i]);
		free(s->namespaces);
		for (size_t i = 0; i < s->npodspecs; i++)
			nf_podspec_free(&s->podspecs[i]);
		free(s->podspecs);
	}
	for (size_t i = 0; i < s->npods; i++)
		nf_pod_free(&s->pods[i]);
	free(s->pods);
	nf_text_free(s->raw, s->raw_map);
	memset(s, 0, sizeof(*s));
}

int nf_state_namespace_labels(const struct nf_state *s, const char *ns, struct nf_labels *out)
{
	struct nf_labels l = { 0 };
	int r;

	for (size_t i = 0; s && i < s->nnamespaces; i++)
		if (s->namespaces[i].name && strcmp(s->namespaces[i].name, ns) == 0)
			return nf_labels_copy(out, &s->namespaces[i].labels);
	r = nf_labels_set(&l, NS_NAME_LABEL, ns);
	if (r < 0)
		return r;
	*out = l;
	return 0;
}

/* ---- Pod objects ---- */

void nf_podspec_free(struct nf_podspec *p)
{
	if (!p)
		return;
	free(p->ns);
	free(p->name);
	nf_labels_free(&p->labels);
	for (size_t i = 0; i < p->nports; i++)
		free(p->ports[i].name);
	free(p->ports);
	json_decref(p->obj);
	memset(p, 0, sizeof(*p));
}

static int container_port_from_json(const json_t *o, const char *field, struct nf_container_port *out,
				    struct nf_error *err)
{
	static const struct {
		const char *name;
		uint8_t proto;
	} protos[] = {{"TCP", NF_PROTO_TCP}, {"UDP", NF_PROTO_UDP}, {"SCTP", NF_PROTO_SCTP}};
	const char *name, *proto;
	char path[PATH_MAX_LEN];
	const char *problem;
	int r;

	if ((r = want_type(o, JSON_OBJECT, field, NF_ERR_POLICY, err)) < 0)
		return r;
	nf_pathf(path, sizeof(path), "%s.containerPort", field);
	if (!member(o, "containerPort"))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: required value", path);
	if ((r = port_number(member(o, "containerPort"), path, &out->port, err)) < 0)
		return r;
	nf_pathf(path, sizeof(path), "%s.", field);
	if ((r = opt_string(o, "protocol", path, &proto, NF_ERR_POLICY, err)) < 0 ||
	    (r = opt_string(o, "name", path, &name, NF_ERR_POLICY, err)) < 0)
		return r;
	out->proto = NF_PROTO_TCP;
	if (proto) {
		size_t i;
		for (i = 0; i < NF_ARRAY_SIZE(protos) && strcmp(proto, protos[i].name) != 0; i++)
			;
		if (i == NF_ARRAY_SIZE(protos))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s.protocol: unsupported value \"%.256s\": must be one of \"TCP\", \"UDP\", \"SCTP\"",
					    field, proto);
		out->proto = protos[i].proto;
	}
	out->name = NULL;
	if (name && *name) {
		if ((problem = port_name_problem(name)))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s.name: invalid value \"%.256s\": %s",
					    field, name, problem);
		if (!(out->name = strdup(name)))
			return nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
	}
	return 0;
}

int nf_podspec_from_json(const json_t *obj, const char *default_ns, struct nf_podspec *out,
			 struct nf_error *err)
{
	struct nf_podspec p = {0};
	const json_t *meta, *containers, *c;
	const char *name, *ns;
	size_t i;
	int r;

	if ((r = expect_kind(obj, "v1", "Pod", err)) < 0)
		return r;
	meta = member(obj, "metadata");
	if (!meta)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "metadata: required value");
	if ((r = want_type(meta, JSON_OBJECT, "metadata", NF_ERR_POLICY, err)) < 0 ||
	    (r = req_string(meta, "name", "metadata.", &name, NF_ERR_POLICY, err)) < 0 ||
	    (r = nf_dns1123_subdomain_validate(name, "metadata.name", err)) < 0 ||
	    (r = opt_string(meta, "namespace", "metadata.", &ns, NF_ERR_POLICY, err)) < 0)
		return r;
	if (!ns || !*ns)
		ns = default_ns && *default_ns ? default_ns : "default";
	if ((r = nf_dns1123_label_validate(ns, "metadata.namespace", err)) < 0 ||
	    (r = nf_labels_from_json(member(meta, "labels"), &p.labels, "metadata.labels", err)) < 0)
		goto fail;
	containers = member(member(obj, "spec"), "containers");
	if (containers && (r = want_type(containers, JSON_ARRAY, "spec.containers", NF_ERR_POLICY, err)) < 0)
		goto fail;
	json_array_foreach(containers, i, c) {
		const json_t *ports, *po;
		char field[PATH_MAX_LEN];
		size_t j;

		nf_pathf(field, sizeof(field), "spec.containers[%zu]", i);
		if ((r = want_type(c, JSON_OBJECT, field, NF_ERR_POLICY, err)) < 0)
			goto fail;
		ports = member(c, "ports");
		nf_pathf(field, sizeof(field), "spec.containers[%zu].ports", i);
		if (ports && (r = want_type(ports, JSON_ARRAY, field, NF_ERR_POLICY, err)) < 0)
			goto fail;
		json_array_foreach(ports, j, po) {
			struct nf_container_port cp = {0};
			void *grown;

			nf_pathf(field, sizeof(field), "spec.containers[%zu].ports[%zu]", i, j);
			if ((r = container_port_from_json(po, field, &cp, err)) < 0)
				goto fail;
			for (size_t k = 0; cp.name && k < p.nports; k++) {
				if (p.ports[k].name && strcmp(p.ports[k].name, cp.name) == 0) {
					r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
							 "%s.name: duplicate value \"%s\"", field, cp.name);
					free(cp.name);
					goto fail;
				}
			}
			grown = realloc(p.ports, (p.nports + 1) * sizeof(*p.ports));
			if (!grown) {
				free(cp.name);
				r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
				goto fail;
			}
			p.ports = grown;
			p.ports[p.nports++] = cp;
		}
	}
	p.ns = strdup(ns);
	p.name = strdup(name);
	p.obj = stored_obj(obj, ns);
	if (!p.ns || !p.name || !p.obj) {
		r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "Pod: out of memory");
		goto fail;
	}
	*out = p;
	return 0;
fail:
	nf_podspec_free(&p);
	return r;
}
