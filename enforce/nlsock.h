/* enforce/nlsock.h: closing nfnetlink sockets without waiting for RCU.
 *
 * On this kernel (6.x) the release of any NETLINK_NETFILTER socket runs
 * nf_tables' NETLINK_URELEASE notifier, which flushes the work that frees
 * the objects of committed deletions, and that work starts with
 * synchronize_rcu(). So after a transaction that deleted anything (rules,
 * chains, set elements), closing a socket (or exiting) blocks for an RCU
 * grace period: 5-20 ms here, measured with `strace -T` on `nft delete
 * element` (the close takes the time, not the commit). The ruleset is
 * already in force when the commit returns; the wait only frees memory.
 *
 * With deferral enabled, sockets closed after such a commit are kept (as
 * duplicates) and nlsock_release_deferred(), called when the process is
 * done, hands them to a forked child that closes every other descriptor
 * first (stdout, so the runtime sees EOF; the state lock, so the next
 * caller is not held up), waits for the parent to let go, then closes them
 * and pays the grace period off the caller's clock.
 *
 * The same child can run work that must happen but need not delay the
 * caller (nlsock_defer_work): a CNI DEL's conntrack cleanup, a walk of the
 * whole conntrack hash (6-10 ms here, 262,144 buckets), which waits first
 * for the rest of the runtime's DEL to be over (txn.h). */
#ifndef NETFENCE_NLSOCK_H
#define NETFENCE_NLSOCK_H

#include <stdbool.h>

struct mnl_socket;

/* Called once by a main that ends with nlsock_release_deferred(). */
void nlsock_defer_enable(void);

/* A transaction with deletions has been committed by this process. */
void nlsock_note_deletions(void);

/* mnl_socket_close(), keeping a duplicate when deferral is on and a
 * deletion was committed. */
void nlsock_close(struct mnl_socket *nl);

/* Takes descriptor fd, whose last close is costly (an unlinked file's
 * blocks are freed then), to close it in the child; closes it now
 * without deferral or room. */
void nlsock_keep_fd(int fd);
/* Runs fn(arg, deferred) in the child of nlsock_release_deferred(), before
 * it releases the sockets, then free(arg). Without deferral, when the work
 * cannot be queued, or if fork fails, that happens in this process, at once
 * or at release, with deferred false (the work must not wait then). */
void nlsock_defer_work(void (*fn)(void *arg, bool deferred), void *arg);
/* The same, keeping descriptor fd open in the child (fn closes it; without
 * a child, fn runs here): a lock taken by this process, held by the child
 * from its fork on, so no one can take it in between. */
void nlsock_defer_work_fd(void (*fn)(void *arg, bool deferred), void *arg, int fd);

/* Releases the kept sockets and runs the deferred work in a child process
 * (or here, if fork fails). */
void nlsock_release_deferred(void);

#endif
