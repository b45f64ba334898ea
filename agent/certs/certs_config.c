/*
 * Config section of certificate sync: certs[], one entry per set (a leaf
 * with its key, or a trust bundle), its source, where it is installed, what
 * it must be, and how its consumer is told. The cross-key
 * rules keep entries from stepping on each other: unique names (metric
 * labels), unique targets, and no target inside a source it would then
 * watch itself write.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config_schema.h"
#include "dns_name.h"

static bool valid_cert_name(const char *s)
{
	size_t len = strlen(s);

	if (!len || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && (!strchr("-_.", ch) || !i || i + 1 == len))
			return false;
	}
	return true;
}

static bool valid_san(const char *s)
{
	return ep_cfg_valid_text(s) && !strchr(s, ' ');
}

static bool valid_hostport(const char *s)
{
	const char *colon = strrchr(s, ':');

	return ep_cfg_valid_text(s) && colon && colon != s && colon[1] && !strchr(s, ' ') &&
	       strspn(colon + 1, "0123456789") == strlen(colon + 1) && strlen(colon + 1) <= 5;
}

/* namespace (a DNS label) / name (a DNS subdomain), as the API server takes them. */
static bool valid_secret_ref(const char *s)
{
	const char *slash = strchr(s, '/');
	size_t nl;

	if (!slash || strchr(slash + 1, '/'))
		return false;
	nl = (size_t)(slash - s);
	return nl && nl <= 63 && ep_dns_label_ok(s, nl) && slash[1] &&
	       ep_dns_subdomain_ok(slash + 1, strlen(slash + 1));
}

static const struct ep_cfg_enum signals[] = {
	{ "HUP", SIGHUP }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "QUIT", SIGQUIT }, { "TERM", SIGTERM }, { NULL, 0 },
};

/* A signer name is a DNS subdomain, a slash, and a path segment. */
static bool valid_signer(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash && slash != s && slash[1] && !strchr(s, ' ') && ep_cfg_valid_text(s) &&
	       ep_dns_subdomain_ok(s, (size_t)(slash - s));
}

static bool valid_cn(const char *s)
{
	return ep_cfg_valid_text(s);
}

static const struct ep_cfg_field csr_fields[] = {
	{ .key = "signer_name", .kind = EP_CFG_STR, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_cert_csr, signer_name), .min = 3, .max = 253,
	  .expect = "a signer name (DOMAIN/PATH, e.g. example.com/edge-mtls)",
	  .valid_str = valid_signer },
	{ .key = "common_name", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_cert_csr, common_name), .min = 1, .max = 63,
	  .expect = "a subject common name (at most 63 characters)", .valid_str = valid_cn },
	{ .key = "expiration_seconds", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_cert_csr, expiration_seconds), .min = 600,
	  .max = 31536000 },
	{ .key = "renew_at", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_cert_csr, renew_at_bp) },
	{ .key = "renew_jitter", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_cert_csr, renew_jitter_bp) },
	{ .key = "server_auth", .kind = EP_CFG_BOOL,
	  EP_CFG_MEMBER(struct ep_cfg_cert_csr, server_auth) },
};

static const struct ep_cfg_schema csr_schema = {
	.what = "a mapping (signer_name, common_name, expiration_seconds, renew_at, "
		"renew_jitter, server_auth)",
	.fields = csr_fields,
	.n_fields = EP_CFG_ARRAY_LEN(csr_fields),
};

static const struct ep_cfg_field source_fields[] = {
	{ .key = "dir", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_cert_source, dir),
	  .min = 1, .max = PATH_MAX - 1, .expect = "an absolute path",
	  .valid_str = ep_cfg_valid_abspath },
	{ .key = "secret", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_cert_source, secret),
	  .min = 3, .max = 317, .expect = "NAMESPACE/NAME of a Secret",
	  .valid_str = valid_secret_ref },
	{ .key = "csr", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_cert_source, csr),
	  .sub = &csr_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_cert_csr, present) },
};

static const struct ep_cfg_schema source_schema = {
	.what = "a mapping with one source (dir, secret or csr)",
	.fields = source_fields,
	.n_fields = EP_CFG_ARRAY_LEN(source_fields),
};

static const struct ep_cfg_field expect_fields[] = {
	{ .key = "san", .kind = EP_CFG_STR_LIST,
	  .off = offsetof(struct ep_cfg_cert, expect.san) - offsetof(struct ep_cfg_cert, expect),
	  .size = sizeof(((struct ep_cfg_cert *)0)->expect.san[0]),
	  .count_off = offsetof(struct ep_cfg_cert, expect.n_san) -
		       offsetof(struct ep_cfg_cert, expect),
	  .max = EP_CFG_MAX_CERT_SAN, .expect = "a list of DNS names, IP addresses or URIs",
	  .valid_str = valid_san },
};

static const struct ep_cfg_schema expect_schema = {
	.what = "a mapping (san)",
	.fields = expect_fields,
	.n_fields = EP_CFG_ARRAY_LEN(expect_fields),
};

static const struct ep_cfg_field reload_fields[] = {
	{ .key = "signal", .kind = EP_CFG_ENUM, EP_CFG_MEMBER(struct ep_cfg_cert_reload, signal),
	  .enums = signals },
	{ .key = "pidfile", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_cert_reload, pidfile),
	  .min = 1, .max = PATH_MAX - 1, .expect = "an absolute path",
	  .valid_str = ep_cfg_valid_abspath },
	{ .key = "command", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_cert_reload, command),
	  .min = 1, .max = 1023, .expect = "a shell command line", .valid_str = ep_cfg_valid_text },
	{ .key = "timeout_ms", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_cert_reload, timeout_ms), .min = 10, .max = 600000 },
	{ .key = "verify", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_cert_reload, verify),
	  .min = 3, .max = 127, .expect = "HOST:PORT of the consumer's TLS listener",
	  .valid_str = valid_hostport },
};

static const struct ep_cfg_schema reload_schema = {
	.what = "a mapping (signal, pidfile, command, timeout_ms, verify)",
	.fields = reload_fields,
	.n_fields = EP_CFG_ARRAY_LEN(reload_fields),
};

static const struct ep_cfg_field cert_fields[] = {
	{ .key = "name", .kind = EP_CFG_STR, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_cert, name), .min = 1, .max = 63,
	  .expect = "a name ([a-z0-9]([-a-z0-9_.]*[a-z0-9])?, at most 63 characters)",
	  .valid_str = valid_cert_name },
	{ .key = "source", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_cert, source),
	  .sub = &source_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_cert_source, present) },
	{ .key = "bundle", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_cert, bundle),
	  .sub = &source_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_cert_source, present) },
	{ .key = "target", .kind = EP_CFG_STR, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_cert, target), .min = 2, .max = PATH_MAX - 64,
	  .expect = "an absolute path", .valid_str = ep_cfg_valid_abspath },
	{ .key = "trust", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_cert, trust), .min = 1,
	  .max = PATH_MAX - 1, .expect = "an absolute path to a PEM CA bundle",
	  .valid_str = ep_cfg_valid_abspath },
	{ .key = "expect", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_cert, expect),
	  .sub = &expect_schema },
	{ .key = "reload", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_cert, reload),
	  .sub = &reload_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_cert_reload, present) },
	{ .key = "skew_s", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_cert, skew_s), .min = 0,
	  .max = 86400 },
	{ .key = "warn_before_s", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_cert, warn_before_s), .min = 0, .max = 31536000 },
	{ .key = "max_bytes", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_cert, max_bytes),
	  .min = 1024, .max = 16 << 20 },
	{ .key = "settle_ms", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_cert, settle_ms),
	  .min = 0, .max = 10000 },
};

_Static_assert(EP_CFG_ARRAY_LEN(cert_fields) <= EP_CFG_MAX_FIELDS, "raise EP_CFG_MAX_FIELDS");

static void cert_defaults(void *item)
{
	struct ep_cfg_cert *c = item;

	c->reload.signal = SIGHUP;
	c->reload.timeout_ms = 5000;
	c->skew_s = 60;
	c->warn_before_s = 7 * 86400;
	c->max_bytes = 256 << 10;
	c->settle_ms = 5;
	c->source.csr.renew_at_bp = 7000;
	c->source.csr.renew_jitter_bp = 2000;
}

static const struct ep_cfg_schema cert_schema = {
	.what = "a certificate set mapping (name, source or bundle, target, expect, reload, ...)",
	.fields = cert_fields,
	.n_fields = EP_CFG_ARRAY_LEN(cert_fields),
	.item_size = sizeof(struct ep_cfg_cert),
	.line_off = offsetof(struct ep_cfg_cert, line),
	.max_items = EP_CFG_MAX_CERTS,
	.defaults = cert_defaults,
};

/* a == b, or b lies under a. */
static bool path_under(const char *a, const char *b)
{
	size_t n = strlen(a);

	while (n > 1 && a[n - 1] == '/')
		n--;
	return !strncmp(a, b, n) && (b[n] == '\0' || b[n] == '/');
}

static void certs_check(struct ep_cfg_ctx *c, struct ep_config *cfg)
{
	char key[160];

	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct ep_cfg_cert *e = &cfg->certs[i];
		const struct ep_cfg_cert_source *src = e->source.present ? &e->source : &e->bundle;
		const struct ep_cfg_cert_reload *r = &e->reload;

		snprintf(key, sizeof(key), "certs[%zu]", i);
		if (e->source.present == e->bundle.present) {
			ep_cfg_err(c, e->line, key, "exactly one of source and bundle is required");
			continue;
		}
		snprintf(key, sizeof(key), "certs[%zu].%s", i,
			 e->source.present ? "source" : "bundle");
		if (!!src->dir[0] + !!src->secret[0] + src->csr.present != 1) {
			if (!ep_cfg_has_error(c, key))
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "exactly one of dir, secret and csr is required");
			continue;
		}
		if (src->csr.present) {
			const struct ep_cfg_cert_csr *q = &src->csr;

			snprintf(key, sizeof(key), "certs[%zu].bundle.csr", i);
			if (e->bundle.present)
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "a CSR issues a leaf certificate; a bundle comes from dir or secret");
			snprintf(key, sizeof(key), "certs[%zu].source.csr.renew_at", i);
			if (q->renew_at_bp + q->renew_jitter_bp > 9500)
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "renew_at + renew_jitter must be at most 0.95 (renewal "
					   "before the certificate expires)");
			snprintf(key, sizeof(key), "certs[%zu].trust", i);
			if (!e->trust[0])
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "a csr source needs trust: the signer's CA bundle the "
					   "issued certificate must chain to");
		}
		if (e->bundle.present && e->expect.n_san) {
			snprintf(key, sizeof(key), "certs[%zu].expect", i);
			ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
				   "a bundle holds CA certificates only; expect applies to a source");
		}
		if (src->dir[0] && (path_under(src->dir, e->target) || path_under(e->target, src->dir))) {
			snprintf(key, sizeof(key), "certs[%zu].target", i);
			ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
				   "the target and the source directory must not contain each other");
		}
		snprintf(key, sizeof(key), "certs[%zu].reload", i);
		if (r->present) {
			if (r->command[0] && r->pidfile[0])
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "either pidfile (with signal) or command, not both");
			else if (!r->command[0] && !r->pidfile[0])
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "pidfile (with signal) or command is required");
		}
		for (size_t j = 0; j < i; j++) {
			const struct ep_cfg_cert *o = &cfg->certs[j];

			if (!strcmp(o->name, e->name)) {
				snprintf(key, sizeof(key), "certs[%zu].name", i);
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "duplicate name '%s' (also certs[%zu])", e->name, j);
			}
			if (path_under(o->target, e->target) || path_under(e->target, o->target)) {
				snprintf(key, sizeof(key), "certs[%zu].target", i);
				ep_cfg_err(c, ep_cfg_line(c, key, e->line), key,
					   "overlaps the target of certs[%zu]", j);
			}
		}
	}
}

const struct ep_cfg_section ep_cfg_certs_section = {
	.field = { .key = "certs", .kind = EP_CFG_SEQ, EP_CFG_MEMBER(struct ep_config, certs),
		   .count_off = offsetof(struct ep_config, n_certs), .sub = &cert_schema },
	.check = certs_check,
};
