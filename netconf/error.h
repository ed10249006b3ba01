/* netfence's one error contract.
 *
 * A function that can fail returns 0 (or a count) on success and a negative
 * errno on failure, and fills the `struct nf_error *err` it takes last with
 * a CNI error code and a message that names the field and the value.
 * Callers add context on the way up with nf_error_wrap(). Library code
 * (netconf/, enforce/) never prints: only plugin/ does.
 */
#ifndef NETFENCE_ERROR_H
#define NETFENCE_ERROR_H

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

/* CNI spec error codes */
enum {
	CNI_ERR_INCOMPATIBLE_VERSION = 1,
	CNI_ERR_UNSUPPORTED_FIELD = 2,
	CNI_ERR_UNKNOWN_CONTAINER = 3,
	CNI_ERR_INVALID_ENV = 4,
	CNI_ERR_IO = 5,
	CNI_ERR_DECODE = 6,
	CNI_ERR_INVALID_CONFIG = 7,
	CNI_ERR_TRY_AGAIN = 11,
	/* netfence's own (100+) */
	NF_ERR_POLICY = 100,  /* a NetworkPolicy/Namespace object is invalid */
	NF_ERR_STATE = 101,   /* the state file is unreadable or corrupt */
	NF_ERR_KERNEL = 102,  /* nftables rejected or could not take the rules */
};

#define NF_ERRMSG_MAX 2048

struct nf_error {
	int code;                 /* CNI error code, 0 if none */
	char msg[NF_ERRMSG_MAX];  /* human readable, with context */
	char details[NF_ERRMSG_MAX];
};

/* Sets code and message (printf-style) and returns -errnum (errnum > 0).
 * err may be NULL. */
int nf_error_set(struct nf_error *err, int errnum, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Prefixes the current message with "<context>: ". Returns nothing. */
void nf_error_wrap(struct nf_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void nf_error_clear(struct nf_error *err);
/* snprintf for JSON paths in messages ("spec.egress[0].to[1]"); a path
 * cut short is still a useful message, so truncation is not an error. */
int nf_pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copies msg into out, escaping bytes that are not printable UTF-8 as \xNN,
 * so a message that quotes bad input can be printed and put in JSON. */
void nf_error_printable(const char *msg, char *out, size_t len);
/* A hint to append to a jansson error text: " (the input is not UTF-8)" for
 * decoding errors, else "". */
const char *nf_json_error_hint(const char *jansson_text);

/* cleanup helpers for locals */
static inline void nf_freep(void *p) { free(*(void **)p); }
static inline void nf_closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_free_ __attribute__((cleanup(nf_freep)))
#define _cleanup_close_ __attribute__((cleanup(nf_closep)))

#define NF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
