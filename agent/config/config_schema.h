/*
 * What a config section gives the engine (config.c): a table of fields
 * describing its keys, defaults, and a check for rules across keys. Sections
 * live next to the code that uses them (agent/core/core_config.c,
 * agent/datapath/datapath_config.c, agent/lb/services_config.c,
 * agent/dns/dns_config.c, agent/k8s/k8s_config.c) and are listed once in
 * agent/config/sections.c. The engine owns YAML, types, error collection and
 * freeing; a section never sees a YAML node, only key paths.
 */
#ifndef EP_CONFIG_SCHEMA_H
#define EP_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum ep_cfg_kind {
	EP_CFG_MAP,	    /* nested mapping stored in place */
	EP_CFG_SEQ,	    /* list of mappings stored as array + count */
	EP_CFG_STR,	    /* char array */
	EP_CFG_INT,	    /* unsigned integer of size 1/2/4 */
	EP_CFG_BOOL,	    /* bool */
	EP_CFG_ENUM,	    /* name -> value of size 1/4 */
	EP_CFG_PERCENT,	    /* 0..100, 2 decimals -> basis points (uint32_t) */
	EP_CFG_IP,	    /* struct ep_ip */
	EP_CFG_HOSTPORT,    /* listener address, char array; "" disables */
	EP_CFG_IP_LIST,	    /* list of addresses into a fixed struct ep_ip array + size_t count */
	EP_CFG_RATIO,	    /* 0..1 with at most 4 decimals -> basis points (uint32_t) */
	EP_CFG_PERCENT_LIST, /* list of rising percents -> uint32_t basis points + size_t count */
	EP_CFG_UNSUPPORTED, /* a documented key (docs/config.md) this build does not implement */
	EP_CFG_STR_LIST,    /* list of strings into a fixed char[N][size] array + size_t count;
			     * max: most items; each item 1..size-1 long, valid_str applies */
};

struct ep_cfg_enum {
	const char *name;
	unsigned int value;
};

struct ep_cfg_schema;

struct ep_cfg_field {
	const char *key;
	enum ep_cfg_kind kind;
	bool required;
	size_t off, size;   /* destination inside the struct the table describes */
	long long min, max; /* INT: value range; STR: length range; IP_LIST: count range */
	const char *expect; /* overrides the generated "expected ..." text */
	const char *noun;   /* INT: what the number is, default "an integer" */
	bool (*valid_str)(const char *s);
	/* Returns false for a bad value and may leave a hint for the message. */
	bool (*valid_int)(long long v, char *hint, size_t hintlen);
	const struct ep_cfg_enum *enums; /* NULL-terminated */
	const struct ep_cfg_schema *sub; /* MAP: the nested table; SEQ: the item table */
	size_t count_off;		 /* SEQ, IP_LIST: where the item count (size_t) goes */
	/* MAP: a bool inside the nested struct set when the section is present */
	bool has_present;
	size_t present_off;
	const char *why; /* UNSUPPORTED */
};

struct ep_cfg_schema {
	const char *what; /* what a mapping of this schema is, for type errors */
	const struct ep_cfg_field *fields;
	size_t n_fields;
	/* Only for list items: */
	size_t item_size, line_off, max_items;
	void (*defaults)(void *item);
};

/* The walk state; opaque to sections. */
struct ep_cfg_ctx;

/*
 * One top-level key. field.key is the section's key and field.off/size place
 * it in struct ep_config. defaults runs before the walk on the whole config;
 * check runs after a walk that did not stop, in table order, with every
 * section's values (defaults where the file said nothing).
 */
struct ep_cfg_section {
	struct ep_cfg_field field;
	void (*defaults)(struct ep_config *cfg);
	void (*check)(struct ep_cfg_ctx *c, struct ep_config *cfg);
};

/* sections.c: every section, in the order of the "allowed:" lists. */
extern const struct ep_cfg_section *const ep_cfg_sections[];
extern const size_t ep_cfg_n_sections;

/* The walker keeps one "first seen at line" slot per field on its stack. */
#define EP_CFG_MAX_FIELDS 16

#define EP_CFG_MEMBER(st, m) .off = offsetof(st, m), .size = sizeof(((st *)0)->m)
#define EP_CFG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Records an error at LINE (0: unknown) for key path KEY. */
void ep_cfg_err(struct ep_cfg_ctx *c, int line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Some error was already recorded for exactly KEY. */
bool ep_cfg_has_error(const struct ep_cfg_ctx *c, const char *key);
/* Flags an allocation failure in a check; the parse then fails with -ENOMEM. */
void ep_cfg_oom(struct ep_cfg_ctx *c);
/*
 * The line of the value at key path PATH ("services[2].backends[0].port",
 * the form errors use), or FALLBACK when the file has no such key.
 */
int ep_cfg_line(struct ep_cfg_ctx *c, const char *path, int fallback);

/* String checks shared by several sections. */
bool ep_cfg_valid_text(const char *s);	  /* no control characters */
bool ep_cfg_valid_abspath(const char *s); /* absolute, no control characters */
bool ep_cfg_valid_ifname(const char *s);  /* an interface name (length: the field's) */

#endif
