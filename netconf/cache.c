/* The model cache, "<state>.model": the parsed node state in a binary form,
 * so a CNI call does not parse and validate every policy's JSON again (at
 * 1,000 policies that was most of an ADD: docs/performance-history.md).
 *
 * It is derived data, never the truth: it names the state file it was made
 * from (struct nf_text_id: device, inode, mtime; the state file is only
 * ever replaced by a rename, never written in place) and its length, and
 * the boot it was written in (/proc/sys/kernel/random/boot_id), and is used
 * only for that very file in that boot; anything else (another file, a
 * reboot, a torn or truncated cache, a checksum that does not match,
 * another format version, a file someone else could have written) is a
 * miss, and the caller parses the JSON as before. Every writer of the
 * state writes it once the new text is written (before its rename: it
 * names the new file, so it is a miss until then), in place, without
 * fsync: losing it costs one parse. Until the next boot the page cache
 * holds every file as it was written; after a power loss a renamed state
 * file can hold zeros, which only a parse notices (state.c), and the
 * boot's ID is another. Without a readable boot ID nothing is cached.
 * (Until 2026-11-28 the cache held an XXH3-128 of the text, which every
 * load and every writer hashed: ~0.1 ms of each ADD and DEL at 1,000
 * policies.)
 *
 * Two checksums: one of the pods, which every ADD and DEL writes in place,
 * always checked; one of the frozen part, which only a change of policies
 * writes, checked by the first load after it. An ADD or DEL then leaves
 * the frozen part where it is and flags it in the header as checked: in
 * that boot a load needs to check neither its checksum nor each pointer
 * of its image (at 1,000 policies, ~0.2 ms of every ADD and DEL on a
 * 2-vCPU VM: docs/performance-history.md).
 *
 * File: header, then the body: the frozen part (policies, namespaces and
 * pod registrations), then the pods, right after it or further on (the
 * header says where they begin and end; bytes after them, or between the
 * two, are left over from an earlier cache: write_pods_in_place). The
 * frozen part is an image of its decoded structs, mapped in place (below:
 * "the image"), then their records; records are u32 counts and fields,
 * little endian, strings as u32 length (0xffffffff: NULL), bytes and a
 * NUL. A pod's record ends with where its JSON record is in the text,
 * relative to the record before it (pod_place): the next cache of an ADD
 * or DEL copies an unchanged pod's record as it is, with no new memory
 * for it (at 500 pods, encoding them all again was ~0.15 ms of the writer
 * thread, which a DEL waits for). Without a usable image the records are
 * decoded into one arena (nf_state.frozen), read only, and so are the
 * pods, borrowed (nf_pod.borrowed: an ADD or DEL adds or removes whole
 * records), their strings in the cache's bytes as loaded (mapped, not
 * copied); nf_state_cache_load_pods, for netfencectl, makes them on the
 * heap. The stored JSON objects (->obj) are not kept: a state loaded from
 * the cache can only be saved with nf_state_save_pods. */
#include "state.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CACHE_MAGIC "NFMODEL"
#define CACHE_VERSION 14u
#define NIL_LEN 0xffffffffu

struct cache_header {
	char magic[8];
	uint32_t version;
	uint32_t pods_off; /* where the pods begin in the body (frozen_len or after) */
	uint64_t text_dev, text_ino; /* the state file (struct nf_text_id) */
	int64_t text_mtime_ns;
	uint64_t text_len;
	uint64_t pods_at, pods_end; /* the span of "pods" in that text */
	uint64_t body_len; /* where the pods end in the body; the file can go on */
	uint64_t pods_hash; /* XXH3-64 of the body from pods_off to body_len */
	/* nf_state.synced_ino of that text: the inode of "<state>.synced"
	 * when the text outside "pods" is that file's (0: not known) */
	uint64_t synced_ino;
	uint64_t frozen_hash; /* XXH3-64 of the body up to frozen_len */
	uint8_t boot[16]; /* the boot this header was written in */
	uint32_t flags;
	uint32_t frozen_len; /* the frozen part's bytes, from the body's start */
	uint64_t reserved; /* zero; the body stays 16-byte aligned */
};
/* flags: the frozen part is known to be whole, as its writer made it (an
 * ADD or DEL, which does not write it, found it so): a load in the same
 * boot need not check it (trusted_frozen) */
#define CACHE_FROZEN_WHOLE 1u
_Static_assert(sizeof(struct cache_header) == NF_CACHE_HEADER_LEN && sizeof(struct cache_header) % 16 == 0,
	       "the body, and so the image, is aligned");
_Static_assert(offsetof(struct cache_header, boot) == 96 && offsetof(struct cache_header, flags) == 112 &&
		       offsetof(struct cache_header, pods_off) == 12 && offsetof(struct cache_header, body_len) == 64 &&
		       offsetof(struct cache_header, frozen_len) == 116,
	       "tests/unit/test_netconf.c knows where the boot, the flags and the parts' bounds are");

/* The boot's ID, read once per process (boot_known: it could be) */
static uint8_t boot[16];
static bool boot_known;
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void read_boot(void)
{
	char t[40];
	ssize_t n;
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC), hi = -1;
	uint8_t v[16];
	size_t k = 0;

	if (fd < 0)
		return;
	n = read(fd, t, sizeof(t) - 1);
	close(fd);
	if (n <= 0)
		return;
	t[n] = '\0';
	/* a UUID: 32 hex digits and dashes */
	for (ssize_t i = 0; i < n && k < sizeof(v); i++) {
		int d = t[i] >= '0' && t[i] <= '9' ? t[i] - '0' : t[i] >= 'a' && t[i] <= 'f' ? t[i] - 'a' + 10 : -1;
		if (d < 0)
			continue;
		if (hi < 0) {
			hi = d;
		} else {
			v[k++] = (uint8_t)(hi << 4 | d);
			hi = -1;
		}
	}
	if (k == sizeof(v)) {
		memcpy(boot, v, sizeof(v));
		boot_known = true;
	}
}

/* The boot's ID, or NULL if it cannot be read */
static const uint8_t *boot_id(void)
{
	pthread_once(&boot_once, read_boot);
	return boot_known ? boot : NULL;
}

/* Was h written in this boot (and is the boot known)? */
static bool this_boot(const struct cache_header *h)
{
	const uint8_t *b = boot_id();

	return b && memcmp(h->boot, b, sizeof(h->boot)) == 0;
}

/* Is h's frozen part known whole in this boot? */
static bool trusted_frozen(const struct cache_header *h)
{
	return (le32toh(h->flags) & CACHE_FROZEN_WHOLE) && this_boot(h);
}

/* The first struct of the image (below): where the frozen part's arrays
 * are. len, base and layout first, at fixed places: a body without an
 * image begins with IMAGE_NONE zero bytes. */
struct image_root {
	uint64_t len;    /* the image's bytes, this root first */
	uint64_t base;   /* the address it is made for: IMAGE_BASE */
	uint64_t layout; /* image_layout() of the build that made it */
	size_t npolicies, nnamespaces, npodspecs;
	struct nf_policy *policies;
	struct nf_namespace *namespaces;
	struct nf_podspec *podspecs;
};

/* ---- arena: the frozen part of a state, freed at once ---- */

struct chunk {
	struct chunk *next;
	size_t used, size;
	max_align_t data[];
};

/* Chunks are anonymous mappings of 1 MiB (or one allocation's size):
 * their pages are zero when first touched, and only the touched ones
 * exist, so nothing is cleared twice (a calloc'd chunk was memset by
 * glibc, 9 % of an ADD's instructions at 1,000 policies, on pages the
 * kernel had just zeroed) and a small state costs no more than it uses. */
#define ARENA_CHUNK ((size_t)1 << 20)

/* every allocation's alignment, and so the image's (below) */
#define ARENA_ALIGN ((size_t)_Alignof(max_align_t))

static size_t align_up(size_t n)
{
	return (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

static void *arena_alloc(struct chunk **a, size_t size)
{
	struct chunk *c = *a;

	size = align_up(size);
	if (!size)
		size = ARENA_ALIGN;
	if (!c || c->size - c->used < size) {
		size_t len = sizeof(*c) + size > ARENA_CHUNK ? sizeof(*c) + size : ARENA_CHUNK;
		void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		c = m;
		c->size = len - sizeof(*c);
		c->used = 0;
		c->next = *a;
		*a = c;
	}
	c->used += size;
	return (char *)c->data + c->used - size;
}

void nf_state_arena_free(void *arena)
{
	for (struct chunk *c = arena, *n; c; c = n) {
		n = c->next;
		munmap(c, sizeof(*c) + c->size);
	}
}

/* ---- writing ---- */

struct wbuf {
	char *p;
	size_t len, cap;
	size_t pods_off; /* put_pods: where the pods begin */
	bool oom;
};

static void put(struct wbuf *w, const void *src, size_t n)
{
	if (w->oom || n == 0)
		return;
	if (w->cap - w->len < n) {
		size_t cap = w->cap ? w->cap : 65536;
		char *q;
		while (cap - w->len < n)
			cap *= 2;
		if (!(q = realloc(w->p, cap))) {
			w->oom = true;
			return;
		}
		w->p = q;
		w->cap = cap;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put_u8(struct wbuf *w, unsigned v)
{
	uint8_t b = (uint8_t)v;
	put(w, &b, 1);
}

static void put_u16(struct wbuf *w, unsigned v)
{
	uint16_t b = htole16((uint16_t)v);
	put(w, &b, 2);
}

static void put_u32(struct wbuf *w, size_t v)
{
	uint32_t b = htole32((uint32_t)v);
	if (v > UINT32_MAX - 1)
		w->oom = true; /* never: a state is at most 256 MiB */
	put(w, &b, 4);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	uint64_t b = htole64(v);
	put(w, &b, 8);
}

/* length, bytes and a NUL (so a decoded string can point at them) */
static void put_str(struct wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint32_t b = htole32(s ? (uint32_t)n : NIL_LEN);

	put(w, &b, 4);
	if (s)
		put(w, s, n + 1);
}

static void put_cidr(struct wbuf *w, const struct nf_cidr *c)
{
	put_u8(w, c->family == AF_INET6 ? 6 : 4);
	put(w, c->addr, 16);
	put_u8(w, c->prefix);
}

static void put_labels(struct wbuf *w, const struct nf_labels *l)
{
	put_u32(w, l->n);
	for (size_t i = 0; i < l->n; i++) {
		put_str(w, l->v[i].key);
		put_str(w, l->v[i].value);
	}
}

static void put_selector(struct wbuf *w, const struct nf_selector *s)
{
	put_labels(w, &s->match_labels);
	put_u32(w, s->nexprs);
	for (size_t i = 0; i < s->nexprs; i++) {
		put_str(w, s->exprs[i].key);
		put_u8(w, s->exprs[i].op);
		put_u32(w, s->exprs[i].nvalues);
		for (size_t j = 0; j < s->exprs[i].nvalues; j++)
			put_str(w, s->exprs[i].values[j]);
	}
}

static void put_policy(struct wbuf *w, const struct nf_policy *p)
{
	put_str(w, p->ns);
	put_str(w, p->name);
	put_selector(w, &p->pod_sel);
	put_u8(w, p->egress);
	put_u8(w, p->ingress);
	put_u32(w, p->negress);
	for (size_t i = 0; i < p->negress; i++) {
		const struct nf_rule *r = &p->egress_rules[i];
		put_u8(w, r->has_to);
		put_u32(w, r->npeers);
		for (size_t j = 0; j < r->npeers; j++) {
			const struct nf_peer *pe = &r->peers[j];
			put_u8(w, pe->kind);
			put_u8(w, pe->has_pod_sel);
			put_u8(w, pe->has_ns_sel);
			if (pe->has_pod_sel)
				put_selector(w, &pe->pod_sel);
			if (pe->has_ns_sel)
				put_selector(w, &pe->ns_sel);
			if (pe->kind == NF_PEER_IPBLOCK) {
				put_cidr(w, &pe->ipblock.cidr);
				put_u32(w, pe->ipblock.nexcept);
				for (size_t k = 0; k < pe->ipblock.nexcept; k++)
					put_cidr(w, &pe->ipblock.except[k]);
			}
			put_str(w, pe->key);
			put_u64(w, pe->key_hash);
		}
		put_u8(w, r->has_ports);
		put_u32(w, r->nports);
		for (size_t j = 0; j < r->nports; j++) {
			const struct nf_port *po = &r->ports[j];
			put_u8(w, po->proto);
			put_u8(w, po->has_port);
			put_u16(w, po->port);
			put_u16(w, po->end_port);
			put_str(w, po->name);
		}
		put_str(w, r->id);
	}
}

static void put_pod(struct wbuf *w, const struct nf_pod *p)
{
	put_u8(w, p->idle);
	put_str(w, p->container_id);
	put_str(w, p->ifname);
	put_str(w, p->ns);
	put_str(w, p->name);
	put_labels(w, &p->labels);
	put_str(w, p->host_veth);
	put_str(w, p->network);
	put_u32(w, p->naddrs);
	for (size_t i = 0; i < p->naddrs; i++)
		put_cidr(w, &p->addrs[i]);
}

/* The frozen part's records: policies, namespaces, pod registrations */
static void put_frozen(struct wbuf *w, const struct nf_state *s)
{
	put_u32(w, s->npolicies);
	for (size_t i = 0; i < s->npolicies; i++)
		put_policy(w, &s->policies[i]);
	put_u32(w, s->nnamespaces);
	for (size_t i = 0; i < s->nnamespaces; i++) {
		put_str(w, s->namespaces[i].name);
		put_labels(w, &s->namespaces[i].labels);
	}
	put_u32(w, s->npodspecs);
	for (size_t i = 0; i < s->npodspecs; i++) {
		const struct nf_podspec *p = &s->podspecs[i];
		put_str(w, p->ns);
		put_str(w, p->name);
		put_labels(w, &p->labels);
		put_u32(w, p->nports);
		for (size_t j = 0; j < p->nports; j++) {
			put_str(w, p->ports[j].name);
			put_u16(w, p->ports[j].port);
			put_u8(w, p->ports[j].proto);
		}
	}
}

/* A pod record's last 16 bytes: where its JSON record lies in the text,
 * as the bytes after the previous record's (or after the "[") and its
 * length (0, 0: not known). Relative, so that a record keeps its bytes
 * when the records before it are removed or change length. */
static void pod_place(uint8_t out[16], size_t gap, size_t len)
{
	uint64_t g = htole64(gap), l = htole64(len);

	memcpy(out, &g, 8);
	memcpy(out + 8, &l, 8);
}

/* How many pods of s a cache of s without skip has (skip: one of s's
 * pods, or NULL) */
static size_t pods_but(const struct nf_state *s, const struct nf_pod *skip)
{
	return s->npods - (skip && skip >= s->pods && skip < s->pods + s->npods);
}

/* Where the pods' records go: ranges of w or bytes of the loaded cache
 * (a pod's cache_rec), in order. */
struct pods_seg {
	const void *borrowed; /* NULL: w->p + at */
	size_t at, len;
};
#define PODS_SEGS (NF_PIECES_MAX - 2)

/* The pods of s but skip (w->pods_off: where they begin): a count, then
 * each pod's record. spans: where each of those records lies in the text
 * the cache is made for (NULL: unknown), pods_at: where its "pods" array
 * is. With seg: a pod unchanged since it was loaded from a cache
 * (cache_rec), and in the same place relative to the record before it, is
 * not encoded again: its record is the loaded one, and runs of those are
 * one segment (an ADD's cache is then the loaded pods, then the new one's
 * record).
 * Returns how many segments (more than PODS_SEGS: not filled; call again
 * without seg); without seg, all is in w. */
static size_t put_pods(struct wbuf *w, const struct nf_state *s, const struct nf_pod *skip,
		       const size_t (*spans)[2], size_t pods_at, struct pods_seg *seg)
{
	size_t n = 0, prev_end = pods_at + 1, k = 0;

	w->pods_off = w->len;
	put_u32(w, pods_but(s, skip));
	if (seg)
		seg[n++] = (struct pods_seg){NULL, w->pods_off, 4};
	for (size_t i = 0; i < s->npods; i++) {
		const struct nf_pod *p = &s->pods[i];
		if (p == skip)
			continue;
		size_t at = spans ? spans[k][0] : 0, len = spans && spans[k][1] > at ? spans[k][1] - at : 0;
		uint8_t place[16];
		k++;
		if (len && at < prev_end)
			len = 0; /* never: the records of an array follow each other */
		pod_place(place, len ? at - prev_end : 0, len);
		if (len)
			prev_end = at + len;
		if (seg && p->cache_rec && p->raw_len && p->cache_len > sizeof(place) &&
		    !memcmp((const uint8_t *)p->cache_rec + p->cache_len - sizeof(place), place, sizeof(place))) {
			struct pods_seg *last = &seg[n - 1];
			if (last->borrowed && (const uint8_t *)last->borrowed + last->len == p->cache_rec)
				last->len += p->cache_len;
			else if (n++ < PODS_SEGS)
				seg[n - 1] = (struct pods_seg){p->cache_rec, 0, p->cache_len};
			else
				return n;
			continue;
		}
		size_t from = w->len;
		put_pod(w, p);
		put(w, place, sizeof(place));
		if (!seg)
			continue;
		if (!seg[n - 1].borrowed && seg[n - 1].at + seg[n - 1].len == from)
			seg[n - 1].len += w->len - from;
		else if (n++ < PODS_SEGS)
			seg[n - 1] = (struct pods_seg){NULL, from, w->len - from};
		else
			return n;
	}
	return seg ? n : 0;
}

static char *cache_path(const char *path)
{
	char *p;
	return asprintf(&p, "%s.model", path) < 0 ? NULL : p;
}

static void put_image(struct wbuf *w, const char *enc, size_t elen);

/* The cache of s (without skip, if not NULL), made from text, in pieces
 * (out): its header and all but the frozen part in *buf (malloc'd); the
 * frozen part, if s has one, borrowed from s, as it is (an ADD or DEL
 * re-encodes only the pods).
 * known: the pods' spans in text, if the caller has them (else found,
 * which needs text in one piece). */
static int encode(const struct nf_state *s, const struct nf_pod *skip, const struct nf_pieces *text, size_t pods_at,
		  size_t pods_end, const size_t (*known)[2], const struct nf_text_id *id, char **buf,
		  struct nf_pieces *out)
{
	struct wbuf w = {0};
	struct cache_header h = {.magic = CACHE_MAGIC, .version = htole32(CACHE_VERSION)};
	struct cache_header *hp;
	size_t (*spans)[2] = NULL, frozen = s->frozen_enc ? s->frozen_enc_len : 0, nseg = 0, npods = pods_but(s, skip);
	struct pods_seg seg[PODS_SEGS];
	XXH3_state_t *bh;

	if (!known && npods && text->n == 1 && (spans = calloc(npods, sizeof(*spans))) &&
	    nf_json_array_spans(text->v[0].iov_base, pods_at, pods_end, spans, npods) != npods) {
		free(spans);
		spans = NULL;
	}
	put(&w, &h, sizeof(h));
	/* the frozen part: the image of its records, then their encoding.
	 * A frozen state's own bytes are reused as they are (an ADD or DEL
	 * re-encodes only the pods). */
	if (!s->frozen_enc) {
		struct wbuf e = {0};
		put_frozen(&e, s);
		if (e.oom) {
			w.oom = true;
		} else {
			put_image(&w, e.p, e.len);
			put(&w, e.p, e.len);
		}
		free(e.p);
		frozen = w.len - sizeof(h);
	}
	if (!known)
		known = (const size_t(*)[2])spans;
	if (known) {
		size_t at = w.len;
		nseg = put_pods(&w, s, skip, known, pods_at, seg);
		if (nseg > PODS_SEGS) { /* too many pieces: all encoded anew */
			w.len = at;
			nseg = 0;
		}
	}
	if (!nseg) {
		put_pods(&w, s, skip, known, pods_at, NULL);
		seg[nseg++] = (struct pods_seg){NULL, w.pods_off, w.len - w.pods_off};
	}
	free(spans);
	bh = w.oom ? NULL : XXH3_createState();
	if (!bh || XXH3_64bits_reset(bh) == XXH_ERROR) {
		XXH3_freeState(bh);
		free(w.p);
		return -ENOMEM;
	}
	*out = (struct nf_pieces){0};
	nf_pieces_add(out, w.p, sizeof(h));
	nf_pieces_add(out, s->frozen_enc ? s->frozen_enc : w.p + sizeof(h), frozen);
	for (size_t i = 0; i < nseg; i++)
		nf_pieces_add(out, seg[i].borrowed ? seg[i].borrowed : w.p + seg[i].at, seg[i].len);
	/* the frozen part's hash: a frozen state's is its cache's (an ADD or
	 * DEL does not read those bytes again) */
	for (int i = 2; i < out->n; i++)
		XXH3_64bits_update(bh, out->v[i].iov_base, out->v[i].iov_len);
	hp = (struct cache_header *)w.p;
	hp->text_dev = htole64(id->dev);
	hp->text_ino = htole64(id->ino);
	hp->text_mtime_ns = (int64_t)htole64((uint64_t)id->mtime_ns);
	if (boot_id()) /* else all zero, which no load takes: no cache is written */
		memcpy(hp->boot, boot_id(), sizeof(hp->boot));
	hp->text_len = htole64(text->len);
	hp->pods_at = htole64(pods_at);
	hp->pods_end = htole64(pods_end);
	hp->pods_off = htole32((uint32_t)frozen);
	hp->frozen_len = htole32((uint32_t)frozen);
	hp->body_len = htole64(out->len - sizeof(h));
	hp->pods_hash = htole64(XXH3_64bits_digest(bh));
	hp->frozen_hash = htole64(s->frozen_enc ? s->frozen_hash : XXH3_64bits(out->v[1].iov_base, frozen));
	hp->synced_ino = htole64(s->synced_ino);
	XXH3_freeState(bh);
	*buf = w.p;
	return 0;
}

int nf_state_cache_encode(const struct nf_state *s, const char *text, size_t len, size_t pods_at,
			  size_t pods_end, const struct nf_text_id *id, char **out, size_t *outlen)
{
	struct nf_pieces t = nf_pieces_of(text, len), c;
	char *buf, *all;
	size_t n = 0;
	int r;

	if ((r = encode(s, NULL, &t, pods_at, pods_end, NULL, id, &buf, &c)) < 0)
		return r;
	if ((all = malloc(c.len)))
		for (int i = 0; i < c.n; i++) {
			memcpy(all + n, c.v[i].iov_base, c.v[i].iov_len);
			n += c.v[i].iov_len;
		}
	free(buf);
	if (!all)
		return -ENOMEM;
	*out = all;
	*outlen = c.len;
	return 0;
}

/* Does a pod of s point into the bytes [a, b) of the pods it was loaded
 * with (old, live_len bytes)? Its strings are in its record (cache_rec);
 * a borrowed pod whose record is not there might point anywhere. */
static bool pods_use(const struct nf_state *s, uintptr_t old, size_t live_len, size_t a, size_t b)
{
	for (size_t i = 0; i < s->npods; i++) {
		const struct nf_pod *p = &s->pods[i];
		uintptr_t r = (uintptr_t)p->cache_rec;
		if (!p->borrowed)
			continue;
		if (r < old || r - old >= live_len || p->cache_len > live_len - (r - old))
			return true;
		if (r - old < b && a < r - old + p->cache_len)
			return true;
	}
	return false;
}

/* Is the piece at b (len bytes), to go at off in the pods, the loaded
 * pods' bytes (old, live_len of them) at that very place? */
static bool piece_there(uintptr_t b, size_t len, size_t off, uintptr_t old, size_t live_len)
{
	return b >= old && b - old == off && off + len <= live_len;
}

/* The header and the pods of c (encode's pieces: the header, the frozen
 * part of s's cache file, where it is, then the pods) into that file
 * (fd), which s was loaded from: *end, the file's new length. The bytes
 * of the pods s was loaded with that its pods still point into do not
 * change: this process may still read them (a DEL's pod is removed from
 * s after its cache is written; a failed kernel change falls back to
 * compiling s whole), and a file cut shorter than a mapped page would
 * fault. So the new pods go over the old ones only if every record of
 * them is unchanged and where it was, or lies where no pod of s points
 * (the count in front, after the old pods, a record that s no longer
 * has or has made its own: an ADD's, which appends its pod or takes an
 * idle kind's place; a DEL of the last pod); rewriting the unchanged ones
 * only dirtied ~100 KB of pages at 500 pods for the writeback to write
 * again. Otherwise (a DEL of a pod before others) they go beside them:
 * between the frozen part and them if they fit there, else after them.
 * The header says where. */
static int write_pods_in_place(int fd, const struct nf_pieces *c, const struct nf_state *s, size_t *end)
{
	const size_t hlen = c->v[0].iov_len, frozen = c->v[1].iov_len;
	const uintptr_t old = (uintptr_t)s->frozen_map + hlen + s->frozen_pods_off;
	const size_t live_at = s->frozen_pods_off, live_len = s->frozen_pods_len, live_end = live_at + live_len;
	struct cache_header *hp = c->v[0].iov_base;
	size_t n = 0, at, place = live_at;
	bool in_place = true;
	int r = 0;

	for (int i = 2; i < c->n; i++)
		n += c->v[i].iov_len;
	/* in place: each piece is the old bytes where they are, or lies
	 * where no pod of s points */
	at = live_at;
	for (int i = 2; in_place && i < c->n; i++) {
		uintptr_t b = (uintptr_t)c->v[i].iov_base;
		size_t len = c->v[i].iov_len;
		in_place = piece_there(b, len, at - live_at, old, live_len) ||
			   !pods_use(s, old, live_len, at - live_at, at - live_at + len);
		at += len;
	}
	if (!in_place)
		place = frozen + n <= live_at ? frozen : live_end;
	at = place;
	for (int i = 2; r == 0 && i < c->n; i++) {
		uintptr_t b = (uintptr_t)c->v[i].iov_base;
		size_t len = c->v[i].iov_len;
		if (!(in_place && piece_there(b, len, at - live_at, old, live_len)))
			r = nf_pwrite_all(fd, c->v[i].iov_base, len, (off_t)(hlen + at));
		at += len;
	}
	/* the header last: a writer killed before it leaves the old pods
	 * named, whole (over them, it leaves a count the checksum refuses) */
	hp->pods_off = htole32((uint32_t)place);
	hp->body_len = htole64(place + n);
	if (r == 0)
		r = nf_pwrite_all(fd, hp, hlen, 0);
	*end = hlen + (place + n > live_end ? place + n : live_end);
	return r;
}

/* The cache c (encode's pieces) over the old one. keep: c's frozen part
 * (its second piece) is that file's own, where it is (the state was
 * decoded from a mapping of this very file): only the header and the pods
 * are written, and the bytes a decoded state points into never change
 * under it (write_pods_in_place). Then the header flags the frozen part
 * whole: it was checked, or trusted, when it was loaded, and is not
 * written now. Otherwise the header goes without the flag (the next load
 * checks the whole file): written in place, a frozen part could be left
 * half written by a writer killed on the way. */
static int write_in_place(const char *cpath, const struct nf_pieces *c, const struct nf_state *s)
{
	struct stat st;
	int fd = open(cpath, O_WRONLY | O_CLOEXEC | O_NOFOLLOW), r;
	size_t end = c->len;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0022) || st.st_uid != geteuid() ||
	    st.st_nlink != 1) {
		r = -EINVAL;
	} else if (s->frozen_map && c->n >= 3 && c->v[1].iov_base == s->frozen_enc &&
		   c->v[1].iov_len == s->frozen_enc_len && s->frozen_pods_off >= s->frozen_enc_len &&
		   (uint64_t)st.st_dev == s->frozen_map_dev && (uint64_t)st.st_ino == s->frozen_map_ino) { /* keep */
		((struct cache_header *)c->v[0].iov_base)->flags |= htole32(CACHE_FROZEN_WHOLE);
		r = write_pods_in_place(fd, c, s, &end);
	} else {
		r = nf_write_all_v(fd, c);
	}
	if (r == 0 && ftruncate(fd, (off_t)end) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

void nf_state_cache_write(const char *path, const struct nf_state *s, const struct nf_pod *skip,
			  const struct nf_pieces *text, size_t pods_at, size_t pods_end, const size_t (*spans)[2],
			  const struct nf_text_id *id)
{
	_cleanup_free_ char *cpath = cache_path(path), *buf = NULL;
	_cleanup_free_ size_t(*found)[2] = NULL;
	struct nf_pieces c;
	size_t len = text->len, npods = pods_but(s, skip);

	if (!cpath)
		return;
	if (!boot_id()) { /* no boot to name: no cache */
		unlink(cpath);
		return;
	}
	/* a cache whose pods are not those of its text must not be written:
	 * nf_state_load takes the pods from it (a caller's bug, but one that
	 * would be read back as the truth) */
	if (!spans && pods_end > pods_at && pods_end <= len &&
	    (text->n != 1 || !(found = calloc(npods + 1, sizeof(*found))) ||
	     nf_json_array_spans(text->v[0].iov_base, pods_at, pods_end, found, npods) != npods))
		pods_end = pods_at;
	/* no fsync: a lost or torn cache is a miss. A stale one is harmless
	 * too (it names another file), but a failed write should not leave an
	 * old one for nothing. */
	if (pods_end <= pods_at || pods_end > len ||
	    encode(s, skip, text, pods_at, pods_end, spans ? spans : (const size_t(*)[2])found, id, &buf, &c) < 0 ||
	    (write_in_place(cpath, &c, s) < 0 &&
	     nf_replace_file_v(path, cpath, &c, false) < 0))
		unlink(cpath);
}

/* ---- reading ---- */

struct rbuf {
	const uint8_t *p, *end;
	bool bad;
	struct chunk **arena; /* NULL: allocate on the heap (pods) */
};

static const void *take(struct rbuf *r, size_t n)
{
	const void *at = r->p;
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	return at;
}

static unsigned get_u8(struct rbuf *r)
{
	const uint8_t *b = take(r, 1);
	return b ? *b : 0;
}

static unsigned get_u16(struct rbuf *r)
{
	uint16_t v = 0;
	const void *b = take(r, 2);
	if (b)
		memcpy(&v, b, 2);
	return le16toh(v);
}

static uint64_t get_u64(struct rbuf *r)
{
	uint64_t v = 0;
	const void *b = take(r, 8);
	if (b)
		memcpy(&v, b, 8);
	return le64toh(v);
}

/* A count of items of at least `min` bytes each: never more than the bytes
 * left could hold, so a corrupt count cannot ask for a huge allocation. */
static size_t get_count(struct rbuf *r, size_t min)
{
	uint32_t v = 0;
	const void *b = take(r, 4);
	if (b)
		memcpy(&v, b, 4);
	v = le32toh(v);
	if (!r->bad && v > (size_t)(r->end - r->p) / min)
		r->bad = true;
	return r->bad ? 0 : v;
}

static void *alloc(struct rbuf *r, size_t n)
{
	void *p;
	if (r->bad)
		return NULL;
	p = r->arena ? arena_alloc(r->arena, n) : calloc(1, n ? n : 1);
	if (!p)
		r->bad = true;
	return p;
}

/* A string: its u32 length (NIL_LEN: NULL), its bytes and a NUL. Read
 * once per pod field (ten per pod: at 500 pods most of a load), so with
 * one bounds check. A NUL inside is not looked for: it only makes the
 * string shorter, and what a load takes is the bytes its writer wrote,
 * which the checksums vouch for (the frozen part's image is not walked
 * for it either); what must hold for memory's sake, the NUL at the end
 * and the bounds, is checked. */
static char *get_str(struct rbuf *r)
{
	const uint8_t *s = r->p;
	size_t left = (size_t)(r->end - s);
	uint32_t n;
	char *out;

	if (r->bad || left < 4) {
		r->bad = true;
		return NULL;
	}
	memcpy(&n, s, 4);
	n = le32toh(n);
	s += 4;
	if (n == NIL_LEN) {
		r->p = s;
		return NULL;
	}
	if (left - 4 <= n || s[n] != '\0') {
		r->bad = true;
		return NULL;
	}
	r->p = s + n + 1;
	/* the frozen part and its pods point into the decoded bytes, which
	 * it keeps (nf_state.frozen_enc); without an arena: copies */
	if (r->arena)
		return (char *)s;
	if ((out = alloc(r, (size_t)n + 1)))
		memcpy(out, s, (size_t)n + 1);
	return out;
}

/* a string that must be there */
static char *get_str1(struct rbuf *r)
{
	char *s = get_str(r);
	if (!s)
		r->bad = true;
	return s;
}

static void get_cidr(struct rbuf *r, struct nf_cidr *c)
{
	unsigned fam = get_u8(r);
	const void *a = take(r, 16);

	c->family = fam == 6 ? AF_INET6 : AF_INET;
	if (a)
		memcpy(c->addr, a, 16);
	c->prefix = (uint8_t)get_u8(r);
	if ((fam != 4 && fam != 6) || c->prefix > (fam == 4 ? 32 : 128))
		r->bad = true;
}

#define GET_ARRAY(r, arr, n, min)                                        \
	do {                                                             \
		(n) = get_count((r), (min));                             \
		(arr) = (n) ? alloc((r), (n) * sizeof(*(arr))) : NULL;  \
		if (!(arr))                                              \
			(n) = 0;                                         \
	} while (0)

static void get_labels(struct rbuf *r, struct nf_labels *l)
{
	GET_ARRAY(r, l->v, l->n, 8);
	for (size_t i = 0; i < l->n && !r->bad; i++) {
		l->v[i].key = get_str1(r);
		l->v[i].value = get_str1(r);
	}
}

static void get_selector(struct rbuf *r, struct nf_selector *s)
{
	get_labels(r, &s->match_labels);
	GET_ARRAY(r, s->exprs, s->nexprs, 9);
	for (size_t i = 0; i < s->nexprs && !r->bad; i++) {
		struct nf_sel_expr *e = &s->exprs[i];
		e->key = get_str1(r);
		e->op = get_u8(r);
		if (e->op > NF_SEL_DOES_NOT_EXIST)
			r->bad = true;
		GET_ARRAY(r, e->values, e->nvalues, 4);
		for (size_t j = 0; j < e->nvalues && !r->bad; j++)
			e->values[j] = get_str1(r);
	}
}

static void get_policy(struct rbuf *r, struct nf_policy *p)
{
	p->ns = get_str1(r);
	p->name = get_str1(r);
	get_selector(r, &p->pod_sel);
	p->egress = get_u8(r);
	p->ingress = get_u8(r);
	GET_ARRAY(r, p->egress_rules, p->negress, 22);
	for (size_t i = 0; i < p->negress && !r->bad; i++) {
		struct nf_rule *ru = &p->egress_rules[i];
		ru->has_to = get_u8(r);
		GET_ARRAY(r, ru->peers, ru->npeers, 7);
		for (size_t j = 0; j < ru->npeers && !r->bad; j++) {
			struct nf_peer *pe = &ru->peers[j];
			pe->kind = get_u8(r);
			pe->has_pod_sel = get_u8(r);
			pe->has_ns_sel = get_u8(r);
			if (pe->kind > NF_PEER_IPBLOCK)
				r->bad = true;
			if (pe->has_pod_sel)
				get_selector(r, &pe->pod_sel);
			if (pe->has_ns_sel)
				get_selector(r, &pe->ns_sel);
			if (pe->kind == NF_PEER_IPBLOCK) {
				get_cidr(r, &pe->ipblock.cidr);
				GET_ARRAY(r, pe->ipblock.except, pe->ipblock.nexcept, 18);
				for (size_t k = 0; k < pe->ipblock.nexcept; k++)
					get_cidr(r, &pe->ipblock.except[k]);
			}
			pe->key = get_str1(r);
			pe->key_hash = get_u64(r);
		}
		ru->has_ports = get_u8(r);
		GET_ARRAY(r, ru->ports, ru->nports, 10);
		for (size_t j = 0; j < ru->nports && !r->bad; j++) {
			struct nf_port *po = &ru->ports[j];
			po->proto = (uint8_t)get_u8(r);
			po->has_port = get_u8(r);
			po->port = (uint16_t)get_u16(r);
			po->end_port = (uint16_t)get_u16(r);
			po->name = get_str(r);
		}
		ru->id = get_str1(r);
	}
}

static void get_pod(struct rbuf *r, struct nf_pod *p)
{
	/* NULL where nf_pod_from_json allows it, and only there */
	p->idle = get_u8(r) != 0;
	p->container_id = p->idle ? get_str(r) : get_str1(r);
	p->ifname = p->idle ? get_str(r) : get_str1(r);
	p->ns = get_str1(r);
	p->name = get_str(r);
	get_labels(r, &p->labels);
	p->host_veth = get_str(r);
	p->network = get_str(r);
	GET_ARRAY(r, p->addrs, p->naddrs, 18);
	for (size_t i = 0; i < p->naddrs; i++)
		get_cidr(r, &p->addrs[i]);
}

/* The frozen part's records from r, into r's arena: its root first, then
 * the arrays, in the order of the records (the image's layout, below). */
static struct image_root *get_frozen(struct rbuf *r)
{
	struct image_root *root = alloc(r, sizeof(*root));

	if (!root)
		return NULL;
	GET_ARRAY(r, root->policies, root->npolicies, 20);
	for (size_t i = 0; i < root->npolicies && !r->bad; i++)
		get_policy(r, &root->policies[i]);
	GET_ARRAY(r, root->namespaces, root->nnamespaces, 8);
	for (size_t i = 0; i < root->nnamespaces && !r->bad; i++) {
		root->namespaces[i].name = get_str1(r);
		get_labels(r, &root->namespaces[i].labels);
	}
	GET_ARRAY(r, root->podspecs, root->npodspecs, 16);
	for (size_t i = 0; i < root->npodspecs && !r->bad; i++) {
		struct nf_podspec *p = &root->podspecs[i];
		p->ns = get_str1(r);
		p->name = get_str1(r);
		get_labels(r, &p->labels);
		GET_ARRAY(r, p->ports, p->nports, 7);
		for (size_t j = 0; j < p->nports && !r->bad; j++) {
			p->ports[j].name = get_str(r);
			p->ports[j].port = (uint16_t)get_u16(r);
			p->ports[j].proto = (uint8_t)get_u8(r);
		}
	}
	return r->bad ? NULL : root;
}

/* ---- the image: the frozen part as decoded, mapped, not decoded ----
 *
 * Decoding 1,000 policies cost an ADD ~0.5 ms, half of it the fresh pages
 * of the arena (docs/performance-history.md). So the cache also holds the decoded
 * structs themselves, as get_frozen lays them out in its arena, with every
 * pointer made for the cache file mapped at IMAGE_BASE: the body begins
 * with the image (its root first), then the encoded records its strings
 * point into, then the pods. A load maps the file there
 * (MAP_FIXED_NOREPLACE) and checks the image instead of decoding it; if
 * the address is taken, the format is another build's (image_root.layout)
 * or the image does not check, it decodes the records after it.
 *
 * The check is the decoder's own, on the structs: every array must begin
 * where the one before it ended, in get_frozen's order, with its count
 * fitting in the image; every string must be NUL-terminated in the encoded
 * records, each after the one before; every bool 0 or 1, every enum and
 * address family one the decoder makes, every pointer it leaves NULL NULL.
 * So a corrupt image (the body's hash made to match) reads nothing outside
 * the mapping, aliases nothing, and costs no more than its size. */

#if UINTPTR_MAX > 0xffffffffu
#define IMAGE_BASE ((uintptr_t)0x4e4600000000) /* "NF": far from the heap, the binary and mmap's range */
#else
#define IMAGE_BASE ((uintptr_t)0) /* no image */
#endif
#define IMAGE_NONE 16 /* a body without an image: 16 zero bytes first */

/* The image's layout, in this build: a change to any of these structs
 * makes another build's image a miss (its records are still decoded). */
static uint64_t image_layout(void)
{
#define F(t, f) offsetof(struct t, f)
	static const size_t v[] = {
		CACHE_VERSION, sizeof(void *), IMAGE_BASE, ARENA_ALIGN, sizeof(struct image_root),
		F(image_root, policies), F(image_root, namespaces), F(image_root, podspecs),
		sizeof(struct nf_policy), F(nf_policy, ns), F(nf_policy, name), F(nf_policy, pod_sel),
		F(nf_policy, egress), F(nf_policy, ingress), F(nf_policy, negress), F(nf_policy, egress_rules),
		F(nf_policy, obj), sizeof(struct nf_rule), F(nf_rule, has_to), F(nf_rule, npeers),
		F(nf_rule, peers), F(nf_rule, has_ports), F(nf_rule, nports), F(nf_rule, ports), F(nf_rule, id),
		sizeof(struct nf_peer), F(nf_peer, kind),
		F(nf_peer, has_pod_sel), F(nf_peer, has_ns_sel), F(nf_peer, pod_sel), F(nf_peer, ns_sel),
		F(nf_peer, ipblock), F(nf_peer, key), F(nf_peer, key_hash), sizeof(struct nf_ipblock),
		F(nf_ipblock, cidr), F(nf_ipblock, nexcept), F(nf_ipblock, except), sizeof(struct nf_cidr),
		F(nf_cidr, family), F(nf_cidr, addr), F(nf_cidr, prefix), sizeof(struct nf_port),
		F(nf_port, proto), F(nf_port, has_port), F(nf_port, port), F(nf_port, end_port), F(nf_port, name),
		sizeof(struct nf_selector), F(nf_selector, match_labels), F(nf_selector, nexprs),
		F(nf_selector, exprs), sizeof(struct nf_sel_expr), F(nf_sel_expr, key), F(nf_sel_expr, op),
		F(nf_sel_expr, nvalues), F(nf_sel_expr, values), sizeof(struct nf_labels), F(nf_labels, n),
		F(nf_labels, v), sizeof(struct nf_label), F(nf_label, key), F(nf_label, value),
		sizeof(struct nf_namespace), F(nf_namespace, name), F(nf_namespace, labels), F(nf_namespace, obj),
		sizeof(struct nf_podspec), F(nf_podspec, ns), F(nf_podspec, name), F(nf_podspec, labels),
		F(nf_podspec, nports), F(nf_podspec, ports), F(nf_podspec, obj),
		sizeof(struct nf_container_port), F(nf_container_port, name), F(nf_container_port, port),
		F(nf_container_port, proto),
	};
#undef F
	return XXH3_64bits(v, sizeof(v));
}

/* One walk of the image's structs, in get_frozen's order, that either
 * checks them where they are mapped (check) or moves the pointers of
 * freshly decoded ones to where they will be mapped. */
struct iwalk {
	bool check, bad;
	/* moving: what to add to the arrays' and the strings' addresses */
	uintptr_t arr_delta, str_delta;
	/* checking: where the next array must begin and the image's end; the
	 * earliest the next string may begin, and the encoded records' end */
	uintptr_t cur, end, scur, send;
};

/* The array a struct's pointer field (at field) points to, n items of
 * size bytes: where it is now (NULL: none, or bad). */
static void *w_arr(struct iwalk *w, void *field, size_t n, size_t size)
{
	void *p;
	uintptr_t a;

	memcpy(&p, field, sizeof(p));
	if (w->bad)
		return NULL;
	a = (uintptr_t)p;
	if (!w->check) {
		if (p) {
			a += w->arr_delta;
			memcpy(field, &a, sizeof(a));
		}
		return p;
	}
	if (!n) {
		if (p)
			w->bad = true;
		return NULL;
	}
	/* (no division: this runs for every array of 1,000 policies) */
	if (a != w->cur || __builtin_mul_overflow(n, size, &n) || n > w->end - a) {
		w->bad = true;
		return NULL;
	}
	n = align_up(n); /* as arena_alloc placed the next one */
	if (n > w->end - a) {
		w->bad = true;
		return NULL;
	}
	w->cur = a + n;
	return p;
}

/* A string: NUL-terminated where its record's length says, in the
 * records, after the string before it. (A NUL before that only makes it
 * shorter.) */
static void w_str(struct iwalk *w, void *field, bool required)
{
	const char *s;
	uint32_t n;
	uintptr_t a;

	memcpy(&s, field, sizeof(s));
	a = (uintptr_t)s;
	if (w->bad || (!s && !required))
		return;
	if (!w->check) {
		a += w->str_delta;
		memcpy(field, &a, sizeof(a));
		return;
	}
	if (!s || a < w->scur || a - w->scur < 4 || a >= w->send) {
		w->bad = true;
		return;
	}
	memcpy(&n, s - 4, 4);
	n = le32toh(n);
	if (n >= w->send - a || s[n] != '\0') {
		w->bad = true;
		return;
	}
	w->scur = a + n + 1;
}

/* a bool's byte, which must be 0 or 1 (read as a byte: another value in
 * a bool is undefined behaviour) */
static bool w_flag(struct iwalk *w, const void *field)
{
	uint8_t v;

	memcpy(&v, field, 1);
	if (v > 1)
		w->bad = true;
	return v == 1;
}

static int w_int(struct iwalk *w, const void *field, int max)
{
	int v;

	memcpy(&v, field, sizeof(v));
	if (w->check && (v < 0 || v > max))
		w->bad = true;
	return v;
}

/* bytes the decoder leaves zero (a pointer it leaves NULL, a selector or
 * an ipBlock a peer does not have) */
static void w_zero(struct iwalk *w, const void *p, size_t n)
{
	static const uint8_t zero[sizeof(struct nf_ipblock) + sizeof(struct nf_selector)];

	_Static_assert(sizeof(struct nf_selector) <= sizeof(zero) && sizeof(void *) <= sizeof(zero), "w_zero");
	if (w->check && memcmp(p, zero, n) != 0)
		w->bad = true;
}

static void w_cidr(struct iwalk *w, const struct nf_cidr *c)
{
	int fam;
	uint8_t prefix;

	if (!w->check)
		return;
	memcpy(&fam, &c->family, sizeof(fam));
	memcpy(&prefix, &c->prefix, 1);
	if ((fam != AF_INET && fam != AF_INET6) || prefix > (fam == AF_INET ? 32 : 128))
		w->bad = true;
}

static void w_labels(struct iwalk *w, struct nf_labels *l)
{
	struct nf_label *v = w_arr(w, &l->v, l->n, sizeof(*v));

	for (size_t i = 0; v && i < l->n && !w->bad; i++) {
		w_str(w, &v[i].key, true);
		w_str(w, &v[i].value, true);
	}
}

static void w_selector(struct iwalk *w, struct nf_selector *s)
{
	struct nf_sel_expr *e;

	w_labels(w, &s->match_labels);
	e = w_arr(w, &s->exprs, s->nexprs, sizeof(*e));
	for (size_t i = 0; e && i < s->nexprs && !w->bad; i++) {
		char **v;
		w_str(w, &e[i].key, true);
		w_int(w, &e[i].op, NF_SEL_DOES_NOT_EXIST);
		v = w_arr(w, &e[i].values, e[i].nvalues, sizeof(*v));
		for (size_t j = 0; v && j < e[i].nvalues && !w->bad; j++)
			w_str(w, &v[j], true);
	}
}

static void w_peer(struct iwalk *w, struct nf_peer *pe)
{
	int kind = w_int(w, &pe->kind, NF_PEER_IPBLOCK);
	bool has_pod = w_flag(w, &pe->has_pod_sel), has_ns = w_flag(w, &pe->has_ns_sel);

	if (has_pod)
		w_selector(w, &pe->pod_sel);
	else
		w_zero(w, &pe->pod_sel, sizeof(pe->pod_sel));
	if (has_ns)
		w_selector(w, &pe->ns_sel);
	else
		w_zero(w, &pe->ns_sel, sizeof(pe->ns_sel));
	if (kind == NF_PEER_IPBLOCK) {
		struct nf_cidr *ex;
		w_cidr(w, &pe->ipblock.cidr);
		ex = w_arr(w, &pe->ipblock.except, pe->ipblock.nexcept, sizeof(*ex));
		for (size_t k = 0; ex && k < pe->ipblock.nexcept && !w->bad; k++)
			w_cidr(w, &ex[k]);
	} else {
		w_zero(w, &pe->ipblock, sizeof(pe->ipblock));
	}
	w_str(w, &pe->key, true);
}

static void w_policy(struct iwalk *w, struct nf_policy *p)
{
	struct nf_rule *ru;

	w_str(w, &p->ns, true);
	w_str(w, &p->name, true);
	w_selector(w, &p->pod_sel);
	w_flag(w, &p->egress);
	w_flag(w, &p->ingress);
	w_zero(w, &p->obj, sizeof(p->obj));
	ru = w_arr(w, &p->egress_rules, p->negress, sizeof(*ru));
	for (size_t i = 0; ru && i < p->negress && !w->bad; i++) {
		struct nf_peer *pe;
		struct nf_port *po;
		w_flag(w, &ru[i].has_to);
		pe = w_arr(w, &ru[i].peers, ru[i].npeers, sizeof(*pe));
		for (size_t j = 0; pe && j < ru[i].npeers && !w->bad; j++)
			w_peer(w, &pe[j]);
		w_flag(w, &ru[i].has_ports);
		po = w_arr(w, &ru[i].ports, ru[i].nports, sizeof(*po));
		for (size_t j = 0; po && j < ru[i].nports && !w->bad; j++) {
			w_flag(w, &po[j].has_port);
			w_str(w, &po[j].name, false);
		}
		w_str(w, &ru[i].id, true);
	}
}

static void w_root(struct iwalk *w, struct image_root *root)
{
	struct nf_policy *p = w_arr(w, &root->policies, root->npolicies, sizeof(*p));
	struct nf_namespace *n;
	struct nf_podspec *ps;

	for (size_t i = 0; p && i < root->npolicies && !w->bad; i++)
		w_policy(w, &p[i]);
	n = w_arr(w, &root->namespaces, root->nnamespaces, sizeof(*n));
	for (size_t i = 0; n && i < root->nnamespaces && !w->bad; i++) {
		w_str(w, &n[i].name, true);
		w_labels(w, &n[i].labels);
		w_zero(w, &n[i].obj, sizeof(n[i].obj));
	}
	ps = w_arr(w, &root->podspecs, root->npodspecs, sizeof(*ps));
	for (size_t i = 0; ps && i < root->npodspecs && !w->bad; i++) {
		struct nf_container_port *po;
		w_str(w, &ps[i].ns, true);
		w_str(w, &ps[i].name, true);
		w_labels(w, &ps[i].labels);
		w_zero(w, &ps[i].obj, sizeof(ps[i].obj));
		po = w_arr(w, &ps[i].ports, ps[i].nports, sizeof(*po));
		for (size_t j = 0; po && j < ps[i].nports && !w->bad; j++)
			w_str(w, &po[j].name, false);
	}
}

/* The image of the frozen part's records enc (elen bytes), for a body that
 * begins with it and goes on with enc, at IMAGE_BASE + sizeof(header):
 * into w. Without one (a 32-bit build, a huge state, no memory, records
 * the decoder refuses), IMAGE_NONE zero bytes. */
static void put_image(struct wbuf *w, const char *enc, size_t elen)
{
	static const char none[IMAGE_NONE];
	/* the decoded structs are at most ~20 times their records (a peer:
	 * 7 bytes, 128 decoded): what does not fit makes no image */
	size_t cap = 32 * elen + 4096;
	struct chunk *c = NULL, *arena;
	struct image_root *root = NULL;
	struct rbuf r;
	void *m;

	if (IMAGE_BASE && elen <= ((size_t)32 << 20) &&
	    (m = mmap(NULL, sizeof(*c) + cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) !=
		    MAP_FAILED) {
		c = arena = m;
		c->size = cap;
		r = (struct rbuf){.p = (const uint8_t *)enc, .end = (const uint8_t *)enc + elen, .arena = &arena};
		root = get_frozen(&r);
		if (r.bad || r.p != r.end || arena != c || c->used > ((size_t)1 << 29))
			root = NULL;
	}
	if (root) {
		struct iwalk mv = {
			.arr_delta = IMAGE_BASE + sizeof(struct cache_header) - (uintptr_t)c->data,
			.str_delta = IMAGE_BASE + sizeof(struct cache_header) + c->used - (uintptr_t)enc,
		};
		w_root(&mv, root);
		root->len = c->used;
		root->base = IMAGE_BASE;
		root->layout = image_layout();
		put(w, root, c->used);
	} else {
		put(w, none, sizeof(none));
	}
	if (c)
		nf_state_arena_free(arena);
}

/* The image at the start of body (mapped at IMAGE_BASE + the header), of
 * ilen bytes, the records from there to frozen_len: its root if it checks,
 * else NULL. trusted: the frozen part is known to be whole as its writer
 * made it (trusted_frozen), so only the root is checked, not every pointer
 * of the image (at 1,000 policies that walk touched ~0.5 MB and was ~0.1
 * ms of every ADD and DEL: docs/performance-history.md). */
static struct image_root *image_check(char *body, size_t ilen, size_t frozen_len, bool trusted)
{
	struct image_root *root = (struct image_root *)body;
	struct iwalk w = {
		.check = true,
		.cur = (uintptr_t)body + align_up(sizeof(*root)),
		.end = (uintptr_t)body + ilen,
		.scur = (uintptr_t)body + ilen,
		.send = (uintptr_t)body + frozen_len,
	};

	if (!IMAGE_BASE || (uintptr_t)body != IMAGE_BASE + sizeof(struct cache_header) || root->len != ilen ||
	    root->base != IMAGE_BASE || root->layout != image_layout())
		return NULL;
	if (trusted) /* known whole, as put_image made it */
		return root;
	w_root(&w, root);
	return w.bad || w.cur != w.end ? NULL : root;
}

/* Is h the header of a cache of the text (len bytes) of file id, written
 * in this boot, with a body within the avail bytes after it (the file can
 * hold more: write_pods_in_place), pods_at/pods_end within the text, and
 * the frozen part, then the pods, within the body (map_cache caps a cache
 * at 1 GiB: the offsets fit in 32 bits)? The body's checksums:
 * check_pods, check_frozen. */
static int check_head(const struct cache_header *h, size_t avail, size_t len, const struct nf_text_id *id)
{
	if (memcmp(h->magic, CACHE_MAGIC, sizeof(h->magic)) != 0 || le32toh(h->version) != CACHE_VERSION ||
	    le64toh(h->text_len) != len || le64toh(h->body_len) > avail || le32toh(h->pods_off) > le64toh(h->body_len) ||
	    le32toh(h->frozen_len) > le32toh(h->pods_off) || h->reserved != 0 ||
	    (le32toh(h->flags) & ~CACHE_FROZEN_WHOLE))
		return -EINVAL;
	if (le64toh(h->text_dev) != id->dev || le64toh(h->text_ino) != id->ino ||
	    (int64_t)le64toh((uint64_t)h->text_mtime_ns) != id->mtime_ns || !this_boot(h))
		return -EINVAL;
	if (le64toh(h->pods_end) <= le64toh(h->pods_at) || le64toh(h->pods_end) > len)
		return -EINVAL;
	return 0;
}

/* the pods' checksum (an ADD or DEL writes them in place, then the
 * header: a writer killed on the way leaves the old ones named, whole,
 * or a count the checksum refuses) */
static int check_pods(const struct cache_header *h, const char *body)
{
	size_t off = le32toh(h->pods_off);

	return le64toh(h->pods_hash) == XXH3_64bits(body + off, le64toh(h->body_len) - off) ? 0 : -EINVAL;
}

/* the frozen part's, unless it is known whole in this boot */
static int check_frozen(const struct cache_header *h, const char *body)
{
	if (trusted_frozen(h))
		return 0;
	return le64toh(h->frozen_hash) == XXH3_64bits(body, le32toh(h->frozen_len)) ? 0 : -EINVAL;
}

/* The header of buf, if buf is a whole cache made from the text (len
 * bytes) of file id: 0 and *h. A buffer is checked whole, flagged or not. */
static int check_header(const char *buf, size_t blen, size_t len, const struct nf_text_id *id, struct cache_header *h)
{
	size_t body_len;

	if (blen < sizeof(*h))
		return -EINVAL;
	body_len = blen - sizeof(*h);
	memcpy(h, buf, sizeof(*h));
	if (check_head(h, body_len, len, id) < 0 || check_pods(h, buf + sizeof(*h)) < 0)
		return -EINVAL;
	h->flags &= ~htole32(CACHE_FROZEN_WHOLE);
	return check_frozen(h, buf + sizeof(*h));
}

void nf_state_cache_rehash(char *buf, size_t blen)
{
	struct cache_header h;
	size_t off;

	if (blen < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	h.body_len = htole64(blen - sizeof(h));
	memcpy(buf, &h, sizeof(h));
	off = le32toh(h.pods_off);
	if (off > blen - sizeof(h) || le32toh(h.frozen_len) > off)
		return;
	h.frozen_hash = htole64(XXH3_64bits(buf + sizeof(h), le32toh(h.frozen_len)));
	h.pods_hash = htole64(XXH3_64bits(buf + sizeof(h) + off, blen - sizeof(h) - off));
	memcpy(buf, &h, sizeof(h));
}

/* The pods from r to its end (in r's arena, borrowed, if it has one, else
 * on the heap); each record's place in text (len bytes) checked. The
 * array is on the heap: ADD and DEL add and remove pods. */
static void get_pods(struct rbuf *r, struct nf_state *s, size_t len)
{
	size_t prev_end = s->pods_at + 1, n = get_count(r, 40), i;

	/* not calloc'd: each record is cleared as it is read (at 500 pods
	 * clearing the whole array first was a tenth of a load) */
	if (!r->bad && !(s->pods = malloc((n + 1) * sizeof(*s->pods))))
		r->bad = true;
	for (i = 0; i < n && !r->bad; i++) {
		struct nf_pod *p = &s->pods[i];
		const uint8_t *rec = r->p;
		uint64_t gap;
		*p = (struct nf_pod){.borrowed = r->arena != NULL};
		get_pod(r, p);
		gap = get_u64(r);
		p->raw_len = get_u64(r);
		/* pod_place: after the previous record, or nowhere */
		if (p->raw_len && (prev_end > len || gap > len - prev_end || p->raw_len > len - prev_end - gap))
			r->bad = true;
		else if (p->raw_len)
			prev_end = (p->raw_at = prev_end + gap) + p->raw_len;
		else if (gap)
			r->bad = true;
		if (p->borrowed) { /* its bytes stay as long as the state */
			p->cache_rec = rec;
			p->cache_len = (size_t)(r->p - rec);
		}
	}
	/* the records read, each whole or cleared (nf_state_free frees them) */
	s->npods = s->pods ? i : 0;
	if (r->p != r->end)
		r->bad = true;
}

/* The pods of a checked cache (h, its body): on the heap. */
static int decode_pods(const struct cache_header *h, const char *body, size_t len, struct nf_state *out)
{
	struct rbuf r;
	struct nf_state s = {0};

	s.pods_at = le64toh(h->pods_at);
	s.pods_end = le64toh(h->pods_end);
	s.synced_ino = le64toh(h->synced_ino);
	r = (struct rbuf){.p = (const uint8_t *)body + le32toh(h->pods_off),
			  .end = (const uint8_t *)body + le64toh(h->body_len)};
	get_pods(&r, &s, len);
	if (r.bad) {
		nf_state_free(&s);
		return -EINVAL;
	}
	*out = s;
	return 0;
}

/* A checked cache (h, its body) -> out; takes body, which out keeps (or
 * frees on failure): malloc'd (h->body_len + 1 bytes or more), or with map
 * (map_len bytes) a read-only mapping of the cache file, the body after
 * its header. The pods' strings, too, point into the body, mapped or not:
 * the next cache, written in place, never changes the bytes of the pods it
 * was loaded with (write_pods_in_place), nor those of the frozen part. */
static int decode(const struct cache_header *h, char *body, size_t len, void *map, size_t map_len,
		  struct nf_state *out)
{
	struct chunk *arena = NULL;
	struct image_root *root = NULL;
	struct rbuf r;
	struct nf_state s = {0};
	uint64_t ilen = 0, enc_at;
	size_t pods_off = le32toh(h->pods_off), frozen_len = le32toh(h->frozen_len), body_len = le64toh(h->body_len);

	s.pods_at = le64toh(h->pods_at);
	s.pods_end = le64toh(h->pods_end);
	s.synced_ino = le64toh(h->synced_ino);
	s.frozen_hash = le64toh(h->frozen_hash);
	/* the body, kept: the frozen part's strings point into it, and the
	 * next cache is made with its frozen part as it is (encode) */
	r = (struct rbuf){.p = (const uint8_t *)body, .end = (const uint8_t *)body + body_len, .arena = &arena};
	/* the arena exists even for a state without policies: s.frozen says
	 * where the state came from */
	if (!arena_alloc(&arena, 1)) {
		if (map)
			munmap(map, map_len);
		else
			free(body);
		return -ENOMEM;
	}
	s.frozen = arena;
	s.frozen_enc = body;
	s.frozen_map = map;
	s.frozen_map_len = map_len;
	/* the frozen part: the image, then the records it was made from
	 * (what a state without a usable image decodes), up to its end */
	if (frozen_len >= IMAGE_NONE)
		memcpy(&ilen, body, sizeof(ilen));
	ilen = le64toh(ilen);
	enc_at = ilen ? ilen : IMAGE_NONE;
	if (frozen_len < IMAGE_NONE || ilen % ARENA_ALIGN || (ilen && ilen < sizeof(*root)) || enc_at > frozen_len)
		r.bad = true;
	else if (!(map && ilen && (root = image_check(body, (size_t)ilen, frozen_len, trusted_frozen(h))))) {
		r.p = (const uint8_t *)body + enc_at;
		r.end = (const uint8_t *)body + frozen_len;
		if (!(root = get_frozen(&r)) || r.p != r.end)
			r.bad = true;
	}
	if (!r.bad) {
		s.policies = root->policies;
		s.npolicies = root->npolicies;
		s.namespaces = root->namespaces;
		s.nnamespaces = root->nnamespaces;
		s.podspecs = root->podspecs;
		s.npodspecs = root->npodspecs;
		s.frozen_image = root == (struct image_root *)body;
	}
	/* the pods too point into the body and the arena (nf_pod.borrowed):
	 * 500 pods' records were ~6,000 allocations, each freed again; and
	 * not into a copy of them: at 500 pods its ~20 new pages were a
	 * quarter of what loading the pods costs more than loading one */
	s.frozen_enc_len = frozen_len;
	s.frozen_pods_off = pods_off;
	s.frozen_pods_len = body_len - pods_off;
	r.p = (const uint8_t *)body + pods_off;
	r.end = (const uint8_t *)body + body_len;
	get_pods(&r, &s, len);
	if (r.bad) {
		nf_state_free(&s);
		return -EINVAL;
	}
	*out = s;
	return 0;
}

int nf_state_cache_decode_pods(const char *buf, size_t blen, size_t len, const struct nf_text_id *id,
			       struct nf_state *out)
{
	struct cache_header h;

	memset(out, 0, sizeof(*out));
	if (check_header(buf, blen, len, id, &h) < 0)
		return -EINVAL;
	return decode_pods(&h, buf + sizeof(h), len, out);
}

/* A mapping of len bytes at IMAGE_BASE, where an image is made to be
 * (NULL: the place is taken, or this is no 64-bit build) */
static void *map_at_base(size_t len, int fd)
{
	void *m;

	if (!IMAGE_BASE)
		return NULL;
	m = mmap((void *)IMAGE_BASE, len, fd < 0 ? PROT_READ | PROT_WRITE : PROT_READ,
		 (fd < 0 ? MAP_ANONYMOUS : 0) | MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (m != (void *)IMAGE_BASE) { /* a kernel before 4.17: a hint */
		munmap(m, len);
		return NULL;
	}
	return m;
}

int nf_state_cache_decode(const char *buf, size_t blen, size_t len, const struct nf_text_id *id,
			  struct nf_state *out)
{
	struct cache_header h;
	char *body;
	void *m;

	memset(out, 0, sizeof(*out));
	if (check_header(buf, blen, len, id, &h) < 0)
		return -EINVAL;
	/* as a load from the file would: at the image's place if it is free */
	if ((m = map_at_base(blen, -1))) {
		memcpy(m, buf, blen);
		mprotect(m, blen, PROT_READ);
		return decode(&h, (char *)m + sizeof(h), len, m, blen, out);
	}
	if (!(body = malloc(blen - sizeof(h) + 1)))
		return -ENOMEM;
	memcpy(body, buf + sizeof(h), blen - sizeof(h));
	return decode(&h, body, len, NULL, 0, out);
}

/* The cache of path, if it is a regular file of ours that nobody else could
 * have written (the same rule as the state file's): mapped read only and
 * populated (*map, *map_len bytes; its header first), not read into the
 * heap: with 1,000 policies the ~0.4 MB read cost a fault per page. The
 * file is replaced by a rename or written in place under the state lock,
 * which the caller holds while it uses the mapping; in place, the next
 * cache leaves the bytes of the frozen part (those a decoded state points
 * into) where they are (write_in_place). *st: the file's. */
static int map_cache(const char *path, void **map, size_t *map_len, struct stat *st)
{
	_cleanup_free_ char *cpath = cache_path(path);
	void *m;
	int fd;

	if (!cpath)
		return -ENOMEM;
	if ((fd = open(cpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -errno;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || (st->st_mode & 0022) || st->st_uid != geteuid() ||
	    st->st_size > (off_t)(1u << 30) || (size_t)st->st_size < sizeof(struct cache_header)) {
		close(fd);
		return -EINVAL;
	}
	/* where its image is made to be mapped, if the place is free */
	if (!(m = map_at_base((size_t)st->st_size, fd)))
		m = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
	*map = m;
	*map_len = (size_t)st->st_size;
	return 0;
}

/* The pods need only their own checksum; the frozen part, for a whole
 * state, its own unless it is known whole in this boot (check_frozen). */
static int cache_load(const char *path, size_t len, const struct nf_text_id *id, struct nf_state *out, bool pods_only)
{
	struct cache_header h;
	struct stat st;
	void *map = NULL;
	size_t mlen = 0, blen;
	char *body;
	int r = map_cache(path, &map, &mlen, &st);

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return r;
	memcpy(&h, map, sizeof(h));
	body = (char *)map + sizeof(h);
	blen = mlen - sizeof(h);
	if (check_head(&h, blen, len, id) < 0 || check_pods(&h, body) < 0 ||
	    (!pods_only && check_frozen(&h, body) < 0))
		r = -EINVAL;
	if (r == 0 && !pods_only) {
		if ((r = decode(&h, body, len, map, mlen, out)) == 0) { /* takes the mapping */
			out->frozen_map_dev = (uint64_t)st.st_dev;
			out->frozen_map_ino = (uint64_t)st.st_ino;
		}
		return r;
	}
	if (r == 0)
		r = decode_pods(&h, body, len, out);
	munmap(map, mlen);
	return r;
}

int nf_state_cache_load(const char *path, size_t len, const struct nf_text_id *id, struct nf_state *out)
{
	return cache_load(path, len, id, out, false);
}

int nf_state_cache_load_pods(const char *path, size_t len, const struct nf_text_id *id, struct nf_state *out)
{
	return cache_load(path, len, id, out, true);
}
