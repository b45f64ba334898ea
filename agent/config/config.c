/*
 * The config engine: libyaml's document API plus a table-driven schema
 * walker. Which keys exist, their types, ranges and defaults, and the rules
 * across keys belong to the sections (config_schema.h, sections.c); the engine
 * knows none of them. It turns any mismatch into an error that names the key
 * path and line and keeps going, so one run reports every problem, and it
 * guards against hostile input (size, nesting depth, alias expansion).
 * Reading one scalar into one typed field is config_values.c; config_int.h
 * is what the two share.
 */
#include "config.h"
#include "config_int.h"
#include "config_schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

/* A config is hand-written; anything bigger is a mistake or an attack. */
#define CFG_MAX_FILE (4u << 20)
/* Past this the rest is noise (compilers stop early for the same reason). */
#define CFG_MAX_ERRORS 200
/*
 * libyaml keeps aliases as references, so a document is a graph whose walk
 * can be exponential in its size ("billion laughs"). First visits are free
 * (bounded by the document); re-visits through aliases are capped.
 */
#define CFG_MAX_ALIAS_VISITS 100000
/* The schema is at most 6 levels deep; the documented sections (docs/config.md) at most 5. */
#define CFG_MAX_DEPTH 64

/* ---- errors ------------------------------------------------------------ */

void ep_cfg_err(struct ep_cfg_ctx *c, int line, const char *key, const char *fmt, ...)
{
	struct ep_cfg_errors *errs = c->errs;
	struct ep_cfg_error *e;
	va_list ap;

	if (errs->n >= CFG_MAX_ERRORS)
		return;
	if (errs->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct ep_cfg_error *v = realloc(errs->v, ncap * sizeof(*v));

		if (!v) {
			c->oom = true;
			c->stop = true;
			return;
		}
		errs->v = v;
		c->cap = ncap;
	}
	e = &errs->v[errs->n++];
	memset(e, 0, sizeof(*e));
	if (errs->n == CFG_MAX_ERRORS) {
		snprintf(e->msg, sizeof(e->msg), "too many errors; stopping after %d",
			 CFG_MAX_ERRORS - 1);
		c->stop = true;
		return;
	}
	e->line = line;
	snprintf(e->key, sizeof(e->key), "%s", key ? key : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* ---- document access ----------------------------------------------------- */

/* Accounts a node visit; false means stop walking (budget exhausted). */
bool ep_cfg_visit(struct ep_cfg_ctx *c, yaml_node_t *n)
{
	size_t id, cost = 1;

	if (c->stop || !n)
		return false;
	id = (size_t)(n - c->doc->nodes.start);
	if (id >= c->n_nodes)
		return false;
	if (!c->seen[id]) {
		c->seen[id] = 1;
		return true;
	}
	/* Charge a re-visited container for its children up front, so a list
	 * reached through an alias cannot make us allocate before we notice. */
	if (n->type == YAML_SEQUENCE_NODE)
		cost += (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	else if (n->type == YAML_MAPPING_NODE)
		cost += (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	c->alias_visits += cost;
	if (c->alias_visits > CFG_MAX_ALIAS_VISITS) {
		ep_cfg_err(c, line_of(n), "",
			   "aliases expand to more than %d nodes; refusing to go on (alias bomb?)",
			   CFG_MAX_ALIAS_VISITS);
		c->stop = true;
		return false;
	}
	return true;
}

static bool key_is(const yaml_node_t *k, const char *key)
{
	size_t len = strlen(key);

	return k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == len &&
	       !memcmp(k->data.scalar.value, key, len);
}

/* First value of KEY in mapping N (the one the walker used), for line lookups. */
static yaml_node_t *map_get(struct ep_cfg_ctx *c, yaml_node_t *n, const char *key)
{
	yaml_node_pair_t *p;

	if (!n || n->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
		if (key_is(node_get(c, p->key), key))
			return node_get(c, p->value);
	return NULL;
}

static yaml_node_t *seq_get(struct ep_cfg_ctx *c, yaml_node_t *n, size_t i)
{
	if (!n || n->type != YAML_SEQUENCE_NODE ||
	    i >= (size_t)(n->data.sequence.items.top - n->data.sequence.items.start))
		return NULL;
	return node_get(c, n->data.sequence.items.start[i]);
}

/*
 * Follows a key path as errors spell it ("services[2].backends[0].port")
 * from the root; NULL where the file does not have it.
 */
static yaml_node_t *path_get(struct ep_cfg_ctx *c, const char *path)
{
	yaml_node_t *n = c->doc ? yaml_document_get_root_node(c->doc) : NULL;
	char key[sizeof(((struct ep_cfg_error *)0)->key)];

	while (n && *path) {
		size_t len = strcspn(path, ".[");

		if (len) {
			if (len >= sizeof(key))
				return NULL;
			memcpy(key, path, len);
			key[len] = '\0';
			n = map_get(c, n, key);
			path += len;
		} else if (*path == '[') {
			char *end;
			unsigned long idx = strtoul(path + 1, &end, 10);

			if (*end != ']')
				return NULL;
			n = seq_get(c, n, idx);
			path = end + 1;
		}
		if (*path == '.')
			path++;
	}
	return n;
}

int ep_cfg_line(struct ep_cfg_ctx *c, const char *path, int fallback)
{
	yaml_node_t *n = path_get(c, path);

	return n ? line_of(n) : fallback;
}

bool ep_cfg_has_error(const struct ep_cfg_ctx *c, const char *key)
{
	for (size_t i = 0; i < c->errs->n; i++)
		if (!strcmp(c->errs->v[i].key, key))
			return true;
	return false;
}

void ep_cfg_oom(struct ep_cfg_ctx *c)
{
	c->oom = true;
}

/* ---- the walker ---------------------------------------------------------- */

static void walk_map(struct ep_cfg_ctx *c, const struct ep_cfg_schema *s, yaml_node_t *n,
		     void *base, const char *path, bool null_ok);

static void join(char *buf, size_t len, const char *path, const char *key)
{
	if (snprintf(buf, len, "%s%s%s", path, *path ? "." : "", key) >= (int)len)
		buf[len - 1] = '\0';
}

static void walk_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
		      void *base, const char *path)
{
	const struct ep_cfg_schema *s = f->sub;
	char ipath[sizeof(((struct ep_cfg_error *)0)->key)];
	unsigned char *items;
	size_t i, cnt;

	if (is_null(n))
		return; /* "backends:" with nothing under it is an empty list */
	if (n->type != YAML_SEQUENCE_NODE) {
		ep_cfg_bad_value(c, f, n, path, NULL);
		return;
	}
	cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt > s->max_items) {
		ep_cfg_err(c, line_of(n), path, "at most %zu entries are allowed, got %zu",
			   s->max_items, cnt);
		return;
	}
	if (!cnt)
		return;
	items = calloc(cnt, s->item_size);
	if (!items) {
		c->oom = true;
		c->stop = true;
		return;
	}
	memcpy((char *)base + f->off, &items, sizeof(items));
	memcpy((char *)base + f->count_off, &cnt, sizeof(cnt));
	for (i = 0; i < cnt; i++) {
		yaml_node_t *in = node_get(c, n->data.sequence.items.start[i]);
		void *item = items + i * s->item_size;
		int line = line_of(in);

		if (!ep_cfg_visit(c, in))
			return;
		if (s->defaults)
			s->defaults(item);
		memcpy((char *)item + s->line_off, &line, sizeof(line));
		if (snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i) >= (int)sizeof(ipath))
			ipath[sizeof(ipath) - 1] = '\0';
		walk_map(c, s, in, item, ipath, false);
	}
}

static void set_field(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *v,
		      void *base, const char *path)
{
	void *dst = (char *)base + f->off;

	switch (f->kind) {
	case EP_CFG_MAP:
		if (f->has_present)
			*(bool *)((char *)dst + f->present_off) = true;
		walk_map(c, f->sub, v, dst, path, true);
		break;
	case EP_CFG_SEQ:
		walk_list(c, f, v, base, path);
		break;
	case EP_CFG_IP_LIST:
		ep_cfg_set_ip_list(c, f, v, base, path);
		break;
	case EP_CFG_STR_LIST:
		ep_cfg_set_str_list(c, f, v, base, path);
		break;
	case EP_CFG_RATIO:
		ep_cfg_set_ratio(c, f, v, dst, path);
		break;
	case EP_CFG_PERCENT_LIST:
		ep_cfg_set_percent_list(c, f, v, base, path);
		break;
	case EP_CFG_STR:
		ep_cfg_set_str(c, f, v, dst, path);
		break;
	case EP_CFG_INT:
		ep_cfg_set_int(c, f, v, dst, path);
		break;
	case EP_CFG_BOOL:
		ep_cfg_set_bool(c, f, v, dst, path);
		break;
	case EP_CFG_ENUM:
		ep_cfg_set_enum(c, f, v, dst, path);
		break;
	case EP_CFG_PERCENT:
		ep_cfg_set_percent(c, f, v, dst, path);
		break;
	case EP_CFG_IP:
		ep_cfg_set_ip(c, f, v, dst, path);
		break;
	case EP_CFG_HOSTPORT:
		ep_cfg_set_hostport(c, f, v, dst, path);
		break;
	case EP_CFG_UNSUPPORTED:
		break;
	}
}

static void unknown_key(struct ep_cfg_ctx *c, const struct ep_cfg_schema *s, const yaml_node_t *k,
			const char *path)
{
	char allowed[200], kb[CFG_SHOW_MAX + 16], kpath[sizeof(((struct ep_cfg_error *)0)->key)];
	size_t i, o = 0;

	allowed[0] = '\0';
	for (i = 0; i < s->n_fields && o < sizeof(allowed); i++) {
		if (s->fields[i].kind == EP_CFG_UNSUPPORTED)
			continue;
		o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s%s", o ? ", " : "",
				      s->fields[i].key);
	}
	ep_cfg_show(kb, sizeof(kb), (const char *)k->data.scalar.value, k->data.scalar.length,
		    false);
	join(kpath, sizeof(kpath), path, kb);
	if (!strcmp(kb, "<<"))
		ep_cfg_err(c, line_of(k), kpath,
			   "merge keys ('<<') are not supported; write the keys out (allowed: %s)",
			   allowed);
	else
		ep_cfg_err(c, line_of(k), kpath, "unknown key '%s' (allowed: %s)", kb, allowed);
}

static void walk_map(struct ep_cfg_ctx *c, const struct ep_cfg_schema *s, yaml_node_t *n,
		     void *base, const char *path, bool null_ok)
{
	char kpath[sizeof(((struct ep_cfg_error *)0)->key)], db[CFG_SHOW_MAX + 16];
	int first_line[EP_CFG_MAX_FIELDS] = { 0 };
	yaml_node_pair_t *p;
	size_t i;

	if (null_ok && is_null(n))
		return; /* "datapath:" with nothing under it: all defaults */
	/* Sections bring their own tables; one too big is a bug, not a crash. */
	if (s->n_fields > EP_CFG_MAX_FIELDS) {
		ep_cfg_err(c, line_of(n), path, "internal error: %s has more than %d keys", s->what,
			   EP_CFG_MAX_FIELDS);
		return;
	}
	if (n->type != YAML_MAPPING_NODE) {
		ep_cfg_err(c, line_of(n), path, "expected %s, got %s", s->what,
			   ep_cfg_desc(n, db, sizeof(db)));
		return;
	}
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_get(c, p->key), *v = node_get(c, p->value);
		const struct ep_cfg_field *f = NULL;

		if (!ep_cfg_visit(c, k))
			return;
		if (k->type != YAML_SCALAR_NODE) {
			ep_cfg_err(c, line_of(k), path, "keys must be plain strings, got %s",
				   ep_cfg_desc(k, db, sizeof(db)));
			continue;
		}
		for (i = 0; i < s->n_fields; i++) {
			if (key_is(k, s->fields[i].key)) {
				f = &s->fields[i];
				break;
			}
		}
		if (!f) {
			unknown_key(c, s, k, path);
			continue;
		}
		join(kpath, sizeof(kpath), path, f->key);
		if (first_line[i]) {
			ep_cfg_err(c, line_of(k), kpath, "duplicate key (first at line %d)",
				   first_line[i]);
			continue;
		}
		first_line[i] = line_of(k);
		if (f->kind == EP_CFG_UNSUPPORTED) {
			ep_cfg_err(c, line_of(k), kpath,
				   "not supported by this version of edgeplane (%s)", f->why);
			continue;
		}
		if (!ep_cfg_visit(c, v))
			return;
		set_field(c, f, v, base, kpath);
	}
	for (i = 0; i < s->n_fields; i++) {
		if (s->fields[i].required && !first_line[i]) {
			join(kpath, sizeof(kpath), path, s->fields[i].key);
			ep_cfg_err(c, line_of(n), kpath, "missing required key");
		}
	}
}

static void syntax_error(struct ep_cfg_ctx *c, const yaml_parser_t *p)
{
	int line = (int)p->problem_mark.line + 1;

	if (p->error == YAML_MEMORY_ERROR) {
		c->oom = true;
		ep_cfg_err(c, 0, "", "out of memory while parsing");
		return;
	}
	if (p->error == YAML_READER_ERROR)
		line = (int)p->mark.line + 1; /* the reader has no problem_mark */
	if (p->context && (int)p->context_mark.line + 1 != line)
		ep_cfg_err(c, line, "", "syntax error: %s (%s that started at line %d)",
			   p->problem ? p->problem : "invalid YAML", p->context,
			   (int)p->context_mark.line + 1);
	else if (p->context)
		ep_cfg_err(c, line, "", "syntax error: %s (%s)",
			   p->problem ? p->problem : "invalid YAML", p->context);
	else
		ep_cfg_err(c, line, "", "syntax error: %s", p->problem ? p->problem : "invalid YAML");
}

/*
 * libyaml's scanner does work proportional to the flow nesting depth for every
 * token, so "[[[[...]]]]" filling 4 MiB takes hours to load. A first pass over
 * the event stream stops at an absurd depth long before that. Syntax errors
 * are left to the real load, which reports them.
 */
static bool too_deep(struct ep_cfg_ctx *c, const char *text, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	bool deep = false, done = false;
	int depth = 0;

	if (!yaml_parser_initialize(&p))
		return false;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done && yaml_parser_parse(&p, &ev)) {
		switch (ev.type) {
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++depth > CFG_MAX_DEPTH) {
				ep_cfg_err(c, (int)ev.start_mark.line + 1, "",
					   "nesting is deeper than %d levels", CFG_MAX_DEPTH);
				deep = done = true;
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return deep;
}

/* The top level is the sections' own fields, in registration order. */
static void top_schema(struct ep_cfg_schema *s, struct ep_cfg_field *fields, char *what,
		       size_t len)
{
	size_t i, o = (size_t)snprintf(what, len, "a mapping of sections ("), start = o;

	for (i = 0; i < ep_cfg_n_sections && i < EP_CFG_MAX_FIELDS; i++) {
		fields[i] = ep_cfg_sections[i]->field;
		if (fields[i].kind != EP_CFG_UNSUPPORTED && o < len)
			o += (size_t)snprintf(what + o, len - o, "%s%s", o > start ? ", " : "",
					      fields[i].key);
	}
	if (o < len)
		snprintf(what + o, len - o, ")");
	*s = (struct ep_cfg_schema){ .what = what, .fields = fields, .n_fields = i };
}

static void validate(struct ep_cfg_ctx *c, yaml_document_t *doc, struct ep_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	struct ep_cfg_field fields[EP_CFG_MAX_FIELDS];
	struct ep_cfg_schema top;
	char db[CFG_SHOW_MAX + 16], what[200];
	size_t i;

	top_schema(&top, fields, what, sizeof(what));
	c->doc = doc;
	c->n_nodes = (size_t)(doc->nodes.top - doc->nodes.start);
	c->seen = calloc(c->n_nodes ? c->n_nodes : 1, 1);
	if (!c->seen) {
		c->oom = true;
		ep_cfg_err(c, 0, "", "out of memory");
		return;
	}
	if (is_null(root) || (root->type == YAML_SCALAR_NODE && !root->data.scalar.length)) {
		ep_cfg_err(c, 0, "", "configuration is empty");
	} else if (root->type != YAML_MAPPING_NODE) {
		ep_cfg_err(c, line_of(root), "", "expected %s at the top, got %s", top.what,
			      ep_cfg_desc(root, db, sizeof(db)));
	} else if (ep_cfg_visit(c, root)) {
		walk_map(c, &top, root, cfg, "", false);
		for (i = 0; i < ep_cfg_n_sections && !c->stop; i++)
			if (ep_cfg_sections[i]->check)
				ep_cfg_sections[i]->check(c, cfg);
	}
	free(c->seen);
	c->seen = NULL;
}

/*
 * The walk reports in schema order and the cross-key rules come last; people
 * read the list against the file, so order it by line. Stable, and the "too
 * many errors" note stays at the end.
 */
static void sort_errors(struct ep_cfg_errors *errs)
{
	size_t n = errs->n, i, j;

	if (n == CFG_MAX_ERRORS)
		n--;
	for (i = 1; i < n; i++) {
		struct ep_cfg_error tmp = errs->v[i];

		for (j = i; j > 0 && errs->v[j - 1].line > tmp.line; j--)
			errs->v[j] = errs->v[j - 1];
		errs->v[j] = tmp;
	}
}

int ep_config_parse(const char *text, size_t len, struct ep_config *out, struct ep_cfg_errors *errs)
{
	struct ep_cfg_ctx c = { .errs = errs };
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	bool loaded = false;

	if (!out || !errs)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(errs, 0, sizeof(*errs));
	if (len > CFG_MAX_FILE) {
		ep_cfg_err(&c, 0, "", "configuration is larger than %u MiB", CFG_MAX_FILE >> 20);
		return -EINVAL;
	}
	if (!text) {
		text = "";
		len = 0;
	}
	if (too_deep(&c, text, len))
		return -EINVAL;
	for (size_t i = 0; i < ep_cfg_n_sections; i++)
		if (ep_cfg_sections[i]->defaults)
			ep_cfg_sections[i]->defaults(out);
	if (!yaml_parser_initialize(&parser)) {
		ep_cfg_err(&c, 0, "", "out of memory");
		memset(out, 0, sizeof(*out));
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(&c, &parser);
	} else {
		loaded = true;
		if (!yaml_document_get_root_node(&doc)) {
			ep_cfg_err(&c, 0, "", "configuration is empty");
		} else if (!yaml_parser_load(&parser, &extra)) {
			syntax_error(&c, &parser);
		} else {
			if (yaml_document_get_root_node(&extra))
				ep_cfg_err(&c, (int)extra.start_mark.line + 1, "",
					   "more than one YAML document; put the whole configuration "
					   "in one");
			yaml_document_delete(&extra);
		}
	}
	if (loaded && yaml_document_get_root_node(&doc))
		validate(&c, &doc, out);
	if (loaded)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);

	if (errs->n || c.oom) {
		sort_errors(errs);
		ep_config_free(out);
		if (c.oom && !errs->n)
			return -ENOMEM;
		return c.oom ? -ENOMEM : -EINVAL;
	}
	return 0;
}

int ep_config_load(const char *path, struct ep_config *out, struct ep_cfg_errors *errs,
		   uint64_t *hash)
{
	struct ep_cfg_ctx c = { .errs = errs };
	char *text = NULL, buf[128];
	size_t len = 0;
	int rc;

	if (!out || !errs)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(errs, 0, sizeof(*errs));
	rc = ep_read_file(path, CFG_MAX_FILE, &text, &len);
	if (rc == -EFBIG) {
		ep_cfg_err(&c, 0, "", "configuration is larger than %u MiB", CFG_MAX_FILE >> 20);
		return rc;
	}
	if (rc) {
		ep_cfg_err(&c, 0, "", "cannot read the configuration: %s",
			      strerror_r(-rc, buf, sizeof(buf)));
		return rc;
	}
	if (hash)
		*hash = ep_hash64(text, len);
	rc = ep_config_parse(text, len, out, errs);
	free(text);
	return rc;
}

/* Frees what the walker allocated for fields F[0..n) of the struct at BASE. */
static void free_fields(const struct ep_cfg_field *f, size_t n, void *base)
{
	for (; n--; f++) {
		char *dst = (char *)base + f->off, *items;
		size_t cnt;

		if (f->kind == EP_CFG_MAP) {
			free_fields(f->sub->fields, f->sub->n_fields, dst);
		} else if (f->kind == EP_CFG_SEQ) {
			memcpy(&items, dst, sizeof(items));
			memcpy(&cnt, (char *)base + f->count_off, sizeof(cnt));
			for (size_t i = 0; items && i < cnt; i++)
				free_fields(f->sub->fields, f->sub->n_fields,
					    items + i * f->sub->item_size);
			free(items);
		}
	}
}

void ep_config_free(struct ep_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < ep_cfg_n_sections; i++)
		free_fields(&ep_cfg_sections[i]->field, 1, cfg);
	memset(cfg, 0, sizeof(*cfg));
}

void ep_cfg_errors_free(struct ep_cfg_errors *errs)
{
	if (!errs)
		return;
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

void ep_cfg_errors_print(const struct ep_cfg_errors *errs, const char *path, void *stream)
{
	FILE *f = stream;
	size_t i;

	if (!errs || !f)
		return;
	for (i = 0; i < errs->n; i++) {
		const struct ep_cfg_error *e = &errs->v[i];

		fprintf(f, "%s", path ? path : "<config>");
		if (e->line)
			fprintf(f, ":%d", e->line);
		fprintf(f, ": ");
		if (e->key[0])
			fprintf(f, "%s: ", e->key);
		fprintf(f, "%s\n", e->msg);
	}
}
