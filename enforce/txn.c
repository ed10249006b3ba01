#include "txn.h"
#include "../netconf/phase.h"
#include "nlsock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* ---- a DEL's conntrack cleanup (txn.h) ---- */

#define CT_LOCK_PATH_MAX 4200
#define CT_FILES_MAX 4 /* a pod has one address per family: more is never seen */

struct del_cleanup {
	size_t nfiles; /* paths[0..nfiles) were made for addrs[0..nfiles) */
	char paths[CT_FILES_MAX][CT_LOCK_PATH_MAX];
	size_t naddrs;
	struct nf_cidr addrs[];
};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int ct_lock_path(const char *path, const struct nf_cidr *a, char *out)
{
	char text[INET6_ADDRSTRLEN];

	if (!inet_ntop(a->family, a->addr, text, sizeof(text)))
		return -EAFNOSUPPORT;
	if (snprintf(out, CT_LOCK_PATH_MAX, "%s.conntrack-%s", path, text) >= CT_LOCK_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Opens and locks name, which must still be the file of that name once
 * locked (a finished cleanup unlinks its file while holding it). */
static int lock_ct_file(const char *name, int flags, int how)
{
	for (;;) {
		struct stat a, b;
		int fd = open(name, flags | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0)
			return -errno;
		while (flock(fd, how) < 0) {
			if (errno != EINTR) {
				int e = errno;
				close(fd);
				return -e;
			}
		}
		if (fstat(fd, &a) == 0 && stat(name, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return fd;
		close(fd);
		if (!(flags & O_CREAT))
			return -ENOENT; /* cleaned up and removed while we waited */
	}
}

/* How long the deferred cleanup waits before it walks the conntrack hash:
 * the runtime's DEL goes on with the next plugins (bridge deletes the
 * veth, host-local frees the address), and a walk at the same time made
 * that 9 ms slower on 2 CPUs (docs/performance-history.md). An ADD that gets one
 * of the addresses meanwhile does the cleanup itself (the barrier). */
#define DEL_CLEANUP_DELAY_MS 1000

static void del_cleanup_work(void *arg, bool deferred)
{
	struct del_cleanup *c = arg;
	struct nf_error err = {0};
	struct nf_cidr todo[CT_FILES_MAX];
	int fds[CT_FILES_MAX];
	size_t held[CT_FILES_MAX], n = 0;
	int r;

	if (deferred)
		sleep_ms(DEL_CLEANUP_DELAY_MS);
	if (c->nfiles < c->naddrs) { /* no file for an ADD to find: all of them */
		r = conntrack_flush(c->addrs, c->naddrs, c->addrs, c->naddrs, &err);
	} else {
		/* the files no ADD has dealt with meanwhile, held while the
		 * cleanup runs (an ADD of one of the addresses waits) */
		for (size_t i = 0; i < c->nfiles; i++) {
			int fd = lock_ct_file(c->paths[i], 0, LOCK_EX);
			if (fd >= 0) {
				fds[n] = fd;
				held[n] = i;
				todo[n++] = c->addrs[i];
			}
		}
		r = n ? conntrack_flush(todo, n, todo, n, &err) : 0;
	}
	if (r < 0)
		syslog(LOG_WARNING | LOG_DAEMON,
		       "netfence: conntrack entries of a deleted pod's addresses may remain: %s", err.msg);
	for (size_t k = 0; k < n; k++) {
		unlink(c->paths[held[k]]); /* still held: an ADD that opened it waits */
		close(fds[k]);
	}
}

/* Called with the state lock held, after the DEL is saved: one file per
 * address tells an ADD of it that the cleanup is pending; a child does it
 * after DEL_CLEANUP_DELAY_MS. */
static void del_cleanup_start(const char *path, struct del_cleanup *c)
{
	/* (more than CT_FILES_MAX addresses: everything happens now) */
	for (c->nfiles = 0; c->naddrs <= CT_FILES_MAX && c->nfiles < c->naddrs; c->nfiles++) {
		int fd;
		if (ct_lock_path(path, &c->addrs[c->nfiles], c->paths[c->nfiles]) < 0 ||
		    (fd = open(c->paths[c->nfiles], O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
			break;
		close(fd);
	}
	if (c->nfiles == c->naddrs) {
		nlsock_defer_work(del_cleanup_work, c);
		return;
	}
	del_cleanup_work(c, false);
	for (size_t i = 0; i < c->nfiles; i++)
		unlink(c->paths[i]);
	free(c);
}

static void unlink_old_work(void *arg, bool deferred)
{
	(void)deferred;
	nf_state_unlink_old(arg);
}

/* A DEL's own cleanup, then the state files the ADDs before it replaced
 * and parked (state.h), in the same child, after it. */
static void del_cleanup_start_all(const char *path, struct del_cleanup *c)
{
	char *arg = strdup(path);

	del_cleanup_start(path, c);
	if (arg)
		nlsock_defer_work(unlink_old_work, arg);
}

int txn_conntrack_barrier(const char *path, const struct nf_cidr *addrs, size_t naddrs, struct nf_error *err)
{
	char name[CT_LOCK_PATH_MAX];

	for (size_t i = 0; i < naddrs; i++) {
		int fd, r;

		if (ct_lock_path(path, &addrs[i], name) < 0)
			continue;
		fd = lock_ct_file(name, 0, LOCK_SH);
		if (fd == -ENOENT)
			continue;
		if (fd < 0)
			return nf_error_set(err, -fd, CNI_ERR_IO, "waiting for \"%s\": %s", name, strerror(-fd));
		/* A cleanup that finished removed its file before letting go:
		 * this one has not run yet (its child waits first) or died
		 * (new files are only made under the state lock, which we
		 * hold). Do its work, then remove the file; a child that comes
		 * later finds it gone. */
		if ((r = conntrack_flush(&addrs[i], 1, &addrs[i], 1, err)) < 0) {
			close(fd);
			nf_error_wrap(err, "cleaning up conntrack after a deleted pod with the address of \"%s\"",
				      name);
			return r;
		}
		unlink(name);
		close(fd);
	}
	return 0;
}

/* ---- re-judging the flows of pods a change restricted (txn.h) ----
 *
 * "<state>.rejudge" holds a token (16 hex digits), new at each change that
 * adds addresses to the rejudge sets. A worker (the child of such a change,
 * or of any change that finds the marker with no worker alive) holds a
 * shared lock on it for its whole life, waits REJUDGE_DELAY_MS, lists the
 * sets, deletes the conntrack entries of those addresses, and then, under
 * the state lock, takes them out of the sets and removes the marker, but
 * only if the token is still the one it started with: else a later change
 * added addresses meanwhile and its own worker, whose walk comes after
 * that change, empties the sets; if nothing else holds the marker then,
 * that change died before handing it over, and the worker takes its
 * token and walks again. So no change waits for a worker. */

/* Like DEL's: the next commands (kubectl applying more manifests, the
 * runtime) do not compete with the walk for the CPU; meanwhile the
 * restricted flows are judged packet by packet, which is correct. */
#define REJUDGE_DELAY_MS 1000

struct rejudge_job {
	char state[CT_LOCK_PATH_MAX]; /* the state file */
	int fd;                       /* its marker, with a shared lock */
	uint64_t token;
};

static int rejudge_path(const char *path, char *out)
{
	return snprintf(out, CT_LOCK_PATH_MAX, "%s.rejudge", path) >= CT_LOCK_PATH_MAX ? -ENAMETOOLONG : 0;
}

static bool token_read(int fd, uint64_t *tok)
{
	char buf[17] = "";
	char *end;

	if (pread(fd, buf, 16, 0) != 16)
		return false;
	*tok = strtoull(buf, &end, 16);
	return end == buf + 16;
}

static void rejudge_work(void *arg, bool deferred)
{
	struct rejudge_job *j = arg;
	struct nf_error err = {0};
	struct nf_cidr *v = NULL;
	size_t n = 0;
	char lockname[CT_LOCK_PATH_MAX + 8], name[CT_LOCK_PATH_MAX];
	int r, lk, fd;
	uint64_t now;

	if (deferred)
		sleep_ms(REJUDGE_DELAY_MS);
	if ((r = rejudge_path(j->state, name)) < 0)
		goto out;
	/* the state lock, without creating anything (the state may be gone) */
	snprintf(lockname, sizeof(lockname), "%s.lock", j->state);
	for (int round = 0; round < 4; round++) {
		struct stat a, b;
		bool adopted = false;

		free(v);
		v = NULL;
		n = 0;
		r = nft_rejudge_list(&v, &n, &err);
		if (r == 0 && n > 0)
			r = conntrack_flush_sources(v, n, &err);
		if (r < 0)
			goto out;
		if ((lk = lock_ct_file(lockname, 0, LOCK_EX)) < 0)
			goto out;
		fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && token_read(fd, &now)) {
			if (now == j->token) {
				if ((r = nft_rejudge_end(v, n, &err)) == 0)
					unlink(name);
			} else if (fstat(fd, &a) == 0 && fstat(j->fd, &b) == 0 && a.st_ino == b.st_ino &&
				   a.st_dev == b.st_dev && flock(j->fd, LOCK_EX | LOCK_NB) == 0) {
				/* A later change wrote its token into our marker and
				 * nothing else holds it: it died before handing it to
				 * a worker (changes are done: we hold the state lock).
				 * Its addresses are in the sets: walk again, for it. A
				 * live worker or change holds it: theirs then (a
				 * failed conversion drops our lock, which is fine). */
				adopted = flock(j->fd, LOCK_SH) == 0;
				j->token = now;
			}
		}
		if (fd >= 0)
			close(fd);
		close(lk);
		if (!adopted)
			break;
	}
out:
	if (r < 0 && r != -ENAMETOOLONG)
		syslog(LOG_WARNING | LOG_DAEMON,
		       "netfence: the established flows of pods a policy change restricted are still judged "
		       "packet by packet (the next change retries): %s", err.msg);
	free(v);
	close(j->fd);
}

/* Hands the marker of state file `path` (fd, shared-locked) to a worker. */
static void rejudge_spawn(const char *path, int fd, uint64_t token)
{
	struct rejudge_job *j = malloc(sizeof(*j));

	if (!j) {
		close(fd);
		return;
	}
	snprintf(j->state, sizeof(j->state), "%s", path);
	j->fd = fd;
	j->token = token;
	nlsock_defer_work_fd(rejudge_work, j, fd); /* closes fd, frees j */
}

/* A new token into the marker (fd). */
static bool token_write(int fd, uint64_t *token)
{
	char buf[17];

	if (getrandom(token, sizeof(*token), GRND_NONBLOCK) != (ssize_t)sizeof(*token)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		*token = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
	}
	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)*token);
	return ftruncate(fd, 0) == 0 && pwrite(fd, buf, 16, 0) == 16;
}

/* Called with the state lock held: a marker no worker holds (its child
 * died, or failed) gets a worker now. */
static void rejudge_orphan(const char *path, const char *name)
{
	int fd = open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	uint64_t token;

	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && (token_read(fd, &token) || token_write(fd, &token)) &&
	    flock(fd, LOCK_SH) == 0) {
		rejudge_spawn(path, fd, token);
		return;
	}
	close(fd); /* a worker is on it */
}

/* Called with the state lock held by a change that does not re-judge (an
 * ADD or DEL): a change killed after its transaction, before it handed
 * its marker to a worker, left its re-judging rules in the base chain;
 * they get a worker now, not at the next policy change. (Most calls:
 * one open() that finds no marker.) */
static void adopt_orphan(const char *path)
{
	char rj[CT_LOCK_PATH_MAX];

	if (rejudge_path(path, rj) == 0)
		rejudge_orphan(path, rj);
}

/* Called with the state lock held, before a change that re-judges: a new
 * token in the marker, which is returned shared-locked (or -1). */
static int rejudge_mark(const char *name, uint64_t *token)
{
	int fd = open(name, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -1;
	if (!token_write(fd, token) || flock(fd, LOCK_SH) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* existing: note the addresses of the attachments (for the tightening check
 * of a change other than one pod added or deleted) */
static int begin(struct txn *t, const char *path, const struct nf_state *s, bool existing)
{
	size_t n = 0;

	memset(t, 0, sizeof(*t));
	if (asprintf(&t->dirty, "%s.dirty", path) < 0) {
		t->dirty = NULL;
		return -ENOMEM;
	}
	if (asprintf(&t->clean, "%s.clean", path) < 0)
		t->clean = NULL; /* the marker is made and removed instead */
	t->force = faccessat(AT_FDCWD, t->dirty, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	if (!existing)
		return 0;
	for (size_t i = 0; i < s->npods; i++)
		n += s->pods[i].naddrs;
	t->existing = calloc(n + 1, sizeof(*t->existing));
	if (!t->existing)
		return -ENOMEM;
	for (size_t i = 0; i < s->npods; i++)
		for (size_t k = 0; k < s->pods[i].naddrs; k++)
			t->existing[t->nexisting++] = s->pods[i].addrs[k];
	return 0;
}

int txn_begin(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	int r = begin(t, path, s, true);

	if (r < 0)
		return nf_error_set(err, -r, CNI_ERR_IO, "out of memory");
	return plan_compile(s, &t->before, err);
}

int txn_begin_pod(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	int r = begin(t, path, s, false);

	return r < 0 ? nf_error_set(err, -r, CNI_ERR_IO, "out of memory") : 0;
}

void txn_end(struct txn *t)
{
	plan_free(&t->before);
	free(t->existing);
	free(t->dirty);
	free(t->clean);
	free(t->gone);
	memset(t, 0, sizeof(*t));
}

enum commit_kind {
	COMMIT_ANY, /* anything changed: save it all, re-judge tightened flows */
	COMMIT_PODS, /* only pods changed, in any way: save the pods, re-judge */
	COMMIT_ADD, /* a new attachment: save the pods; it only gives permissions
		     * (its addresses join peer sets, its chain is new and has no
		     * flows yet), nothing to re-judge */
	COMMIT_DEL, /* an attachment gone: save the pods; clean up conntrack
		     * for its addresses (t->gone) */
};

/* "<state>.dirty": the kernel may get ahead of the state file (txn.h).
 * Renamed from "<state>.clean" and back (~20 us here each), made only the
 * first time: making a file and removing it cost ~0.1 ms each here, on the
 * caller's clock (an inode allocated, then freed). */
static int mark_dirty(struct txn *t, struct nf_error *err)
{
	int fd;

	if (t->clean && rename(t->clean, t->dirty) == 0)
		return 0;
	fd = open(t->dirty, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return nf_error_set(err, errno, CNI_ERR_IO, "creating \"%s\": %s", t->dirty, strerror(errno));
	close(fd);
	return 0;
}

static void clear_dirty(struct txn *t)
{
	if (!t->clean || rename(t->dirty, t->clean) < 0)
		unlink(t->dirty);
}

/* The kernel holds `before`; make it hold `after` and save s.
 *
 * A change that takes a permission away from running pods (ANY, PODS)
 * puts their addresses into the sets rejudge4/rejudge6 in its own
 * transaction: from the commit on, the packets of the flows they started
 * are judged by their chains again (plan.h). The conntrack walk that
 * deletes those flows' entries (each is then judged anew by its next
 * packet, and the fast path is back) takes 6-10 ms whatever the number of
 * flows (262,144 buckets here), so it runs in the child that outlives the
 * command (nlsock.h), which then empties the sets (rejudge_work); any
 * change gives a marker no child holds a new child. */
static int commit_plans(struct txn *t, const char *path, const struct nf_state *s, const struct plan *before,
			const struct plan *after, enum commit_kind kind, struct nf_state_stage *stage,
			struct nf_error *err)
{
	struct nf_cidr *flush = NULL;
	size_t nflush = 0;
	bool changed = false, rejudging = false;
	char rj[CT_LOCK_PATH_MAX];
	int r, marker = -1; /* "<state>.rejudge", with our token: this change re-judges */
	uint64_t token = 0;

	if (kind == COMMIT_ANY || kind == COMMIT_PODS) {
		if (plan_tightened_sources(before, after, t->existing, t->nexisting, &flush, &nflush) < 0)
			nflush = 0; /* out of memory: no re-judging */
		if (rejudge_path(path, rj) == 0) {
			if (nflush && !t->force)
				marker = rejudge_mark(rj, &token);
			else
				rejudge_orphan(path, rj);
		}
	} else {
		adopt_orphan(path);
	}
	if ((r = mark_dirty(t, err)) < 0) {
		nf_state_stage_finish(stage, false, NULL);
		goto out;
	}
	nf_phase("marked");
	if (t->force) {
		changed = true;
		r = nft_apply(after, err);
	} else if ((r = nft_apply_diff(before, after, marker >= 0 ? flush : NULL, marker >= 0 ? nflush : 0, &changed,
				       &rejudging, err)) < 0) {
		/* the kernel did not hold what the state said (someone changed
		 * it): rebuild everything from the plan */
		nf_error_clear(err);
		changed = true;
		rejudging = false;
		r = nft_apply(after, err);
	}
	nf_phase("applied");
	if (r < 0) {
		nf_state_stage_finish(stage, false, NULL);
		goto out; /* the markers stay: the next change re-programs, and re-judges */
	}
	if ((r = nf_state_stage_finish(stage, true, err)) < 0) {
		if (changed) {
			struct nf_error ignored = {0};
			if (nft_apply(before, &ignored) == 0)
				clear_dirty(t);
		}
		goto out;
	}
	clear_dirty(t);
	if (kind == COMMIT_DEL) { /* see txn.h */
		del_cleanup_start_all(path, t->gone);
		t->gone = NULL;
		goto out;
	}
	if (nflush && changed && !rejudging) { /* a full apply: the sets are empty, walk now */
		struct nf_error ct = {0};
		if (conntrack_flush_sources(flush, nflush, &ct) < 0)
			snprintf(t->warning, sizeof(t->warning),
				 "the change is in place, but established connections it no longer allows may "
				 "continue: %.1500s", ct.msg);
	}
	if (marker >= 0) {
		rejudge_spawn(path, marker, token);
		marker = -1;
	}
out:
	if (marker >= 0) /* failed: the next change's rejudge_orphan spawns a worker */
		close(marker);
	free(flush);
	return r;
}

/* Every commit first starts writing the new state file (on a thread, see
 * state.h): it is made from s, which is final by then, while the plan is
 * made and the kernel changes. */
static int stage(const char *path, const struct nf_state *s, enum commit_kind kind, const struct nf_pod *skip,
		 struct nf_state_stage *st, struct nf_error *err)
{
	return kind == COMMIT_ANY ? nf_state_stage(path, s, skip, st, err)
				  : nf_state_stage_pods(path, s, skip, st, err);
}

static int commit(struct txn *t, const char *path, const struct nf_state *s, enum commit_kind kind,
		  struct nf_error *err)
{
	struct nf_state_stage st;
	struct plan after = {0};
	int r;

	if ((r = stage(path, s, kind, NULL, &st, err)) < 0)
		return r;
	if ((r = plan_compile(s, &after, err)) < 0)
		nf_state_stage_finish(&st, false, NULL);
	else
		r = commit_plans(t, path, s, &t->before, &after, kind, &st, err);
	plan_free(&after);
	return r;
}

int txn_commit(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	return commit(t, path, s, COMMIT_ANY, err);
}

int txn_commit_pods(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err)
{
	return commit(t, path, s, COMMIT_PODS, err);
}

/* The plan of s without pod: derived, or compiled from a view of s
 * without it (the pods are shallow copies, owned by s). */
static int plan_minus(const struct plan *with, const struct nf_state *s, const struct nf_pod *pod,
		      struct plan *out, struct nf_error *err)
{
	struct nf_state v;
	int r = plan_without_pod(with, s, pod, out);

	if (r != -EAGAIN)
		return r < 0 ? nf_error_set(err, -r, CNI_ERR_IO, "out of memory") : 0;
	if (nf_state_view_without(s, pod, &v) < 0)
		return nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
	r = plan_compile(&v, out, err);
	free(v.pods);
	return r;
}

/* ADD and DEL: send only what the pod changes (plan_pod_delta), without
 * compiling the node. -EAGAIN (nothing changed, nothing saved) when that
 * cannot be done: the share cannot be told apart, a predecessor died
 * mid-change, or the kernel refused the changes (it does not hold what
 * the state says, e.g. no tables yet); then the caller compiles, and
 * finishes st. s holds the pod; del_from: NULL for an ADD, for a DEL the
 * same state, which loses the pod here once the kernel has changed; st:
 * the new state file (without the pod for a DEL), staged, finished here
 * unless -EAGAIN. */
static int commit_delta(struct txn *t, const char *path, const struct nf_state *s, struct nf_state *del_from,
			const struct nf_pod *pod, struct nf_state_stage *st, struct nf_error *err)
{
	bool adding = del_from == NULL;
	struct plan without = {0}, with = {0};
	const struct plan *before = adding ? &without : &with, *after = adding ? &with : &without;
	bool kernel, changed = false;
	int r;

	if (t->force)
		return -EAGAIN;
	if ((r = plan_pod_delta(s, pod, &without, &with)) < 0) {
		if (r == -EAGAIN)
			return r;
		nf_state_stage_finish(st, false, NULL);
		return nf_error_set(err, -r, CNI_ERR_IO, "compiling the rules: %s", strerror(-r));
	}
	nf_phase("planned");
	/* a pod no policy selects and no peer set takes: nothing for the
	 * kernel, no marker */
	kernel = !plan_is_empty(&with) || with.nsets > 0;
	if (kernel && (r = mark_dirty(t, err)) < 0) {
		nf_state_stage_finish(st, false, NULL);
		goto out;
	}
	nf_phase("marked");
	if (kernel && (r = nft_apply_delta(before, after, &changed, err)) < 0) {
		nf_error_clear(err);
		clear_dirty(t); /* the kernel did not change */
		r = -EAGAIN;
		goto out;
	}
	nf_phase("applied");
	if (del_from) { /* the thread reads s until then */
		nf_state_stage_wait(st);
		nlsock_keep_fd(nf_state_stage_take_prev(st));
		nf_state_remove_pod(del_from, t->gone_cid, t->gone_ifname);
	}
	if ((r = nf_state_stage_finish(st, true, err)) < 0) {
		struct nf_error ignored = {0};
		bool back;
		if (kernel && (!changed || nft_apply_delta(after, before, &back, &ignored) == 0))
			clear_dirty(t);
		goto out;
	}
	if (kernel)
		clear_dirty(t);
	adopt_orphan(path);
	if (!adding) { /* see txn.h */
		del_cleanup_start_all(path, t->gone);
		t->gone = NULL;
	}
out:
	plan_free(&without);
	plan_free(&with);
	return r;
}

int txn_commit_add(struct txn *t, const char *path, struct nf_state *s, const struct nf_pod *pod,
		   struct nf_error *err)
{
	struct plan after = {0}, before = {0};
	struct nf_state_stage st;
	const struct nf_pod *idle = nf_state_twin(s, pod, true);
	int r;

	/* an idle kind of the pod's namespace and labels: its chain is the
	 * pod's now (the plans, with it or without it, are the same), and the
	 * state saved has the pod instead, in its record's place in the
	 * cache: s makes that record its own first (cache.c) */
	if (idle && nf_state_own_pod(s, idle) < 0)
		return nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
	if ((r = stage(path, s, COMMIT_ADD, idle, &st, err)) < 0 ||
	    (r = commit_delta(t, path, s, NULL, pod, &st, err)) != -EAGAIN)
		return r;
	if ((r = plan_compile(s, &after, err)) >= 0 && (r = plan_minus(&after, s, pod, &before, err)) >= 0)
		r = commit_plans(t, path, s, &before, &after, COMMIT_ADD, &st, err);
	else
		nf_state_stage_finish(&st, false, NULL);
	plan_free(&before);
	plan_free(&after);
	return r;
}

/* A DEL that leaves more than idle_max idle kinds (one more, or the cap
 * lowered): the oldest go (their chains with them, unless a pod has
 * their kind) down to idle_max, which the pod's share does not say; so
 * both plans are compiled whole. Once in idle_max kinds going idle. */
static int commit_del_evicting(struct txn *t, const char *path, struct nf_state *s, const char *container_id,
			       const char *ifname, bool idle, size_t idle_max, struct nf_error *err)
{
	struct plan after = {0}, before = {0};
	struct nf_state_stage st;
	int r;

	if ((r = plan_compile(s, &before, err)) < 0)
		return r;
	if (idle && nf_state_add_idle(s, nf_state_find_pod(s, container_id, ifname)) < 0) {
		r = nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
		goto out;
	}
	nf_state_remove_pod(s, container_id, ifname);
	/* the caller comes here only with more than idle_max; the guard
	 * keeps an unsigned underflow from dropping every idle kind */
	size_t nidle = nf_state_nidle(s);
	for (size_t i = 0, excess = nidle > idle_max ? nidle - idle_max : 0; excess > 0 && i < s->npods;)
		if (s->pods[i].idle) {
			nf_state_remove_pod_at(s, i);
			excess--;
		} else {
			i++;
		}
	if ((r = stage(path, s, COMMIT_DEL, NULL, &st, err)) < 0)
		goto out;
	if ((r = plan_compile(s, &after, err)) < 0)
		nf_state_stage_finish(&st, false, NULL);
	else
		r = commit_plans(t, path, s, &before, &after, COMMIT_DEL, &st, err);
out:
	plan_free(&before);
	plan_free(&after);
	return r;
}

int txn_commit_del(struct txn *t, const char *path, struct nf_state *s, const char *container_id,
		   const char *ifname, size_t idle_max, bool *removed, struct nf_error *err)
{
	const struct nf_pod *pod = nf_state_find_pod(s, container_id, ifname);
	struct plan after = {0}, before = {0};
	struct nf_state_stage st;
	bool idle;
	int r;

	*removed = pod != NULL;
	if (!pod)
		return 0;
	t->gone = calloc(1, sizeof(*t->gone) + pod->naddrs * sizeof(t->gone->addrs[0]));
	if (!t->gone)
		return nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
	t->gone->naddrs = pod->naddrs;
	memcpy(t->gone->addrs, pod->addrs, pod->naddrs * sizeof(t->gone->addrs[0]));
	t->gone_cid = container_id;
	t->gone_ifname = ifname;
	/* the last pod of its namespace and labels, selected: its kind goes
	 * idle, the kernel keeps its chain (see txn.h) */
	idle = idle_max && !nf_state_twin(s, pod, false) && plan_pod_is_selected(s, pod);
	if (nf_state_nidle(s) + idle > idle_max)
		return commit_del_evicting(t, path, s, container_id, ifname, idle, idle_max, err);
	if (idle) {
		if (nf_state_add_idle(s, pod) < 0)
			return nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
		pod = nf_state_find_pod(s, container_id, ifname); /* s->pods moved */
	}
	/* its record's bytes in the cache are free for the next cache's
	 * (the idle record's, if it was the last: cache.c) */
	if (nf_state_own_pod(s, pod) < 0)
		return nf_error_set(err, ENOMEM, CNI_ERR_IO, "out of memory");
	if ((r = stage(path, s, COMMIT_DEL, pod, &st, err)) < 0 ||
	    (r = commit_delta(t, path, s, s, pod, &st, err)) != -EAGAIN)
		return r;
	if ((r = plan_compile(s, &before, err)) >= 0 && (r = plan_minus(&before, s, pod, &after, err)) >= 0) {
		nf_state_stage_wait(&st); /* the thread reads s until then */
		nlsock_keep_fd(nf_state_stage_take_prev(&st));
		nf_state_remove_pod(s, container_id, ifname);
		r = commit_plans(t, path, s, &before, &after, COMMIT_DEL, &st, err);
	} else {
		nf_state_stage_finish(&st, false, NULL);
	}
	plan_free(&before);
	plan_free(&after);
	return r;
}
