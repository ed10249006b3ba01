/* netfence: the CNI chained plugin.
 *
 * ADD records the pod (identity, labels, addresses, host veth) in the node
 * state and, when that changes what the kernel should hold, re-programs the
 * netfence nftables tables in one transaction before returning: the runtime
 * starts the pod's first process only after ADD returns, so the pod never
 * runs unfiltered. Any failure fails the ADD and changes nothing. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "../enforce/link.h"
#include "../netconf/phase.h"
#include "../enforce/nlsock.h"
#include "../enforce/plan.h"
#include "../enforce/txn.h"
#include "../netconf/cni.h"
#include "../netconf/manifest.h"
#include "../netconf/state.h"

struct ctx {
	const char *command;
	const char *container_id;
	const char *ifname;
	const char *netns;
	struct nf_cni_conf conf;
	struct nf_cni_args args;
	char *stdin_buf;
	size_t stdin_len;
};

static void print_error(const struct ctx *c, const struct nf_error *err)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "cniVersion", json_string(c->conf.cni_version ? c->conf.cni_version : NF_CNI_VERSION));
	json_object_set_new(o, "code", json_integer(err->code ? err->code : NF_ERR_KERNEL));
	char buf[NF_ERRMSG_MAX * 2];

	nf_error_printable(err->msg[0] ? err->msg : "unknown error", buf, sizeof(buf));
	json_object_set_new(o, "msg", json_string(buf));
	if (err->details[0]) {
		nf_error_printable(err->details, buf, sizeof(buf));
		json_object_set_new(o, "details", json_string(buf));
	}
	s = json_dumps(o, JSON_INDENT(2));
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

static int need_env(const char *name, const char **out, struct nf_error *err)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_ENV, "%s: missing from the environment", name);
	*out = v;
	return 0;
}

/* The host side of the pod's link: the prevResult interface without
 * "sandbox" that is a veth (a bridge chain also lists the bridge). */
static int find_host_veth(const struct nf_prev_result *pr, char **out, bool *bridged, struct nf_error *err)
{
	const char *found = NULL;
	char drv[64];

	*bridged = false;
	for (size_t i = 0; i < pr->nhost; i++) {
		if (link_driver(pr->host_ifaces[i], drv, sizeof(drv)) < 0)
			continue;
		if (strcmp(drv, "bridge") == 0)
			*bridged = true;
		else if (strcmp(drv, "veth") == 0) {
			if (found)
				return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
						    "prevResult.interfaces: two host-side veths (\"%s\", \"%s\"), cannot tell the pod's",
						    found, pr->host_ifaces[i]);
			found = pr->host_ifaces[i];
		}
	}
	if (!found)
		return 0;
	*out = strdup(found);
	return *out ? 0 : -ENOMEM;
}

/* Without br_netfilter, traffic between pods on one bridge never reaches
 * the inet hooks and would bypass the pod's rules. */
static int check_bridge_netfilter(const struct nf_pod *pod, struct nf_error *err)
{
	static const char *const knobs[] = {"net/bridge/bridge-nf-call-iptables",
					    "net/bridge/bridge-nf-call-ip6tables"};
	for (size_t i = 0; i < NF_ARRAY_SIZE(knobs); i++) {
		int v = 0;
		if (sysctl_read_int(knobs[i], &v) < 0 || v != 1)
			return nf_error_set(err, EPERM, CNI_ERR_INVALID_CONFIG,
					    "pod %s/%s is on a bridge but %s is not 1 (br_netfilter): bridged traffic "
					    "would bypass its egress policy; set it to 1 on the node",
					    pod->ns, pod->name, knobs[i]);
	}
	return 0;
}

static int cmd_add(struct ctx *c, struct nf_error *err)
{
	struct nf_prev_result pr = {0};
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	struct nf_pod pod = {0};
	const struct nf_pod *known;
	const struct nf_podspec *spec;
	bool replacing;
	bool bridged = false, selected;
	json_t *out;
	char *dump;
	int r;

	if ((r = need_env("CNI_NETNS", &c->netns, err)) < 0)
		return r;
	if (!c->conf.prev_result)
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				    "prevResult: missing: netfence is a chained plugin; put it after the main "
				    "plugin (bridge, ptp, ...) in a conflist");
	if ((r = nf_prev_result_parse(c->conf.prev_result, c->ifname, &pr, err)) < 0)
		return r;
	if (pr.naddrs == 0) {
		r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				 "prevResult.ips: no address on interface \"%s\" in the sandbox", c->ifname);
		goto out;
	}
	if ((r = find_host_veth(&pr, &pod.host_veth, &bridged, err)) < 0)
		goto out;
	pod.container_id = strdup(c->container_id);
	pod.ifname = strdup(c->ifname);
	pod.ns = strdup(c->args.pod_ns ? c->args.pod_ns : "default");
	pod.name = strdup(c->args.pod_name ? c->args.pod_name : c->container_id);
	pod.network = c->conf.name ? strdup(c->conf.name) : NULL;
	pod.addrs = pr.addrs;
	pod.naddrs = pr.naddrs;
	pr.addrs = NULL;
	pr.naddrs = 0;
	if (!pod.container_id || !pod.ifname || !pod.ns || !pod.name) {
		r = -ENOMEM;
		goto out;
	}

	nf_phase("parsed");
	/* a DEL of one of these addresses may still be cleaning conntrack up (txn.h) */
	if ((r = nf_state_lock(c->conf.state_file, &lock, err)) < 0 ||
	    (r = txn_conntrack_barrier(c->conf.state_file, pod.addrs, pod.naddrs, err)) < 0)
		goto out;
	nf_phase("locked");
	if ((r = nf_state_load_fast(c->conf.state_file, &st, err)) < 0)
		goto out;
	nf_phase("loaded");
	/* a re-ADD replaces a record: not a pod added, compile both plans */
	replacing = nf_state_find_pod(&st, c->container_id, c->ifname) != NULL;
	if ((r = replacing ? txn_begin(&t, c->conf.state_file, &st, err)
			   : txn_begin_pod(&t, c->conf.state_file, &st, err)) < 0)
		goto out;
	/* labels: CNI_ARGS, then the conflist's args.cni.labels, then a Pod
	 * registered with netfencectl or another attachment of the same
	 * namespace/name */
	spec = nf_state_find_podspec(&st, pod.ns, pod.name);
	known = nf_state_find_pod_by_name(&st, pod.ns, pod.name);
	if (c->args.has_labels)
		r = nf_labels_copy(&pod.labels, &c->args.labels);
	else if (c->conf.has_arg_labels)
		r = nf_labels_copy(&pod.labels, &c->conf.arg_labels);
	else if (spec)
		r = nf_labels_copy(&pod.labels, &spec->labels);
	else if (known)
		r = nf_labels_copy(&pod.labels, &known->labels);
	if (r < 0)
		goto out;

	selected = plan_pod_is_selected(&st, &pod);
	if (selected && !pod.host_veth) {
		r = nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				 "pod %s/%s is selected by an egress policy but prevResult.interfaces has no "
				 "host-side veth to guard against address spoofing",
				 pod.ns, pod.name);
		goto out;
	}
	if (selected && bridged && (r = check_bridge_netfilter(&pod, err)) < 0)
		goto out;
	if ((r = nf_state_put_pod(&st, &pod)) < 0)
		goto out;
	/* put_pod took pod's members; not replacing, it made the last record
	 * (not looked for again: at 500 pods ~10 us) */
	if ((r = replacing ? txn_commit_pods(&t, c->conf.state_file, &st, err)
			   : txn_commit_add(&t, c->conf.state_file, &st, &st.pods[st.npods - 1], err)) < 0)
		goto out;
	nf_phase("committed");
	if (t.warning[0])
		fprintf(stderr, "netfence: %s\n", t.warning);

	out = json_deep_copy(c->conf.prev_result);
	json_object_set_new(out, "cniVersion", json_string(c->conf.cni_version));
	dump = json_dumps(out, JSON_INDENT(2));
	json_decref(out);
	if (!dump) {
		r = -ENOMEM;
		goto out;
	}
	printf("%s\n", dump);
	free(dump);
	r = 0;
out:
	txn_end(&t);
	nf_state_unlock(&lock);
	nf_state_free(&st);
	nf_pod_free(&pod);
	nf_prev_result_free(&pr);
	if (r == -ENOMEM && err && !err->msg[0])
		nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
	return r;
}

/* The state file is unusable (corrupt, unreadable): ADD fails closed until
 * an operator repairs it, but DEL must still succeed and remove what it
 * can of this pod from the kernel: the map entries of its addresses and
 * the chain of its kind if no other pod jumps to it, and the anti-spoofing
 * chain of its host veth, which the cached prevResult names. The state
 * file is left as it is, for the operator to look at. */
static int del_without_state(struct ctx *c, struct nf_error *err)
{
	struct nf_prev_result pr = {0};
	struct nf_error kerr = {0};
	int r = 0;

	fprintf(stderr, "netfence: DEL without the state (%s): removing what the kernel holds for this pod\n", err->msg);
	if (c->conf.prev_result && nf_prev_result_parse(c->conf.prev_result, c->ifname, &pr, &kerr) < 0)
		memset(&pr, 0, sizeof(pr));
	if (pr.naddrs)
		r = nft_remove_pod(NULL, pr.addrs, pr.naddrs, NULL, &kerr);
	for (size_t i = 0; r == 0 && i < pr.nhost; i++) {
		_cleanup_free_ char *as = NULL;
		if (asprintf(&as, "as_%s", pr.host_ifaces[i]) < 0) {
			as = NULL;
			r = -ENOMEM;
			break;
		}
		r = nft_remove_pod(NULL, NULL, 0, as, &kerr);
	}
	nf_prev_result_free(&pr);
	if (r < 0)
		fprintf(stderr, "netfence: DEL could not remove everything: %s\n", kerr.msg);
	nf_error_clear(err);
	return 0;
}

/* DEL removes the attachment's record and its rules. It needs neither the
 * netns (gone when the task exited) nor a prevResult, and succeeds for an
 * attachment it never saw or already removed. */
static int cmd_del(struct ctx *c, struct nf_error *err)
{
	bool removed = false;
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	int r;

	if ((r = nf_state_lock(c->conf.state_file, &lock, err)) < 0)
		return r;
	nf_phase("locked");
	if ((r = nf_state_load_fast(c->conf.state_file, &st, err)) < 0) {
		r = del_without_state(c, err);
		goto out;
	}
	nf_phase("loaded");
	if ((r = txn_begin_pod(&t, c->conf.state_file, &st, err)) < 0)
		goto out;
	r = txn_commit_del(&t, c->conf.state_file, &st, c->container_id, c->ifname, c->conf.idle_kinds, &removed,
			   err);
	nf_phase("committed");
	if (r == 0 && t.warning[0])
		fprintf(stderr, "netfence: %s\n", t.warning);
out:
	txn_end(&t);
	nf_state_unlock(&lock);
	nf_state_free(&st);
	return r;
}

static int cmd_check(struct ctx *c, struct nf_error *err)
{
	struct nf_state s = {0};
	struct nf_state_lock lock = {-1};
	_cleanup_free_ char *chain = NULL;
	const struct nf_pod *pod;
	struct plan p = {0};
	int r;

	if (!c->conf.prev_result)
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG, "prevResult: missing (CHECK needs it)");
	if ((r = nf_state_lock(c->conf.state_file, &lock, err)) < 0)
		return r;
	if ((r = nf_state_load_fast(c->conf.state_file, &s, err)) < 0)
		goto out;
	pod = nf_state_find_pod(&s, c->container_id, c->ifname);
	if (!pod) {
		r = nf_error_set(err, ENOENT, CNI_ERR_UNKNOWN_CONTAINER,
				 "container \"%s\" interface \"%s\" is not attached (no record in \"%s\")",
				 c->container_id, c->ifname, c->conf.state_file);
		goto out;
	}
	if (!plan_pod_is_selected(&s, pod))
		goto out;
	if (!(chain = plan_pod_chain_name(&s, pod))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = plan_compile(&s, &p, err)) < 0)
		goto out;
	if ((r = nft_check_pod(&p, chain, pod->host_veth, err)) < 0)
		nf_error_wrap(err, "pod %s/%s: its rules in the kernel are not what the state says "
			      "(netfencectl sync restores them)", pod->ns, pod->name);
out:
	plan_free(&p);
	nf_state_unlock(&lock);
	nf_state_free(&s);
	return r;
}

static bool attachment_valid(const struct nf_cni_conf *conf, const struct nf_pod *p)
{
	for (size_t i = 0; i < conf->nvalid; i++)
		if (strcmp(conf->valid[i].container_id, p->container_id) == 0 &&
		    strcmp(conf->valid[i].ifname, p->ifname) == 0)
			return true;
	return false;
}

/* GC (CNI 1.1): forget every attachment of this network that the runtime
 * no longer lists, with its rules and set elements, in one change. */
static int cmd_gc(struct ctx *c, struct nf_error *err)
{
	struct nf_state st = {0};
	struct nf_state_lock lock = {-1};
	struct txn t = {0};
	bool removed = false;
	int r;

	if (!c->conf.has_valid_attachments)
		return nf_error_set(err, EINVAL, CNI_ERR_INVALID_CONFIG,
				    "cni.dev/valid-attachments: missing (GC needs the list of attachments to keep)");
	if ((r = nf_state_lock(c->conf.state_file, &lock, err)) < 0)
		return r;
	if ((r = nf_state_load(c->conf.state_file, &st, err)) < 0 || (r = txn_begin(&t, c->conf.state_file, &st, err)) < 0)
		goto out;
	for (size_t i = st.npods; i-- > 0;) {
		const struct nf_pod *p = &st.pods[i];
		_cleanup_free_ char *cid = NULL, *ifname = NULL;

		/* a record without a network predates per-network GC: ours too;
		 * an idle kind is no attachment */
		if (p->idle || (p->network && c->conf.name && strcmp(p->network, c->conf.name) != 0) ||
		    attachment_valid(&c->conf, p))
			continue;
		cid = strdup(p->container_id);
		ifname = strdup(p->ifname);
		if (!cid || !ifname) {
			r = -ENOMEM;
			goto out;
		}
		removed |= nf_state_remove_pod(&st, cid, ifname);
	}
	if (removed)
		r = txn_commit(&t, c->conf.state_file, &st, err);
	if (r == 0 && t.warning[0])
		fprintf(stderr, "netfence: %s\n", t.warning);
out:
	txn_end(&t);
	nf_state_unlock(&lock);
	nf_state_free(&st);
	return r;
}

/* STATUS (CNI 1.1): can an ADD work now? The state file must be readable
 * and nftables must answer. */
static int cmd_status(struct ctx *c, struct nf_error *err)
{
	struct nf_state st = {0};
	int r;

	if ((r = nf_state_load(c->conf.state_file, &st, err)) < 0 ||
	    (r = nft_chain_exists(PLAN_CHAIN_BASE, err)) < 0) {
		err->code = 50; /* the plugin is not available */
		nf_state_free(&st);
		return r;
	}
	nf_state_free(&st);
	return 0;
}

static int cmd_version(struct ctx *c, struct nf_error *err)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "cniVersion", json_string(NF_CNI_VERSION));
	json_object_set_new(o, "supportedVersions", nf_cni_supported_versions());
	s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (!s)
		return -ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct ctx *, struct nf_error *);
	bool needs_conf;
	bool needs_container; /* CNI_CONTAINERID and CNI_IFNAME */
} commands[] = {
	{"ADD", cmd_add, true, true},
	{"DEL", cmd_del, true, true},
	{"CHECK", cmd_check, true, true},
	{"VERSION", cmd_version, false, false},
	{"GC", cmd_gc, true, false},
	{"STATUS", cmd_status, true, false},
};

/* NETFENCE_PHASES=1: one line on stderr with the time of each phase of
 * this call, in ms from the start of main (phase.h); for finding where an
 * ADD's time goes on a node. */
static void phases_start(void)
{
	const char *v = getenv("NETFENCE_PHASES");

	nf_phase_enable(v && *v && strcmp(v, "0") != 0);
	nf_phase("start");
}

static void phases_report(const struct ctx *c)
{
	char buf[1024];

	nf_phase("done");
	if (nf_phase_format(buf, sizeof(buf)) > 1)
		fprintf(stderr, "netfence: %s phases (ms): %s\n", c->command ? c->command : "-", buf);
}

int main(int argc, char **argv)
{
	struct ctx c = {0};
	struct nf_error err = {0};
	int r = -EINVAL, idx = -1;

	phases_start();
	/* A process of a few milliseconds: keep freed memory for reuse rather
	 * than unmapping it. An munmap once the writer thread has run on the
	 * other CPU is a TLB shootdown (an IPI): the DEL's free of its new
	 * state text cost 0.3 ms after the rename on this VM. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	nlsock_defer_enable();
	c.command = getenv("CNI_COMMAND");
	if (!c.command) {
		fprintf(stderr, "netfence: a CNI plugin; run by a container runtime with CNI_COMMAND set "
				"(ADD, DEL, CHECK, GC, STATUS, VERSION). See netfencectl for the operator CLI.\n");
		return 1;
	}
	for (size_t i = 0; i < NF_ARRAY_SIZE(commands); i++)
		if (strcmp(c.command, commands[i].name) == 0)
			idx = (int)i;
	if (idx < 0) {
		nf_error_set(&err, EINVAL, CNI_ERR_INVALID_ENV, "CNI_COMMAND: unknown command \"%s\"", c.command);
		goto fail;
	}
	if (commands[idx].needs_container &&
	    ((r = need_env("CNI_CONTAINERID", &c.container_id, &err)) < 0 ||
	     (r = need_env("CNI_IFNAME", &c.ifname, &err)) < 0))
		goto fail;
	if (commands[idx].needs_conf) {
		if ((r = nf_read_file("-", &c.stdin_buf, &c.stdin_len, &err)) < 0) {
			nf_error_wrap(&err, "reading the network config from stdin");
			goto fail;
		}
		if ((r = nf_cni_conf_parse(c.stdin_buf, c.stdin_len, &c.conf, &err)) < 0 ||
		    (r = nf_cni_args_parse(getenv("CNI_ARGS"), &c.args, &err)) < 0)
			goto fail;
	}
	nf_phase("config");
	r = commands[idx].fn(&c, &err);
	if (r < 0)
		goto fail;
	nf_cni_conf_free(&c.conf);
	nf_cni_args_free(&c.args);
	free(c.stdin_buf);
	phases_report(&c);
	nlsock_release_deferred();
	return 0;
fail:
	if (!err.msg[0])
		nf_error_set(&err, -r, CNI_ERR_IO, "%s: %s", c.command ? c.command : "netfence", strerror(-r));
	print_error(&c, &err);
	nf_cni_conf_free(&c.conf);
	nf_cni_args_free(&c.args);
	free(c.stdin_buf);
	phases_report(&c);
	nlsock_release_deferred();
	return 1;
}
