/* A change to the node state, from the state file to the kernel.
 *
 * txn_begin() compiles the plan of the state as loaded (under the state
 * lock); the caller mutates the state; txn_commit() compiles the new plan,
 * programs the kernel in one transaction if the plan differs, and saves the
 * state. If saving fails the kernel is put back, so kernel and state agree.
 * Nothing is changed when the kernel rejects the new plan. The pods that
 * lost a permission (tighten.c) have their addresses put into the sets
 * rejudge4/rejudge6 by the same transaction, so their established flows
 * are judged by their chains from the commit on (plan.h); their conntrack
 * entries are then deleted (each flow is judged anew by its next packet)
 * and the sets emptied by the child that outlives the command, a second
 * later, under "<state>.rejudge" (the protocol is at the top of txn.c's
 * re-judging section: no change ever waits for such a child). With a full
 * rebuild instead of a diff, the entries are deleted before txn_commit
 * returns; if that fails the change stands and `warning` says so.
 *
 * A DEL's conntrack cleanup (the entries from and to the pod's addresses,
 * so a reused address never inherits them) walks the whole conntrack table.
 * The DEL leaves a file per address, "<state>.conntrack-<address>", and
 * the walk to the child that outlives the plugin (nlsock.h), which waits a
 * second first (so the runtime's DEL of the next plugins does not compete
 * with it for the CPU), then locks the files still there, cleans, and
 * removes them. txn_conntrack_barrier() (every ADD) waits on the files of
 * the pod's own addresses, if any, and does the cleanup itself for a file
 * no cleanup holds (not yet run, or dead).
 *
 * Crash safety: "<state>.dirty" exists while the kernel may be ahead of the
 * state file (between nft_apply and the rename of the new state). A
 * transaction that finds it (its predecessor died there) re-programs the
 * kernel from the state even if its own change alters nothing. Between
 * changes the same empty file is "<state>.clean": marking and clearing
 * are renames, cheaper than making and removing a file. */
#ifndef NETFENCE_TXN_H
#define NETFENCE_TXN_H

#include "../netconf/state.h"
#include "plan.h"

struct txn {
	struct plan before;
	bool force;      /* a predecessor died mid-change: re-program anyway */
	char *dirty;     /* path of the marker */
	char *clean;     /* its name between changes */
	size_t nexisting;
	struct nf_cidr *existing; /* the addresses of the attachments in the state at txn_begin */
	struct del_cleanup *gone; /* DEL: the pod's addresses */
	const char *gone_cid, *gone_ifname; /* DEL: the attachment */
	char warning[NF_ERRMSG_MAX];
};

int txn_begin(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err);
int txn_commit(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err);
/* txn_commit when only the pods changed since nf_state_load (a re-ADD):
 * saves just the pods (nf_state_save_pods), so the state may come from
 * nf_state_load_fast. */
int txn_commit_pods(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err);

/* Idle kinds. A DEL of the last pod of its namespace and labels that a
 * policy selects leaves its kind's chain in the kernel, and an idle
 * record of that namespace and those labels (nf_pod.idle) in the state,
 * for the next pod of the kind (a restart, a rollout, a job's next run):
 * its ADD then adds set elements and map entries, not a chain of a rule
 * per selecting policy's rule (0.5 ms at 50 selecting policies,
 * docs/performance-history.md). An idle record has no address, so nothing jumps
 * to its chain; the plans hold its chain like any pod's kind's, so every
 * policy change, sync and recovery keeps it as the policies say, and a
 * policy that stops selecting it takes the chain away. The ADD of a pod
 * of its namespace and labels takes the record over. At most idle_max
 * (the conflist's "idleKindChains") are kept: a DEL that would leave
 * more (one more, or the cap lowered) drops the oldest; 0 keeps none. */

/* ADD and DEL change the state by one pod: begin without compiling, and
 * compile once, deriving the other plan (plan_without_pod).
 * txn_commit_add: s already holds `pod`. txn_commit_del: s still holds
 * the attachment; it is removed from s before the state is saved.
 * Nothing but the pods may have changed in s since it was loaded: the
 * state file is saved with only its "pods" replaced (nf_state_save_pods). */
int txn_begin_pod(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err);
int txn_commit_add(struct txn *t, const char *path, struct nf_state *s, const struct nf_pod *pod,
		   struct nf_error *err);
int txn_commit_del(struct txn *t, const char *path, struct nf_state *s, const char *container_id,
		   const char *ifname, size_t idle_max, bool *removed, struct nf_error *err);
void txn_end(struct txn *t);

/* Waits until no DEL's conntrack cleanup of one of addrs is running (see
 * above). Call with the state lock held. */
int txn_conntrack_barrier(const char *path, const struct nf_cidr *addrs, size_t naddrs, struct nf_error *err);

#endif
