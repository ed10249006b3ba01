/* Manifests: YAML (libyaml events -> jansson) or JSON, flattened into one
 * array of objects. */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "model.h"

#define MANIFEST_MAX_SIZE (16u << 20)
#define YAML_MAX_DEPTH 256
#define LIST_MAX_DEPTH 16

/* ---- input checks ---- */

/* Length of the valid UTF-8 sequence at s (1-4), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	size_t n, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* NUL bytes and invalid UTF-8 are refused up front, with a line number:
 * both parsers would otherwise fail with less helpful messages. */
static int check_text(const char *buf, size_t len, const char *source, struct nf_error *err)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t line = 1, col = 1;

	for (size_t i = 0; i < len;) {
		size_t n;

		if (s[i] == '\0')
			return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
					    "%s:%zu:%zu: NUL byte in manifest (binary file?)",
					    source, line, col);
		n = utf8_seq(s + i, len - i);
		if (!n)
			return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
					    "%s:%zu:%zu: invalid UTF-8 (byte 0x%02x)", source, line,
					    col, s[i]);
		if (s[i] == '\n')
			line++, col = 1;
		else
			col++;
		i += n;
	}
	return 0;
}

/* ---- flattening ---- */

static bool is_list_kind(const json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	size_t n;

	if (!kind || !json_is_array(json_object_get(obj, "items")))
		return false;
	n = strlen(kind);
	/* "List", and the typed lists kubectl get prints (NetworkPolicyList) */
	return n >= 4 && strcmp(kind + n - 4, "List") == 0;
}

/* Appends obj (or, for a List, its items, recursively) to out.
 * where: "document 2", "document 2: items[3]", ... */
static int flatten(json_t *obj, json_t *out, const char *source, const char *where, int depth,
		   struct nf_error *err)
{
	json_t *items, *v;
	size_t i;

	if (!json_is_object(obj))
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
				    "%s: %s: expected an object (a Kubernetes resource), got %s",
				    source, where, nf_json_type_name(obj));
	if (!is_list_kind(obj)) {
		const json_t *items_v = json_object_get(obj, "items");
		const char *kind = json_string_value(json_object_get(obj, "kind"));

		if (kind && strcmp(kind, "List") == 0 && items_v && !json_is_null(items_v))
			return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
					    "%s: %s: items: expected an array, got %s", source, where,
					    nf_json_type_name(items_v));
		return json_array_append(out, obj) < 0 ? -ENOMEM : 0;
	}
	if (depth >= LIST_MAX_DEPTH)
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE, "%s: %s: Lists nested too deeply",
				    source, where);
	items = json_object_get(obj, "items");
	json_array_foreach(items, i, v) {
		char sub[512];
		int r;

		if (snprintf(sub, sizeof(sub), "%s: items[%zu]", where, i) >= (int)sizeof(sub))
			sub[sizeof(sub) - 1] = '\0';
		r = flatten(v, out, source, sub, depth + 1, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- JSON ---- */

static int parse_json(const char *buf, size_t len, const char *source, json_t *out,
		      struct nf_error *err)
{
	json_error_t jerr;
	json_t *root, *v;
	size_t i;
	int r = 0;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE, "%s:%d:%d: invalid JSON: %s",
				    source, jerr.line, jerr.column, jerr.text);
	if (json_is_array(root)) {
		json_array_foreach(root, i, v) {
			char where[64];

			snprintf(where, sizeof(where), "item %zu", i + 1);
			r = flatten(v, out, source, where, 0, err);
			if (r < 0)
				break;
		}
	} else {
		r = flatten(root, out, source, "document 1", 0, err);
	}
	json_decref(root);
	return r;
}

/* ---- YAML ---- */

#define YAML_TAG_STR "tag:yaml.org,2002:str"

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* [-+]?[0-9]+ */
static bool is_int(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	return all_digits(s);
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, YAML 1.2 core float */
static bool is_float(const char *s)
{
	bool mant = false;

	if (*s == '-' || *s == '+')
		s++;
	while (*s >= '0' && *s <= '9')
		s++, mant = true;
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9')
			s++, mant = true;
	}
	if (!mant)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!all_digits(s))
			return false;
		return true;
	}
	return *s == '\0';
}

static bool is_one_of(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

/* A scalar as Kubernetes' YAML decoder types it: quoted or !!str -> string;
 * plain: null/~/"" -> null, true/false -> boolean, integers, floats;
 * anything else -> string. */
static json_t *scalar_to_json(const yaml_event_t *ev, const char **why)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	static const char *const trues[] = { "true", "True", "TRUE" };
	static const char *const falses[] = { "false", "False", "FALSE" };
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;

	*why = NULL;
	if (memchr(s, '\0', len)) {
		*why = "NUL character in a string";
		return NULL;
	}
	/* quoted, block or !!str: a string; an explicit !!int etc. on a quoted
	 * scalar types it like a plain one */
	if (tag && (strcmp(tag, YAML_TAG_STR) == 0 || strcmp(tag, "!") == 0))
		return json_stringn(s, len);
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
	    !(tag && strncmp(tag, "tag:yaml.org,2002:", 18) == 0))
		return json_stringn(s, len);

	if (is_one_of(s, nulls, NF_ARRAY_SIZE(nulls)))
		return json_null();
	if (is_one_of(s, trues, NF_ARRAY_SIZE(trues)))
		return json_true();
	if (is_one_of(s, falses, NF_ARRAY_SIZE(falses)))
		return json_false();
	if (is_int(s)) {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_integer((json_int_t)n);
		/* out of range for int64: a float, as in Go's YAML decoders */
		return json_real(strtod(s, NULL));
	}
	if (is_float(s))
		return json_real(strtod(s, NULL));
	if (strcmp(s, ".inf") == 0 || strcmp(s, ".nan") == 0 || strcmp(s, "-.inf") == 0) {
		/* JSON has no representation for these */
		*why = "infinite and NaN numbers cannot be represented in JSON";
		return NULL;
	}
	return json_stringn(s, len);
}

struct yframe {
	json_t *node;    /* object or array */
	char *key;       /* mapping: the key waiting for its value */
	yaml_mark_t key_mark;
};

struct ybuilder {
	struct yframe stack[YAML_MAX_DEPTH];
	int depth;
	json_t *root;    /* the current document's root, once complete */
	bool have_root;
};

static void builder_reset(struct ybuilder *b)
{
	for (int i = 0; i < b->depth; i++) {
		json_decref(b->stack[i].node);
		free(b->stack[i].key);
	}
	b->depth = 0;
	json_decref(b->root);
	b->root = NULL;
	b->have_root = false;
}

/* Hands a complete node to its parent (takes the reference). */
static int builder_add(struct ybuilder *b, json_t *v, const yaml_event_t *ev, const char *source,
		       struct nf_error *err)
{
	size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
	struct yframe *f;

	if (b->depth == 0) {
		b->root = v;
		b->have_root = true;
		return 0;
	}
	f = &b->stack[b->depth - 1];
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v) < 0 ? -ENOMEM : 0;
	if (!f->key) {
		/* a mapping key: must be a scalar; JSON keys are strings */
		if (ev->type != YAML_SCALAR_EVENT) {
			json_decref(v);
			return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
					    "%s:%zu:%zu: mapping keys must be scalars, not %s",
					    source, line, col,
					    ev->type == YAML_MAPPING_END_EVENT ? "mappings" : "sequences");
		}
		f->key = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		json_decref(v);
		if (!f->key)
			return -ENOMEM;
		if (json_object_get(f->node, f->key))
			return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
					    "%s:%zu:%zu: duplicate key \"%.256s\" in mapping", source,
					    line, col, f->key);
		f->key_mark = ev->start_mark;
		return 0;
	}
	if (json_object_set_new(f->node, f->key, v) < 0) {
		free(f->key);
		f->key = NULL;
		return -ENOMEM;
	}
	free(f->key);
	f->key = NULL;
	return 0;
}

static int builder_push(struct ybuilder *b, json_t *node, const yaml_event_t *ev,
			const char *source, struct nf_error *err)
{
	if (!node)
		return -ENOMEM;
	if (b->depth > 0 && json_is_object(b->stack[b->depth - 1].node) &&
	    !b->stack[b->depth - 1].key) {
		const char *what = json_is_object(node) ? "mappings" : "sequences";

		json_decref(node);
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
				    "%s:%zu:%zu: mapping keys must be scalars, not %s", source,
				    ev->start_mark.line + 1, ev->start_mark.column + 1, what);
	}
	if (b->depth == YAML_MAX_DEPTH) {
		json_decref(node);
		return nf_error_set(err, EINVAL, CNI_ERR_DECODE,
				    "%s:%zu:%zu: nesting deeper than %d levels", source,
				    ev->start_mark.line + 1, ev->start_mark.column + 1,
				    YAML_MAX_DEPTH);
	}
	b->stack[b->depth].node = node;
	b->stack[b->depth].key = NULL;
	b->depth++;
	return 0;
}

static int builder_pop(struct ybuilder *b, const yaml_event_t *ev, const char *source,
		       struct nf_error *err)
{
	struct yframe f = b->stack[--b->depth];

	/* libyaml guarantees a value for every key (an empty one is a null scalar) */
	free(f.key);
	return builder_add(b, f.node, ev, source, err);
}

static int parse_yaml(const char *buf, size_t len, const char *source, json_t *out,
		      struct nf_error *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct ybuilder *b;
	size_t ndoc = 0;
	bool done = false;
	int r = 0;

	b = calloc(1, sizeof(*b));
	if (!b)
		return nf_error_set(err, ENOMEM, CNI_ERR_DECODE, "%s: out of memory", source);
	if (!yaml_parser_initialize(&parser)) {
		free(b);
		return nf_error_set(err, ENOMEM, CNI_ERR_DECODE, "%s: out of memory", source);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done && r == 0) {
		size_t line, col;
		const char *why;
		json_t *v;

		if (!yaml_parser_parse(&parser, &ev)) {
			r = nf_error_set(err, EINVAL, CNI_ERR_DECODE, "%s:%zu:%zu: invalid YAML: %s%s%s",
					 source, parser.problem_mark.line + 1,
					 parser.problem_mark.column + 1,
					 parser.problem ? parser.problem : "parse error",
					 parser.context ? " " : "",
					 parser.context ? parser.context : "");
			break;
		}
		line = ev.start_mark.line + 1;
		col = ev.start_mark.column + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			ndoc++;
			builder_reset(b);
			break;
		case YAML_DOCUMENT_END_EVENT:
			/* empty documents (just "---" or comments) are skipped */
			if (b->have_root && !json_is_null(b->root)) {
				char where[64];

				snprintf(where, sizeof(where), "document %zu", ndoc);
				r = flatten(b->root, out, source, where, 0, err);
			}
			builder_reset(b);
			break;
		case YAML_ALIAS_EVENT:
			r = nf_error_set(err, EINVAL, CNI_ERR_DECODE,
					 "%s:%zu:%zu: YAML aliases (*%s) are not supported", source,
					 line, col, (const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
			v = scalar_to_json(&ev, &why);
			if (!v) {
				r = why ? nf_error_set(err, EINVAL, CNI_ERR_DECODE, "%s:%zu:%zu: %s",
						       source, line, col, why)
					: nf_error_set(err, EINVAL, CNI_ERR_DECODE,
						       "%s:%zu:%zu: cannot represent this scalar in JSON",
						       source, line, col);
				break;
			}
			r = builder_add(b, v, &ev, source, err);
			break;
		case YAML_SEQUENCE_START_EVENT:
			r = builder_push(b, json_array(), &ev, source, err);
			break;
		case YAML_MAPPING_START_EVENT:
			r = builder_push(b, json_object(), &ev, source, err);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			r = builder_pop(b, &ev, source, err);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	if (r == -ENOMEM && err && !err->msg[0])
		nf_error_set(err, ENOMEM, CNI_ERR_DECODE, "%s: out of memory", source);
	builder_reset(b);
	free(b);
	yaml_parser_delete(&parser);
	return r;
}

int nf_manifest_parse(const char *buf, size_t len, const char *source, json_t **out,
		      struct nf_error *err)
{
	json_t *arr;
	size_t i = 0;
	int r;

	if (!source)
		source = "<input>";
	r = check_text(buf, len, source, err);
	if (r < 0)
		return r;
	arr = json_array();
	if (!arr)
		return nf_error_set(err, ENOMEM, CNI_ERR_DECODE, "%s: out of memory", source);

	/* a UTF-8 byte order mark is allowed by both YAML and (leniently) us */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
		i++;
	if (i < len && (buf[i] == '{' || buf[i] == '['))
		r = parse_json(buf + i, len - i, source, arr, err);
	else
		r = parse_yaml(buf, len, source, arr, err);
	if (r < 0) {
		if (r == -ENOMEM && err && !err->msg[0])
			nf_error_set(err, ENOMEM, CNI_ERR_DECODE, "%s: out of memory", source);
		json_decref(arr);
		return r;
	}
	*out = arr;
	return 0;
}

/* ---- files ---- */

int nf_read_file(const char *path, char **out, size_t *len, struct nf_error *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	bool is_stdin = strcmp(path, "-") == 0;
	const char *name = is_stdin ? "<stdin>" : path;
	int e;

	if (is_stdin) {
		fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			e = errno;
			return nf_error_set(err, e, CNI_ERR_IO, "reading standard input: %s",
					    strerror(e));
		}
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			e = errno;
			return nf_error_set(err, e, CNI_ERR_IO, "open \"%s\": %s", path,
					    strerror(e));
		}
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		return nf_error_set(err, e, CNI_ERR_IO, "stat \"%s\": %s", name, strerror(e));
	}
	if (S_ISDIR(st.st_mode))
		return nf_error_set(err, EISDIR, CNI_ERR_IO, "read \"%s\": %s", name,
				    strerror(EISDIR));
	if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > MANIFEST_MAX_SIZE)
		return nf_error_set(err, EFBIG, CNI_ERR_IO,
				    "\"%s\" is too large: %jd bytes, the limit is %u MiB", name,
				    (intmax_t)st.st_size, MANIFEST_MAX_SIZE >> 20);
	for (;;) {
		ssize_t got;

		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64 * 1024;
			char *nb;

			if (cap > MANIFEST_MAX_SIZE)
				return nf_error_set(err, EFBIG, CNI_ERR_IO,
						    "\"%s\" is too large: more than %u MiB", name,
						    MANIFEST_MAX_SIZE >> 20);
			nb = realloc(buf, ncap + 1);
			if (!nb)
				return nf_error_set(err, ENOMEM, CNI_ERR_IO, "reading \"%s\": %s",
						    name, strerror(ENOMEM));
			buf = nb;
			cap = ncap;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0) {
			e = errno;
			if (e == EINTR)
				continue;
			return nf_error_set(err, e, CNI_ERR_IO, "read \"%s\": %s", name,
					    strerror(e));
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > MANIFEST_MAX_SIZE)
			return nf_error_set(err, EFBIG, CNI_ERR_IO,
					    "\"%s\" is too large: more than %u MiB", name,
					    MANIFEST_MAX_SIZE >> 20);
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return nf_error_set(err, ENOMEM, CNI_ERR_IO, "reading \"%s\": %s", name,
					    strerror(ENOMEM));
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
	*len = n;
	return 0;
}
