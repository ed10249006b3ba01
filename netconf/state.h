/* The node state file: NetworkPolicy and Namespace objects as the API
 * serves them, and the pods attached on this node. Shared by concurrent
 * plugin runs and the CLI: every read-modify-write holds an exclusive lock
 * on "<path>.lock"; writes go to a new file that is renamed over the old. */
#ifndef NETFENCE_STATE_H
#define NETFENCE_STATE_H

#include <pthread.h>
#include <sys/uio.h>
#include "model.h"

/* A text in pieces, written with one pwritev and hashed piece by piece:
 * an ADD's new state is the loaded text with the new pod's record after
 * the loaded ones, a DEL's the loaded text without one record, and
 * copying the ~0.5 MB of 1,000 policies, or 500 pods' records, into one
 * buffer first cost the writer thread a fault per page
 * (docs/performance-history.md). */
#define NF_PIECES_MAX 16
struct nf_pieces {
	struct iovec v[NF_PIECES_MAX];
	int n;
	size_t len;
};
/* appends (text, len) if there is room (else the caller's bug: ignored) */
void nf_pieces_add(struct nf_pieces *t, const void *text, size_t len);
/* text in one piece */
static inline struct nf_pieces nf_pieces_of(const void *text, size_t len)
{
	struct nf_pieces t = {0};

	nf_pieces_add(&t, text, len);
	return t;
}

struct nf_state_lock {
	int fd;
};

/* Creates the state directory (0700) if missing and takes the lock (blocks). */
int nf_state_lock(const char *path, struct nf_state_lock *lock, struct nf_error *err);
void nf_state_unlock(struct nf_state_lock *lock);

/* A missing file is an empty state. A corrupt or unreadable one is an error
 * (code NF_ERR_STATE) naming the path and what is wrong; but one that is
 * empty or has a block of zero bytes (4 KiB, or the last one's part),
 * what a power loss leaves of a file renamed in before its data reached
 * the disk, is replaced by "<path>.synced" (the last state synced,
 * nf_state_save_pods), with a warning on stderr. */
int nf_state_load(const char *path, struct nf_state *out, struct nf_error *err);
int nf_state_from_json(const json_t *root, struct nf_state *out, struct nf_error *err);
/* nf_state_load for the CNI calls, which need the model but not the stored
 * objects: from the model cache "<path>.model" (cache.c) when it was made
 * from the very text the state file holds, else parsed (and the cache
 * written for the next call). A state loaded from the cache has no ->obj
 * (s->frozen is set): save it only with nf_state_save_pods. Same errors as
 * nf_state_load. */
int nf_state_load_fast(const char *path, struct nf_state *out, struct nf_error *err);

/* Reads up to size bytes of fd into buf (retrying on EINTR); returns how
 * many it got (fewer at end of file or on an error). */
size_t nf_read_upto(int fd, char *buf, size_t size);
/* Writes all of buf at the start of fd (retrying on EINTR and short
 * writes): 0, or -errno. */
int nf_write_all(int fd, const char *buf, size_t len);
/* all of buf at offset off of fd: 0 or -errno */
int nf_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* Replaces path with a new file (0600) holding text: written next to it
 * under the name "<state>.tmp.XXXXXX" (which nf_state_lock removes if its
 * writer died), then renamed over it; durable: fsync the file and the
 * directory. 0 or -errno (nothing replaced). */
int nf_replace_file(const char *state, const char *path, const char *text, size_t len, bool durable);
int nf_replace_file_v(const char *state, const char *path, const struct nf_pieces *text, bool durable);
/* all of text at offset 0 of fd: 0 or -errno */
int nf_write_all_v(int fd, const struct nf_pieces *text);
/* all of the n (at most NF_PIECES_MAX) pieces iov at offset off of fd */
int nf_pwritev_all(int fd, const struct iovec *iov, int n, off_t off);

/* The elements of the JSON array text[at, end) (already accepted by a JSON
 * parser): fills at most n spans [start, end) and returns how many there
 * are (more than n: only n filled). */
size_t nf_json_array_spans(const char *text, size_t at, size_t end, size_t (*spans)[2], size_t n);

/* Which file a state text is: its device, inode and modification time
 * (fstat). The state file is never written in place, only replaced by a
 * rename (so a new inode, whose mtime the rename leaves as it was): the
 * model cache names the file it was made from this way, instead of
 * hashing its text at every load, and only within the boot it was
 * written in (after a power loss, a renamed file can hold zeros where its
 * text was to be: the state file's loader checks for that after a miss). */
struct nf_text_id {
	uint64_t dev, ino;
	int64_t mtime_ns;
};

/* The model cache (cache.c). Writers call nf_state_cache_write once the
 * new state text is written to the file id names (failures only remove
 * the cache). skip: a pod of s that the text does not have (NULL: none),
 * left out as if s had no such pod. spans: where each pod of the text
 * is in it, if the writer knows (else they are found). The cache records
 * s->synced_ino with the text. */
void nf_state_cache_write(const char *path, const struct nf_state *s, const struct nf_pod *skip,
			  const struct nf_pieces *text, size_t pods_at, size_t pods_end, const size_t (*spans)[2],
			  const struct nf_text_id *id);
/* 0 and *out (frozen) when the cache of path was made from the text (len
 * bytes) of the file id, in this boot; <0 if not */
int nf_state_cache_load(const char *path, size_t len, const struct nf_text_id *id, struct nf_state *out);
/* nf_state_cache_load of the pods alone (and pods_at/pods_end): not
 * frozen, no policies; for nf_state_load, which parses those itself */
int nf_state_cache_load_pods(const char *path, size_t len, const struct nf_text_id *id, struct nf_state *out);
/* the cache's bytes for s made from text (of the file id), and back, for
 * a text of len bytes (unit tests, fuzzing) */
int nf_state_cache_encode(const struct nf_state *s, const char *text, size_t len, size_t pods_at,
			  size_t pods_end, const struct nf_text_id *id, char **out, size_t *outlen);
int nf_state_cache_decode(const char *buf, size_t blen, size_t len, const struct nf_text_id *id,
			  struct nf_state *out);
int nf_state_cache_decode_pods(const char *buf, size_t blen, size_t len, const struct nf_text_id *id,
			       struct nf_state *out);
/* the cache's header: its body (and the tests' changes) begin after it */
#define NF_CACHE_HEADER_LEN 128
/* makes the body's length and checksums in a cache's bytes (buf, blen)
 * match them again, so that bytes a test or the fuzzer changed reach the
 * decoder's own checks */
void nf_state_cache_rehash(char *buf, size_t blen);
json_t *nf_state_to_json(const struct nf_state *s);
/* Writes a new file (0600) next to path, fsyncs it, links it as
 * "<path>.synced" and renames it over path, then fsyncs the directory.
 * Refuses a state loaded from the model cache (it has no objects to save). */
int nf_state_save(const char *path, const struct nf_state *s, struct nf_error *err);
/* nf_state_save for a state of which only the pods changed since
 * nf_state_load (a CNI ADD or DEL): the loaded text with just the "pods"
 * array replaced, instead of serializing every policy again. Falls back to
 * nf_state_save when the state was not loaded from a file.
 *
 * Not synced, when the text outside "pods" is that of "<path>.synced" and
 * that file is on disk (s->synced_ino is its inode): the pods are what
 * only lives as long as the node is up (their network namespaces, veths
 * and rules are gone after a power loss, synced or not), and the
 * policies are in "<path>.synced". A new file renamed over the old one
 * before its data reached the disk can come back empty or zero-filled
 * after a power loss (XFS; not ext4, which writes a file renamed over
 * another before the rename); the load then takes "<path>.synced"
 * instead (nf_state_load). Otherwise (an earlier build's file, no
 * "<path>.synced", a cache miss) it is synced and linked as
 * "<path>.synced", as nf_state_save does. */
int nf_state_save_pods(const char *path, const struct nf_state *s, struct nf_error *err);

/* The same saves in two steps, so that the slow part of a save, making
 * the new text and the new file's data reaching the disk (create, write,
 * fsync: ~0.7 ms here), runs on a thread while the caller changes the
 * kernel; nothing is visible until the rename in nf_state_stage_finish.
 * The thread makes the text from s (without the record skip, if not NULL:
 * a DEL's pod, still in s while the kernel changes, or the idle kind an
 * ADD's pod takes over), and the model cache
 * for it, so s must not change until nf_state_stage_wait (or finish) has
 * returned. keep=false removes the new file (the kernel refused the
 * change). Every stage must be finished, under the same state lock. */
struct nf_state_stage {
	const struct nf_state *s; /* what to write (the thread reads it) */
	const struct nf_pod *skip;
	bool whole;           /* dump it all (else copy the loaded text, new "pods") */
	char *text;           /* what this stage made of the new text (freed with it) */
	struct nf_pieces pieces; /* the new state's text */
	size_t pods_at, pods_end; /* its "pods" array */
	bool cache;           /* pods_at..pods_end found: write the model cache */
	size_t (*spans)[2];   /* where each pod's record is in text, if known */
	size_t nspans;
	bool durable;         /* fsync the file, link it as "<state>.synced", fsync the directory */
	uint64_t synced_ino;  /* nf_state.synced_ino of the new text (cache) */
	struct nf_text_id text_id; /* the new file, which the cache names */
	bool threaded;        /* thread runs (else the file was written inline) */
	int written;          /* set by the thread when it is done with st (atomic) */
	pthread_t thread;
	const char *path;     /* the state file */
	char *tmp;            /* the new file's name (a template until written) */
	char *prev;           /* "<state>.prev": the state replaced, kept linked */
	char *old;            /* "<state>.old.N": where a save that is no DEL parks
			       * the file "<state>.prev" named before (N filled in) */
	int prev_fd;          /* a DEL's: the file "<state>.prev" named before, unlinked
			       * but held open (nf_state_stage_take_prev), or -1 */
	char *synced;         /* "<state>.synced" */
	int error;            /* -errno of making or writing it */
};
int nf_state_stage(const char *path, const struct nf_state *s, const struct nf_pod *skip,
		   struct nf_state_stage *st, struct nf_error *err);
int nf_state_stage_pods(const char *path, const struct nf_state *s, const struct nf_pod *skip,
			struct nf_state_stage *st, struct nf_error *err);
/* the thread is done with s */
void nf_state_stage_wait(struct nf_state_stage *st);
int nf_state_stage_finish(struct nf_state_stage *st, bool keep, struct nf_error *err);
/* After nf_state_stage_wait: the descriptor of a DEL's former
 * "<state>.prev", whose close frees its blocks (~0.4 ms at 1,000
 * policies), for the caller to close off its clock (nlsock.h); -1 if
 * none. Otherwise finish closes it. */
int nf_state_stage_take_prev(struct nf_state_stage *st);

/* A save that is no DEL does not free the file "<state>.prev" named
 * before either (~0.4 ms at 100 policies, on the thread an ADD at 100
 * policies waits for): it renames it to the first free one of
 * "<state>.old.0" .. "<state>.old.<NF_STATE_OLD_SLOTS - 1>", and frees it
 * only when every one is taken. The child of the next DEL frees them with
 * this (without the lock: no one reads them, and a file parked meanwhile
 * is as old). */
#define NF_STATE_OLD_SLOTS 8
void nf_state_unlink_old(const char *path);

enum nf_put_result {
	NF_PUT_CREATED,
	NF_PUT_CONFIGURED,
	NF_PUT_UNCHANGED,
};

/* These take ownership of *obj's members (and zero *obj). They return an
 * nf_put_result, or a negative errno. */
int nf_state_put_pod(struct nf_state *s, struct nf_pod *pod);
int nf_state_put_policy(struct nf_state *s, struct nf_policy *p);
int nf_state_put_namespace(struct nf_state *s, struct nf_namespace *n);

/* A Pod registration: also gives its labels to the attachments with the
 * same namespace/name. */
int nf_state_put_podspec(struct nf_state *s, struct nf_podspec *p);
const struct nf_podspec *nf_state_find_podspec(const struct nf_state *s, const char *ns, const char *name);
bool nf_state_remove_podspec(struct nf_state *s, const char *ns, const char *name);

/* true when something was removed. The lookups and removals by container
 * and interface, or by namespace and name, pass idle kinds over. */
bool nf_state_remove_pod(struct nf_state *s, const char *container_id, const char *ifname);
bool nf_state_remove_policy(struct nf_state *s, const char *ns, const char *name);
bool nf_state_remove_namespace(struct nf_state *s, const char *name);

const struct nf_pod *nf_state_find_pod(const struct nf_state *s, const char *container_id,
				       const char *ifname);
const struct nf_pod *nf_state_find_pod_by_name(const struct nf_state *s, const char *ns,
					       const char *name);
/* Another record than pod with its namespace and labels (an idle kind,
 * if idle_only), or NULL. Idle kinds (nf_pod.idle; txn.h): how many there
 * are; a new one made from pod (its namespace and labels; appended, so
 * the oldest comes first); the record at s->pods + i
 * removed. */
const struct nf_pod *nf_state_twin(const struct nf_state *s, const struct nf_pod *pod, bool idle_only);
size_t nf_state_nidle(const struct nf_state *s);
int nf_state_add_idle(struct nf_state *s, const struct nf_pod *pod);
void nf_state_remove_pod_at(struct nf_state *s, size_t i);
/* The record p (one of s's pods) made its own, out of the model cache
 * (nf_pod_own): the next cache, written in place, may then put another
 * record where its was (cache.c). -ENOMEM. */
int nf_state_own_pod(struct nf_state *s, const struct nf_pod *p);
/* *view: s without pod (a shallow copy: s keeps owning everything; free
 * view->pods only). -ENOMEM. */
int nf_state_view_without(const struct nf_state *s, const struct nf_pod *pod, struct nf_state *view);

#endif
