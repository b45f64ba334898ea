/*
 * The config engine: libyaml's document API plus a table-driven schema
 * walker. Which keys exist, their types, ranges and defaults, and the rules
 * across keys belong to the sections (config_schema.h, sections.c); the engine
 * knows none of them. It turns any mismatch into an error that names the key
 * path and line and keeps going, so one run reports every problem, and it
 * guards against hostile input (size, nesting depth, alias expansion).
 */
#include "config.h"
#include "config_schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "edgeplane_abi.h"
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
/* The schema is at most 6 levels deep; DESIGN.md's sections at most 5. */
#define CFG_MAX_DEPTH 64
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

/*
 * Quotes a user's value back: control characters become '?' (the text ends up
 * on terminals and in logs), and long values are cut at a UTF-8 boundary.
 */
static const char *show(char *buf, size_t len, const char *s, size_t slen, bool quote)
{
	size_t o = 0, i;

	if (len < CFG_SHOW_MAX + 16)
		return "?";
	if (quote)
		buf[o++] = '"';
	for (i = 0; i < slen; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i >= CFG_SHOW_MAX && (ch & 0xc0) != 0x80) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (o + 6 >= len)
			break;
		buf[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (quote)
		buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static int line_of(const yaml_node_t *n)
{
	return n ? (int)n->start_mark.line + 1 : 0;
}

static bool is_quoted(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
	       n->data.scalar.style != YAML_ANY_SCALAR_STYLE;
}

/* YAML 1.2 core schema nulls; only plain scalars, "null" in quotes is text. */
static bool is_null(const yaml_node_t *n)
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

static const char *desc(const yaml_node_t *n, char *buf, size_t len)
{
	if (!n || is_null(n))
		return "null";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	return show(buf, len, (const char *)n->data.scalar.value, n->data.scalar.length, true);
}

/* ---- document access ----------------------------------------------------- */

static yaml_node_t *node_get(struct ep_cfg_ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

/* Accounts a node visit; false means stop walking (budget exhausted). */
static bool visit(struct ep_cfg_ctx *c, yaml_node_t *n)
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

/* ---- value checks -------------------------------------------------------- */

bool ep_cfg_valid_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

bool ep_cfg_valid_abspath(const char *s)
{
	return s[0] == '/' && ep_cfg_valid_text(s);
}

/*
 * Decimal only: YAML 1.1 readers take 010 as octal and 0x10 as hex, which
 * would silently change a port number. Returns 0, or a negative reason.
 */
enum { DEC_NOT_INT = -1, DEC_LEADING_ZERO = -2, DEC_RANGE = -3, DEC_RADIX = -4 };

static int parse_dec(const char *s, size_t len, long long *out)
{
	size_t i = 0, digits;
	long long v = 0;
	bool neg = false;

	if (len && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len)
		return DEC_NOT_INT;
	if (len - i > 1 && s[i] == '0' && strchr("xXoObB", s[i + 1]))
		return DEC_RADIX;
	for (digits = i; digits < len; digits++)
		if (s[digits] < '0' || s[digits] > '9')
			return DEC_NOT_INT;
	if (len - i > 1 && s[i] == '0')
		return DEC_LEADING_ZERO;
	if (len - i > 18)
		return DEC_RANGE;
	for (; i < len; i++)
		v = v * 10 + (s[i] - '0');
	*out = neg ? -v : v;
	return 0;
}

/* "5", "2.5", "0.25": exact basis points, no floating point rounding. */
static int parse_percent_bp(const char *s, size_t len, uint32_t *bp)
{
	size_t i = 0, ndig = 0, nfrac = 0;
	uint32_t whole = 0, frac = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9' && ndig < 4) {
		whole = whole * 10 + (uint32_t)(s[i++] - '0');
		ndig++;
	}
	if (!ndig || (ndig > 1 && s[0] == '0'))
		return -1;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9' && nfrac < 3) {
			frac = frac * 10 + (uint32_t)(s[i++] - '0');
			nfrac++;
		}
		if (!nfrac || nfrac > 2)
			return -1;
		if (nfrac == 1)
			frac *= 10;
	}
	if (i != len)
		return -1;
	*bp = whole * 100 + frac;
	return *bp <= EP_BP_MAX ? 0 : -1;
}

/* "0", "1", "0.2", "0.0005": a ratio with at most 4 decimals, as basis points. */
static int parse_ratio_bp(const char *s, size_t len, uint32_t *bp)
{
	size_t i = 0, nfrac = 0;
	uint32_t frac = 0;

	if (!len || (s[0] != '0' && s[0] != '1'))
		return -1;
	i = 1;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9' && nfrac < 5) {
			frac = frac * 10 + (uint32_t)(s[i++] - '0');
			nfrac++;
		}
		if (!nfrac || nfrac > 4)
			return -1;
		while (nfrac++ < 4)
			frac *= 10;
	}
	if (i != len)
		return -1;
	*bp = (s[0] == '1' ? 10000 : 0) + frac;
	return *bp <= EP_BP_MAX ? 0 : -1;
}

static void store_uint(void *dst, size_t size, unsigned long long v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;

	switch (size) {
	case 1:
		memcpy(dst, &u8, 1);
		break;
	case 2:
		memcpy(dst, &u16, 2);
		break;
	case 4:
		memcpy(dst, &u32, 4);
		break;
	}
}

/* ---- the walker ---------------------------------------------------------- */

static const char *expect_text(const struct ep_cfg_field *f, char *buf, size_t len)
{
	const struct ep_cfg_enum *e;
	size_t o;

	if (f->expect)
		return f->expect;
	switch (f->kind) {
	case EP_CFG_INT:
		snprintf(buf, len, "%s %lld-%lld", f->noun ? f->noun : "an integer", f->min, f->max);
		return buf;
	case EP_CFG_ENUM:
		o = (size_t)snprintf(buf, len, "one of ");
		for (e = f->enums; e->name && o < len; e++)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", e == f->enums ? "" : ", ",
					      e->name);
		return buf;
	case EP_CFG_BOOL:
		return "true or false";
	case EP_CFG_PERCENT:
		return "a number 0-100 with at most 2 decimals";
	case EP_CFG_RATIO:
		return "a ratio above 0 and at most 1, with at most 4 decimals (e.g. 0.2)";
	case EP_CFG_IP_LIST:
		return "a list of IPv4 or IPv6 addresses";
	case EP_CFG_IP:
		return "an IPv4 or IPv6 address";
	case EP_CFG_SEQ:
		return "a list";
	case EP_CFG_MAP:
		return f->sub->what;
	default:
		return "a string";
	}
}

static void bad_value(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		      const char *path, const char *hint)
{
	char eb[160], db[CFG_SHOW_MAX + 16];

	ep_cfg_err(c, line_of(n), path, "expected %s, got %s%s", expect_text(f, eb, sizeof(eb)),
		   desc(n, db, sizeof(db)), hint ? hint : "");
}

/* Scalar text or NULL (after reporting) for fields that need one. */
static const char *scalar_of(struct ep_cfg_ctx *c, const struct ep_cfg_field *f,
			     const yaml_node_t *n, const char *path, bool plain_only)
{
	if (n->type != YAML_SCALAR_NODE || is_null(n)) {
		bad_value(c, f, n, path, NULL);
		return NULL;
	}
	if (memchr(n->data.scalar.value, '\0', n->data.scalar.length)) {
		bad_value(c, f, n, path, " (contains a NUL character)");
		return NULL;
	}
	if (plain_only && is_quoted(n)) {
		bad_value(c, f, n, path, " (a quoted value is a string; remove the quotes)");
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

static void set_int(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		    void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, true);
	char hint[96] = "";
	long long x = 0;
	int rc;

	if (!v)
		return;
	rc = parse_dec(v, n->data.scalar.length, &x);
	if (rc == DEC_LEADING_ZERO) {
		bad_value(c, f, n, path, " (leading zeros are not allowed)");
	} else if (rc == DEC_RADIX) {
		bad_value(c, f, n, path, " (only decimal integers are allowed)");
	} else if (rc || x < f->min || x > f->max) {
		bad_value(c, f, n, path, NULL);
	} else if (f->valid_int && !f->valid_int(x, hint, sizeof(hint))) {
		bad_value(c, f, n, path, hint);
	} else {
		store_uint(dst, f->size, (unsigned long long)x);
	}
}

static void set_bool(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		     void *dst, const char *path)
{
	static const char *const yaml11[] = { "yes", "no", "on", "off", "y", "n", "true", "false" };
	const char *v = scalar_of(c, f, n, path, true);
	size_t i;

	if (!v)
		return;
	if (!strcmp(v, "true") || !strcmp(v, "false")) {
		store_uint(dst, f->size, v[0] == 't');
		return;
	}
	for (i = 0; i < EP_CFG_ARRAY_LEN(yaml11); i++) {
		if (!strcasecmp(v, yaml11[i])) {
			bad_value(c, f, n, path,
				  " (only lowercase true/false; YAML 1.1 spellings such as "
				  "yes/no/on/off are not accepted)");
			return;
		}
	}
	bad_value(c, f, n, path, NULL);
}

static void set_enum(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		     void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	const struct ep_cfg_enum *e;

	if (!v)
		return;
	for (e = f->enums; e->name; e++) {
		if (!strcmp(v, e->name)) {
			store_uint(dst, f->size, e->value);
			return;
		}
	}
	bad_value(c, f, n, path, NULL);
}

static void set_str(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		    void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	size_t len;

	if (!v)
		return;
	len = n->data.scalar.length;
	if ((long long)len < f->min || (long long)len > f->max || len >= f->size ||
	    (f->valid_str && !f->valid_str(v))) {
		bad_value(c, f, n, path, NULL);
		return;
	}
	memcpy(dst, v, len + 1);
}

static void set_percent(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
			void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, true);
	size_t len;
	uint32_t bp;

	if (!v)
		return;
	len = n->data.scalar.length;
	if (parse_percent_bp(v, len, &bp)) {
		bad_value(c, f, n, path,
			  len && v[len - 1] == '%' ? " (write the number without '%')" : NULL);
		return;
	}
	store_uint(dst, f->size, bp);
}

static void set_ratio(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		      void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, true);
	uint32_t bp;

	if (!v)
		return;
	/* Every ratio is a threshold "at least this share is bad": 0 would
	 * judge every window bad and keep the node failed over for good. */
	if (parse_ratio_bp(v, n->data.scalar.length, &bp)) {
		bad_value(c, f, n, path, NULL);
		return;
	}
	if (bp == 0) {
		bad_value(c, f, n, path, " (0 would call every window bad)");
		return;
	}
	store_uint(dst, f->size, bp);
}

static void set_ip(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		   void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	struct ep_ip ip;

	if (!v)
		return;
	if (ep_ip_parse(v, &ip)) {
		bad_value(c, f, n, path, NULL);
		return;
	}
	memcpy(dst, &ip, sizeof(ip));
}

static void set_hostport(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
			 void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	char host[EP_IP_STRLEN];
	uint16_t port;
	size_t len;

	if (!v)
		return;
	len = n->data.scalar.length;
	if (len && (len >= f->size || ep_hostport_parse(v, host, sizeof(host), &port) ||
		    /* "[10.0.0.1]:80" is not a way to write an IPv4 listener */
		    (v[0] == '[' && !strchr(host, ':')))) {
		bad_value(c, f, n, path, NULL);
		return;
	}
	memcpy(dst, v, len + 1);
}

static void walk_map(struct ep_cfg_ctx *c, const struct ep_cfg_schema *s, yaml_node_t *n,
		     void *base, const char *path, bool null_ok);

/* A list of addresses into a fixed array (f->max entries at most). */
static void set_ip_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			void *base, const char *path)
{
	struct ep_ip *arr = (struct ep_ip *)((char *)base + f->off);
	char ipath[sizeof(((struct ep_cfg_error *)0)->key)];
	struct ep_cfg_field item = *f;
	size_t i, cnt;

	if (is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		bad_value(c, f, n, path, NULL);
		return;
	}
	cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt > (size_t)f->max || cnt < (size_t)f->min) {
		ep_cfg_err(c, line_of(n), path, "expected %lld to %lld addresses, got %zu", f->min,
			   f->max, cnt);
		return;
	}
	item.kind = EP_CFG_IP;
	for (i = 0; i < cnt; i++) {
		yaml_node_t *in = node_get(c, n->data.sequence.items.start[i]);

		if (!visit(c, in))
			return;
		if (snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i) >= (int)sizeof(ipath))
			ipath[sizeof(ipath) - 1] = '\0';
		set_ip(c, &item, in, &arr[i], ipath);
		for (size_t j = 0; j < i && arr[i].family; j++)
			if (ep_ip_eq(&arr[i], &arr[j]))
				ep_cfg_err(c, line_of(in), ipath, "duplicate address (also [%zu])", j);
	}
	memcpy((char *)base + f->count_off, &cnt, sizeof(cnt));
}

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
		bad_value(c, f, n, path, NULL);
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

		if (!visit(c, in))
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
		set_ip_list(c, f, v, base, path);
		break;
	case EP_CFG_RATIO:
		set_ratio(c, f, v, dst, path);
		break;
	case EP_CFG_STR:
		set_str(c, f, v, dst, path);
		break;
	case EP_CFG_INT:
		set_int(c, f, v, dst, path);
		break;
	case EP_CFG_BOOL:
		set_bool(c, f, v, dst, path);
		break;
	case EP_CFG_ENUM:
		set_enum(c, f, v, dst, path);
		break;
	case EP_CFG_PERCENT:
		set_percent(c, f, v, dst, path);
		break;
	case EP_CFG_IP:
		set_ip(c, f, v, dst, path);
		break;
	case EP_CFG_HOSTPORT:
		set_hostport(c, f, v, dst, path);
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
	show(kb, sizeof(kb), (const char *)k->data.scalar.value, k->data.scalar.length, false);
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
		ep_cfg_err(c, line_of(n), path, "expected %s, got %s", s->what, desc(n, db, sizeof(db)));
		return;
	}
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_get(c, p->key), *v = node_get(c, p->value);
		const struct ep_cfg_field *f = NULL;

		if (!visit(c, k))
			return;
		if (k->type != YAML_SCALAR_NODE) {
			ep_cfg_err(c, line_of(k), path, "keys must be plain strings, got %s",
				   desc(k, db, sizeof(db)));
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
		if (!visit(c, v))
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
			      desc(root, db, sizeof(db)));
	} else if (visit(c, root)) {
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

