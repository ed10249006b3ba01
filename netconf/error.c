#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int nf_error_set(struct nf_error *err, int errnum, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = code;
		err->details[0] = '\0';
	}
	return errnum > 0 ? -errnum : (errnum < 0 ? errnum : -EINVAL);
}

void nf_error_wrap(struct nf_error *err, const char *fmt, ...)
{
	char ctx[NF_ERRMSG_MAX / 2];
	size_t cl, ml;
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	cl = strlen(ctx);
	ml = strnlen(err->msg, sizeof(err->msg) - 1);
	if (ml > sizeof(err->msg) - cl - 3)
		ml = sizeof(err->msg) - cl - 3;
	memmove(err->msg + cl + 2, err->msg, ml);
	err->msg[cl + 2 + ml] = '\0';
	memcpy(err->msg, ctx, cl);
	err->msg[cl] = ':';
	err->msg[cl + 1] = ' ';
}

void nf_error_clear(struct nf_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}
