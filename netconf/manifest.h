/* Manifests as users write them: YAML (multi-document, libyaml) or JSON. */
#ifndef NETFENCE_MANIFEST_H
#define NETFENCE_MANIFEST_H

#include <stddef.h>

#include <jansson.h>

#include "error.h"

/* Parses `len` bytes of YAML or JSON (JSON when the first non-blank byte is
 * '{' or '[') into a new JSON array of objects: one per document, with the
 * items of every `kind: List` flattened in place, empty documents skipped.
 * YAML scalars map to JSON as Kubernetes does (YAML 1.1 core: plain ints ->
 * integer, true/false -> boolean, null/~/empty -> null, quoted -> string).
 * Errors name `source` and the line/column. */
int nf_manifest_parse(const char *buf, size_t len, const char *source, json_t **out,
		      struct nf_error *err);

/* Reads a whole file ("-" = stdin) with a size limit (16 MiB). */
int nf_read_file(const char *path, char **out, size_t *len, struct nf_error *err);

#endif
