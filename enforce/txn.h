/* A change to the node state, from the state file to the kernel.
 *
 * txn_begin() compiles the plan of the state as loaded (under the state
 * lock); the caller mutates the state; txn_commit() compiles the new plan,
 * programs the kernel in one transaction if the plan differs, and saves the
 * state. If saving fails the kernel is put back, so kernel and state agree.
 * Nothing is changed when the kernel rejects the new plan. */
#ifndef NETFENCE_TXN_H
#define NETFENCE_TXN_H

#include "../netconf/state.h"
#include "plan.h"

struct txn {
	struct plan before;
};

int txn_begin(struct txn *t, const struct nf_state *s, struct nf_error *err);
int txn_commit(struct txn *t, const char *path, const struct nf_state *s, struct nf_error *err);
void txn_end(struct txn *t);

#endif
