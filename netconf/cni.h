/* CNI input: the network config on stdin (with prevResult), CNI_ARGS. */
#ifndef NETFENCE_CNI_H
#define NETFENCE_CNI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "model.h"

#define NF_DEFAULT_STATE_FILE "/var/lib/netfence/state.json"
#define NF_CNI_VERSION "1.1.0"

/* A CNI attachment: (container ID, interface). */
struct nf_attachment {
	char *container_id;
	char *ifname;
};

#define NF_DEFAULT_IDLE_KINDS 32
#define NF_MAX_IDLE_KINDS 1024

struct nf_cni_conf {
	char *cni_version;
	char *name;
	char *state_file;     /* "stateFile", or NF_DEFAULT_STATE_FILE */
	/* "idleKindChains": how many idle kinds' chains the node keeps (txn.h),
	 * NF_DEFAULT_IDLE_KINDS when absent; 0: a kind's chain goes with its
	 * last pod */
	size_t idle_kinds;
	json_t *prev_result;  /* owned reference, NULL when absent */
	bool has_arg_labels;  /* args.cni.labels present */
	struct nf_labels arg_labels;
	bool has_valid_attachments; /* GC: "cni.dev/valid-attachments" present */
	size_t nvalid;
	struct nf_attachment *valid;
};

void nf_cni_conf_free(struct nf_cni_conf *c);
/* Decodes and validates the stdin config. Unknown keys are ignored (other
 * plugins' and runtimes' keys reach every plugin); known keys with the wrong
 * type are errors naming the key and the value. */
int nf_cni_conf_parse(const char *buf, size_t len, struct nf_cni_conf *out, struct nf_error *err);
/* true for the spec versions netfence speaks */
bool nf_cni_version_supported(const char *v);
/* JSON array of the versions, for VERSION */
json_t *nf_cni_supported_versions(void);

struct nf_cni_args {
	char *pod_ns;   /* K8S_POD_NAMESPACE or NULL */
	char *pod_name; /* K8S_POD_NAME or NULL */
	bool has_labels;
	struct nf_labels labels; /* K8S_POD_LABELS=k:v,k2:v2 */
};

void nf_cni_args_free(struct nf_cni_args *a);
/* "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;..." ; NULL or "" is fine. */
int nf_cni_args_parse(const char *s, struct nf_cni_args *out, struct nf_error *err);

/* What netfence needs from the previous plugin's result. */
struct nf_prev_result {
	size_t nhost;
	char **host_ifaces;    /* interfaces without "sandbox" (veth, bridge) */
	size_t naddrs;
	struct nf_cidr *addrs; /* ips on the CNI_IFNAME interface in the sandbox */
};

void nf_prev_result_free(struct nf_prev_result *r);
int nf_prev_result_parse(const json_t *pr, const char *ifname, struct nf_prev_result *out,
			 struct nf_error *err);

#endif
