/* The plain-struct model netconf/ produces and enforce/ consumes.
 * Every object owns its children; nf_*_free() accept NULL. */
#ifndef NETFENCE_MODEL_H
#define NETFENCE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

/* ---- addresses ---- */

/* An IPv4 or IPv6 prefix. family is AF_INET or AF_INET6; addr holds 4 or 16
 * bytes in network order; host bits beyond prefix are zero for CIDRs but
 * kept for interface addresses (10.1.0.5/24). */
struct nf_cidr {
	int family;
	uint8_t addr[16];
	uint8_t prefix;
};

/* Parses "10.0.0.0/8", "fd00::/64", and (allow_host) a bare address as /32
 * or /128. strict: host bits must be zero (as the API server requires for
 * ipBlock.cidr); otherwise they are kept. `field` names the field in errors. */
int nf_cidr_parse(const char *s, bool allow_host, bool strict, struct nf_cidr *out,
		  const char *field, struct nf_error *err);
/* "10.0.0.0/8"; buf needs INET6_ADDRSTRLEN + 4 */
void nf_cidr_format(const struct nf_cidr *c, char *buf, size_t len);
/* address only, no prefix */
void nf_addr_format(const struct nf_cidr *c, char *buf, size_t len);
bool nf_cidr_contains(const struct nf_cidr *outer, const struct nf_cidr *inner);
/* The order of set elements everywhere: family, address, then prefix
 * (an outer prefix before the ones it holds). */
int nf_cidr_cmp(const struct nf_cidr *a, const struct nf_cidr *b);

/* ---- labels and selectors ---- */

struct nf_label {
	char *key;
	char *value;
};

/* Sorted by key, keys unique. */
struct nf_labels {
	size_t n;
	struct nf_label *v;
};

void nf_labels_free(struct nf_labels *l);
/* Inserts or replaces; keeps the array sorted. Copies key and value. */
int nf_labels_set(struct nf_labels *l, const char *key, const char *value);
const char *nf_labels_get(const struct nf_labels *l, const char *key);
int nf_labels_copy(struct nf_labels *dst, const struct nf_labels *src);
bool nf_labels_equal(const struct nf_labels *a, const struct nf_labels *b);
/* Validation as the API server does it (qualified name key, value <= 63
 * chars of [A-Za-z0-9_.-], alnum at both ends). */
int nf_label_key_validate(const char *key, const char *field, struct nf_error *err);
int nf_label_value_validate(const char *value, const char *field, struct nf_error *err);
/* JSON object {"k":"v"} -> labels, validated; field names the JSON path. */
int nf_labels_from_json(const json_t *obj, struct nf_labels *out, const char *field,
			struct nf_error *err);
json_t *nf_labels_to_json(const struct nf_labels *l);
/* "app=foo,tier=web" (for display) ; caller frees */
char *nf_labels_format(const struct nf_labels *l);

enum nf_sel_op {
	NF_SEL_IN,
	NF_SEL_NOT_IN,
	NF_SEL_EXISTS,
	NF_SEL_DOES_NOT_EXIST,
};

struct nf_sel_expr {
	char *key;
	enum nf_sel_op op;
	size_t nvalues;
	char **values; /* sorted, unique */
};

/* A metav1.LabelSelector. An empty selector ({}) matches everything. */
struct nf_selector {
	struct nf_labels match_labels;
	size_t nexprs;
	struct nf_sel_expr *exprs; /* sorted by key, then op */
};

void nf_selector_free(struct nf_selector *s);
/* JSON LabelSelector -> selector, validated (keys, values, operators, In/NotIn
 * need values, Exists/DoesNotExist must not have them, no unknown fields). */
int nf_selector_from_json(const json_t *obj, struct nf_selector *out, const char *field,
			  struct nf_error *err);
bool nf_selector_matches(const struct nf_selector *s, const struct nf_labels *labels);
bool nf_selector_is_empty(const struct nf_selector *s);
/* Canonical text, stable across key order: "app=foo,k in (a,b),!x".
 * "" for the empty selector. Caller frees. Used for display and set names. */
char *nf_selector_format(const struct nf_selector *s);

/* ---- NetworkPolicy ---- */

enum nf_peer_kind {
	NF_PEER_SELECTOR, /* podSelector and/or namespaceSelector */
	NF_PEER_IPBLOCK,
};

struct nf_ipblock {
	struct nf_cidr cidr;
	size_t nexcept;
	struct nf_cidr *except;
};

struct nf_peer {
	enum nf_peer_kind kind;
	bool has_pod_sel;
	bool has_ns_sel;
	struct nf_selector pod_sel; /* valid when has_pod_sel */
	struct nf_selector ns_sel;  /* valid when has_ns_sel */
	struct nf_ipblock ipblock;  /* valid when kind == NF_PEER_IPBLOCK */
	/* Canonical text of what the peer designates, stable across key
	 * order: "namespace default pods(app=web)", "namespaces(team=a)
	 * pods()", "ipBlock 10.0.0.0/8 except 10.1.0.0/16". Peers that mean the
	 * same share it (compile names their address sets after it). Made by
	 * nf_policy_from_json, once, not by every compile. */
	char *key;
	uint64_t key_hash; /* nf_fnv1a64(key): the hex digits of its sets' names */
};

#define NF_PROTO_TCP 6
#define NF_PROTO_UDP 17
#define NF_PROTO_SCTP 132

struct nf_port {
	uint8_t proto;     /* NF_PROTO_*, TCP when omitted */
	bool has_port;     /* false: all ports of proto */
	uint16_t port;     /* when has_port and !name */
	uint16_t end_port; /* 0, or >= port: range port..end_port */
	char *name;        /* named port (IANA_SVC_NAME), or NULL */
};

struct nf_rule {
	bool has_to;     /* false: "to" absent or empty: any destination */
	size_t npeers;
	struct nf_peer *peers;
	bool has_ports;  /* false: "ports" absent or empty: any port */
	size_t nports;
	struct nf_port *ports;
	/* made by nf_policy_from_json: "<ns>/<policy> egress[<i>]" */
	char *id;
};

struct nf_policy {
	char *ns;
	char *name;
	struct nf_selector pod_sel;
	bool egress;   /* effective policyTypes contains Egress */
	bool ingress;  /* effective policyTypes contains Ingress */
	size_t negress;
	struct nf_rule *egress_rules;
	json_t *obj;   /* the object as applied (owned reference) */
};

void nf_policy_free(struct nf_policy *p); /* frees members, not p */
/* FNV-1a, 64 bits: what netfence names the kernel's sets after (stable
 * across versions: the kernel keeps the names) */
uint64_t nf_fnv1a64(const char *s);
/* A networking.k8s.io/v1 NetworkPolicy object -> model, validated as the API
 * server validates it. default_ns fills a missing metadata.namespace (and is
 * written into the stored object). Every error names the JSON path, e.g.
 * "spec.egress[0].to[1].ipBlock.except[0]: \"10.9.0.0/16\" is not within
 * cidr \"10.0.0.0/16\"". */
int nf_policy_from_json(const json_t *obj, const char *default_ns, struct nf_policy *out,
			struct nf_error *err);

/* ---- Namespace ---- */

struct nf_namespace {
	char *name;
	struct nf_labels labels; /* always includes kubernetes.io/metadata.name */
	json_t *obj;
};

void nf_namespace_free(struct nf_namespace *n);
int nf_namespace_from_json(const json_t *obj, struct nf_namespace *out, struct nf_error *err);

/* ---- pods attached on this node ---- */

struct nf_pod {
	char *container_id;
	char *ifname;     /* CNI_IFNAME inside the pod */
	char *ns;
	char *name;
	struct nf_labels labels;
	char *host_veth;  /* host-side interface in the node netns */
	char *network;    /* the CNI network (conflist name) it was attached by */
	size_t naddrs;
	struct nf_cidr *addrs; /* the pod's addresses, with their prefix */
	/* where its JSON record lies in nf_state.raw, when it was loaded
	 * from there and not changed since (raw_len 0: made anew) */
	size_t raw_at, raw_len;
	/* its record in the model cache it was loaded from (in the state's
	 * frozen_enc, or frozen_map), whole, and the record's length
	 * (NULL: none; cache.c): copied as it is into the next cache while
	 * the pod has not changed (raw_len not 0) */
	const void *cache_rec;
	size_t cache_len;
	/* its strings, labels and addresses are the model cache's, owned by
	 * the state it was loaded into (nf_state.frozen): nf_pod_free leaves
	 * them; nf_pod_own makes them the pod's before any is changed */
	bool borrowed;
	/* an idle kind ("idle": true): no attachment, but the namespace and
	 * labels of a deleted one, the last of its kind, whose kind's chain
	 * the kernel keeps for the next pod of that kind (txn.h, idle kinds).
	 * Nothing else: no container, interface, name, network, address or
	 * host veth; the lookups (nf_state_find_pod, ...) pass it over. */
	bool idle;
};

void nf_pod_free(struct nf_pod *p);
int nf_pod_own(struct nf_pod *p);
int nf_pod_from_json(const json_t *obj, struct nf_pod *out, struct nf_error *err);
json_t *nf_pod_to_json(const struct nf_pod *p);

/* ---- Pod objects (registrations) ----
 *
 * A v1 Pod applied with netfencectl: its labels, and the containerPorts
 * that named ports in egress rules resolve against. Attachments with the
 * same namespace/name take its labels. */

struct nf_container_port {
	char *name;    /* IANA_SVC_NAME, or NULL for an unnamed port */
	uint16_t port;
	uint8_t proto; /* NF_PROTO_*, TCP when omitted */
};

struct nf_podspec {
	char *ns;
	char *name;
	struct nf_labels labels;
	size_t nports;
	struct nf_container_port *ports;
	json_t *obj;
};

void nf_podspec_free(struct nf_podspec *p);
/* A v1 Pod object -> registration, validated (names, labels,
 * spec.containers[].ports[]: containerPort 1-65535, protocol TCP/UDP/SCTP,
 * name IANA_SVC_NAME and unique within the pod). default_ns fills a
 * missing metadata.namespace and is written into the stored copy. */
int nf_podspec_from_json(const json_t *obj, const char *default_ns, struct nf_podspec *out,
			 struct nf_error *err);

/* ---- the node state ---- */

struct nf_state {
	size_t npolicies;
	struct nf_policy *policies;
	size_t nnamespaces;
	struct nf_namespace *namespaces;
	size_t npods;
	struct nf_pod *pods;
	size_t npodspecs;
	struct nf_podspec *podspecs;
	/* nf_state_load: the file's text, and where the value of its
	 * top-level "pods" lies in it ([pods_at, pods_end), both 0 when
	 * unknown), for nf_state_save_pods */
	char *raw;
	size_t raw_len, pods_at, pods_end;
	size_t raw_map; /* raw is mapped, raw_map bytes (read only); 0: on the heap */
	/* loaded from the model cache (state.h): policies, namespaces and
	 * podspecs live in this arena, read only, without their ->obj; and
	 * their encoded bytes, which the next cache reuses as they are */
	void *frozen;
	char *frozen_enc;
	size_t frozen_enc_len;
	/* frozen_enc is in frozen_map, a read-only mapping of the cache file
	 * (frozen_map_len bytes, the header first, frozen_enc right after it;
	 * NULL: on the heap); the pods' records, which their strings point
	 * into, are the frozen_pods_len bytes at frozen_pods_off in it, which
	 * the next cache written in place leaves as they are (cache.c) */
	void *frozen_map;
	size_t frozen_map_len;
	size_t frozen_pods_off, frozen_pods_len;
	/* that file (its device and inode: the next cache leaves its frozen
	 * part where it is only in that very file), and the frozen part's
	 * checksum, which the next cache carries */
	uint64_t frozen_map_dev, frozen_map_ino;
	uint64_t frozen_hash;
	/* the frozen part's structs are the cache's image, mapped, not
	 * decoded (cache.c) */
	bool frozen_image;
	/* the inode of "<state>.synced" when the text outside "pods" is that
	 * file's, which is on disk (the model cache records it; 0: not
	 * known): a save of the pods alone then needs no fsync (state.h) */
	uint64_t synced_ino;
};

void nf_state_free(struct nf_state *s); /* frees members, not s */
/* frees a state's text: unmapped if map (its mapping's length), else free() */
void nf_text_free(char *text, size_t map);
void nf_state_arena_free(void *arena); /* cache.c */

/* Fills out with a copy of the labels of namespace `ns`: its Namespace
 * object's, or just kubernetes.io/metadata.name=<ns> when no object declares
 * it. Caller frees out with nf_labels_free(). */
int nf_state_namespace_labels(const struct nf_state *s, const char *ns, struct nf_labels *out);

/* Kubernetes name validation (DNS-1123 label for namespaces, DNS-1123
 * subdomain for object names). */
int nf_dns1123_label_validate(const char *s, const char *field, struct nf_error *err);
int nf_dns1123_subdomain_validate(const char *s, const char *field, struct nf_error *err);

/* Helpers shared by the netconf/ parsers (added with labels.c). */
/* "an object", "a string", ... for error messages; "nothing" for NULL. */
const char *nf_json_type_name(const json_t *v);

#endif
