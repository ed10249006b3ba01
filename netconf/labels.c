/* Labels, label selectors and Kubernetes name validation, as the API server
 * (k8s.io/apimachinery/pkg/util/validation) does them. */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN 1024


const char *nf_json_type_name(const json_t *v)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown value";
}

/* ---- name validation ---- */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], len bytes of s */
static bool qualified_name_part_ok(const char *s, size_t len)
{
	if (len == 0 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? */
static bool dns1123_label_ok(const char *s, size_t len)
{
	if (len == 0 || len > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool dns1123_subdomain_ok(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			/* labels of a subdomain are not limited to 63 here, as in k8s */
			size_t l = i - start;
			if (l == 0 || !is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1]))
				return false;
			for (size_t j = start; j < i; j++)
				if (!is_lower_alnum(s[j]) && s[j] != '-')
					return false;
			start = i + 1;
		}
	}
	return true;
}

int nf_dns1123_label_validate(const char *s, const char *field, struct nf_error *err)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: must not be empty", field);
	if (len > 63)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid value \"%.256s\": must be no more than 63 characters",
				    field, s);
	if (!dns1123_label_ok(s, len))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid value \"%.256s\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
				    field, s);
	return 0;
}

int nf_dns1123_subdomain_validate(const char *s, const char *field, struct nf_error *err)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: must not be empty", field);
	if (len > 253)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid value \"%.256s...\": must be no more than 253 characters",
				    field, s);
	if (!dns1123_subdomain_ok(s, len))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid value \"%.256s\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
				    field, s);
	return 0;
}

int nf_label_key_validate(const char *key, const char *field, struct nf_error *err)
{
	const char *slash, *name;
	size_t nlen;

	if (!key || !*key)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: label key must not be empty", field);
	slash = strchr(key, '/');
	name = slash ? slash + 1 : key;
	nlen = strlen(name);
	if (slash) {
		size_t plen = (size_t)(slash - key);

		if (strchr(name, '/'))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: invalid label key \"%.300s\": a qualified name may contain at most one '/'",
					    field, key);
		if (plen == 0)
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: invalid label key \"%.300s\": prefix part must not be empty",
					    field, key);
		if (plen > 253 || !dns1123_subdomain_ok(key, plen))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: invalid label key \"%.300s\": prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters",
					    field, key);
	}
	if (nlen == 0)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid label key \"%.300s\": name part must not be empty", field, key);
	if (nlen > 63)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid label key \"%.300s\": name part must be no more than 63 characters",
				    field, key);
	if (!qualified_name_part_ok(name, nlen))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid label key \"%.300s\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
				    field, key);
	return 0;
}

int nf_label_value_validate(const char *value, const char *field, struct nf_error *err)
{
	size_t len;

	if (!value)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: missing label value", field);
	len = strlen(value);
	if (len == 0)
		return 0;
	if (len > 63)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid label value \"%.256s\": must be no more than 63 characters",
				    field, value);
	if (!qualified_name_part_ok(value, len))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: invalid label value \"%.256s\": must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
				    field, value);
	return 0;
}

/* ---- labels ---- */

void nf_labels_free(struct nf_labels *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Index of key, or of where it would be inserted; *found tells which. */
static size_t labels_find(const struct nf_labels *l, const char *key, bool *found)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int nf_labels_set(struct nf_labels *l, const char *key, const char *value)
{
	bool found;
	size_t i = labels_find(l, key, &found);
	char *v = strdup(value), *k;
	struct nf_label *nv;

	if (!v)
		return -ENOMEM;
	if (found) {
		free(l->v[i].value);
		l->v[i].value = v;
		return 0;
	}
	k = strdup(key);
	nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!k || !nv) {
		free(k);
		free(v);
		if (nv)
			l->v = nv;
		return -ENOMEM;
	}
	l->v = nv;
	memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(*nv));
	l->v[i].key = k;
	l->v[i].value = v;
	l->n++;
	return 0;
}

const char *nf_labels_get(const struct nf_labels *l, const char *key)
{
	bool found;
	size_t i;

	if (!l)
		return NULL;
	i = labels_find(l, key, &found);
	return found ? l->v[i].value : NULL;
}

bool nf_labels_equal(const struct nf_labels *a, const struct nf_labels *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) /* both sorted by key */
		if (strcmp(a->v[i].key, b->v[i].key) != 0 || strcmp(a->v[i].value, b->v[i].value) != 0)
			return false;
	return true;
}

int nf_labels_copy(struct nf_labels *dst, const struct nf_labels *src)
{
	struct nf_labels c = { 0 };

	if (src && src->n) {
		c.v = calloc(src->n, sizeof(*c.v));
		if (!c.v)
			return -ENOMEM;
		for (; c.n < src->n; c.n++) {
			c.v[c.n].key = strdup(src->v[c.n].key);
			c.v[c.n].value = strdup(src->v[c.n].value);
			if (!c.v[c.n].key || !c.v[c.n].value) {
				c.n++;
				nf_labels_free(&c);
				return -ENOMEM;
			}
		}
	}
	*dst = c;
	return 0;
}

int nf_labels_from_json(const json_t *obj, struct nf_labels *out, const char *field,
			struct nf_error *err)
{
	struct nf_labels l = { 0 };
	const char *key;
	json_t *val;
	char path[PATH_MAX_LEN];
	int r;

	if (obj && !json_is_null(obj) && !json_is_object(obj))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an object, got %s",
				    field, nf_json_type_name(obj));
	if (obj && json_is_object(obj)) {
		json_object_foreach((json_t *)obj, key, val) {
			nf_pathf(path, sizeof(path), "%s[\"%.300s\"]", field, key);
			r = nf_label_key_validate(key, field, err);
			if (r < 0)
				goto fail;
			if (!json_is_string(val)) {
				r = nf_error_set(err, EINVAL, NF_ERR_POLICY,
						 "%s: label value must be a string, got %s", path,
						 nf_json_type_name(val));
				goto fail;
			}
			r = nf_label_value_validate(json_string_value(val), path, err);
			if (r < 0)
				goto fail;
			r = nf_labels_set(&l, key, json_string_value(val));
			if (r < 0) {
				nf_error_set(err, -r, NF_ERR_POLICY, "%s: out of memory", field);
				goto fail;
			}
		}
	}
	*out = l;
	return 0;
fail:
	nf_labels_free(&l);
	return r;
}

json_t *nf_labels_to_json(const struct nf_labels *l)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (size_t i = 0; l && i < l->n; i++) {
		if (json_object_set_new(o, l->v[i].key, json_string(l->v[i].value)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* A growable string; on allocation failure sets oom and stops growing. */
struct strbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct strbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *ns;

		while (cap < b->len + n + 1)
			cap *= 2;
		ns = realloc(b->s, cap);
		if (!ns) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

static char *sb_take(struct strbuf *b)
{
	if (b->oom) {
		free(b->s);
		return NULL;
	}
	if (!b->s)
		return strdup("");
	return b->s;
}

char *nf_labels_format(const struct nf_labels *l)
{
	struct strbuf b = { 0 };

	for (size_t i = 0; l && i < l->n; i++) {
		if (i)
			sb_add(&b, ",");
		sb_add(&b, l->v[i].key);
		sb_add(&b, "=");
		sb_add(&b, l->v[i].value);
	}
	return sb_take(&b);
}

/* ---- selectors ---- */

static void expr_free(struct nf_sel_expr *e)
{
	free(e->key);
	for (size_t i = 0; i < e->nvalues; i++)
		free(e->values[i]);
	free(e->values);
}

void nf_selector_free(struct nf_selector *s)
{
	if (!s)
		return;
	nf_labels_free(&s->match_labels);
	for (size_t i = 0; i < s->nexprs; i++)
		expr_free(&s->exprs[i]);
	free(s->exprs);
	s->exprs = NULL;
	s->nexprs = 0;
}

static const struct {
	const char *name;
	enum nf_sel_op op;
} sel_ops[] = {
	{ "In", NF_SEL_IN },
	{ "NotIn", NF_SEL_NOT_IN },
	{ "Exists", NF_SEL_EXISTS },
	{ "DoesNotExist", NF_SEL_DOES_NOT_EXIST },
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int expr_cmp(const struct nf_sel_expr *a, const struct nf_sel_expr *b)
{
	int c = strcmp(a->key, b->key);

	if (c)
		return c;
	return (int)a->op - (int)b->op;
}

static int expr_from_json(const json_t *obj, struct nf_sel_expr *out, const char *field,
			  struct nf_error *err)
{
	struct nf_sel_expr e = { 0 };
	const json_t *jkey, *jop, *jvals;
	const char *k, *opname;
	json_t *v;
	char path[PATH_MAX_LEN];
	size_t i;
	int r;
	bool found = false;

	if (!json_is_object(obj))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an object, got %s",
				    field, nf_json_type_name(obj));
	json_object_foreach((json_t *)obj, k, v) {
		if (strcmp(k, "key") && strcmp(k, "operator") && strcmp(k, "values"))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: unknown field \"%.256s\"",
					    field, k);
	}
	jkey = json_object_get(obj, "key");
	jop = json_object_get(obj, "operator");
	jvals = json_object_get(obj, "values");

	nf_pathf(path, sizeof(path), "%s.key", field);
	if (!jkey || json_is_null(jkey))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: required value", path);
	if (!json_is_string(jkey))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected a string, got %s", path,
				    nf_json_type_name(jkey));
	r = nf_label_key_validate(json_string_value(jkey), path, err);
	if (r < 0)
		return r;

	nf_pathf(path, sizeof(path), "%s.operator", field);
	if (!jop || json_is_null(jop))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: required value", path);
	if (!json_is_string(jop))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected a string, got %s", path,
				    nf_json_type_name(jop));
	opname = json_string_value(jop);
	for (i = 0; i < NF_ARRAY_SIZE(sel_ops); i++) {
		if (strcmp(opname, sel_ops[i].name) == 0) {
			e.op = sel_ops[i].op;
			found = true;
			break;
		}
	}
	if (!found)
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: unsupported operator \"%.256s\": must be one of \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
				    path, opname);

	nf_pathf(path, sizeof(path), "%s.values", field);
	if (jvals && !json_is_null(jvals) && !json_is_array(jvals))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an array, got %s", path,
				    nf_json_type_name(jvals));
	if (e.op == NF_SEL_IN || e.op == NF_SEL_NOT_IN) {
		if (!jvals || json_array_size(jvals) == 0)
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: must be specified when operator is \"%s\"", path, opname);
	} else if (json_array_size(jvals) > 0) {
		return nf_error_set(err, EINVAL, NF_ERR_POLICY,
				    "%s: may not be specified when operator is \"%s\"", path, opname);
	}

	e.key = strdup(json_string_value(jkey));
	if (!e.key)
		return nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
	if (json_array_size(jvals)) {
		e.values = calloc(json_array_size(jvals), sizeof(*e.values));
		if (!e.values) {
			r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
			goto fail;
		}
	}
	json_array_foreach(jvals, i, v) {
		char vpath[PATH_MAX_LEN];

		nf_pathf(vpath, sizeof(vpath), "%s[%zu]", path, i);
		if (!json_is_string(v)) {
			r = nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected a string, got %s",
					 vpath, nf_json_type_name(v));
			goto fail;
		}
		r = nf_label_value_validate(json_string_value(v), vpath, err);
		if (r < 0)
			goto fail;
		e.values[e.nvalues] = strdup(json_string_value(v));
		if (!e.values[e.nvalues]) {
			r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
			goto fail;
		}
		e.nvalues++;
	}
	/* sort and drop duplicates: the values are a set */
	if (e.nvalues > 1) {
		size_t n = 1;

		qsort(e.values, e.nvalues, sizeof(*e.values), cmp_str);
		for (i = 1; i < e.nvalues; i++) {
			if (strcmp(e.values[i], e.values[n - 1]) == 0)
				free(e.values[i]);
			else
				e.values[n++] = e.values[i];
		}
		e.nvalues = n;
	}
	*out = e;
	return 0;
fail:
	expr_free(&e);
	return r;
}

int nf_selector_from_json(const json_t *obj, struct nf_selector *out, const char *field,
			  struct nf_error *err)
{
	struct nf_selector s = { 0 };
	const json_t *ml, *me;
	const char *k;
	json_t *v;
	char path[PATH_MAX_LEN];
	size_t i;
	int r;

	if (!obj || json_is_null(obj)) {
		*out = s;
		return 0;
	}
	if (!json_is_object(obj))
		return nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an object, got %s",
				    field, nf_json_type_name(obj));
	json_object_foreach((json_t *)obj, k, v) {
		if (strcmp(k, "matchLabels") && strcmp(k, "matchExpressions"))
			return nf_error_set(err, EINVAL, NF_ERR_POLICY,
					    "%s: unknown field \"%.256s\" (a label selector has only matchLabels and matchExpressions)",
					    field, k);
	}
	ml = json_object_get(obj, "matchLabels");
	me = json_object_get(obj, "matchExpressions");

	nf_pathf(path, sizeof(path), "%s.matchLabels", field);
	r = nf_labels_from_json(ml, &s.match_labels, path, err);
	if (r < 0)
		return r;

	nf_pathf(path, sizeof(path), "%s.matchExpressions", field);
	if (me && !json_is_null(me) && !json_is_array(me)) {
		r = nf_error_set(err, EINVAL, NF_ERR_POLICY, "%s: expected an array, got %s", path,
				 nf_json_type_name(me));
		goto fail;
	}
	if (json_array_size(me)) {
		s.exprs = calloc(json_array_size(me), sizeof(*s.exprs));
		if (!s.exprs) {
			r = nf_error_set(err, ENOMEM, NF_ERR_POLICY, "%s: out of memory", field);
			goto fail;
		}
	}
	json_array_foreach(me, i, v) {
		char epath[PATH_MAX_LEN];
		struct nf_sel_expr e;
		size_t j;

		nf_pathf(epath, sizeof(epath), "%s[%zu]", path, i);
		r = expr_from_json(v, &e, epath, err);
		if (r < 0)
			goto fail;
		/* stable insertion sort by key, then operator */
		for (j = s.nexprs; j > 0 && expr_cmp(&s.exprs[j - 1], &e) > 0; j--)
			s.exprs[j] = s.exprs[j - 1];
		s.exprs[j] = e;
		s.nexprs++;
	}
	*out = s;
	return 0;
fail:
	nf_selector_free(&s);
	return r;
}

static bool value_in(const struct nf_sel_expr *e, const char *v)
{
	/* the parser refuses In/NotIn without values, a decoded cache need
	 * not (and bsearch must not get NULL) */
	return e->nvalues && bsearch(&v, e->values, e->nvalues, sizeof(*e->values), cmp_str) != NULL;
}

bool nf_selector_matches(const struct nf_selector *s, const struct nf_labels *labels)
{
	for (size_t i = 0; i < s->match_labels.n; i++) {
		const char *v = nf_labels_get(labels, s->match_labels.v[i].key);

		if (!v || strcmp(v, s->match_labels.v[i].value) != 0)
			return false;
	}
	for (size_t i = 0; i < s->nexprs; i++) {
		const struct nf_sel_expr *e = &s->exprs[i];
		const char *v = nf_labels_get(labels, e->key);

		switch (e->op) {
		case NF_SEL_IN:
			if (!v || !value_in(e, v))
				return false;
			break;
		case NF_SEL_NOT_IN:
			if (v && value_in(e, v))
				return false;
			break;
		case NF_SEL_EXISTS:
			if (!v)
				return false;
			break;
		case NF_SEL_DOES_NOT_EXIST:
			if (v)
				return false;
			break;
		}
	}
	return true;
}

bool nf_selector_is_empty(const struct nf_selector *s)
{
	return s->match_labels.n == 0 && s->nexprs == 0;
}

struct sel_term {
	const char *key;
	int rank; /* =, in, notin, exists, !exists */
	char *text;
};

static int term_cmp(const void *a, const void *b)
{
	const struct sel_term *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	return strcmp(x->text, y->text);
}

static char *expr_format(const struct nf_sel_expr *e)
{
	struct strbuf b = { 0 };

	switch (e->op) {
	case NF_SEL_IN:
	case NF_SEL_NOT_IN:
		sb_add(&b, e->key);
		sb_add(&b, e->op == NF_SEL_IN ? " in (" : " notin (");
		for (size_t i = 0; i < e->nvalues; i++) {
			if (i)
				sb_add(&b, ",");
			sb_add(&b, e->values[i]);
		}
		sb_add(&b, ")");
		break;
	case NF_SEL_EXISTS:
		sb_add(&b, e->key);
		break;
	case NF_SEL_DOES_NOT_EXIST:
		sb_add(&b, "!");
		sb_add(&b, e->key);
		break;
	}
	return sb_take(&b);
}

char *nf_selector_format(const struct nf_selector *s)
{
	size_t n = s->match_labels.n + s->nexprs, i;
	struct sel_term *t;
	struct strbuf b = { 0 };
	bool oom = false;

	if (n == 0)
		return strdup("");
	t = calloc(n, sizeof(*t));
	if (!t)
		return NULL;
	for (i = 0; i < s->match_labels.n; i++) {
		struct strbuf kb = { 0 };

		sb_add(&kb, s->match_labels.v[i].key);
		sb_add(&kb, "=");
		sb_add(&kb, s->match_labels.v[i].value);
		t[i].key = s->match_labels.v[i].key;
		t[i].rank = 0;
		t[i].text = sb_take(&kb);
		oom |= !t[i].text;
	}
	for (size_t j = 0; j < s->nexprs; j++, i++) {
		t[i].key = s->exprs[j].key;
		t[i].rank = 1 + (int)s->exprs[j].op;
		t[i].text = expr_format(&s->exprs[j]);
		oom |= !t[i].text;
	}
	if (!oom) {
		qsort(t, n, sizeof(*t), term_cmp);
		for (i = 0; i < n; i++) {
			if (i)
				sb_add(&b, ",");
			sb_add(&b, t[i].text);
		}
	}
	for (i = 0; i < n; i++)
		free(t[i].text);
	free(t);
	if (oom) {
		free(b.s);
		return NULL;
	}
	return sb_take(&b);
}
