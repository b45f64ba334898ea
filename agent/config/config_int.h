/*
 * What the two halves of the config engine share, and nothing outside
 * agent/config/ includes. config.c walks the document (mappings, lists,
 * unknown and duplicate keys, aliases, size and depth limits, errors, load,
 * free); config_values.c reads one scalar into one typed field (numbers,
 * percentages, ratios, addresses, the setters) and quotes bad values back.
 * The split keeps each half readable on its own; this header is the seam:
 * the walk state and the YAML node accessors both sides use.
 */
#ifndef EP_CONFIG_INT_H
#define EP_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <yaml.h>

#include "config_schema.h"

/* How much of a bad value is quoted back in a message. */
#define CFG_SHOW_MAX 48

struct ep_cfg_ctx {
	yaml_document_t *doc;
	struct ep_cfg_errors *errs;
	size_t cap;
	unsigned char *seen; /* per node: visited once already */
	size_t n_nodes;
	size_t alias_visits;
	bool stop; /* alias budget exhausted or too many errors */
	bool oom;
};

static inline int line_of(const yaml_node_t *n)
{
	return n ? (int)n->start_mark.line + 1 : 0;
}

static inline bool is_quoted(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
	       n->data.scalar.style != YAML_ANY_SCALAR_STYLE;
}

/* YAML 1.2 core schema nulls; only plain scalars, "null" in quotes is text. */
static inline bool is_null(const yaml_node_t *n)
{
	const char *v;

	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || is_quoted(n))
		return false;
	v = (const char *)n->data.scalar.value;
	return !n->data.scalar.length || !strcmp(v, "~") || !strcmp(v, "null") ||
	       !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static inline yaml_node_t *node_get(struct ep_cfg_ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

/* config.c */
/* Accounts a node visit; false means stop walking (budget exhausted). */
bool ep_cfg_visit(struct ep_cfg_ctx *c, yaml_node_t *n);

/* config_values.c */
/* A user's value quoted back for a message (control characters as '?', long
 * values cut); BUF needs CFG_SHOW_MAX + 16 bytes. */
const char *ep_cfg_show(char *buf, size_t len, const char *s, size_t slen, bool quote);
/* "null", "a list", "a mapping" or the quoted scalar. */
const char *ep_cfg_desc(const yaml_node_t *n, char *buf, size_t len);
/* "expected <what F takes>, got <N><HINT>" at N's line. */
void ep_cfg_bad_value(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		      const char *path, const char *hint);
/* One setter per scalar kind: parse N, check it against F, store it at DST
 * (or report an error and leave DST alone). */
void ep_cfg_set_int(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		    void *dst, const char *path);
void ep_cfg_set_bool(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		     void *dst, const char *path);
void ep_cfg_set_enum(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		     void *dst, const char *path);
void ep_cfg_set_str(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		    void *dst, const char *path);
void ep_cfg_set_percent(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
			void *dst, const char *path);
void ep_cfg_set_ratio(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		      void *dst, const char *path);
void ep_cfg_set_ip(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		   void *dst, const char *path);
void ep_cfg_set_hostport(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
			 void *dst, const char *path);
/* IP_LIST: takes the struct at BASE (the array and its count). */
void ep_cfg_set_ip_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			void *base, const char *path);
/* PERCENT_LIST: takes the struct at BASE (the array and its count);
 * f->max is the array's capacity. Each value above the one before it. */
void ep_cfg_set_percent_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			     void *base, const char *path);
/* STR_LIST: the same shape with strings. */
void ep_cfg_set_str_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			 void *base, const char *path);

#endif
