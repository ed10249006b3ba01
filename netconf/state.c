#include "state.h"
#include "phase.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define STATE_KIND "NetfenceNodeState"
#define STATE_API "netfence.dev/v1"
#define STATE_MAX_BYTES (256u << 20)

static int mkdir_p(const char *dir, mode_t mode)
{
	_cleanup_free_ char *copy = strdup(dir);
	char *p;

	if (!copy)
		return -ENOMEM;
	for (p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(copy, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int nf_state_lock(const char *path, struct nf_state_lock *lock, struct nf_error *err)
{
	_cleanup_free_ char *dircopy = strdup(path);
	_cleanup_free_ char *lockpath = NULL;
	int fd, r;

	if (!dircopy || asprintf(&lockpath, "%s.lock", path) < 0)
		return -ENOMEM;
	r = mkdir_p(dirname(dircopy), 0700);
	if (r < 0)
		return nf_error_set(err, -r, CNI_ERR_IO, "creating the directory of state file \"%s\": %s",
				    path, strerror(-r));
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return nf_error_set(err, errno, CNI_ERR_IO, "opening lock file \"%s\": %s", lockpath,
				    strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		r = errno;
		close(fd);
		return nf_error_set(err, r, CNI_ERR_IO, "locking \"%s\": %s", lockpath, strerror(r));
	}
	lock->fd = fd;
	/* Temp files next to the state can only be left by a writer that
	 * died before its rename: we hold the lock, nobody else writes. */
	{
		_cleanup_free_ char *pattern = NULL;
		glob_t g;
		if (asprintf(&pattern, "%s.tmp.*", path) >= 0 && glob(pattern, GLOB_NOSORT, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		} else if (!pattern) {
			pattern = NULL;
		}
	}
	return 0;
}

void nf_state_unlock(struct nf_state_lock *lock)
{
	if (lock && lock->fd >= 0) {
		close(lock->fd); /* releases the flock */
		lock->fd = -1;
	}
}

/* ---- (de)serialisation ---- */

static int array_member(const json_t *root, const char *key, const json_t **out, struct nf_error *err)
{
	const json_t *a = json_object_get(root, key);
	if (a && !json_is_array(a) && !json_is_null(a))
		return nf_error_set(err, EINVAL, NF_ERR_STATE, "%s: must be an array", key);
	*out = json_is_array(a) ? a : NULL;
	return 0;
}

int nf_state_from_json(const json_t *root, struct nf_state *out, struct nf_error *err)
{
	struct nf_state s = {0};
	const json_t *pols, *nss, *pods, *specs;
	json_t *item;
	size_t i;
	int r;

	if (!json_is_object(root))
		return nf_error_set(err, EINVAL, NF_ERR_STATE, "must be a JSON object");
	if ((r = array_member(root, "networkPolicies", &pols, err)) < 0 ||
	    (r = array_member(root, "namespaces", &nss, err)) < 0 ||
	    (r = array_member(root, "pods", &pods, err)) < 0 ||
	    (r = array_member(root, "registeredPods", &specs, err)) < 0)
		return r;
	s.policies = calloc(json_array_size(pols) + 1, sizeof(*s.policies));
	s.namespaces = calloc(json_array_size(nss) + 1, sizeof(*s.namespaces));
	s.pods = calloc(json_array_size(pods) + 1, sizeof(*s.pods));
	s.podspecs = calloc(json_array_size(specs) + 1, sizeof(*s.podspecs));
	if (!s.policies || !s.namespaces || !s.pods || !s.podspecs) {
		r = -ENOMEM;
		goto fail;
	}
	json_array_foreach(pols, i, item) {
		if ((r = nf_policy_from_json(item, "default", &s.policies[s.npolicies], err)) < 0) {
			nf_error_wrap(err, "networkPolicies[%zu]", i);
			goto fail;
		}
		s.npolicies++;
	}
	json_array_foreach(nss, i, item) {
		if ((r = nf_namespace_from_json(item, &s.namespaces[s.nnamespaces], err)) < 0) {
			nf_error_wrap(err, "namespaces[%zu]", i);
			goto fail;
		}
		s.nnamespaces++;
	}
	json_array_foreach(pods, i, item) {
		if ((r = nf_pod_from_json(item, &s.pods[s.npods], err)) < 0) {
			nf_error_wrap(err, "pods[%zu]", i);
			goto fail;
		}
		s.npods++;
	}
	json_array_foreach(specs, i, item) {
		if ((r = nf_podspec_from_json(item, "default", &s.podspecs[s.npodspecs], err)) < 0) {
			nf_error_wrap(err, "registeredPods[%zu]", i);
			goto fail;
		}
		s.npodspecs++;
	}
	*out = s;
	return 0;
fail:
	if (err)
		err->code = NF_ERR_STATE;
	nf_state_free(&s);
	return r;
}

json_t *nf_state_to_json(const struct nf_state *s)
{
	json_t *root = json_object(), *pols = json_array(), *nss = json_array(), *pods = json_array();
	json_t *specs = json_array();

	json_object_set_new(root, "apiVersion", json_string(STATE_API));
	json_object_set_new(root, "kind", json_string(STATE_KIND));
	for (size_t i = 0; i < s->nnamespaces; i++)
		json_array_append(nss, s->namespaces[i].obj);
	for (size_t i = 0; i < s->npolicies; i++)
		json_array_append(pols, s->policies[i].obj);
	for (size_t i = 0; i < s->npods; i++)
		json_array_append_new(pods, nf_pod_to_json(&s->pods[i]));
	json_object_set_new(root, "namespaces", nss);
	json_object_set_new(root, "networkPolicies", pols);
	for (size_t i = 0; i < s->npodspecs; i++)
		json_array_append(specs, s->podspecs[i].obj);
	json_object_set_new(root, "pods", pods);
	json_object_set_new(root, "registeredPods", specs);
	return root;
}

/* ---- finding a top-level value in JSON text jansson has accepted ---- */

static size_t skip_ws(const char *t, size_t n, size_t i)
{
	while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* t[i] is the opening quote; returns the index after the closing one */
static size_t skip_string(const char *t, size_t n, size_t i)
{
	for (i++; i < n && t[i] != '"'; i++)
		if (t[i] == '\\')
			i++;
	return i + 1;
}

static size_t skip_value(const char *t, size_t n, size_t i)
{
	int depth = 0;

	if (i < n && t[i] == '"')
		return skip_string(t, n, i);
	if (i < n && t[i] != '{' && t[i] != '[') { /* number, true, false, null */
		while (i < n && !strchr(",}] \t\n\r", t[i]))
			i++;
		return i;
	}
	for (; i < n; i++) {
		if (t[i] == '"') {
			i = skip_string(t, n, i) - 1;
		} else if (t[i] == '{' || t[i] == '[') {
			depth++;
		} else if (t[i] == '}' || t[i] == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return n;
}

size_t nf_json_array_spans(const char *t, size_t at, size_t end, size_t (*spans)[2], size_t n)
{
	size_t i = skip_ws(t, end, at), k = 0;

	if (i >= end || t[i] != '[')
		return 0;
	for (i = skip_ws(t, end, i + 1); i < end && t[i] != ']';) {
		size_t v = i;
		i = skip_value(t, end, i);
		if (k < n) {
			spans[k][0] = v;
			spans[k][1] = i;
		}
		k++;
		i = skip_ws(t, end, i);
		if (i < end && t[i] == ',')
			i = skip_ws(t, end, i + 1);
	}
	return k;
}

/* Notes in each pod where its record lies in s->raw (see nf_pod.raw_at). */
static void note_pod_spans(struct nf_state *s)
{
	size_t (*spans)[2] = s->npods ? calloc(s->npods, sizeof(*spans)) : NULL;

	if (spans && nf_json_array_spans(s->raw, s->pods_at, s->pods_end, spans, s->npods) == s->npods)
		for (size_t i = 0; i < s->npods; i++) {
			s->pods[i].raw_at = spans[i][0];
			s->pods[i].raw_len = spans[i][1] - spans[i][0];
		}
	free(spans);
}

/* [*at, *end): the value of the top-level member `key` of the object t */
static bool top_level_span(const char *t, size_t n, const char *key, size_t *at, size_t *end)
{
	size_t i = skip_ws(t, n, 0), klen = strlen(key);

	if (i >= n || t[i] != '{')
		return false;
	for (i = skip_ws(t, n, i + 1); i < n && t[i] == '"';) {
		size_t k = i + 1, v;

		i = skip_string(t, n, i);
		i = skip_ws(t, n, i);
		if (i >= n || t[i] != ':')
			return false;
		v = skip_ws(t, n, i + 1);
		i = skip_value(t, n, v);
		if (i > n)
			return false;
		if (i - 1 >= k && k + klen + 1 <= n && !memcmp(t + k, key, klen) && t[k + klen] == '"') {
			*at = v;
			*end = i;
			return true;
		}
		i = skip_ws(t, n, i);
		if (i < n && t[i] == ',')
			i = skip_ws(t, n, i + 1);
	}
	return false;
}

size_t nf_read_upto(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

int nf_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

int nf_write_all(int fd, const char *buf, size_t len)
{
	return nf_pwrite_all(fd, buf, len, 0);
}

void nf_pieces_add(struct nf_pieces *t, const void *text, size_t len)
{
	if (t->n == NF_PIECES_MAX || len == 0)
		return;
	t->v[t->n].iov_base = (void *)text;
	t->v[t->n++].iov_len = len;
	t->len += len;
}

int nf_write_all_v(int fd, const struct nf_pieces *text)
{
	return nf_pwritev_all(fd, text->v, text->n, 0);
}

int nf_pwritev_all(int fd, const struct iovec *iov, int n, off_t off)
{
	struct iovec v[NF_PIECES_MAX];
	int i = 0;
	size_t done = 0;

	if (n > NF_PIECES_MAX)
		return -EINVAL;
	memcpy(v, iov, sizeof(v[0]) * (size_t)n);
	while (i < n) {
		ssize_t w = pwritev(fd, v + i, n - i, off + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
		/* a short write: on from where it stopped */
		while (i < n && (size_t)w >= v[i].iov_len)
			w -= (ssize_t)v[i++].iov_len;
		if (i < n) {
			v[i].iov_base = (char *)v[i].iov_base + w;
			v[i].iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* The file st is, for the model cache (state.h) */
static void text_id_of(const struct stat *st, struct nf_text_id *id)
{
	id->dev = (uint64_t)st->st_dev;
	id->ino = (uint64_t)st->st_ino;
	id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The text of the state file: 0 and *buf (NUL-terminated; *map: mapped,
 * that many bytes, else 0: on the heap) and *id (which file it is), or 1
 * when there is no file (an empty state), or an error. */
static int read_state(const char *path, char **buf, size_t *len, size_t *map, struct nf_text_id *id,
		      struct nf_error *err)
{
	struct stat st;
	size_t size, got = 0;
	int fd;

	/* The state decides what pods may send: never read one that someone
	 * else could have written, or that a symlink points to. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		if (errno == ELOOP)
			return nf_error_set(err, errno, NF_ERR_STATE,
					    "state file \"%s\" is a symbolic link: refusing it", path);
		return nf_error_set(err, errno, NF_ERR_STATE, "state file \"%s\": %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > STATE_MAX_BYTES) {
		close(fd);
		return nf_error_set(err, EINVAL, NF_ERR_STATE,
				    "state file \"%s\": not a regular file of at most 256 MiB", path);
	}
	if ((st.st_mode & 0022) || st.st_uid != geteuid()) {
		close(fd);
		return nf_error_set(err, EPERM, NF_ERR_STATE,
				    "state file \"%s\" (mode %04o, owner uid %u) may be written by others: refusing it; "
				    "it must belong to uid %u and not be group- or world-writable (chmod 600)",
				    path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)geteuid());
	}
	size = (size_t)st.st_size;
	*map = 0;
	text_id_of(&st, id);
	/* mapped, not read: the file is only ever replaced by a rename, never
	 * written in place, so its pages stay what they are; reading the 0.5
	 * MB of 1,000 policies into the heap cost a fault per page (~0.2 ms).
	 * Read only (nothing writes into a loaded text), not populated: a
	 * fault maps the 16 pages around it (fault_around_bytes), and the
	 * load that hashes 1,000 policies' text was ~0.01 ms faster so than
	 * with MAP_POPULATE's page-by-page walk. One zero byte past the end:
	 * the page after a file of whole pages is an anonymous one (under a
	 * shorter file's last page, zeros) */
	if (size > 0) {
		size_t pg = (size_t)sysconf(_SC_PAGESIZE), m = (size + 1 + pg - 1) / pg * pg;
		void *a = mmap(NULL, m, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a != MAP_FAILED &&
		    mmap(a, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == a) {
			close(fd);
			*buf = a;
			*len = size;
			*map = m;
			return 0;
		}
		if (a != MAP_FAILED)
			munmap(a, m);
	}
	/* one read, not json_loadfd: jansson reads a descriptor a byte per
	 * read(2), a syscall per byte of a state that can be megabytes */
	if (!(*buf = malloc(size + 1))) {
		close(fd);
		return nf_error_set(err, ENOMEM, NF_ERR_STATE, "state file \"%s\": out of memory", path);
	}
	got = nf_read_upto(fd, *buf, size);
	close(fd);
	(*buf)[got] = '\0';
	*len = got;
	return 0;
}

/* text -> out; takes buf (mapped: map bytes, read_state) */
static int parse_state(const char *path, char *buf, size_t len, size_t map, struct nf_state *out,
		       struct nf_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	int r;

	if (!root) {
		nf_text_free(buf, map);
		return nf_error_set(err, EINVAL, NF_ERR_STATE, "state file \"%s\" is corrupt: line %d column %d: %s%s",
				    path, jerr.line, jerr.column, jerr.text, nf_json_error_hint(jerr.text));
	}
	r = nf_state_from_json(root, out, err);
	json_decref(root);
	if (r < 0) {
		nf_text_free(buf, map);
		nf_error_wrap(err, "state file \"%s\"", path);
		return r;
	}
	out->raw = buf;
	out->raw_len = len;
	out->raw_map = map;
	if (!top_level_span(buf, len, "pods", &out->pods_at, &out->pods_end))
		out->pods_at = out->pods_end = 0;
	else
		note_pod_spans(out);
	return 0;
}

/* nf_state_load needs the stored objects, so it parses the JSON; but not
 * the pods' records, when the model cache was made from this very text
 * (only ever from a state that parsed and validated): their text is cut
 * out of what is parsed and the pods come from the cache. With 500 pods
 * and 10 policies they were most of a netfencectl run's parse. 0 and
 * *out (which takes buf), or <0 and nothing done. */
static int parse_state_cached_pods(const char *path, char *buf, size_t len, size_t map, const struct nf_text_id *id,
				   struct nf_state *out)
{
	struct nf_state c, s = {0};
	struct nf_error ignored = {0};
	json_t *root;
	char *cut;
	size_t at, end;

	if (nf_state_cache_load_pods(path, len, id, &c) < 0)
		return -1;
	at = c.pods_at;
	end = c.pods_end;
	root = NULL;
	if ((cut = malloc(len - (end - at) + 3))) {
		memcpy(cut, buf, at);
		memcpy(cut + at, "[]", 2);
		memcpy(cut + at + 2, buf + end, len - end);
		root = json_loadb(cut, len - (end - at) + 2, JSON_REJECT_DUPLICATES, NULL);
		free(cut);
	}
	if (!root || nf_state_from_json(root, &s, &ignored) < 0 || s.npods != 0) {
		json_decref(root);
		nf_state_free(&s);
		nf_state_free(&c);
		return -1;
	}
	json_decref(root);
	free(s.pods);
	s.pods = c.pods;
	s.npods = c.npods;
	c.pods = NULL;
	c.npods = 0;
	nf_state_free(&c);
	s.raw = buf;
	s.raw_len = len;
	s.raw_map = map;
	s.pods_at = at;
	s.pods_end = end;
	*out = s;
	return 0;
}

/* What a power loss leaves of a file renamed in before its data reached
 * the disk: nothing, or blocks of zero bytes where the data was to be
 * (a 4 KiB block, or the last one's part, all zeros; JSON text never
 * holds a zero byte). A stray zero byte in text is corruption, not this. */
static bool torn(const char *text, size_t len)
{
	static const char zeros[4096];

	if (len == 0)
		return true;
	for (size_t at = 0; at < len; at += sizeof(zeros)) {
		size_t n = len - at < sizeof(zeros) ? len - at : sizeof(zeros);
		if (text[at] == '\0' && memcmp(text + at, zeros, n) == 0)
			return true;
	}
	return false;
}

/* The state file's text (*buf, *len, *map) is torn: the text of
 * "<path>.synced" instead, the last state that was synced to disk (its
 * policies are the state file's: nf_state_save_pods), and *synced_ino
 * its inode. Without a usable one the text stays (parsing it names the
 * problem). */
static void recover(const char *path, char **buf, size_t *len, size_t *map, struct nf_text_id *id,
		    uint64_t *synced_ino)
{
	_cleanup_free_ char *synced = NULL;
	struct nf_error ignored = {0};
	struct nf_text_id sid;
	char *b = NULL;
	size_t l = 0, m = 0;

	if (asprintf(&synced, "%s.synced", path) < 0) {
		synced = NULL;
		return;
	}
	if (read_state(synced, &b, &l, &m, &sid, &ignored) != 0)
		return;
	if (torn(b, l)) {
		nf_text_free(b, m);
		return;
	}
	fprintf(stderr,
		"netfence: warning: state file \"%s\" is %s, as a power loss leaves a file whose data had not "
		"reached the disk; using \"%s\", the last state synced (the pods attached since are not in it)\n",
		path, *len ? "zero-filled in places" : "empty", synced);
	nf_text_free(*buf, *map);
	*buf = b;
	*len = l;
	*map = m;
	*id = sid; /* the text's file */
	*synced_ino = sid.ino;
}

static int load(const char *path, bool cached, struct nf_state *out, struct nf_error *err)
{
	char *buf = NULL;
	size_t len = 0, map = 0;
	uint64_t synced_ino = 0;
	struct nf_text_id id;
	int r = read_state(path, &buf, &len, &map, &id, err);

	memset(out, 0, sizeof(*out));
	if (r != 0)
		return r > 0 ? 0 : r;
	if (cached && nf_state_cache_load(path, len, &id, out) == 0) {
		out->raw = buf;
		out->raw_len = len;
		out->raw_map = map;
		return 0;
	}
	/* a cache is only ever made of a text that parsed, and a hit is that
	 * very file in the boot it was written in: whole */
	if (torn(buf, len))
		recover(path, &buf, &len, &map, &id, &synced_ino);
	if (!cached) {
		r = parse_state_cached_pods(path, buf, len, map, &id, out) == 0 ? 0
									   : parse_state(path, buf, len, map, out, err);
		out->synced_ino = r == 0 ? synced_ino : 0;
		return r;
	}
	if ((r = parse_state(path, buf, len, map, out, err)) < 0)
		return r;
	out->synced_ino = synced_ino;
	struct nf_pieces t = nf_pieces_of(out->raw, out->raw_len);
	nf_state_cache_write(path, out, NULL, &t, out->pods_at, out->pods_end, NULL, &id);
	return 0;
}

int nf_state_load(const char *path, struct nf_state *out, struct nf_error *err)
{
	return load(path, false, out, err);
}

int nf_state_load_fast(const char *path, struct nf_state *out, struct nf_error *err)
{
	return load(path, true, out, err);
}

/* The first half of nf_replace_file: a new file holding text, synced if
 * durable, named after the template tmp ("<state>.tmp.XXXXXX", filled in).
 * No allocation: runs on the stage thread, which then needs no malloc
 * arena of its own. 0 or -errno (no file left). */
static int new_file_write(char *tmp, const struct nf_pieces *text, int *fdp)
{
	int fd, r;

	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -errno;
	/* one pwritev: json_dumpfd writes token by token */
	r = nf_write_all_v(fd, text);
	if (r == 0 && fchmod(fd, 0600) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		unlink(tmp);
		return r;
	}
	*fdp = fd;
	return 0;
}

/* The second step of new_file: fd synced if durable, closed. */
static int new_file_close(char *tmp, int fd, bool durable)
{
	int r = durable && fsync(fd) < 0 ? -errno : 0;

	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int new_file(char *tmp, const struct nf_pieces *text, bool durable)
{
	int fd, r = new_file_write(tmp, text, &fd);

	return r < 0 ? r : new_file_close(tmp, fd, durable);
}

static char *tmp_template(const char *state)
{
	char *tmp;

	return asprintf(&tmp, "%s.tmp.XXXXXX", state) < 0 ? NULL : tmp;
}

/* fsync of path's directory, which makes the renames in it durable */
static void sync_dir(const char *path)
{
	_cleanup_free_ char *dircopy = strdup(path);
	int dfd;

	if (dircopy && (dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

/* The second half: renames tmp over path (removes it if that fails);
 * durable: fsync the directory. */
static int put_file(const char *tmp, const char *path, bool durable)
{
	if (rename(tmp, path) < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	if (durable)
		sync_dir(path);
	return 0;
}

int nf_replace_file_v(const char *state, const char *path, const struct nf_pieces *text, bool durable)
{
	_cleanup_free_ char *tmp = tmp_template(state);
	int r = tmp ? new_file(tmp, text, durable) : -ENOMEM;

	return r < 0 ? r : put_file(tmp, path, durable);
}

int nf_replace_file(const char *state, const char *path, const char *text, size_t len, bool durable)
{
	struct nf_pieces t = nf_pieces_of(text, len);

	return nf_replace_file_v(state, path, &t, durable);
}

/* ---- saving: the new file is made and written on a thread (state.h) ---- */

static int whole_text(struct nf_state_stage *st);
static int pods_only_text(struct nf_state_stage *st);

/* The model cache of the new text, written now, before the rename: it
 * names the text by its hash, so until the rename it is a miss, and if
 * the change is dropped it stays one (the next load parses the state and
 * writes it anew). For s without skip, as the text has it. */
static void stage_cache(struct nf_state_stage *st)
{
	struct nf_state v = *st->s;
	size_t npods = v.npods - (st->skip != NULL);

	/* skip left out by the writer, not by a copy of the pods without it
	 * (at 500 pods ~20 us of this thread, which a DEL waits for) */
	v.synced_ino = st->synced_ino; /* the new text's */
	nf_state_cache_write(st->path, &v, st->skip, &st->pieces, st->pods_at, st->pods_end,
			     st->spans && st->nspans == npods ? (const size_t(*)[2])st->spans : NULL, &st->text_id);
}

/* "<state>.prev" renamed to a free "<state>.old.N", or gone already
 * (state.h): false when every one is taken (or renameat2 cannot refuse to
 * replace one here) */
static bool park_prev(struct nf_state_stage *st)
{
	size_t at = st->old ? strlen(st->old) - 1 : 0;

	for (int i = 0; st->old && i < NF_STATE_OLD_SLOTS; i++) {
		st->old[at] = (char)('0' + i);
		if (renameat2(AT_FDCWD, st->prev, AT_FDCWD, st->old, RENAME_NOREPLACE) == 0 || errno == ENOENT)
			return true;
		if (errno != EEXIST)
			break;
	}
	return false;
}

void nf_state_unlink_old(const char *path)
{
	char name[PATH_MAX];

	for (int i = 0; i < NF_STATE_OLD_SLOTS; i++)
		if (snprintf(name, sizeof(name), "%s.old.%d", path, i) < (int)sizeof(name))
			unlink(name);
}

static void *stage_write(void *arg)
{
	struct nf_state_stage *st = arg;
	int fd = -1;

	nf_phase("writer");
	st->error = st->whole ? whole_text(st) : pods_only_text(st);
	nf_phase("writer-text");
	/* the state being replaced keeps a second name, "<state>.prev", so
	 * that the rename does not free its blocks on the caller's clock
	 * (~0.25 ms here). The file that name had is not freed here either
	 * (0.4 ms at 100 policies, when this thread is what an ADD waits
	 * for): in a DEL, where this thread is what the caller waits for at
	 * 1,000 policies, the child the DEL forks anyway (its conntrack
	 * cleanup) holds it open across the unlink and frees it by the last
	 * close; otherwise it is parked as "<state>.old.N" for the child of
	 * the next DEL to unlink (state.h), and unlinked here only when all
	 * of those are taken */
	if (st->prev) {
		/* a DEL skips its pod; an ADD may skip the idle kind its pod
		 * takes over, and parks */
		int held = st->skip && !st->skip->idle ? open(st->prev, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
		if ((held < 0 && park_prev(st)) || unlink(st->prev) == 0 || errno == ENOENT) {
			link(st->path, st->prev);
			st->prev_fd = held;
		} else if (held >= 0) {
			close(held);
		}
	}
	if (st->error == 0)
		st->error = new_file_write(st->tmp, &st->pieces, &fd);
	/* the file's blocks on their way to the disk while the cache is made
	 * and written; durable, then waited for (with 1,000 policies the
	 * fsync was ~2 ms and the cache ~0.3 ms after it), and it will be
	 * "<state>.synced" too (nf_state_stage_finish). Also when not synced:
	 * ext4 starts the writeback of a file renamed over another in the
	 * rename itself (auto_da_alloc), on the caller's clock, ~0.1 ms at
	 * 1,000 policies; started here, it is under way by then. */
	if (st->error == 0)
		sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	/* the file the cache names: the rename leaves its inode and mtime */
	if (st->error == 0) {
		struct stat sb;
		bool known = fstat(fd, &sb) == 0;
		if (known)
			text_id_of(&sb, &st->text_id);
		else
			st->cache = false;
		if (st->durable)
			st->synced_ino = known ? st->text_id.ino : 0;
	}
	nf_phase("writer-written");
	if (st->error == 0 && st->cache)
		stage_cache(st);
	nf_phase("writer-cached");
	if (st->error == 0)
		st->error = new_file_close(st->tmp, fd, st->durable);
	nf_phase("writer-done");
	__atomic_store_n(&st->written, 1, __ATOMIC_RELEASE); /* st is not touched after this */
	return NULL;
}

/* A thread on another CPU than the caller's, if it may use another: a
 * scheduler that packs tasks onto few CPUs (as this machine's does) would
 * otherwise run a new thread on the caller's CPU, and only while the
 * caller waits, so that none of its work would overlap the caller's
 * (docs/performance-history.md). */
static int start_beside(pthread_t *th, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	cpu_set_t cpus;
	int cpu = sched_getcpu(), r;

	if (pthread_attr_init(&attr) != 0)
		return pthread_create(th, NULL, fn, arg);
	if (cpu >= 0 && cpu < CPU_SETSIZE && sched_getaffinity(0, sizeof(cpus), &cpus) == 0) {
		CPU_CLR(cpu, &cpus);
		if (CPU_COUNT(&cpus) > 0)
			pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
	}
	r = pthread_create(th, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return r == 0 ? 0 : pthread_create(th, NULL, fn, arg);
}

/* Is "<state>.synced" the file whose policies s has, on disk? */
static bool synced_base(const struct nf_state_stage *st)
{
	struct stat sb;

	return st->s->synced_ino && lstat(st->synced, &sb) == 0 && S_ISREG(sb.st_mode) &&
	       (uint64_t)sb.st_ino == st->s->synced_ino;
}

/* Starts making and writing the text of st->s (without st->skip). */
static int stage_start(const char *path, struct nf_state_stage *st, struct nf_error *err)
{
	st->path = path;
	st->prev_fd = -1;
	if (asprintf(&st->prev, "%s.prev", path) < 0)
		st->prev = NULL; /* no second name: the rename frees the old file */
	if (asprintf(&st->old, "%s.old.0", path) < 0)
		st->old = NULL; /* nowhere to park the file before it: freed */
	if (asprintf(&st->synced, "%s.synced", path) < 0)
		st->synced = NULL;
	if (!st->synced || !(st->tmp = tmp_template(path))) {
		free(st->prev);
		free(st->old);
		free(st->synced);
		memset(st, 0, sizeof(*st));
		st->prev_fd = -1;
		return nf_error_set(err, ENOMEM, CNI_ERR_IO, "writing state file \"%s\": out of memory", path);
	}
	/* the pods alone changed: no sync if the policies are on disk in
	 * "<state>.synced" (nf_state_save_pods) */
	if (!st->durable && synced_base(st))
		st->synced_ino = st->s->synced_ino;
	else
		st->durable = true;
	/* no thread (e.g. out of resources): write it now */
	st->threaded = start_beside(&st->thread, stage_write, st) == 0;
	if (!st->threaded)
		stage_write(st);
	return 0;
}

/* The "pods" array's text: each record as loaded if it has not changed
 * (most of them: an ADD or DEL changes one), else made anew; without skip.
 * spans (npods entries, or npods - 1 without skip): where each record is,
 * from the start of the array. */
static char *pods_text(const struct nf_state *s, const struct nf_pod *skip, size_t *len, size_t (*spans)[2])
{
	char *text = NULL;
	size_t n = 0, k = 0;
	FILE *f = open_memstream(&text, &n);
	bool ok = f != NULL, first = true;

	if (!f)
		return NULL;
	fputc('[', f);
	for (size_t i = 0; ok && i < s->npods; i++) {
		const struct nf_pod *p = &s->pods[i];
		if (p == skip)
			continue;
		if (!first)
			fputc(',', f);
		first = false;
		spans[k][0] = (size_t)ftello(f);
		if (p->raw_len && s->raw && p->raw_at + p->raw_len <= s->raw_len) {
			fwrite(s->raw + p->raw_at, 1, p->raw_len, f);
		} else {
			json_t *j = nf_pod_to_json(p);
			ok = j && json_dumpf(j, f, JSON_COMPACT) == 0;
			json_decref(j);
		}
		spans[k++][1] = (size_t)ftello(f);
	}
	fputc(']', f);
	if (fclose(f) != 0 || !ok) {
		free(text);
		return NULL;
	}
	*len = n;
	return text;
}

/* The "pods" array of s (without skip) into st: its text, and the places
 * of its records from the start of the array. */
static char *stage_pods_text(const struct nf_state *s, const struct nf_pod *skip, size_t *alen,
			     struct nf_state_stage *st)
{
	char *arr;

	if (!(st->spans = calloc(s->npods + 1, sizeof(*st->spans))))
		return NULL;
	if (!(arr = pods_text(s, skip, alen, st->spans))) {
		free(st->spans);
		st->spans = NULL;
		return NULL;
	}
	st->nspans = s->npods - (skip != NULL);
	return arr;
}

static void stage_pods_at(struct nf_state_stage *st, size_t at, size_t alen)
{
	for (size_t i = 0; i < st->nspans; i++) {
		st->spans[i][0] += at;
		st->spans[i][1] += at;
	}
	st->pods_at = at;
	st->pods_end = at + alen;
	st->cache = true;
}

/* The whole state, as nf_state_to_json would have it dumped, but with
 * the pods' records copied as loaded when unchanged (pods_text): with 500
 * pods, making and dumping their JSON was a quarter of a policy change. */
static int whole_text(struct nf_state_stage *st)
{
	static const char pods_key[] = ",\"pods\":", specs_key[] = ",\"registeredPods\":";
	const struct nf_state *s = st->s;
	struct nf_state v = *s;
	json_t *root, *specs;
	char *head = NULL, *tail = NULL, *arr = NULL, *text = NULL;
	size_t hlen, tlen, alen = 0, len = 0;

	/* everything but "pods" and what follows it ("registeredPods"),
	 * dumped; then the two appended in the same order */
	v.npods = 0;
	root = nf_state_to_json(&v);
	specs = root ? json_incref(json_object_get(root, "registeredPods")) : NULL;
	if (root && specs && json_object_del(root, "pods") == 0 && json_object_del(root, "registeredPods") == 0) {
		head = json_dumps(root, JSON_COMPACT);
		tail = json_dumps(specs, JSON_COMPACT);
	}
	json_decref(specs);
	json_decref(root);
	if (head && tail && (hlen = strlen(head)) >= 2 && (arr = stage_pods_text(s, st->skip, &alen, st))) {
		tlen = strlen(tail);
		len = hlen - 1 + strlen(pods_key) + alen + strlen(specs_key) + tlen + 2;
		if ((text = malloc(len + 1))) {
			char *w = text;
			/* head without its closing brace */
			w = mempcpy(w, head, hlen - 1);
			w = mempcpy(w, pods_key, strlen(pods_key));
			w = mempcpy(w, arr, alen);
			w = mempcpy(w, specs_key, strlen(specs_key));
			w = mempcpy(w, tail, tlen);
			w = mempcpy(w, "}\n", 2);
			stage_pods_at(st, hlen - 1 + strlen(pods_key), alen);
		}
	}
	free(head);
	free(tail);
	free(arr);
	st->text = text;
	if (text)
		nf_pieces_add(&st->pieces, text, len);
	return text ? 0 : -ENOMEM;
}

/* Are t[a, b) only white space and one comma: what lies between two
 * records that follow each other in a JSON array? */
static bool one_comma_between(const char *t, size_t a, size_t b)
{
	a = skip_ws(t, b, a);
	return a < b && t[a] == ',' && skip_ws(t, b, a + 1) == b;
}

/* The loaded text's length without its trailing white space (after its
 * "pods" array): a saved text ends in exactly one newline. */
static size_t trimmed_len(const struct nf_state *s)
{
	size_t len = s->raw_len;

	while (len > s->pods_end && strchr(" \t\r\n", s->raw[len - 1]))
		len--;
	return len;
}

/* The "pods" array of s without skip, in pieces of the loaded text
 * (pods_only_text): the records of unchanged pods that follow each other
 * in s as they do there are one piece, with what separates them; the
 * others are made anew into st->text, which holds them all. An ADD is
 * then the loaded array, then a comma and the new record; a DEL two runs
 * of the loaded records around a comma. With 500 pods, copying every
 * record into a new array was ~0.2 ms of the writer (a DEL waits for
 * it), and most of that was faulting in the copy's pages.
 * -E2BIG, with st untouched, when that takes more pieces than st has
 * room for. */
static int pods_pieces(struct nf_state_stage *st)
{
	const struct nf_state *s = st->s;
	const char *raw = s->raw;
	struct nf_pieces pc = {0};
	int fresh[NF_PIECES_MAX], nfresh = 0;
	char *text = NULL;
	size_t tlen = 0, off, k = 0, run_at = 0, run_end = 0, len;
	size_t (*spans)[2];
	bool first = true;
	int r = 0;
	FILE *f;

	if (!(spans = calloc(s->npods + 1, sizeof(*spans))))
		return -ENOMEM;
	if (!(f = open_memstream(&text, &tlen))) {
		free(spans);
		return -ENOMEM;
	}
	/* the loaded text up to its "[", where the new array begins too */
	nf_pieces_add(&pc, raw, s->pods_at + 1);
	off = s->pods_at + 1;
	for (size_t i = 0; r == 0 && i < s->npods; i++) {
		const struct nf_pod *p = &s->pods[i];
		bool loaded = p->raw_len && p->raw_at > s->pods_at && p->raw_at + p->raw_len < s->pods_end;
		if (p == st->skip)
			continue;
		if (loaded && run_end && p->raw_at >= run_end && one_comma_between(raw, run_end, p->raw_at)) {
			off += p->raw_at - run_end; /* the separator, as loaded */
			run_end = p->raw_at + p->raw_len;
		} else {
			/* the run so far, a comma, then this record: one piece
			 * each, and the closing bracket, the rest and a newline */
			if (pc.n + 6 > NF_PIECES_MAX) {
				r = -E2BIG;
				break;
			}
			if (run_end)
				nf_pieces_add(&pc, raw + run_at, run_end - run_at);
			run_end = 0;
			if (!first) {
				nf_pieces_add(&pc, ",", 1);
				off++;
			}
			if (loaded) {
				run_at = p->raw_at;
				run_end = p->raw_at + p->raw_len;
			} else {
				off_t a = ftello(f), b = -1;
				json_t *j = nf_pod_to_json(p);
				if (a >= 0 && j && json_dumpf(j, f, JSON_COMPACT) == 0)
					b = ftello(f);
				json_decref(j);
				if (b <= a) {
					r = -ENOMEM;
					break;
				} else {
					/* where in text, filled in once it is closed */
					fresh[nfresh++] = pc.n;
					pc.v[pc.n].iov_base = (void *)(uintptr_t)a;
					pc.v[pc.n++].iov_len = (size_t)(b - a);
					pc.len += (size_t)(b - a);
				}
			}
		}
		first = false;
		spans[k][0] = off - s->pods_at;
		off += loaded ? p->raw_len : pc.v[pc.n - 1].iov_len;
		spans[k++][1] = off - s->pods_at;
	}
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(text);
		free(spans);
		return r;
	}
	if (run_end)
		nf_pieces_add(&pc, raw + run_at, run_end - run_at);
	for (int i = 0; i < nfresh; i++)
		pc.v[fresh[i]].iov_base = text + (uintptr_t)pc.v[fresh[i]].iov_base;
	/* "]" and the loaded text after it, then a newline */
	len = trimmed_len(s);
	nf_pieces_add(&pc, raw + s->pods_end - 1, len - (s->pods_end - 1));
	nf_pieces_add(&pc, "\n", 1);
	st->pieces = pc;
	st->text = text;
	st->spans = spans;
	st->nspans = k;
	stage_pods_at(st, s->pods_at, off + 1 - s->pods_at);
	return 0;
}

/* The loaded text with only its "pods" array made anew: in pieces, the
 * loaded text's around the new array's; most of the array too is pieces
 * of the loaded text (pods_pieces). */
static int pods_only_text(struct nf_state_stage *st)
{
	const struct nf_state *s = st->s;
	char *arr;
	size_t alen = 0, len;
	int r;

	if (s->pods_end - s->pods_at >= 2 && s->raw[s->pods_at] == '[' && s->raw[s->pods_end - 1] == ']' &&
	    (r = pods_pieces(st)) != -E2BIG)
		return r;
	if (!(arr = stage_pods_text(s, st->skip, &alen, st)))
		return -ENOMEM;
	/* the loaded text around the new array, then a newline */
	len = trimmed_len(s);
	nf_pieces_add(&st->pieces, s->raw, s->pods_at);
	nf_pieces_add(&st->pieces, arr, alen);
	nf_pieces_add(&st->pieces, s->raw + s->pods_end, len - s->pods_end);
	nf_pieces_add(&st->pieces, "\n", 1);
	st->text = arr;
	/* the array is where it was: no need to look for it */
	stage_pods_at(st, s->pods_at, alen);
	return 0;
}

int nf_state_stage(const char *path, const struct nf_state *s, const struct nf_pod *skip,
		   struct nf_state_stage *st, struct nf_error *err)
{
	memset(st, 0, sizeof(*st));
	if (s->frozen) /* a bug, not an input: its objects were never loaded */
		return nf_error_set(err, EINVAL, CNI_ERR_IO,
				    "writing state file \"%s\": the state was loaded without its objects", path);
	st->durable = true;
	st->whole = true;
	st->s = s;
	st->skip = skip;
	return stage_start(path, st, err);
}

int nf_state_stage_pods(const char *path, const struct nf_state *s, const struct nf_pod *skip,
			struct nf_state_stage *st, struct nf_error *err)
{
	if (!s->raw || s->pods_end <= s->pods_at || s->pods_end > s->raw_len)
		return nf_state_stage(path, s, skip, st, err);
	memset(st, 0, sizeof(*st));
	st->s = s;
	st->skip = skip;
	return stage_start(path, st, err);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

void nf_state_stage_wait(struct nf_state_stage *st)
{
	/* When the caller waits here, the thread is its critical path (a DEL
	 * at 100 policies), and the thread's exit and the futex wake-up of its
	 * joiner took ~0.06 ms more on this VM: watch the flag it sets when it
	 * is done with st for up to 0.5 ms, on this CPU, idle otherwise; the
	 * thread is left to end on its own then. */
	if (st->threaded) {
		struct timespec t0, t;
		bool done;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (!(done = __atomic_load_n(&st->written, __ATOMIC_ACQUIRE))) {
			cpu_relax();
			clock_gettime(CLOCK_MONOTONIC, &t);
			if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > 500000L)
				break;
		}
		if (done)
			pthread_detach(st->thread);
		else
			pthread_join(st->thread, NULL);
	}
	st->threaded = false;
}

/* The state file just renamed in, synced, gets the second name
 * "<state>.synced" (by a rename, so that the name always holds a whole
 * file). If that fails, the cache written for it names an inode the
 * name does not have, and the next save of the pods is synced again. */
static void link_synced(const struct nf_state_stage *st)
{
	_cleanup_free_ char *tmp = NULL;

	if (asprintf(&tmp, "%s.tmp", st->synced) < 0)
		return;
	if ((unlink(tmp) == 0 || errno == ENOENT) && link(st->path, tmp) == 0 && rename(tmp, st->synced) < 0)
		unlink(tmp);
}

int nf_state_stage_take_prev(struct nf_state_stage *st)
{
	int fd = st->threaded ? -1 : st->prev_fd;

	if (fd >= 0)
		st->prev_fd = -1;
	return fd;
}

int nf_state_stage_finish(struct nf_state_stage *st, bool keep, struct nf_error *err)
{
	const char *path = st->path;
	int r;

	nf_state_stage_wait(st);
	if (st->prev_fd >= 0)
		close(st->prev_fd);
	nf_phase("joined");
	r = st->error;
	if (r == 0 && !keep)
		unlink(st->tmp);
	else if (r == 0 && (r = put_file(st->tmp, path, false)) == 0 && st->durable) {
		link_synced(st);
		sync_dir(path); /* both renames */
	}
	nf_phase("renamed");
	free(st->spans);
	free(st->text);
	free(st->tmp);
	free(st->prev);
	free(st->old);
	free(st->synced);
	memset(st, 0, sizeof(*st));
	if (r < 0 && keep)
		return nf_error_set(err, -r, CNI_ERR_IO, "writing state file \"%s\": %s", path, strerror(-r));
	return 0;
}

int nf_state_save(const char *path, const struct nf_state *s, struct nf_error *err)
{
	struct nf_state_stage st;
	int r = nf_state_stage(path, s, NULL, &st, err);

	return r < 0 ? r : nf_state_stage_finish(&st, true, err);
}

int nf_state_save_pods(const char *path, const struct nf_state *s, struct nf_error *err)
{
	struct nf_state_stage st;
	int r = nf_state_stage_pods(path, s, NULL, &st, err);

	return r < 0 ? r : nf_state_stage_finish(&st, true, err);
}

/* ---- mutation ---- */

#define GROW(arr, n)                                                            \
	({                                                                      \
		void *_p = realloc((arr), ((n) + 1) * sizeof(*(arr)));          \
		if (_p)                                                         \
			(arr) = _p;                                             \
		_p ? 0 : -ENOMEM;                                               \
	})

static bool streq0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

int nf_state_view_without(const struct nf_state *s, const struct nf_pod *pod, struct nf_state *view)
{
	*view = *s;
	if (!(view->pods = calloc(s->npods + 1, sizeof(*view->pods))))
		return -ENOMEM;
	view->npods = 0;
	for (size_t i = 0; i < s->npods; i++)
		if (&s->pods[i] != pod)
			view->pods[view->npods++] = s->pods[i];
	return 0;
}

const struct nf_pod *nf_state_find_pod(const struct nf_state *s, const char *container_id,
				       const char *ifname)
{
	for (size_t i = 0; i < s->npods; i++)
		if (!s->pods[i].idle && streq0(s->pods[i].container_id, container_id) &&
		    streq0(s->pods[i].ifname, ifname))
			return &s->pods[i];
	return NULL;
}

const struct nf_pod *nf_state_find_pod_by_name(const struct nf_state *s, const char *ns,
					       const char *name)
{
	for (size_t i = 0; i < s->npods; i++)
		if (!s->pods[i].idle && streq0(s->pods[i].ns, ns) && streq0(s->pods[i].name, name))
			return &s->pods[i];
	return NULL;
}

int nf_state_put_pod(struct nf_state *s, struct nf_pod *pod)
{
	for (size_t i = 0; i < s->npods; i++) {
		if (!s->pods[i].idle && streq0(s->pods[i].container_id, pod->container_id) &&
		    streq0(s->pods[i].ifname, pod->ifname)) {
			nf_pod_free(&s->pods[i]);
			s->pods[i] = *pod;
			memset(pod, 0, sizeof(*pod));
			return NF_PUT_CONFIGURED;
		}
	}
	if (GROW(s->pods, s->npods) < 0)
		return -ENOMEM;
	s->pods[s->npods++] = *pod;
	memset(pod, 0, sizeof(*pod));
	return NF_PUT_CREATED;
}

static void now_rfc3339(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Keeps the creation time of the object being replaced (kubectl shows AGE
 * from it) and stamps new objects; returns whether anything else differs. */
static bool carry_metadata(json_t *newobj, const json_t *oldobj)
{
	json_t *nmeta = json_object_get(newobj, "metadata");
	const json_t *ots = oldobj ? json_object_get(json_object_get(oldobj, "metadata"), "creationTimestamp") : NULL;
	char buf[32];

	if (!json_is_object(nmeta))
		return true;
	if (ots) {
		json_object_set(nmeta, "creationTimestamp", (json_t *)ots);
	} else {
		now_rfc3339(buf, sizeof(buf));
		json_object_set_new(nmeta, "creationTimestamp", json_string(buf));
	}
	return !oldobj || !json_equal(newobj, (json_t *)oldobj);
}

int nf_state_put_policy(struct nf_state *s, struct nf_policy *p)
{
	for (size_t i = 0; i < s->npolicies; i++) {
		struct nf_policy *old = &s->policies[i];
		if (strcmp(old->ns, p->ns) == 0 && strcmp(old->name, p->name) == 0) {
			bool changed = carry_metadata(p->obj, old->obj);
			nf_policy_free(old);
			*old = *p;
			memset(p, 0, sizeof(*p));
			return changed ? NF_PUT_CONFIGURED : NF_PUT_UNCHANGED;
		}
	}
	carry_metadata(p->obj, NULL);
	if (GROW(s->policies, s->npolicies) < 0)
		return -ENOMEM;
	s->policies[s->npolicies++] = *p;
	memset(p, 0, sizeof(*p));
	return NF_PUT_CREATED;
}

int nf_state_put_namespace(struct nf_state *s, struct nf_namespace *n)
{
	for (size_t i = 0; i < s->nnamespaces; i++) {
		struct nf_namespace *old = &s->namespaces[i];
		if (strcmp(old->name, n->name) == 0) {
			bool changed = carry_metadata(n->obj, old->obj);
			nf_namespace_free(old);
			*old = *n;
			memset(n, 0, sizeof(*n));
			return changed ? NF_PUT_CONFIGURED : NF_PUT_UNCHANGED;
		}
	}
	carry_metadata(n->obj, NULL);
	if (GROW(s->namespaces, s->nnamespaces) < 0)
		return -ENOMEM;
	s->namespaces[s->nnamespaces++] = *n;
	memset(n, 0, sizeof(*n));
	return NF_PUT_CREATED;
}

int nf_state_put_podspec(struct nf_state *s, struct nf_podspec *p)
{
	int r = -1;

	for (size_t i = 0; i < s->npodspecs && r < 0; i++) {
		struct nf_podspec *old = &s->podspecs[i];
		if (strcmp(old->ns, p->ns) == 0 && strcmp(old->name, p->name) == 0) {
			bool changed = carry_metadata(p->obj, old->obj);
			nf_podspec_free(old);
			*old = *p;
			r = changed ? NF_PUT_CONFIGURED : NF_PUT_UNCHANGED;
		}
	}
	if (r < 0) {
		carry_metadata(p->obj, NULL);
		if (GROW(s->podspecs, s->npodspecs) < 0)
			return -ENOMEM;
		s->podspecs[s->npodspecs++] = *p;
		r = NF_PUT_CREATED;
	}
	/* the attachments of this pod take the registration's labels */
	for (size_t i = 0; i < s->npods; i++) {
		struct nf_pod *a = &s->pods[i];
		if (!a->idle && streq0(a->ns, p->ns) && streq0(a->name, p->name)) {
			struct nf_labels l = {0};
			if (nf_pod_own(a) < 0 || nf_labels_copy(&l, &p->labels) < 0)
				return -ENOMEM;
			nf_labels_free(&a->labels);
			a->labels = l;
			a->raw_len = 0; /* its record changed */
		}
	}
	memset(p, 0, sizeof(*p));
	return r;
}

const struct nf_podspec *nf_state_find_podspec(const struct nf_state *s, const char *ns, const char *name)
{
	for (size_t i = 0; i < s->npodspecs; i++)
		if (streq0(s->podspecs[i].ns, ns) && streq0(s->podspecs[i].name, name))
			return &s->podspecs[i];
	return NULL;
}

bool nf_state_remove_podspec(struct nf_state *s, const char *ns, const char *name)
{
	for (size_t i = 0; i < s->npodspecs; i++) {
		if (streq0(s->podspecs[i].ns, ns) && streq0(s->podspecs[i].name, name)) {
			nf_podspec_free(&s->podspecs[i]);
			memmove(&s->podspecs[i], &s->podspecs[i + 1], (s->npodspecs - i - 1) * sizeof(*s->podspecs));
			s->npodspecs--;
			return true;
		}
	}
	return false;
}

bool nf_state_remove_pod(struct nf_state *s, const char *container_id, const char *ifname)
{
	bool removed = false;
	size_t j = 0;

	for (size_t i = 0; i < s->npods; i++) {
		if (!s->pods[i].idle && streq0(s->pods[i].container_id, container_id) &&
		    streq0(s->pods[i].ifname, ifname)) {
			nf_pod_free(&s->pods[i]);
			removed = true;
		} else {
			s->pods[j++] = s->pods[i];
		}
	}
	s->npods = j;
	return removed;
}

int nf_state_own_pod(struct nf_state *s, const struct nf_pod *p)
{
	return nf_pod_own(&s->pods[p - s->pods]);
}

void nf_state_remove_pod_at(struct nf_state *s, size_t i)
{
	nf_pod_free(&s->pods[i]);
	memmove(&s->pods[i], &s->pods[i + 1], (s->npods - i - 1) * sizeof(*s->pods));
	s->npods--;
}

const struct nf_pod *nf_state_twin(const struct nf_state *s, const struct nf_pod *pod, bool idle_only)
{
	for (size_t i = 0; i < s->npods; i++) {
		const struct nf_pod *q = &s->pods[i];
		if (q != pod && (q->idle || !idle_only) && streq0(q->ns, pod->ns) && nf_labels_equal(&q->labels, &pod->labels))
			return q;
	}
	return NULL;
}

size_t nf_state_nidle(const struct nf_state *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->npods; i++)
		n += s->pods[i].idle;
	return n;
}

int nf_state_add_idle(struct nf_state *s, const struct nf_pod *pod)
{
	struct nf_pod g = {.idle = true};

	if (!(g.ns = strdup(pod->ns)) || nf_labels_copy(&g.labels, &pod->labels) < 0 ||
	    GROW(s->pods, s->npods) < 0) {
		nf_pod_free(&g);
		return -ENOMEM;
	}
	s->pods[s->npods++] = g;
	return 0;
}

bool nf_state_remove_policy(struct nf_state *s, const char *ns, const char *name)
{
	for (size_t i = 0; i < s->npolicies; i++) {
		if (strcmp(s->policies[i].ns, ns) == 0 && strcmp(s->policies[i].name, name) == 0) {
			nf_policy_free(&s->policies[i]);
			memmove(&s->policies[i], &s->policies[i + 1], (s->npolicies - i - 1) * sizeof(*s->policies));
			s->npolicies--;
			return true;
		}
	}
	return false;
}

bool nf_state_remove_namespace(struct nf_state *s, const char *name)
{
	for (size_t i = 0; i < s->nnamespaces; i++) {
		if (strcmp(s->namespaces[i].name, name) == 0) {
			nf_namespace_free(&s->namespaces[i]);
			memmove(&s->namespaces[i], &s->namespaces[i + 1],
				(s->nnamespaces - i - 1) * sizeof(*s->namespaces));
			s->nnamespaces--;
			return true;
		}
	}
	return false;
}
