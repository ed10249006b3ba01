/* netfencectl: the operator CLI, in kubectl's wording.
 *
 *   netfencectl [--state FILE] apply -f FILE|- [-f ...] [-n NS]
 *   netfencectl [--state FILE] delete -f FILE | networkpolicy NAME... | namespace NAME... [-n NS]
 *   netfencectl [--state FILE] get networkpolicies|namespaces|pods [-n NS | -A] [-o wide|json]
 *   netfencectl [--state FILE] show      the nftables rules the state implies (nft syntax)
 *   netfencectl [--state FILE] sync      re-program the kernel from the state
 *
 * Every change re-programs the affected pods on this node in one nftables
 * transaction before the command returns. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../enforce/nlsock.h"
#include "../enforce/plan.h"
#include "../enforce/txn.h"
#include "../netconf/cni.h"
#include "../netconf/manifest.h"
#include "../netconf/state.h"

#define NP_RESOURCE "networkpolicy.networking.k8s.io"
#define NP_RESOURCES "networkpolicies.networking.k8s.io"

struct opts {
	const char *state;
	const char *ns; /* -n, NULL when not given */
	bool all_ns;
	const char *output;
	bool overwrite;
	const char *verb;
	size_t nfiles;
	const char *files[64];
};

static int fail(const struct nf_error *err)
{
	char buf[NF_ERRMSG_MAX * 2];

	nf_error_printable(err->msg[0] ? err->msg : "unknown error", buf, sizeof(buf));
	fprintf(stderr, "error: %s\n", buf);
	return 1;
}

static const char *ns_or_default(const struct opts *o)
{
	return o->ns ? o->ns : "default";
}

/* ---- objects from manifests ---- */

enum kind { K_POLICY, K_NAMESPACE, K_POD };

struct object {
	enum kind kind;
	struct nf_policy pol;
	struct nf_namespace ns;
	struct nf_podspec pod;
};

static const char *object_name(const struct object *o)
{
	return o->kind == K_POLICY ? o->pol.name : o->kind == K_NAMESPACE ? o->ns.name : o->pod.name;
}

static const char *object_resource(const struct object *o)
{
	return o->kind == K_POLICY ? NP_RESOURCE : o->kind == K_NAMESPACE ? "namespace" : "pod";
}

static void objects_free(struct object *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		nf_policy_free(&v[i].pol);
		nf_namespace_free(&v[i].ns);
		nf_podspec_free(&v[i].pod);
	}
	free(v);
}

/* Parses and validates every object of every file before anything changes. */
static int load_objects(const struct opts *o, struct object **out, size_t *nout, struct nf_error *err)
{
	struct object *v = NULL;
	size_t n = 0;
	int r = 0;

	for (size_t f = 0; f < o->nfiles; f++) {
		_cleanup_free_ char *buf = NULL;
		json_t *docs = NULL, *item;
		size_t len, i;

		if ((r = nf_read_file(o->files[f], &buf, &len, err)) < 0 ||
		    (r = nf_manifest_parse(buf, len, o->files[f], &docs, err)) < 0)
			goto fail;
		json_array_foreach(docs, i, item) {
			const char *kind = json_string_value(json_object_get(item, "kind"));
			struct object obj = {0};
			void *grown;

			if (kind && strcmp(kind, "NetworkPolicy") == 0) {
				obj.kind = K_POLICY;
				r = nf_policy_from_json(item, ns_or_default(o), &obj.pol, err);
			} else if (kind && strcmp(kind, "Namespace") == 0) {
				obj.kind = K_NAMESPACE;
				r = nf_namespace_from_json(item, &obj.ns, err);
			} else if (kind && strcmp(kind, "Pod") == 0) {
				obj.kind = K_POD;
				r = nf_podspec_from_json(item, ns_or_default(o), &obj.pod, err);
			} else {
				r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
						 "kind: \"%s\" is not supported (NetworkPolicy, Namespace, Pod, List)",
						 kind ? kind : "(missing)");
			}
			if (r == 0 && o->ns && obj.kind != K_NAMESPACE) {
				const char *own = json_string_value(
					json_object_get(json_object_get(item, "metadata"), "namespace"));
				if (own && *own && strcmp(own, o->ns) != 0)
					r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
							 "the namespace from the provided object \"%s\" does not match the "
							 "namespace \"%s\". You must pass '--namespace=%s' to perform this operation.",
							 own, o->ns, own);
			}
			if (r < 0) {
				nf_error_wrap(err, "%s: object %zu", o->files[f], i);
				nf_policy_free(&obj.pol);
				nf_namespace_free(&obj.ns);
				nf_podspec_free(&obj.pod);
				json_decref(docs);
				goto fail;
			}
			grown = realloc(v, (n + 1) * sizeof(*v));
			if (!grown) {
				nf_policy_free(&obj.pol);
				nf_namespace_free(&obj.ns);
				nf_podspec_free(&obj.pod);
				json_decref(docs);
				r = -ENOMEM;
				goto fail;
			}
			v = grown;
			v[n++] = obj;
		}
		json_decref(docs);
	}
	if (n == 0) {
		r = nf_error_set(err, EINVAL, NF_ERR_POLICY, "no objects passed to %s", o->verb);
		goto fail;
	}
	*out = v;
	*nout = n;
	return 0;
fail:
	objects_free(v, n);
	return r;
}

/* The seed recipe (NP-14) promises that in-cluster traffic keeps working
 * while its manifest allows only DNS: say so when a policy allows nothing
 * but port 53, because under Kubernetes semantics everything else of the
 * selected pods, in-cluster traffic included, is denied. */
static void lint_policy(const struct nf_policy *p)
{
	_cleanup_free_ char *sel = NULL;

	if (!p->egress || p->negress == 0)
		return;
	for (size_t i = 0; i < p->negress; i++) {
		const struct nf_rule *r = &p->egress_rules[i];
		if (!r->has_ports)
			return;
		for (size_t j = 0; j < r->nports; j++)
			if (r->ports[j].name || !r->ports[j].has_port || r->ports[j].port != 53 ||
			    (r->ports[j].end_port && r->ports[j].end_port != 53))
				return;
	}
	sel = nf_selector_format(&p->pod_sel);
	fprintf(stderr,
		"Warning: networkpolicy %s/%s allows egress only to port 53 (DNS). Pods it selects (%s) "
		"can reach nothing else, not even other pods or Services in the cluster: egress rules are an "
		"allow-list. To keep in-cluster traffic, add a rule with `to: [{namespaceSelector: {}}]`.\n",
		p->ns, p->name, sel && *sel ? sel : "all pods in the namespace");
}

static void txn_warn(const struct txn *t)
{
	if (t->warning[0])
		fprintf(stderr, "Warning: %s\n", t->warning);
}

static const char *put_word(int r)
{
	return r == NF_PUT_CREATED ? "created" : r == NF_PUT_CONFIGURED ? "configured" : "unchanged";
}

static int cmd_apply(struct opts *o, struct nf_error *err)
{
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	struct object *objs = NULL;
	size_t n = 0;
	int *results = NULL, r;
	char **names = NULL;

	if (o->nfiles == 0)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "apply: must specify -f FILE");
	if ((r = load_objects(o, &objs, &n, err)) < 0)
		return r;
	results = calloc(n + 1, sizeof(*results));
	names = calloc(n + 1, sizeof(*names));
	if (!results || !names) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (objs[i].kind == K_POLICY)
			lint_policy(&objs[i].pol);
		if (asprintf(&names[i], "%s/%s", object_resource(&objs[i]), object_name(&objs[i])) < 0) {
			names[i] = NULL;
			r = -ENOMEM;
			goto out;
		}
	}
	if ((r = nf_state_lock(o->state, &lock, err)) < 0 || (r = nf_state_load(o->state, &st, err)) < 0 ||
	    (r = txn_begin(&t, o->state, &st, err)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		r = objs[i].kind == K_POLICY	  ? nf_state_put_policy(&st, &objs[i].pol)
		    : objs[i].kind == K_NAMESPACE ? nf_state_put_namespace(&st, &objs[i].ns)
						  : nf_state_put_podspec(&st, &objs[i].pod);
		if (r < 0)
			goto out;
		results[i] = r;
	}
	if ((r = txn_commit(&t, o->state, &st, err)) < 0)
		goto out;
	txn_warn(&t);
	for (size_t i = 0; i < n; i++)
		printf("%s %s\n", names[i], put_word(results[i]));
	r = 0;
out:
	txn_end(&t);
	nf_state_unlock(&lock);
	nf_state_free(&st);
	objects_free(objs, n);
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(results);
	return r;
}

static bool is_policy_word(const char *w)
{
	return !strcmp(w, "networkpolicy") || !strcmp(w, "networkpolicies") || !strcmp(w, "netpol") ||
	       !strcmp(w, NP_RESOURCE) || !strcmp(w, NP_RESOURCES);
}

static bool is_namespace_word(const char *w)
{
	return !strcmp(w, "namespace") || !strcmp(w, "namespaces") || !strcmp(w, "ns");
}

static bool is_pod_word(const char *w)
{
	return !strcmp(w, "pod") || !strcmp(w, "pods") || !strcmp(w, "po");
}

/* kubectl deletes what a namespace holds with it: its policies and Pod
 * registrations (attached pods stay: only their runtime can remove them). */
static bool namespace_exists(const struct nf_state *st, const char *name)
{
	for (size_t i = 0; i < st->nnamespaces; i++)
		if (strcmp(st->namespaces[i].name, name) == 0)
			return true;
	for (size_t i = 0; i < st->npolicies; i++)
		if (strcmp(st->policies[i].ns, name) == 0)
			return true;
	for (size_t i = 0; i < st->npodspecs; i++)
		if (strcmp(st->podspecs[i].ns, name) == 0)
			return true;
	return false;
}

static bool purge_namespace(struct nf_state *st, const char *name)
{
	bool removed = nf_state_remove_namespace(st, name);

	for (size_t i = st->npolicies; i-- > 0;) {
		if (strcmp(st->policies[i].ns, name) == 0) {
			_cleanup_free_ char *pn = strdup(st->policies[i].name);
			removed |= pn && nf_state_remove_policy(st, name, pn);
		}
	}
	for (size_t i = st->npodspecs; i-- > 0;) {
		if (strcmp(st->podspecs[i].ns, name) == 0) {
			_cleanup_free_ char *pn = strdup(st->podspecs[i].name);
			removed |= pn && nf_state_remove_podspec(st, name, pn);
		}
	}
	return removed;
}

static int cmd_delete(struct opts *o, int argc, char **argv, struct nf_error *err)
{
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	struct object *objs = NULL;
	size_t n = 0, nnames = 0, nlines = 0;
	enum kind by_name = K_POLICY;
	char **lines = NULL; /* in argument order; "E" prefix: stderr */
	int r, missing = 0;

	if (o->nfiles) {
		if ((r = load_objects(o, &objs, &n, err)) < 0)
			return r;
	} else {
		if (argc < 2)
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "delete: want -f FILE, or networkpolicy|namespace|pod NAME...");
		if (is_policy_word(argv[0]))
			by_name = K_POLICY;
		else if (is_namespace_word(argv[0]))
			by_name = K_NAMESPACE;
		else if (is_pod_word(argv[0]))
			by_name = K_POD;
		else
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "delete: resource type \"%s\" is not supported (networkpolicy, namespace, pod)",
					    argv[0]);
		nnames = (size_t)argc - 1;
	}
	lines = calloc(n + nnames + 1, sizeof(*lines));
	if (!lines) {
		r = -ENOMEM;
		goto done;
	}
	if ((r = nf_state_lock(o->state, &lock, err)) < 0 || (r = nf_state_load(o->state, &st, err)) < 0 ||
	    (r = txn_begin(&t, o->state, &st, err)) < 0)
		goto done;
	for (size_t i = 0; i < n + nnames; i++) {
		enum kind k = i < n ? objs[i].kind : by_name;
		const char *name = i < n ? object_name(&objs[i]) : argv[1 + i - n];
		const char *ns = i < n && k == K_POLICY ? objs[i].pol.ns
				 : i < n && k == K_POD	 ? objs[i].pod.ns
							 : ns_or_default(o);
		/* a namespace goes last, with its contents, as the API server
		 * finalizes it after the command: objects in it named by the
		 * same command are deleted in their own right first */
		bool removed = k == K_POLICY	  ? nf_state_remove_policy(&st, ns, name)
			       : k == K_NAMESPACE ? namespace_exists(&st, name)
						  : nf_state_remove_podspec(&st, ns, name);
		const char *res = k == K_POLICY ? NP_RESOURCE : k == K_NAMESPACE ? "namespace" : "pod";

		if (removed)
			r = asprintf(&lines[nlines], "O%s \"%s\" deleted", res, name);
		else {
			r = asprintf(&lines[nlines], "EError from server (NotFound): %s \"%s\" not found",
				     k == K_POLICY ? NP_RESOURCES : k == K_NAMESPACE ? "namespaces" : "pods", name);
			missing++;
		}
		if (r < 0) {
			lines[nlines] = NULL;
			r = -ENOMEM;
			goto done;
		}
		nlines++;
	}
	for (size_t i = 0; i < n + nnames; i++)
		if ((i < n ? objs[i].kind : by_name) == K_NAMESPACE)
			purge_namespace(&st, i < n ? object_name(&objs[i]) : argv[1 + i - n]);
	if ((r = txn_commit(&t, o->state, &st, err)) < 0)
		goto done;
	txn_warn(&t);
	for (size_t i = 0; i < nlines; i++) {
		FILE *f = lines[i][0] == 'E' ? stderr : stdout;
		fprintf(f, "%s\n", lines[i] + 1);
		fflush(f);
	}
	r = missing ? 1 : 0;
done:
	for (size_t i = 0; i < nlines; i++)
		free(lines[i]);
	free(lines);
	txn_end(&t);
	nf_state_unlock(&lock);
	nf_state_free(&st);
	objects_free(objs, n);
	return r;
}

static void age(const json_t *obj, char *buf, size_t len)
{
	const char *ts = json_string_value(json_object_get(json_object_get(obj, "metadata"), "creationTimestamp"));
	struct tm tm = {0};
	long d;

	if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(buf, len, "<unknown>");
		return;
	}
	d = (long)difftime(time(NULL), timegm(&tm));
	if (d < 0)
		d = 0;
	if (d < 120)
		snprintf(buf, len, "%lds", d);
	else if (d < 7200)
		snprintf(buf, len, "%ldm", d / 60);
	else if (d < 172800)
		snprintf(buf, len, "%ldh", d / 3600);
	else
		snprintf(buf, len, "%ldd", d / 86400);
}

static int print_json_list(json_t *items)
{
	json_t *list = json_object();
	char *s;

	json_object_set_new(list, "apiVersion", json_string("v1"));
	json_object_set_new(list, "kind", json_string("List"));
	json_object_set_new(list, "items", items);
	s = json_dumps(list, JSON_INDENT(4));
	json_decref(list);
	if (!s)
		return -ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int get_policies(const struct opts *o, const struct nf_state *s)
{
	bool json = o->output && !strcmp(o->output, "json");
	json_t *items = json_array();
	size_t shown = 0;

	for (size_t i = 0; i < s->npolicies; i++) {
		const struct nf_policy *p = &s->policies[i];
		_cleanup_free_ char *sel = NULL;
		char a[32], types[32];

		if (!o->all_ns && strcmp(p->ns, ns_or_default(o)) != 0)
			continue;
		shown++;
		if (json) {
			json_array_append(items, p->obj);
			continue;
		}
		if (shown == 1) {
			if (o->all_ns)
				printf("%-16s ", "NAMESPACE");
			printf("%-32s %-24s %-14s %s\n", "NAME", "POD-SELECTOR", "POLICY-TYPES", "AGE");
		}
		sel = nf_selector_format(&p->pod_sel);
		age(p->obj, a, sizeof(a));
		snprintf(types, sizeof(types), "%s%s%s", p->ingress ? "Ingress" : "",
			 p->ingress && p->egress ? "," : "", p->egress ? "Egress" : "");
		if (o->all_ns)
			printf("%-16s ", p->ns);
		printf("%-32s %-24s %-14s %s\n", p->name, sel && *sel ? sel : "<none>", types, a);
	}
	if (json)
		return print_json_list(items);
	json_decref(items);
	if (!shown)
		fprintf(stderr, "No resources found in %s namespace.\n", o->all_ns ? "any" : ns_or_default(o));
	return 0;
}

static int get_namespaces(const struct opts *o, const struct nf_state *s)
{
	bool json = o->output && !strcmp(o->output, "json");
	json_t *items = json_array();

	if (!json && s->nnamespaces)
		printf("%-24s %-8s %-8s %s\n", "NAME", "STATUS", "AGE", "LABELS");
	if (!json && !s->nnamespaces)
		fprintf(stderr, "No resources found\n");
	for (size_t i = 0; i < s->nnamespaces; i++) {
		const struct nf_namespace *n = &s->namespaces[i];
		_cleanup_free_ char *labels = NULL;
		char a[32];

		if (json) {
			json_array_append(items, n->obj);
			continue;
		}
		labels = nf_labels_format(&n->labels);
		age(n->obj, a, sizeof(a));
		printf("%-24s %-8s %-8s %s\n", n->name, "Active", a, labels ? labels : "");
	}
	if (json)
		return print_json_list(items);
	json_decref(items);
	return 0;
}

static int get_pods(const struct opts *o, const struct nf_state *s)
{
	bool json = o->output && !strcmp(o->output, "json");
	json_t *items = json_array();

	size_t shown = 0;

	for (size_t i = 0; i < s->npods; i++) {
		const struct nf_pod *p = &s->pods[i];
		_cleanup_free_ char *labels = NULL;
		char ips[256] = "", pols[256] = "", buf[INET6_ADDRSTRLEN + 8];
		size_t ipl = 0, pl = 0;

		if (p->idle || (!o->all_ns && strcmp(p->ns, ns_or_default(o)) != 0))
			continue;
		if (json) {
			json_array_append_new(items, nf_pod_to_json(p));
			continue;
		}
		if (++shown == 1) {
			if (o->all_ns)
				printf("%-16s ", "NAMESPACE");
			printf("%-24s %-34s %-16s %-28s %s\n", "NAME", "IPS", "INTERFACE", "EGRESS-POLICIES", "LABELS");
		}
		for (size_t j = 0; j < p->naddrs; j++) {
			nf_addr_format(&p->addrs[j], buf, sizeof(buf));
			ipl += (size_t)snprintf(ips + ipl, ipl < sizeof(ips) ? sizeof(ips) - ipl : 0, "%s%s",
						j ? "," : "", buf);
		}
		for (size_t j = 0; j < s->npolicies; j++) {
			const struct nf_policy *pol = &s->policies[j];
			if (!pol->egress || strcmp(pol->ns, p->ns) || !nf_selector_matches(&pol->pod_sel, &p->labels))
				continue;
			pl += (size_t)snprintf(pols + pl, pl < sizeof(pols) ? sizeof(pols) - pl : 0, "%s%s",
					       pl ? "," : "", pol->name);
		}
		labels = nf_labels_format(&p->labels);
		if (o->all_ns)
			printf("%-16s ", p->ns);
		printf("%-24s %-34s %-16s %-28s %s\n", p->name, ips, p->host_veth ? p->host_veth : "-",
		       pl ? pols : "<none>", labels && *labels ? labels : "<none>");
	}
	if (json)
		return print_json_list(items);
	json_decref(items);
	if (!shown)
		fprintf(stderr, "No resources found in %s namespace.\n", o->all_ns ? "any" : ns_or_default(o));
	return 0;
}

static int cmd_get(struct opts *o, int argc, char **argv, struct nf_error *err)
{
	struct nf_state st = {0};
	int r;

	if (argc < 1)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "get: want a resource type: networkpolicies, namespaces or pods");
	if ((r = nf_state_load(o->state, &st, err)) < 0)
		return r;
	if (is_policy_word(argv[0]))
		r = get_policies(o, &st);
	else if (is_namespace_word(argv[0]))
		r = get_namespaces(o, &st);
	else if (is_pod_word(argv[0]))
		r = get_pods(o, &st);
	else
		r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
				 "get: resource type \"%s\" is not supported (networkpolicies, namespaces, pods)", argv[0]);
	nf_state_free(&st);
	return r;
}

static int cmd_show(struct opts *o, struct nf_error *err)
{
	struct nf_state st = {0};
	struct plan p = {0};
	char *text = NULL;
	int r;

	if ((r = nf_state_load(o->state, &st, err)) < 0 || (r = plan_compile(&st, &p, err)) < 0)
		goto out;
	if (!(text = plan_render(&p))) {
		r = -ENOMEM;
		goto out;
	}
	fputs(text, stdout);
out:
	free(text);
	plan_free(&p);
	nf_state_free(&st);
	return r;
}

/* Re-programs the kernel from the state, whatever it holds now. */
static int cmd_sync(struct opts *o, struct nf_error *err)
{
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	int r;

	if ((r = nf_state_lock(o->state, &lock, err)) < 0)
		return r;
	if ((r = nf_state_load(o->state, &st, err)) >= 0 && (r = txn_begin(&t, o->state, &st, err)) >= 0) {
		t.force = true;
		if ((r = txn_commit(&t, o->state, &st, err)) >= 0)
			txn_warn(&t);
	}
	txn_end(&t);
	nf_state_free(&st);
	nf_state_unlock(&lock);
	return r;
}

/* Appends {"type": "netfence"} as the last plugin of a conflist (idempotent),
 * writing a new file and renaming it over the old one. */
static int cmd_conflist_add(struct opts *o, int argc, char **argv, struct nf_error *err)
{
	_cleanup_free_ char *tmp = NULL;
	json_error_t jerr;
	json_t *root, *plugins, *entry, *item;
	const char *path;
	size_t i;
	int r = 0;

	if (argc != 1)
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "conflist-add: want one conflist FILE");
	path = argv[0];
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE, "%s: line %d column %d: %s", path, jerr.line,
				    jerr.column, jerr.text);
	plugins = json_object_get(root, "plugins");
	if (!json_is_array(plugins)) {
		json_decref(root);
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				    "%s: plugins: missing or not an array (netfence needs a conflist)", path);
	}
	json_array_foreach(plugins, i, item) {
		const char *type = json_string_value(json_object_get(item, "type"));
		if (type && strcmp(type, "netfence") == 0) {
			printf("%s: netfence is already chained\n", path);
			json_decref(root);
			return 0;
		}
	}
	entry = json_object();
	json_object_set_new(entry, "type", json_string("netfence"));
	if (strcmp(o->state, NF_DEFAULT_STATE_FILE) != 0)
		json_object_set_new(entry, "stateFile", json_string(o->state));
	json_array_append_new(plugins, entry);
	if (asprintf(&tmp, "%s.netfence-tmp", path) < 0) {
		tmp = NULL;
		r = -ENOMEM;
	} else if (json_dump_file(root, tmp, JSON_INDENT(2)) < 0 || rename(tmp, path) < 0) {
		r = nf_error_set(err, errno ? errno : EIO, CNI_ERR_IO, "writing %s: %s", path, strerror(errno));
		unlink(tmp);
	} else {
		printf("%s: netfence chained as the last plugin\n", path);
	}
	json_decref(root);
	return r;
}

/* kubectl label's arguments: key=value sets, key- removes. */
static int change_labels(struct nf_labels *l, int argc, char **argv, bool overwrite, bool *changed,
			 struct nf_error *err)
{
	*changed = false;
	for (int i = 0; i < argc; i++) {
		_cleanup_free_ char *arg = strdup(argv[i]);
		size_t len = arg ? strlen(arg) : 0;
		char *eq;
		const char *old;
		int r;

		if (!arg)
			return -ENOMEM;
		if (len > 1 && arg[len - 1] == '-' && !strchr(arg, '=')) {
			struct nf_labels kept = {0};
			arg[len - 1] = '\0';
			for (size_t j = 0; j < l->n; j++) {
				if (strcmp(l->v[j].key, arg) == 0)
					*changed = true;
				else if (nf_labels_set(&kept, l->v[j].key, l->v[j].value) < 0) {
					nf_labels_free(&kept);
					return -ENOMEM;
				}
			}
			nf_labels_free(l);
			*l = kept;
			continue;
		}
		if (!(eq = strchr(arg, '=')))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "label: \"%s\" is neither key=value nor key-", argv[i]);
		*eq = '\0';
		if ((r = nf_label_key_validate(arg, "label key", err)) < 0 ||
		    (r = nf_label_value_validate(eq + 1, "label value", err)) < 0)
			return r;
		old = nf_labels_get(l, arg);
		if (old && strcmp(old, eq + 1) == 0)
			continue;
		if (old && !overwrite)
			return nf_error_set(err, EEXIST, NF_ERR_POLICY,
					    "'%s' already has a value (%s), and --overwrite is false", arg, old);
		if (nf_labels_set(l, arg, eq + 1) < 0)
			return -ENOMEM;
		*changed = true;
	}
	return 0;
}

/* Writes labels into obj's metadata.labels. */
static int set_obj_labels(json_t *obj, const struct nf_labels *l)
{
	json_t *meta = json_object_get(obj, "metadata");
	return json_is_object(meta) ? json_object_set_new(meta, "labels", nf_labels_to_json(l)) : -EINVAL;
}

static int label_namespace(struct nf_state *st, const char *name, int argc, char **argv, bool overwrite,
			   bool *changed, struct nf_error *err)
{
	struct nf_labels l = {0};
	struct nf_namespace n = {0};
	json_t *obj = NULL;
	int r;

	for (size_t i = 0; i < st->nnamespaces && !obj; i++)
		if (strcmp(st->namespaces[i].name, name) == 0)
			obj = json_deep_copy(st->namespaces[i].obj);
	if (!obj) /* a namespace no object declares still exists: declare it */
		obj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", name);
	if (!obj)
		return -ENOMEM;
	if ((r = nf_labels_from_json(json_object_get(json_object_get(obj, "metadata"), "labels"), &l,
				     "metadata.labels", err)) < 0 ||
	    (r = change_labels(&l, argc, argv, overwrite, changed, err)) < 0)
		goto out;
	if (set_obj_labels(obj, &l) < 0 || (r = nf_namespace_from_json(obj, &n, err)) < 0 ||
	    (r = nf_state_put_namespace(st, &n)) < 0)
		r = r < 0 ? r : -ENOMEM;
out:
	nf_namespace_free(&n);
	nf_labels_free(&l);
	json_decref(obj);
	return r < 0 ? r : 0;
}

static int label_pod(struct nf_state *st, const char *ns, const char *name, int argc, char **argv,
		     bool overwrite, bool *changed, struct nf_error *err)
{
	const struct nf_podspec *spec = nf_state_find_podspec(st, ns, name);
	bool found = false;
	int r;

	*changed = false;
	if (spec) {
		struct nf_labels l = {0};
		struct nf_podspec p = {0};
		json_t *obj = json_deep_copy(spec->obj);

		if (!obj || nf_labels_copy(&l, &spec->labels) < 0)
			r = -ENOMEM;
		else if ((r = change_labels(&l, argc, argv, overwrite, changed, err)) == 0 &&
			 (set_obj_labels(obj, &l) < 0 || (r = nf_podspec_from_json(obj, ns, &p, err)) < 0 ||
			  (r = nf_state_put_podspec(st, &p)) < 0))
			r = r < 0 ? r : -ENOMEM;
		nf_podspec_free(&p);
		nf_labels_free(&l);
		json_decref(obj);
		return r < 0 ? r : 0;
	}
	for (size_t i = 0; i < st->npods; i++) {
		bool c;
		if (st->pods[i].idle || strcmp(st->pods[i].ns, ns) != 0 || !st->pods[i].name ||
		    strcmp(st->pods[i].name, name) != 0)
			continue;
		found = true;
		if ((r = change_labels(&st->pods[i].labels, argc, argv, overwrite, &c, err)) < 0)
			return r;
		*changed |= c;
	}
	if (!found)
		return nf_error_set(err, ENOENT, NF_ERR_POLICY, "pods \"%s\" not found in namespace %s", name, ns);
	return 0;
}

static int cmd_label(struct opts *o, int argc, char **argv, struct nf_error *err)
{
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	bool changed = false;
	int r;

	if (argc < 3 || (!is_namespace_word(argv[0]) && !is_pod_word(argv[0])))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "label: want namespace NAME key=value... or pod NAME key=value... [-n NS]");
	if ((r = nf_state_lock(o->state, &lock, err)) < 0 || (r = nf_state_load(o->state, &st, err)) < 0 ||
	    (r = txn_begin(&t, o->state, &st, err)) < 0)
		goto out;
	if (is_namespace_word(argv[0]))
		r = label_namespace(&st, argv[1], argc - 2, argv + 2, o->overwrite, &changed, err);
	else
		r = label_pod(&st, ns_or_default(o), argv[1], argc - 2, argv + 2, o->overwrite, &changed, err);
	if (r < 0 || (r = txn_commit(&t, o->state, &st, err)) < 0)
		goto out;
	txn_warn(&t);
	printf("%s/%s %s\n", is_namespace_word(argv[0]) ? "namespace" : "pod", argv[1],
	       changed ? "labeled" : "not labeled");
out:
	txn_end(&t);
	nf_state_unlock(&lock);
	nf_state_free(&st);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: netfencectl [--state FILE] COMMAND ...\n"
		"  apply -f FILE|- [-f ...] [-n NS]     create or update NetworkPolicy, Namespace and Pod objects\n"
		"                                      (YAML or JSON; a Pod registers labels and containerPorts)\n"
		"  delete -f FILE                      delete the objects a manifest names\n"
		"  delete networkpolicy NAME... [-n NS]\n"
		"  delete namespace NAME...\n"
		"  get networkpolicies|namespaces|pods [-n NS | -A] [-o json]\n"
		"  label namespace NAME k=v... [--overwrite]    set (k=v) or remove (k-) labels\n"
		"  label pod NAME k=v... [-n NS] [--overwrite]\n"
		"  delete pod NAME [-n NS]             remove a Pod registration\n"
		"  show                                the nftables ruleset the state implies\n"
		"  sync                                re-program the kernel from the state\n"
		"  conflist-add FILE                   chain netfence as the last plugin of a conflist\n"
		"The state file is --state, else $NETFENCE_STATE, else " NF_DEFAULT_STATE_FILE ".\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"state", required_argument, NULL, 's'},
		{"filename", required_argument, NULL, 'f'},
		{"namespace", required_argument, NULL, 'n'},
		{"all-namespaces", no_argument, NULL, 'A'},
		{"output", required_argument, NULL, 'o'},
		{"overwrite", no_argument, NULL, 'O'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	struct nf_error err = {0};
	const char *verb;
	int c, r;

	o.state = getenv("NETFENCE_STATE");
	if (!o.state || !*o.state)
		o.state = NF_DEFAULT_STATE_FILE;
	/* "+" would stop at the verb; permute so flags may follow it, as kubectl's do */
	while ((c = getopt_long(argc, argv, "f:n:Ao:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o.state = optarg; break;
		case 'f':
			if (o.nfiles == NF_ARRAY_SIZE(o.files)) {
				fprintf(stderr, "error: too many -f\n");
				return 1;
			}
			o.files[o.nfiles++] = optarg;
			break;
		case 'n': o.ns = optarg; break;
		case 'A': o.all_ns = true; break;
		case 'o': o.output = optarg; break;
		case 'O': o.overwrite = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 1;
	}
	if (o.ns && nf_dns1123_label_validate(o.ns, "-n", &err) < 0)
		return fail(&err);
	verb = argv[optind++];
	o.verb = verb;
	nlsock_defer_enable();
	argc -= optind;
	argv += optind;
	if (!strcmp(verb, "apply"))
		r = cmd_apply(&o, &err);
	else if (!strcmp(verb, "delete"))
		r = cmd_delete(&o, argc, argv, &err);
	else if (!strcmp(verb, "get"))
		r = cmd_get(&o, argc, argv, &err);
	else if (!strcmp(verb, "label"))
		r = cmd_label(&o, argc, argv, &err);
	else if (!strcmp(verb, "show"))
		r = cmd_show(&o, &err);
	else if (!strcmp(verb, "sync"))
		r = cmd_sync(&o, &err);
	else if (!strcmp(verb, "conflist-add"))
		r = cmd_conflist_add(&o, argc, argv, &err);
	else {
		fprintf(stderr, "error: unknown command \"%s\"\n", verb);
		usage(stderr);
		return 1;
	}
	if (r < 0) {
		if (!err.msg[0])
			nf_error_set(&err, -r, 0, "%s: %s", verb, strerror(-r));
		r = fail(&err);
	}
	nlsock_release_deferred();
	return r;
}
