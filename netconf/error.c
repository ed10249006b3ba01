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

/* length of the valid UTF-8 sequence at s, 0 if invalid */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void nf_error_printable(const char *msg, char *out, size_t len)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t o = 0;

	if (!len)
		return;
	while (*s && o + 5 < len) {
		size_t n = utf8_len(s);
		if (n == 1 && (*s >= 0x20 || *s == '\n' || *s == '\t') && *s != 0x7f) {
			out[o++] = (char)*s++;
		} else if (n > 1) {
			memcpy(out + o, s, n);
			o += n;
			s += n;
		} else {
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *s++);
		}
	}
	out[o] = '\0';
}

const char *nf_json_error_hint(const char *jansson_text)
{
	return strstr(jansson_text, "unable to decode byte") ? " (the input is not valid UTF-8)" : "";
}

int nf_pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}
