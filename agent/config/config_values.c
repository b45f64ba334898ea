/*
 * Config values: how one YAML scalar becomes one typed field. Decimal-only
 * integers, exact percentages and ratios in basis points, lowercase booleans,
 * enums, strings, addresses, host:port listeners and address lists, plus the
 * "expected ..., got ..." message that quotes a bad value back safely. Kept
 * apart from the walker (config.c), which owns the document's structure: a
 * new value type is added here without reading the alias and depth guards.
 */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "edgeplane_abi.h"
#include "util.h"

/* ---- quoting values back ------------------------------------------------- */

/*
 * Quotes a user's value back: control characters become '?' (the text ends up
 * on terminals and in logs), and long values are cut at a UTF-8 boundary.
 */
const char *ep_cfg_show(char *buf, size_t len, const char *s, size_t slen, bool quote)
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

const char *ep_cfg_desc(const yaml_node_t *n, char *buf, size_t len)
{
	if (!n || is_null(n))
		return "null";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	return ep_cfg_show(buf, len, (const char *)n->data.scalar.value, n->data.scalar.length,
			   true);
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

/* What the kernel's dev_valid_name() accepts, minus characters that need
 * quoting in shells and tools. */
bool ep_cfg_valid_ifname(const char *s)
{
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.@-", *s)))
			return false;
	return true;
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

/* ---- typed setters ----------------------------------------------------- */

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
	case EP_CFG_PERCENT_LIST:
		return "a list of rising percents above 0, e.g. [1, 5, 25, 50, 100]";
	case EP_CFG_STR_LIST:
		return "a list of strings";
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

void ep_cfg_bad_value(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		      const char *path, const char *hint)
{
	char eb[160], db[CFG_SHOW_MAX + 16];

	ep_cfg_err(c, line_of(n), path, "expected %s, got %s%s", expect_text(f, eb, sizeof(eb)),
		   ep_cfg_desc(n, db, sizeof(db)), hint ? hint : "");
}

/* Scalar text or NULL (after reporting) for fields that need one. */
static const char *scalar_of(struct ep_cfg_ctx *c, const struct ep_cfg_field *f,
			     const yaml_node_t *n, const char *path, bool plain_only)
{
	if (n->type != YAML_SCALAR_NODE || is_null(n)) {
		ep_cfg_bad_value(c, f, n, path, NULL);
		return NULL;
	}
	if (memchr(n->data.scalar.value, '\0', n->data.scalar.length)) {
		ep_cfg_bad_value(c, f, n, path, " (contains a NUL character)");
		return NULL;
	}
	if (plain_only && is_quoted(n)) {
		ep_cfg_bad_value(c, f, n, path, " (a quoted value is a string; remove the quotes)");
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

void ep_cfg_set_int(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
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
		ep_cfg_bad_value(c, f, n, path, " (leading zeros are not allowed)");
	} else if (rc == DEC_RADIX) {
		ep_cfg_bad_value(c, f, n, path, " (only decimal integers are allowed)");
	} else if (rc || x < f->min || x > f->max) {
		ep_cfg_bad_value(c, f, n, path, NULL);
	} else if (f->valid_int && !f->valid_int(x, hint, sizeof(hint))) {
		ep_cfg_bad_value(c, f, n, path, hint);
	} else {
		store_uint(dst, f->size, (unsigned long long)x);
	}
}

void ep_cfg_set_bool(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
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
			ep_cfg_bad_value(c, f, n, path,
				  " (only lowercase true/false; YAML 1.1 spellings such as "
				  "yes/no/on/off are not accepted)");
			return;
		}
	}
	ep_cfg_bad_value(c, f, n, path, NULL);
}

void ep_cfg_set_enum(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
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
	ep_cfg_bad_value(c, f, n, path, NULL);
}

void ep_cfg_set_str(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		    void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	size_t len;

	if (!v)
		return;
	len = n->data.scalar.length;
	if ((long long)len < f->min || (long long)len > f->max || len >= f->size ||
	    (f->valid_str && !f->valid_str(v))) {
		ep_cfg_bad_value(c, f, n, path, NULL);
		return;
	}
	memcpy(dst, v, len + 1);
}

void ep_cfg_set_percent(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
			void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, true);
	size_t len;
	uint32_t bp;

	if (!v)
		return;
	len = n->data.scalar.length;
	if (parse_percent_bp(v, len, &bp)) {
		ep_cfg_bad_value(c, f, n, path,
			  len && v[len - 1] == '%' ? " (write the number without '%')" : NULL);
		return;
	}
	store_uint(dst, f->size, bp);
}

void ep_cfg_set_ratio(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		      void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, true);
	uint32_t bp;

	if (!v)
		return;
	/* Every ratio is a threshold "at least this share is bad": 0 would
	 * judge every window bad and keep the node failed over for good. */
	if (parse_ratio_bp(v, n->data.scalar.length, &bp)) {
		ep_cfg_bad_value(c, f, n, path, NULL);
		return;
	}
	if (bp == 0) {
		ep_cfg_bad_value(c, f, n, path, " (0 would call every window bad)");
		return;
	}
	store_uint(dst, f->size, bp);
}

void ep_cfg_set_ip(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
		   void *dst, const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	struct ep_ip ip;

	if (!v)
		return;
	if (ep_ip_parse(v, &ip)) {
		ep_cfg_bad_value(c, f, n, path, NULL);
		return;
	}
	memcpy(dst, &ip, sizeof(ip));
}

void ep_cfg_set_hostport(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, const yaml_node_t *n,
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
		ep_cfg_bad_value(c, f, n, path, NULL);
		return;
	}
	memcpy(dst, v, len + 1);
}

/* Sets entry i of a list's array from in; false stops the walk (reported,
 * and the list's count is then left as it was). */
typedef bool (*list_item_fn)(struct ep_cfg_ctx *c, const struct ep_cfg_field *item,
			     yaml_node_t *in, void *arr, size_t i, const char *ipath);

/*
 * The walk every list setter shares: a YAML sequence into the fixed array
 * at f->off, its length into f->count_off. noun names the entries in the
 * error for a count outside [f->min, f->max]; NULL checks f->max only.
 */
static void set_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f,
		     const struct ep_cfg_field *item, yaml_node_t *n, void *base, const char *path,
		     const char *noun, list_item_fn set_item)
{
	char ipath[sizeof(((struct ep_cfg_error *)0)->key)];
	void *arr = (char *)base + f->off;
	size_t i, cnt;

	if (is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		ep_cfg_bad_value(c, f, n, path, NULL);
		return;
	}
	cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (!noun && cnt > (size_t)f->max) {
		ep_cfg_err(c, line_of(n), path, "at most %lld entries are allowed, got %zu", f->max,
			   cnt);
		return;
	}
	if (noun && (cnt > (size_t)f->max || cnt < (size_t)f->min)) {
		ep_cfg_err(c, line_of(n), path, "expected %lld to %lld %s, got %zu", f->min, f->max,
			   noun, cnt);
		return;
	}
	for (i = 0; i < cnt; i++) {
		yaml_node_t *in = node_get(c, n->data.sequence.items.start[i]);

		if (!ep_cfg_visit(c, in))
			return;
		if (snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i) >= (int)sizeof(ipath))
			ipath[sizeof(ipath) - 1] = '\0';
		if (!set_item(c, item, in, arr, i, ipath))
			return;
	}
	memcpy((char *)base + f->count_off, &cnt, sizeof(cnt));
}

static bool ip_item(struct ep_cfg_ctx *c, const struct ep_cfg_field *item, yaml_node_t *in,
		    void *arr, size_t i, const char *ipath)
{
	struct ep_ip *a = arr;

	ep_cfg_set_ip(c, item, in, &a[i], ipath);
	for (size_t j = 0; j < i && a[i].family; j++)
		if (ep_ip_eq(&a[i], &a[j]))
			ep_cfg_err(c, line_of(in), ipath, "duplicate address (also [%zu])", j);
	return true;
}

/* A list of addresses into a fixed array (f->max entries at most). */
void ep_cfg_set_ip_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			void *base, const char *path)
{
	struct ep_cfg_field item = *f;

	item.kind = EP_CFG_IP;
	set_list(c, f, &item, n, base, path, "addresses", ip_item);
}

static bool percent_item(struct ep_cfg_ctx *c, const struct ep_cfg_field *item, yaml_node_t *in,
			 void *arr, size_t i, const char *ipath)
{
	uint32_t *a = arr;

	a[i] = UINT32_MAX;
	ep_cfg_set_percent(c, item, in, &a[i], ipath);
	if (a[i] == UINT32_MAX)
		return false; /* reported */
	if (a[i] == 0 || (i && a[i] <= a[i - 1])) {
		ep_cfg_err(c, line_of(in), ipath,
			   "expected a percent above 0 and above the step before it");
		return false;
	}
	return true;
}

void ep_cfg_set_percent_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			     void *base, const char *path)
{
	struct ep_cfg_field item = *f;

	item.kind = EP_CFG_PERCENT;
	item.size = sizeof(uint32_t);
	set_list(c, f, &item, n, base, path, "values", percent_item);
}

static bool str_item(struct ep_cfg_ctx *c, const struct ep_cfg_field *item, yaml_node_t *in,
		     void *arr, size_t i, const char *ipath)
{
	ep_cfg_set_str(c, item, in, (char *)arr + i * item->size, ipath);
	return true;
}

void ep_cfg_set_str_list(struct ep_cfg_ctx *c, const struct ep_cfg_field *f, yaml_node_t *n,
			 void *base, const char *path)
{
	struct ep_cfg_field item = *f;

	item.kind = EP_CFG_STR;
	item.min = 1;
	item.max = (long long)f->size - 1;
	set_list(c, f, &item, n, base, path, NULL, str_item);
}
