/*
 * Config loader: libyaml's document API plus a small table-driven schema
 * walker. The tables below are the single source of truth for which keys
 * exist, their types and ranges; the walker turns any mismatch into an error
 * that names the key path and line, and keeps going so one run reports every
 * problem. Rules that span several keys (uniqueness, address families, the
 * Maglev table versus backend counts) run after the walk.
 */
#include "config.h"

#include "control.h"
#include "dns_name.h"
#include "dnssec_check.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "edgeplane_abi.h"
#include "maglev.h"

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
/* Keeps the duplicate-name check quadratic in something small. */
#define CFG_MAX_IFACES 256
/* The schema is at most 6 levels deep; DESIGN.md's sections at most 5. */
#define CFG_MAX_DEPTH 64
/* How much of a bad value is quoted back in a message. */
#define CFG_SHOW_MAX 48
/* Maglev spreads well only when the table dwarfs the backend count. */
#define CFG_MAGLEV_FACTOR 10
/* bind() on a unix socket fails beyond sun_path. */
#define CFG_SOCK_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define DEFAULT_BPFFS "/sys/fs/bpf/edgeplane"
#define DEFAULT_METRICS "127.0.0.1:9464"

enum kind {
	K_MAP,	       /* nested mapping stored in place */
	K_SEQ,	       /* list of mappings stored as array + count */
	K_STR,	       /* char array */
	K_INT,	       /* unsigned integer of size 1/2/4 */
	K_BOOL,	       /* bool */
	K_ENUM,	       /* name -> value of size 1/4 */
	K_PERCENT,     /* 0..100, 2 decimals -> basis points (uint32_t) */
	K_IP,	       /* struct ep_ip */
	K_HOSTPORT,    /* listener address, char array; "" disables */
	K_IP_LIST,     /* list of addresses into a fixed struct ep_ip array + size_t count */
	K_RATIO,       /* 0..1 with at most 4 decimals -> basis points (uint32_t) */
	K_UNSUPPORTED, /* a DESIGN.md key this build does not implement */
};

struct enum_val {
	const char *name;
	unsigned int value;
};

struct schema;

struct field {
	const char *key;
	enum kind kind;
	bool required;
	size_t off, size;  /* destination inside the struct the table describes */
	long long min, max; /* K_INT: value range; K_STR: length range */
	const char *expect; /* overrides the generated "expected ..." text */
	bool (*valid_str)(const char *s);
	/* Returns false for a bad value and may leave a hint for the message. */
	bool (*valid_int)(long long v, char *hint, size_t hintlen);
	const struct enum_val *enums;
	const struct schema *sub; /* K_MAP: the nested table; K_SEQ: the item table */
	size_t count_off;	  /* K_SEQ, K_IP_LIST: where the item count goes */
	/* K_MAP: a bool inside the nested struct set when the section is present */
	bool has_present;
	size_t present_off;
	const char *why;	  /* K_UNSUPPORTED */
};

struct schema {
	const char *what; /* what a mapping of this schema is, for type errors */
	const struct field *fields;
	size_t n_fields;
	/* Only for list items: */
	size_t item_size, line_off, max_items;
	void (*defaults)(void *item);
};

struct ctx {
	yaml_document_t *doc;
	struct ep_cfg_errors *errs;
	size_t cap;
	unsigned char *seen; /* per node: visited once already */
	size_t n_nodes;
	size_t alias_visits;
	bool stop; /* alias budget exhausted or too many errors */
	bool oom;
};

/* The walker keeps one "first seen at line" slot per field on its stack. */
#define MAX_FIELDS 16

#define MEMBER(st, m) .off = offsetof(st, m), .size = sizeof(((st *)0)->m)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ------------------------------------------------------------ */

static void add_err(struct ctx *c, int line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add_err(struct ctx *c, int line, const char *key, const char *fmt, ...)
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

static yaml_node_t *node_get(struct ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

/* Accounts a node visit; false means stop walking (budget exhausted). */
static bool visit(struct ctx *c, yaml_node_t *n)
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
		add_err(c, line_of(n), "",
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
static yaml_node_t *map_get(struct ctx *c, yaml_node_t *n, const char *key)
{
	yaml_node_pair_t *p;

	if (!n || n->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
		if (key_is(node_get(c, p->key), key))
			return node_get(c, p->value);
	return NULL;
}

static yaml_node_t *seq_get(struct ctx *c, yaml_node_t *n, size_t i)
{
	if (!n || n->type != YAML_SEQUENCE_NODE ||
	    i >= (size_t)(n->data.sequence.items.top - n->data.sequence.items.start))
		return NULL;
	return node_get(c, n->data.sequence.items.start[i]);
}

static int line_or(const yaml_node_t *n, int fallback)
{
	return n ? line_of(n) : fallback;
}

/* ---- value checks -------------------------------------------------------- */

static bool valid_node_name(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool valid_abspath(const char *s)
{
	return s[0] == '/' && valid_node_name(s);
}

/* What the kernel's dev_valid_name() accepts, minus characters that need
 * quoting in shells and tools. */
static bool valid_ifname(const char *s)
{
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.@-", *s)))
			return false;
	return true;
}

static bool svc_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* Service names become metric labels and CLI arguments: keep them tame. */
static bool valid_svc_name(const char *s)
{
	size_t i, len = strlen(s);

	if (!len || !svc_alnum(s[0]) || !svc_alnum(s[len - 1]))
		return false;
	for (i = 1; i + 1 < len; i++)
		if (!svc_alnum(s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

static bool valid_prime(long long v, char *hint, size_t hintlen)
{
	long long lo = v - 1;

	if (ep_is_prime((uint32_t)v))
		return true;
	while (lo > 251 && !ep_is_prime((uint32_t)lo))
		lo--;
	if (lo >= 251)
		snprintf(hint, hintlen, " (not prime; nearest primes are %lld and %u)", lo,
			 ep_next_prime((uint32_t)v));
	else
		snprintf(hint, hintlen, " (not prime; the next prime is %u)",
			 ep_next_prime((uint32_t)v));
	return false;
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

/* ---- the schema ---------------------------------------------------------- */

static const struct enum_val xdp_modes[] = {
	{ "native", EP_XDP_NATIVE },
	{ "skb", EP_XDP_SKB },
	{ NULL, 0 },
};

static const struct enum_val fwd_modes[] = {
	{ "stack", EP_FWD_STACK },
	{ "redirect", EP_FWD_REDIRECT },
	{ NULL, 0 },
};

static const struct enum_val roles[] = {
	{ "uplink", EP_ROLE_UPLINK },
	{ "pods", EP_ROLE_PODS },
	{ NULL, 0 },
};

static const struct enum_val protos[] = {
	{ "tcp", IPPROTO_TCP },
	{ "udp", IPPROTO_UDP },
	{ NULL, 0 },
};

static const struct enum_val stickies[] = {
	{ "client", 0 },
	{ "flow", 1 },
	{ NULL, 0 },
};

static const struct field node_fields[] = {
	{ .key = "name", .kind = K_STR, MEMBER(struct ep_config, node_name), .min = 1, .max = 253,
	  .expect = "a node name (1-253 characters)", .valid_str = valid_node_name },
};

static const struct field datapath_fields[] = {
	{ .key = "bpffs", .kind = K_STR, MEMBER(struct ep_cfg_datapath, bpffs), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
	{ .key = "xdp_mode", .kind = K_ENUM, MEMBER(struct ep_cfg_datapath, xdp_mode),
	  .enums = xdp_modes },
	{ .key = "forwarding", .kind = K_ENUM, MEMBER(struct ep_cfg_datapath, forwarding),
	  .enums = fwd_modes },
	{ .key = "conntrack_size", .kind = K_INT, MEMBER(struct ep_cfg_datapath, conntrack_size),
	  .min = 1024, .max = 16777216 },
	{ .key = "maglev_table_size", .kind = K_INT,
	  MEMBER(struct ep_cfg_datapath, maglev_table_size), .min = 251,
	  .max = EP_MAGLEV_MAX_SIZE, .valid_int = valid_prime },
	{ .key = "conntrack_timeout_tcp_s", .kind = K_INT,
	  MEMBER(struct ep_cfg_datapath, ct_timeout_tcp_s), .min = 1, .max = 604800 },
	{ .key = "conntrack_timeout_udp_s", .kind = K_INT,
	  MEMBER(struct ep_cfg_datapath, ct_timeout_udp_s), .min = 1, .max = 86400 },
	{ .key = "cgroup_root", .kind = K_STR, MEMBER(struct ep_cfg_datapath, cgroup_root), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
};

static const struct field iface_fields[] = {
	{ .key = "name", .kind = K_STR, .required = true, MEMBER(struct ep_cfg_iface, name),
	  .min = 1, .max = IFNAMSIZ - 1,
	  .expect = "an interface name (1-15 characters of A-Z a-z 0-9 _ . @ -)",
	  .valid_str = valid_ifname },
	{ .key = "role", .kind = K_ENUM, .required = true, MEMBER(struct ep_cfg_iface, role),
	  .enums = roles },
};

static const struct field backend_fields[] = {
	{ .key = "address", .kind = K_IP, .required = true, MEMBER(struct ep_cfg_backend, addr) },
	{ .key = "port", .kind = K_INT, .required = true, MEMBER(struct ep_cfg_backend, port),
	  .min = 1, .max = 65535 },
	{ .key = "weight", .kind = K_INT, MEMBER(struct ep_cfg_backend, weight), .min = 0,
	  .max = 65535 },
	{ .key = "canary", .kind = K_BOOL, MEMBER(struct ep_cfg_backend, canary) },
};

static const struct field canary_fields[] = {
	{ .key = "percent", .kind = K_PERCENT, MEMBER(struct ep_cfg_canary, percent_bp) },
	{ .key = "sticky", .kind = K_ENUM, MEMBER(struct ep_cfg_canary, sticky_flow),
	  .enums = stickies },
	{ .key = "rollback", .kind = K_UNSUPPORTED,
	  .why = "automatic canary rollback is not in this build" },
};

static void backend_defaults(void *item)
{
	struct ep_cfg_backend *b = item;

	b->weight = 1;
}

static const struct schema backend_schema = {
	.what = "a backend mapping (address, port, weight, canary)",
	.fields = backend_fields,
	.n_fields = ARRAY_LEN(backend_fields),
	.item_size = sizeof(struct ep_cfg_backend),
	.line_off = offsetof(struct ep_cfg_backend, line),
	.max_items = EP_CFG_MAX_BACKENDS_PER_SVC,
	.defaults = backend_defaults,
};

static const struct schema canary_schema = {
	.what = "a mapping (percent, sticky)",
	.fields = canary_fields,
	.n_fields = ARRAY_LEN(canary_fields),
};

static const struct field service_fields[] = {
	{ .key = "name", .kind = K_STR, .required = true, MEMBER(struct ep_cfg_service, name),
	  .min = 1, .max = 63,
	  .expect = "a service name ([a-z0-9]([-a-z0-9_.]*[a-z0-9])?, at most 63 characters)",
	  .valid_str = valid_svc_name },
	{ .key = "vip", .kind = K_IP, .required = true, MEMBER(struct ep_cfg_service, vip) },
	{ .key = "port", .kind = K_INT, .required = true, MEMBER(struct ep_cfg_service, port),
	  .min = 1, .max = 65535 },
	{ .key = "protocol", .kind = K_ENUM, MEMBER(struct ep_cfg_service, proto), .enums = protos },
	{ .key = "backends", .kind = K_SEQ, MEMBER(struct ep_cfg_service, backends),
	  .count_off = offsetof(struct ep_cfg_service, n_backends), .sub = &backend_schema },
	{ .key = "canary", .kind = K_MAP, MEMBER(struct ep_cfg_service, canary),
	  .sub = &canary_schema },
	{ .key = "mirror", .kind = K_UNSUPPORTED, .why = "traffic mirroring is not in this build" },
};

static void service_defaults(void *item)
{
	struct ep_cfg_service *s = item;

	s->proto = IPPROTO_TCP;
}

static const struct schema service_schema = {
	.what = "a service mapping (name, vip, port, protocol, backends, canary)",
	.fields = service_fields,
	.n_fields = ARRAY_LEN(service_fields),
	.item_size = sizeof(struct ep_cfg_service),
	.line_off = offsetof(struct ep_cfg_service, line),
	.max_items = EP_MAX_SERVICES,
	.defaults = service_defaults,
};

static const struct schema iface_schema = {
	.what = "an interface mapping (name, role)",
	.fields = iface_fields,
	.n_fields = ARRAY_LEN(iface_fields),
	.item_size = sizeof(struct ep_cfg_iface),
	.line_off = offsetof(struct ep_cfg_iface, line),
	.max_items = CFG_MAX_IFACES,
};

static const struct schema node_schema = {
	.what = "a mapping (name)",
	.fields = node_fields,
	.n_fields = ARRAY_LEN(node_fields),
};

static const struct schema datapath_schema = {
	.what = "a mapping (bpffs, xdp_mode, forwarding, ...)",
	.fields = datapath_fields,
	.n_fields = ARRAY_LEN(datapath_fields),
};

static const struct field metrics_fields[] = {
	{ .key = "listen", .kind = K_HOSTPORT, MEMBER(struct ep_config, metrics_listen),
	  .expect = "host:port with an IP address (127.0.0.1:9464, [::1]:9464, :9464) "
		    "or \"\" to disable" },
};

static const struct schema metrics_schema = {
	.what = "a mapping (listen)",
	.fields = metrics_fields,
	.n_fields = ARRAY_LEN(metrics_fields),
};

static const struct field control_fields[] = {
	{ .key = "socket", .kind = K_STR, MEMBER(struct ep_config, control_socket), .min = 1,
	  .max = CFG_SOCK_PATH_MAX,
	  .expect = "an absolute path of at most 107 bytes (a unix socket)",
	  .valid_str = valid_abspath },
};

static const struct schema control_schema = {
	.what = "a mapping (socket)",
	.fields = control_fields,
	.n_fields = ARRAY_LEN(control_fields),
};

static bool valid_https_url(const char *s)
{
	return !strncmp(s, "https://", 8) && s[8] && !strpbrk(s, " \t\r\n");
}

static bool valid_namespace(const char *s)
{
	return ep_dns_label_ok(s, strlen(s));
}

static const struct field dns_cache_fields[] = {
	{ .key = "listen", .kind = K_IP, MEMBER(struct ep_cfg_dns, cache.listen) },
	{ .key = "listen6", .kind = K_IP, MEMBER(struct ep_cfg_dns, cache.listen6) },
	{ .key = "preload", .kind = K_STR, MEMBER(struct ep_cfg_dns, cache.preload), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
	{ .key = "ttl", .kind = K_INT, MEMBER(struct ep_cfg_dns, cache.ttl), .min = 1, .max = 86400 },
	{ .key = "domains", .kind = K_STR, MEMBER(struct ep_cfg_dns, cache.domains), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
	{ .key = "refresh_s", .kind = K_INT, MEMBER(struct ep_cfg_dns, cache.refresh_s), .min = 0,
	  .max = 604800 },
	{ .key = "max_loss_percent", .kind = K_INT, MEMBER(struct ep_cfg_dns, cache.max_loss_percent),
	  .min = 0, .max = 100 },
	{ .key = "cache_size", .kind = K_INT, MEMBER(struct ep_cfg_dns, cache.cache_size), .min = 0,
	  .max = 1000000 },
	{ .key = "dnsmasq", .kind = K_STR, MEMBER(struct ep_cfg_dns, cache.dnsmasq), .min = 1,
	  .max = PATH_MAX - 1 },
};

static const struct schema dns_cache_schema = {
	.what = "a mapping (listen, preload, ttl, domains, refresh_s, ...)",
	.fields = dns_cache_fields,
	.n_fields = ARRAY_LEN(dns_cache_fields),
};

static const struct field canary_probe_fields[] = {
	{ .key = "name", .kind = K_STR, .required = true, MEMBER(struct ep_cfg_dns_canary, name),
	  .min = 1, .max = 253, .expect = "a DNS name", .valid_str = ep_dns_name_ok },
	{ .key = "expect", .kind = K_IP_LIST, .required = true,
	  MEMBER(struct ep_cfg_dns_canary, expect), .min = 1, .max = EP_CFG_MAX_EXPECT,
	  .count_off = offsetof(struct ep_cfg_dns_canary, n_expect) },
};

static const struct schema canary_probe_schema = {
	.what = "a mapping (name, expect)",
	.fields = canary_probe_fields,
	.n_fields = ARRAY_LEN(canary_probe_fields),
	.item_size = sizeof(struct ep_cfg_dns_canary),
	.line_off = offsetof(struct ep_cfg_dns_canary, line),
	.max_items = EP_CFG_MAX_CANARIES,
};

static const struct field dns_health_fields[] = {
	{ .key = "probe_interval_ms", .kind = K_INT,
	  MEMBER(struct ep_cfg_dns, health.probe_interval_ms), .min = 50, .max = 60000 },
	{ .key = "timeout_ms", .kind = K_INT, MEMBER(struct ep_cfg_dns, health.timeout_ms), .min = 50,
	  .max = 30000 },
	{ .key = "canaries", .kind = K_SEQ, MEMBER(struct ep_cfg_dns, health.canaries),
	  .count_off = offsetof(struct ep_cfg_dns, health.n_canaries), .sub = &canary_probe_schema },
	{ .key = "trust_anchor", .kind = K_STR, MEMBER(struct ep_cfg_dns, health.trust_anchor),
	  .min = 1, .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
	{ .key = "hijack_ratio", .kind = K_RATIO, MEMBER(struct ep_cfg_dns, health.hijack_ratio_bp) },
};

static const struct schema dns_health_schema = {
	.what = "a mapping (probe_interval_ms, timeout_ms, canaries, ...)",
	.fields = dns_health_fields,
	.n_fields = ARRAY_LEN(dns_health_fields),
};

static const struct enum_val drop_divergent_modes[] = {
	{ "always", EP_DROP_DIV_ALWAYS },
	{ "suspected", EP_DROP_DIV_SUSPECTED },
	{ "never", EP_DROP_DIV_NEVER },
	{ NULL, 0 },
};

static const struct field dns_failover_fields[] = {
	{ .key = "timeout_ratio", .kind = K_RATIO,
	  MEMBER(struct ep_cfg_dns, failover.timeout_ratio_bp) },
	{ .key = "servfail_ratio", .kind = K_RATIO,
	  MEMBER(struct ep_cfg_dns, failover.servfail_ratio_bp) },
	{ .key = "window_ms", .kind = K_INT, MEMBER(struct ep_cfg_dns, failover.window_ms), .min = 100,
	  .max = 600000 },
	{ .key = "min_samples", .kind = K_INT, MEMBER(struct ep_cfg_dns, failover.min_samples),
	  .min = 1, .max = 1000000 },
	{ .key = "failback_after_s", .kind = K_INT,
	  MEMBER(struct ep_cfg_dns, failover.failback_after_s), .min = 0, .max = 86400 },
	{ .key = "drop_divergent", .kind = K_ENUM,
	  MEMBER(struct ep_cfg_dns, failover.drop_divergent), .enums = drop_divergent_modes },
};

static const struct schema dns_failover_schema = {
	.what = "a mapping (timeout_ratio, servfail_ratio, window_ms, ...)",
	.fields = dns_failover_fields,
	.n_fields = ARRAY_LEN(dns_failover_fields),
};

static const struct field dns_fields[] = {
	{ .key = "upstreams", .kind = K_IP_LIST, MEMBER(struct ep_cfg_dns, upstreams), .min = 1,
	  .max = EP_CFG_MAX_UPSTREAMS, .count_off = offsetof(struct ep_cfg_dns, n_upstreams) },
	{ .key = "cache", .kind = K_MAP, .off = 0, .sub = &dns_cache_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_dns, cache.enabled) },
	{ .key = "health", .kind = K_MAP, .off = 0, .sub = &dns_health_schema },
	{ .key = "failover", .kind = K_MAP, .off = 0, .sub = &dns_failover_schema },
};

static const struct schema dns_schema = {
	.what = "a mapping (upstreams, cache, health, failover)",
	.fields = dns_fields,
	.n_fields = ARRAY_LEN(dns_fields),
};

static const struct enum_val k8s_enabled[] = {
	{ "auto", EP_K8S_AUTO },
	{ "true", EP_K8S_ON },
	{ "false", EP_K8S_OFF },
	{ NULL, 0 },
};

static const struct field k8s_fields[] = {
	{ .key = "enabled", .kind = K_ENUM, MEMBER(struct ep_cfg_kubernetes, enabled),
	  .enums = k8s_enabled },
	{ .key = "api_server", .kind = K_STR, MEMBER(struct ep_cfg_kubernetes, api_server), .min = 9,
	  .max = 255, .expect = "an https:// URL", .valid_str = valid_https_url },
	{ .key = "token_file", .kind = K_STR, MEMBER(struct ep_cfg_kubernetes, token_file), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
	{ .key = "ca_file", .kind = K_STR, MEMBER(struct ep_cfg_kubernetes, ca_file), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path", .valid_str = valid_abspath },
	{ .key = "dns_unhealthy_label", .kind = K_STR,
	  MEMBER(struct ep_cfg_kubernetes, dns_unhealthy_label), .min = 1, .max = 253,
	  .expect = "a Kubernetes label key (prefix/name)", .valid_str = ep_label_key_ok },
	{ .key = "event_namespace", .kind = K_STR, MEMBER(struct ep_cfg_kubernetes, event_namespace),
	  .min = 1, .max = 63, .expect = "a namespace name", .valid_str = valid_namespace },
};

static const struct schema k8s_schema = {
	.what = "a mapping (enabled, api_server, token_file, ca_file, dns_unhealthy_label, ...)",
	.fields = k8s_fields,
	.n_fields = ARRAY_LEN(k8s_fields),
};

static const struct field top_fields[] = {
	{ .key = "node", .kind = K_MAP, .off = 0, .sub = &node_schema },
	{ .key = "datapath", .kind = K_MAP, MEMBER(struct ep_config, datapath),
	  .sub = &datapath_schema },
	{ .key = "interfaces", .kind = K_SEQ, MEMBER(struct ep_config, ifaces),
	  .count_off = offsetof(struct ep_config, n_ifaces), .sub = &iface_schema },
	{ .key = "services", .kind = K_SEQ, MEMBER(struct ep_config, services),
	  .count_off = offsetof(struct ep_config, n_services), .sub = &service_schema },
	{ .key = "metrics", .kind = K_MAP, .off = 0, .sub = &metrics_schema },
	{ .key = "control", .kind = K_MAP, .off = 0, .sub = &control_schema },
	{ .key = "dns", .kind = K_MAP, MEMBER(struct ep_config, dns), .sub = &dns_schema,
	  .has_present = true, .present_off = offsetof(struct ep_cfg_dns, configured) },
	{ .key = "kubernetes", .kind = K_MAP, MEMBER(struct ep_config, kubernetes),
	  .sub = &k8s_schema },
	{ .key = "certs", .kind = K_UNSUPPORTED, .why = "certificate sync is not in this build" },
};

_Static_assert(ARRAY_LEN(top_fields) <= MAX_FIELDS && ARRAY_LEN(datapath_fields) <= MAX_FIELDS &&
		       ARRAY_LEN(service_fields) <= MAX_FIELDS &&
		       ARRAY_LEN(backend_fields) <= MAX_FIELDS,
	       "raise MAX_FIELDS");

static const struct schema top_schema = {
	.what = "a mapping of sections (node, datapath, interfaces, services, metrics, control, dns, "
		"kubernetes)",
	.fields = top_fields,
	.n_fields = ARRAY_LEN(top_fields),
};


/* ---- the walker ---------------------------------------------------------- */

static const char *expect_text(const struct field *f, char *buf, size_t len)
{
	const struct enum_val *e;
	size_t o;

	if (f->expect)
		return f->expect;
	switch (f->kind) {
	case K_INT:
		snprintf(buf, len, "%s %lld-%lld",
			 f->valid_int == valid_prime ? "a prime number" : "an integer", f->min,
			 f->max);
		return buf;
	case K_ENUM:
		o = (size_t)snprintf(buf, len, "one of ");
		for (e = f->enums; e->name && o < len; e++)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", e == f->enums ? "" : ", ",
					      e->name);
		return buf;
	case K_BOOL:
		return "true or false";
	case K_PERCENT:
		return "a number 0-100 with at most 2 decimals";
	case K_RATIO:
		return "a ratio above 0 and at most 1, with at most 4 decimals (e.g. 0.2)";
	case K_IP_LIST:
		return "a list of IPv4 or IPv6 addresses";
	case K_IP:
		return "an IPv4 or IPv6 address";
	case K_SEQ:
		return "a list";
	case K_MAP:
		return f->sub->what;
	default:
		return "a string";
	}
}

static void bad_value(struct ctx *c, const struct field *f, const yaml_node_t *n,
		      const char *path, const char *hint)
{
	char eb[160], db[CFG_SHOW_MAX + 16];

	add_err(c, line_of(n), path, "expected %s, got %s%s", expect_text(f, eb, sizeof(eb)),
		desc(n, db, sizeof(db)), hint ? hint : "");
}

/* Scalar text or NULL (after reporting) for fields that need one. */
static const char *scalar_of(struct ctx *c, const struct field *f, const yaml_node_t *n,
			     const char *path, bool plain_only)
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

static void set_int(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
		    const char *path)
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

static void set_bool(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
		     const char *path)
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
	for (i = 0; i < ARRAY_LEN(yaml11); i++) {
		if (!strcasecmp(v, yaml11[i])) {
			bad_value(c, f, n, path,
				  " (only lowercase true/false; YAML 1.1 spellings such as "
				  "yes/no/on/off are not accepted)");
			return;
		}
	}
	bad_value(c, f, n, path, NULL);
}

static void set_enum(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
		     const char *path)
{
	const char *v = scalar_of(c, f, n, path, false);
	const struct enum_val *e;

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

static void set_str(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
		    const char *path)
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

static void set_percent(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
			const char *path)
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

static void set_ratio(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
		      const char *path)
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

static void set_ip(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
		   const char *path)
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

static void set_hostport(struct ctx *c, const struct field *f, const yaml_node_t *n, void *dst,
			 const char *path)
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

static void walk_map(struct ctx *c, const struct schema *s, yaml_node_t *n, void *base,
		     const char *path, bool null_ok);

/* A list of addresses into a fixed array (f->max entries at most). */
static void set_ip_list(struct ctx *c, const struct field *f, yaml_node_t *n, void *base,
			const char *path)
{
	struct ep_ip *arr = (struct ep_ip *)((char *)base + f->off);
	char ipath[sizeof(((struct ep_cfg_error *)0)->key)];
	struct field item = *f;
	size_t i, cnt;

	if (is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		bad_value(c, f, n, path, NULL);
		return;
	}
	cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt > (size_t)f->max || cnt < (size_t)f->min) {
		add_err(c, line_of(n), path, "expected %lld to %lld addresses, got %zu", f->min,
			f->max, cnt);
		return;
	}
	item.kind = K_IP;
	for (i = 0; i < cnt; i++) {
		yaml_node_t *in = node_get(c, n->data.sequence.items.start[i]);

		if (!visit(c, in))
			return;
		if (snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i) >= (int)sizeof(ipath))
			ipath[sizeof(ipath) - 1] = '\0';
		set_ip(c, &item, in, &arr[i], ipath);
		for (size_t j = 0; j < i && arr[i].family; j++)
			if (ep_ip_eq(&arr[i], &arr[j]))
				add_err(c, line_of(in), ipath, "duplicate address (also [%zu])", j);
	}
	memcpy((char *)base + f->count_off, &cnt, sizeof(cnt));
}

static void join(char *buf, size_t len, const char *path, const char *key)
{
	if (snprintf(buf, len, "%s%s%s", path, *path ? "." : "", key) >= (int)len)
		buf[len - 1] = '\0';
}

static void walk_list(struct ctx *c, const struct field *f, yaml_node_t *n, void *base,
		      const char *path)
{
	const struct schema *s = f->sub;
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
		add_err(c, line_of(n), path, "at most %zu entries are allowed, got %zu",
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

static void set_field(struct ctx *c, const struct field *f, yaml_node_t *v, void *base,
		      const char *path)
{
	void *dst = (char *)base + f->off;

	switch (f->kind) {
	case K_MAP:
		if (f->has_present)
			*(bool *)((char *)dst + f->present_off) = true;
		walk_map(c, f->sub, v, dst, path, true);
		break;
	case K_SEQ:
		walk_list(c, f, v, base, path);
		break;
	case K_IP_LIST:
		set_ip_list(c, f, v, base, path);
		break;
	case K_RATIO:
		set_ratio(c, f, v, dst, path);
		break;
	case K_STR:
		set_str(c, f, v, dst, path);
		break;
	case K_INT:
		set_int(c, f, v, dst, path);
		break;
	case K_BOOL:
		set_bool(c, f, v, dst, path);
		break;
	case K_ENUM:
		set_enum(c, f, v, dst, path);
		break;
	case K_PERCENT:
		set_percent(c, f, v, dst, path);
		break;
	case K_IP:
		set_ip(c, f, v, dst, path);
		break;
	case K_HOSTPORT:
		set_hostport(c, f, v, dst, path);
		break;
	case K_UNSUPPORTED:
		break;
	}
}

static void unknown_key(struct ctx *c, const struct schema *s, const yaml_node_t *k,
			const char *path)
{
	char allowed[200], kb[CFG_SHOW_MAX + 16], kpath[sizeof(((struct ep_cfg_error *)0)->key)];
	size_t i, o = 0;

	allowed[0] = '\0';
	for (i = 0; i < s->n_fields && o < sizeof(allowed); i++) {
		if (s->fields[i].kind == K_UNSUPPORTED)
			continue;
		o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s%s", o ? ", " : "",
				      s->fields[i].key);
	}
	show(kb, sizeof(kb), (const char *)k->data.scalar.value, k->data.scalar.length, false);
	join(kpath, sizeof(kpath), path, kb);
	if (!strcmp(kb, "<<"))
		add_err(c, line_of(k), kpath,
			"merge keys ('<<') are not supported; write the keys out (allowed: %s)",
			allowed);
	else
		add_err(c, line_of(k), kpath, "unknown key '%s' (allowed: %s)", kb, allowed);
}

static void walk_map(struct ctx *c, const struct schema *s, yaml_node_t *n, void *base,
		     const char *path, bool null_ok)
{
	char kpath[sizeof(((struct ep_cfg_error *)0)->key)], db[CFG_SHOW_MAX + 16];
	int first_line[MAX_FIELDS] = { 0 };
	yaml_node_pair_t *p;
	size_t i;

	if (null_ok && is_null(n))
		return; /* "datapath:" with nothing under it: all defaults */
	if (n->type != YAML_MAPPING_NODE) {
		add_err(c, line_of(n), path, "expected %s, got %s", s->what, desc(n, db, sizeof(db)));
		return;
	}
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_get(c, p->key), *v = node_get(c, p->value);
		const struct field *f = NULL;

		if (!visit(c, k))
			return;
		if (k->type != YAML_SCALAR_NODE) {
			add_err(c, line_of(k), path, "keys must be plain strings, got %s",
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
			add_err(c, line_of(k), kpath, "duplicate key (first at line %d)",
				first_line[i]);
			continue;
		}
		first_line[i] = line_of(k);
		if (f->kind == K_UNSUPPORTED) {
			add_err(c, line_of(k), kpath,
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
			add_err(c, line_of(n), kpath, "missing required key");
		}
	}
}

/* ---- rules across keys --------------------------------------------------- */

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

static yaml_node_t *svc_node(struct ctx *c, size_t i)
{
	return seq_get(c, map_get(c, yaml_document_get_root_node(c->doc), "services"), i);
}

static yaml_node_t *be_node(struct ctx *c, size_t i, size_t j)
{
	return seq_get(c, map_get(c, svc_node(c, i), "backends"), j);
}

static void check_ifaces(struct ctx *c, const struct ep_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	char key[64];
	bool uplink = false;
	size_t i, j;

	for (i = 0; i < cfg->n_ifaces; i++) {
		const struct ep_cfg_iface *a = &cfg->ifaces[i];

		if (a->name[0] && a->role == EP_ROLE_UPLINK)
			uplink = true;
		for (j = 0; a->name[0] && j < i; j++) {
			if (strcmp(a->name, cfg->ifaces[j].name))
				continue;
			snprintf(key, sizeof(key), "interfaces[%zu].name", i);
			add_err(c, line_or(map_get(c, seq_get(c, map_get(c, root, "interfaces"), i),
						   "name"),
					   a->line),
				key, "duplicate interface '%s' (also interfaces[%zu], line %d)",
				a->name, j, cfg->ifaces[j].line);
			break;
		}
	}
	if (cfg->n_services && !uplink) {
		yaml_node_t *ifn = map_get(c, root, "interfaces");

		add_err(c, line_or(ifn, line_or(map_get(c, root, "services"), 0)), "interfaces",
			"at least one interface with role uplink is required when services are "
			"configured");
	}
}

struct be_ref {
	const struct ep_cfg_backend *be;
	uint8_t proto;
	size_t svc, idx;
};

/* Orders by address:port/proto only: equal means "the same backend". */
static int be_ref_key_cmp(const struct be_ref *a, const struct be_ref *b)
{
	int d;

	if (a->be->addr.family != b->be->addr.family)
		return a->be->addr.family < b->be->addr.family ? -1 : 1;
	d = memcmp(a->be->addr.addr, b->be->addr.addr, sizeof(a->be->addr.addr));
	if (d)
		return d;
	if (a->be->port != b->be->port)
		return a->be->port < b->be->port ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}

/* ...then in file order, so the service reported is the first one too many. */
static int be_ref_cmp(const void *pa, const void *pb)
{
	const struct be_ref *a = pa, *b = pb;
	int d = be_ref_key_cmp(a, b);

	if (d)
		return d;
	if (a->svc != b->svc)
		return a->svc < b->svc ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* The reverse NAT map holds at most EP_MAX_SVCS_PER_BACKEND services per
 * backend address:port/proto. */
static void check_shared_backends(struct ctx *c, const struct ep_config *cfg, size_t total)
{
	struct be_ref *refs;
	size_t i, j, n = 0, start, nsvc;
	char key[96], ep[EP_ENDPOINT_STRLEN];

	if (!total)
		return;
	refs = calloc(total, sizeof(*refs));
	if (!refs) {
		c->oom = true;
		return;
	}
	for (i = 0; i < cfg->n_services; i++) {
		for (j = 0; j < cfg->services[i].n_backends; j++) {
			const struct ep_cfg_backend *b = &cfg->services[i].backends[j];

			if (!b->addr.family || !b->port)
				continue;
			refs[n++] = (struct be_ref){ b, cfg->services[i].proto, i, j };
		}
	}
	qsort(refs, n, sizeof(*refs), be_ref_cmp);
	for (start = 0; start < n; start = i) {
		nsvc = 0;
		for (i = start; i < n && !be_ref_key_cmp(&refs[start], &refs[i]); i++) {
			if (i > start && refs[i].svc == refs[i - 1].svc)
				continue;
			if (++nsvc == EP_MAX_SVCS_PER_BACKEND + 1) {
				const struct ep_cfg_service *s = &cfg->services[refs[i].svc];

				snprintf(key, sizeof(key), "services[%zu].backends[%zu]",
					 refs[i].svc, refs[i].idx);
				add_err(c, line_of(be_node(c, refs[i].svc, refs[i].idx)), key,
					"backend %s/%s is used by more than %d services ('%s' is "
					"number %d; first is '%s')",
					ep_endpoint_str(&refs[i].be->addr, refs[i].be->port, ep,
							sizeof(ep)),
					proto_name(refs[i].proto), EP_MAX_SVCS_PER_BACKEND, s->name,
					EP_MAX_SVCS_PER_BACKEND + 1,
					cfg->services[refs[start].svc].name);
			}
		}
	}
	free(refs);
}

static bool has_error(const struct ctx *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->errs->n; i++)
		if (!strcmp(c->errs->v[i].key, key))
			return true;
	return false;
}

static void check_services(struct ctx *c, const struct ep_config *cfg)
{
	size_t i, j, k, total = 0, max_be = 0, max_svc = 0;
	char key[96], a[EP_IP_STRLEN], ep[EP_ENDPOINT_STRLEN];

	for (i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_service *s = &cfg->services[i];
		yaml_node_t *sn = svc_node(c, i);

		for (j = 0; s->name[0] && j < i; j++) {
			if (strcmp(s->name, cfg->services[j].name))
				continue;
			snprintf(key, sizeof(key), "services[%zu].name", i);
			add_err(c, line_or(map_get(c, sn, "name"), s->line), key,
				"duplicate service name '%s' (also services[%zu], line %d)", s->name,
				j, cfg->services[j].line);
			break;
		}
		for (j = 0; s->vip.family && s->port && j < i; j++) {
			const struct ep_cfg_service *o = &cfg->services[j];

			if (!ep_ip_eq(&s->vip, &o->vip) || s->port != o->port || s->proto != o->proto)
				continue;
			snprintf(key, sizeof(key), "services[%zu].vip", i);
			add_err(c, line_or(map_get(c, sn, "vip"), s->line), key,
				"%s/%s is already used by service '%s' (services[%zu], line %d)",
				ep_endpoint_str(&s->vip, s->port, ep, sizeof(ep)),
				proto_name(s->proto), o->name, j, o->line);
			break;
		}
		for (j = 0; j < s->n_backends; j++) {
			const struct ep_cfg_backend *b = &s->backends[j];
			yaml_node_t *bn;

			if (!b->addr.family)
				continue;
			bn = be_node(c, i, j);
			snprintf(key, sizeof(key), "services[%zu].backends[%zu].address", i, j);
			if (s->vip.family && b->addr.family != s->vip.family)
				add_err(c, line_or(map_get(c, bn, "address"), b->line), key,
					"IPv%d backend for the IPv%d VIP %s: a backend must have the "
					"VIP's address family",
					b->addr.family, s->vip.family, ep_ip_str(&s->vip, a, sizeof(a)));
			else if (s->vip.family && ep_ip_eq(&b->addr, &s->vip))
				add_err(c, line_or(map_get(c, bn, "address"), b->line), key,
					"the backend is the service's own VIP");
			for (k = 0; b->port && k < j; k++) {
				if (!ep_ip_eq(&b->addr, &s->backends[k].addr) ||
				    b->port != s->backends[k].port)
					continue;
				snprintf(key, sizeof(key), "services[%zu].backends[%zu]", i, j);
				add_err(c, line_or(bn, b->line), key,
					"duplicate backend %s (also backends[%zu], line %d)",
					ep_endpoint_str(&b->addr, b->port, ep, sizeof(ep)), k,
					s->backends[k].line);
				break;
			}
		}
		total += s->n_backends;
		if (s->n_backends > max_be) {
			max_be = s->n_backends;
			max_svc = i;
		}
	}
	if (total > EP_MAX_BACKENDS)
		add_err(c, line_or(map_get(c, yaml_document_get_root_node(c->doc), "services"), 0),
			"services", "%zu backends in total; the datapath holds at most %d", total,
			EP_MAX_BACKENDS);
	/* An invalid size was already reported; the default would only confuse. */
	if (max_be && !has_error(c, "datapath.maglev_table_size") &&
	    cfg->datapath.maglev_table_size < CFG_MAGLEV_FACTOR * max_be) {
		snprintf(key, sizeof(key), "services[%zu].backends", max_svc);
		add_err(c, line_or(map_get(c, svc_node(c, max_svc), "backends"), 0), key,
			"service '%s' has %zu backends; datapath.maglev_table_size (%u) must be at "
			"least %d times that (a prime >= %zu, e.g. %u)",
			cfg->services[max_svc].name, max_be, cfg->datapath.maglev_table_size,
			CFG_MAGLEV_FACTOR, CFG_MAGLEV_FACTOR * max_be,
			ep_next_prime((uint32_t)(CFG_MAGLEV_FACTOR * max_be)));
	}
	check_shared_backends(c, cfg, total);
}

static yaml_node_t *dns_node(struct ctx *c, const char *a, const char *b)
{
	yaml_node_t *n = map_get(c, yaml_document_get_root_node(c->doc), "dns");

	if (a)
		n = map_get(c, n, a);
	if (b)
		n = map_get(c, n, b);
	return n;
}

static void check_dns(struct ctx *c, const struct ep_config *cfg)
{
	const struct ep_cfg_dns *d = &cfg->dns;
	char a[EP_IP_STRLEN];

	if (!d->configured)
		return;
	if (!d->n_upstreams && !has_error(c, "dns.upstreams"))
		add_err(c, line_or(dns_node(c, NULL, NULL), 0), "dns.upstreams",
			"at least one upstream resolver is required in a dns section");
	for (size_t i = 0; d->cache.enabled && i < d->n_upstreams; i++) {
		if (ep_ip_eq(&d->upstreams[i], &d->cache.listen))
			add_err(c, line_or(dns_node(c, "cache", "listen"), 0), "dns.cache.listen",
				"%s is also an upstream: the cache must listen on its own address",
				ep_ip_str(&d->cache.listen, a, sizeof(a)));
		if (d->cache.listen6.family && ep_ip_eq(&d->upstreams[i], &d->cache.listen6))
			add_err(c, line_or(dns_node(c, "cache", "listen6"), 0), "dns.cache.listen6",
				"%s is also an upstream: the cache must listen on its own address",
				ep_ip_str(&d->cache.listen6, a, sizeof(a)));
	}
	if (d->cache.enabled && d->cache.listen6.family && !has_error(c, "dns.cache.listen6")) {
		if (d->cache.listen6.family != EP_FAMILY_V6)
			add_err(c, line_or(dns_node(c, "cache", "listen6"), 0), "dns.cache.listen6",
				"must be an IPv6 address (dns.cache.listen takes the IPv4 one)");
		else if (d->cache.listen.family == EP_FAMILY_V6)
			add_err(c, line_or(dns_node(c, "cache", "listen6"), 0), "dns.cache.listen6",
				"dns.cache.listen is already IPv6; listen6 is for an IPv6 address next to "
				"an IPv4 listen");
	}
	/* Failed over, a query can only be redirected to a cache address of its
	 * own family: an upstream the cache cannot stand in for would keep
	 * failing, silently. */
	for (size_t i = 0; d->cache.enabled && i < d->n_upstreams; i++) {
		int fam = d->upstreams[i].family;

		if (d->cache.listen.family != fam && d->cache.listen6.family != fam) {
			add_err(c, line_or(dns_node(c, "upstreams", NULL), 0), "dns.upstreams",
				"%s is an IPv%c upstream but the cache has no IPv%c address to stand in "
				"for it: set dns.cache.%s",
				ep_ip_str(&d->upstreams[i], a, sizeof(a)), fam == EP_FAMILY_V6 ? '6' : '4',
				fam == EP_FAMILY_V6 ? '6' : '4', fam == EP_FAMILY_V6 ? "listen6" : "listen");
			break;
		}
	}
	/* A bad trust anchor is a config error like any other: caught by
	 * --check-config and on reload, not only when the prober starts. */
	if (d->health.trust_anchor[0] && !has_error(c, "dns.health.trust_anchor")) {
		struct ep_dnssec_anchor *an = NULL;
		char why[512] = "";

		if (ep_dnssec_anchor_load(d->health.trust_anchor, &an, why, sizeof(why)))
			add_err(c, line_or(dns_node(c, "health", "trust_anchor"), 0),
				"dns.health.trust_anchor", "%s", why);
		ep_dnssec_anchor_free(an);
	}
	if (d->health.timeout_ms >= d->failover.window_ms && !has_error(c, "dns.health.timeout_ms"))
		add_err(c, line_or(dns_node(c, "health", "timeout_ms"), 0), "dns.health.timeout_ms",
			"must be shorter than dns.failover.window_ms (%u ms), or no timeout could be "
			"counted within a window",
			d->failover.window_ms);
}

static void default_node_name(struct ctx *c, struct ep_config *cfg)
{
	const char *env = getenv("NODE_NAME");
	char host[256];

	if (cfg->node_name[0])
		return;
	if (env && *env) {
		if (strlen(env) > 253 || !valid_node_name(env))
			add_err(c, 0, "node.name",
				"not set, and $NODE_NAME is not a valid default (1-253 characters)");
		else
			snprintf(cfg->node_name, sizeof(cfg->node_name), "%s", env);
		return;
	}
	if (gethostname(host, sizeof(host)) || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(cfg->node_name, sizeof(cfg->node_name), "%.253s", host);
}

void ep_cfg_kubernetes_defaults(struct ep_cfg_kubernetes *k)
{
	k->enabled = EP_K8S_AUTO;
	snprintf(k->token_file, sizeof(k->token_file), "%s", EP_K8S_DEFAULT_TOKEN_FILE);
	snprintf(k->ca_file, sizeof(k->ca_file), "%s", EP_K8S_DEFAULT_CA_FILE);
	snprintf(k->dns_unhealthy_label, sizeof(k->dns_unhealthy_label), "%s",
		 EP_K8S_DEFAULT_LABEL);
	snprintf(k->event_namespace, sizeof(k->event_namespace), "%s", EP_K8S_DEFAULT_EVENT_NS);
}

static void set_defaults(struct ep_config *cfg)
{
	snprintf(cfg->datapath.bpffs, sizeof(cfg->datapath.bpffs), "%s", DEFAULT_BPFFS);
	cfg->datapath.xdp_mode = EP_XDP_NATIVE;
	cfg->datapath.forwarding = EP_FWD_STACK;
	cfg->datapath.conntrack_size = EP_CT_DEFAULT_SIZE;
	cfg->datapath.maglev_table_size = EP_MAGLEV_DEFAULT_SIZE;
	cfg->datapath.ct_timeout_tcp_s = 3600;
	cfg->datapath.ct_timeout_udp_s = 60;
	snprintf(cfg->metrics_listen, sizeof(cfg->metrics_listen), "%s", DEFAULT_METRICS);
	snprintf(cfg->control_socket, sizeof(cfg->control_socket), "%s", EP_DEFAULT_SOCKET);
	/* dns: NodeLocal DNSCache's link-local address; TTL 30 s (DESIGN.md). */
	ep_ip_parse("169.254.20.10", &cfg->dns.cache.listen);
	snprintf(cfg->dns.cache.preload, sizeof(cfg->dns.cache.preload), "%s",
		 "/var/lib/edgeplane/preload.hosts");
	snprintf(cfg->dns.cache.dnsmasq, sizeof(cfg->dns.cache.dnsmasq), "%s", "dnsmasq");
	cfg->dns.cache.ttl = 30;
	cfg->dns.cache.refresh_s = 300;
	cfg->dns.cache.max_loss_percent = 10;
	/* 0: dnsmasq sizes its hash table from cache-size, and loading a big
	 * hosts file into a table sized for 10000 takes seconds (4.5 s for 128k
	 * names, 0.36 s with 0; tests/bench/cache_serve.sh). Its only upstream
	 * is the agent's local policy responder: caching that gains nothing. */
	cfg->dns.cache.cache_size = 0;
	cfg->dns.health.probe_interval_ms = 200;
	cfg->dns.health.timeout_ms = 500;
	cfg->dns.health.hijack_ratio_bp = 2000;
	cfg->dns.failover.timeout_ratio_bp = 2000;
	cfg->dns.failover.servfail_ratio_bp = 2000;
	cfg->dns.failover.window_ms = 1000;
	cfg->dns.failover.min_samples = 5;
	cfg->dns.failover.failback_after_s = 30;
	ep_cfg_kubernetes_defaults(&cfg->kubernetes);
}

/* libyaml's own words, at its line: the best hint there is for a syntax error. */
static void syntax_error(struct ctx *c, const yaml_parser_t *p)
{
	int line = (int)p->problem_mark.line + 1;

	if (p->error == YAML_MEMORY_ERROR) {
		c->oom = true;
		add_err(c, 0, "", "out of memory while parsing");
		return;
	}
	if (p->error == YAML_READER_ERROR)
		line = (int)p->mark.line + 1; /* the reader has no problem_mark */
	if (p->context && (int)p->context_mark.line + 1 != line)
		add_err(c, line, "", "syntax error: %s (%s that started at line %d)",
			p->problem ? p->problem : "invalid YAML", p->context,
			(int)p->context_mark.line + 1);
	else if (p->context)
		add_err(c, line, "", "syntax error: %s (%s)",
			p->problem ? p->problem : "invalid YAML", p->context);
	else
		add_err(c, line, "", "syntax error: %s", p->problem ? p->problem : "invalid YAML");
}

/*
 * libyaml's scanner does work proportional to the flow nesting depth for every
 * token, so "[[[[...]]]]" filling 4 MiB takes hours to load. A first pass over
 * the event stream stops at an absurd depth long before that. Syntax errors
 * are left to the real load, which reports them.
 */
static bool too_deep(struct ctx *c, const char *text, size_t len)
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
				add_err(c, (int)ev.start_mark.line + 1, "",
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

static void validate(struct ctx *c, yaml_document_t *doc, struct ep_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	char db[CFG_SHOW_MAX + 16];

	c->doc = doc;
	c->n_nodes = (size_t)(doc->nodes.top - doc->nodes.start);
	c->seen = calloc(c->n_nodes ? c->n_nodes : 1, 1);
	if (!c->seen) {
		c->oom = true;
		add_err(c, 0, "", "out of memory");
		return;
	}
	if (is_null(root) || (root->type == YAML_SCALAR_NODE && !root->data.scalar.length)) {
		add_err(c, 0, "", "configuration is empty");
	} else if (root->type != YAML_MAPPING_NODE) {
		add_err(c, line_of(root), "", "expected %s at the top, got %s", top_schema.what,
			desc(root, db, sizeof(db)));
	} else if (visit(c, root)) {
		walk_map(c, &top_schema, root, cfg, "", false);
		if (!c->stop) {
			default_node_name(c, cfg);
			check_ifaces(c, cfg);
			check_services(c, cfg);
			check_dns(c, cfg);
		}
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
	struct ctx c = { .errs = errs };
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	bool loaded = false;

	if (!out || !errs)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(errs, 0, sizeof(*errs));
	if (len > CFG_MAX_FILE) {
		add_err(&c, 0, "", "configuration is larger than %u MiB", CFG_MAX_FILE >> 20);
		return -EINVAL;
	}
	if (!text) {
		text = "";
		len = 0;
	}
	if (too_deep(&c, text, len))
		return -EINVAL;
	set_defaults(out);
	if (!yaml_parser_initialize(&parser)) {
		add_err(&c, 0, "", "out of memory");
		memset(out, 0, sizeof(*out));
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(&c, &parser);
	} else {
		loaded = true;
		if (!yaml_document_get_root_node(&doc)) {
			add_err(&c, 0, "", "configuration is empty");
		} else if (!yaml_parser_load(&parser, &extra)) {
			syntax_error(&c, &parser);
		} else {
			if (yaml_document_get_root_node(&extra))
				add_err(&c, (int)extra.start_mark.line + 1, "",
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

static void read_error(struct ep_cfg_errors *errs, const char *what, int err)
{
	struct ctx c = { .errs = errs };
	char buf[128];

	add_err(&c, 0, "", "%s: %s", what, strerror_r(err, buf, sizeof(buf)));
}

int ep_config_load(const char *path, struct ep_config *out, struct ep_cfg_errors *errs)
{
	size_t cap = 64 * 1024, n = 0;
	char *buf = NULL;
	int fd, rc;

	if (!out || !errs)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(errs, 0, sizeof(*errs));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		read_error(errs, "cannot open the configuration", -rc);
		return rc;
	}
	for (;;) {
		ssize_t r;

		if (n == cap || !buf) {
			char *nb;

			if (buf)
				cap *= 2;
			if (cap > CFG_MAX_FILE + 1)
				cap = CFG_MAX_FILE + 1;
			nb = realloc(buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				read_error(errs, "cannot read the configuration", ENOMEM);
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			read_error(errs, "cannot read the configuration", -rc);
			goto out;
		}
		if (!r)
			break;
		n += (size_t)r;
		if (n > CFG_MAX_FILE) {
			struct ctx c = { .errs = errs };

			rc = -EFBIG;
			add_err(&c, 0, "", "configuration is larger than %u MiB", CFG_MAX_FILE >> 20);
			goto out;
		}
	}
	rc = ep_config_parse(buf, n, out, errs);
out:
	free(buf);
	close(fd);
	return rc;
}

void ep_config_free(struct ep_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->n_services; i++)
		free(cfg->services[i].backends);
	free(cfg->services);
	free(cfg->ifaces);
	free(cfg->dns.health.canaries);
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

const struct ep_cfg_service *ep_config_find_service(const struct ep_config *cfg, const char *name)
{
	size_t i;

	if (!cfg || !name)
		return NULL;
	for (i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg->services[i].name, name))
			return &cfg->services[i];
	return NULL;
}
