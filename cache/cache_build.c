#include "cache_build.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns_name.h"
#include "dns_query.h"
#include "hosts_file.h"
#include "resolver_pool.h"
#include "snapshot.h"
#include "util.h"

/* The outcome of one name's query of one type. */
enum q_outcome {
	QO_PENDING = 0,
	QO_ADDRS,
	QO_NODATA,
	QO_NXDOMAIN,
	QO_SERVFAIL,
	QO_REFUSED,
	QO_TIMEOUT,
};

enum name_outcome {
	NO_RESOLVED = 0,
	NO_NODATA,
	NO_NXDOMAIN,
	NO_SERVFAIL,
	NO_REFUSED,
	NO_TIMEOUT,
};

static const char *const name_outcome_str[] = {
	[NO_RESOLVED] = "resolved", [NO_NODATA] = "nodata",   [NO_NXDOMAIN] = "nxdomain",
	[NO_SERVFAIL] = "servfail", [NO_REFUSED] = "refused", [NO_TIMEOUT] = "timeout",
};

struct name_state {
	struct ep_dns_addr *addrs;
	uint32_t n_addrs, cap;
	uint8_t pending;	/* queries still out (A, AAAA) */
	uint8_t q[2];		/* enum q_outcome for A and AAAA */
	uint8_t outcome;	/* enum name_outcome once pending == 0 */
	bool chain_error;	/* a CNAME loop or overlong chain made it fail */
};

/* One query's context: which name and type, and its CNAME chain once it has one. */
struct qctx {
	uint32_t idx;
	uint8_t t; /* 0 = A, 1 = AAAA */
	struct ep_dnsq_chain *chain;
};

struct build {
	const struct ep_cache_build_opts *o;
	struct ep_cache_build_result *r;
	FILE *out;	/* messages */
	struct ep_nameset names;
	struct name_state *st;
	struct ep_resolver *res;
	size_t n_res;
	struct ep_pool *pool;
	size_t next_q;		/* next (name, type) to submit: idx * 2 + t */
	size_t done_names;
	size_t failed_names;
	uint64_t final_timeouts; /* queries that used every attempt */
	int err;		/* first internal error (-ENOMEM ...) */
	double t0;
	/* progress */
	bool tty;
	double last_progress;
	bool progress_shown;
};

static const uint16_t qtypes[2] = { LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA };

static void set_error(struct ep_cache_build_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct ep_cache_build_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

void ep_cache_build_opts_init(struct ep_cache_build_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->concurrency = EP_CACHE_BUILD_CONCURRENCY;
	o->timeout_ms = EP_CACHE_BUILD_TIMEOUT_MS;
	o->retries = EP_CACHE_BUILD_RETRIES;
	o->max_loss_pct = EP_CACHE_BUILD_MAX_LOSS;
	o->max_change_pct = EP_CACHE_BUILD_MAX_CHANGE;
}

static void bad_line(void *ctx, unsigned line, const char *text, const char *why)
{
	struct build *b = ctx;

	fprintf(b->out, "%s:%u: %s: \"%.80s\" (skipped)\n", b->o->domains_path, line, why, text);
}

static int add_addrs(struct name_state *ns, const struct ep_dnsq_answer *a)
{
	if (ns->n_addrs + a->n_addrs > ns->cap) {
		uint32_t ncap = (uint32_t)(ns->n_addrs + a->n_addrs);
		struct ep_dns_addr *na = realloc(ns->addrs, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		ns->addrs = na;
		ns->cap = ncap;
	}
	memcpy(ns->addrs + ns->n_addrs, a->addrs, a->n_addrs * sizeof(*a->addrs));
	ns->n_addrs += (uint32_t)a->n_addrs;
	return 0;
}

/* Both types answered: one outcome for the name. An address of either type
 * resolves it. Otherwise NXDOMAIN is an authoritative statement about the
 * name; a failure of either query means we do not know, which beats NODATA. */
static enum name_outcome combine(const struct name_state *ns)
{
	int i;

	if (ns->n_addrs)
		return NO_RESOLVED;
	for (i = 0; i < 2; i++)
		if (ns->q[i] == QO_NXDOMAIN)
			return NO_NXDOMAIN;
	for (i = 0; i < 2; i++)
		if (ns->q[i] == QO_TIMEOUT)
			return NO_TIMEOUT;
	for (i = 0; i < 2; i++)
		if (ns->q[i] == QO_SERVFAIL)
			return NO_SERVFAIL;
	for (i = 0; i < 2; i++)
		if (ns->q[i] == QO_REFUSED)
			return NO_REFUSED;
	return NO_NODATA;
}

static void finish_query(struct build *b, struct qctx *qc, enum q_outcome qo)
{
	struct name_state *ns = &b->st[qc->idx];

	ns->q[qc->t] = (uint8_t)qo;
	free(qc->chain);
	free(qc);
	if (--ns->pending)
		return;
	ns->outcome = (uint8_t)combine(ns);
	if (ns->outcome == NO_RESOLVED)
		ns->n_addrs = (uint32_t)ep_dns_addr_sort_unique(ns->addrs, ns->n_addrs);
	else if (ns->outcome >= NO_SERVFAIL)
		b->failed_names++; /* nodata and nxdomain are answers, not failures */
	b->done_names++;
}

static void on_done(void *ctx, void *user, const char *qname, uint16_t qtype, ldns_pkt *reply,
		    int resolver)
{
	struct build *b = ctx;
	struct qctx *qc = user;
	struct ep_dnsq_chain first, *chain;
	struct ep_dnsq_answer a;
	enum q_outcome qo;
	int ret;

	if (!reply) {
		b->final_timeouts++;
		finish_query(b, qc, QO_TIMEOUT);
		return;
	}
	chain = qc->chain;
	if (!chain) {
		ep_dnsq_chain_init(&first, b->names.order[qc->idx]);
		chain = &first;
	}
	if (ep_dnsq_classify(reply, qname, qtype, chain, &a)) {
		b->err = -ENOMEM;
		finish_query(b, qc, QO_SERVFAIL);
		return;
	}
	switch (a.outcome) {
	case EP_DNSQ_FOLLOW:
		/* The answer stopped at a CNAME target: ask for the target, keeping
		 * the chain so loops and length are bounded across queries. */
		if (!qc->chain) {
			qc->chain = malloc(sizeof(*qc->chain));
			if (!qc->chain) {
				b->err = -ENOMEM;
				finish_query(b, qc, QO_SERVFAIL);
				return;
			}
			memcpy(qc->chain, &first, sizeof(first));
		}
		ret = ep_pool_submit(b->pool, a.next, qtype, qc);
		if (ret) {
			if (ret == -ENOMEM)
				b->err = ret;
			finish_query(b, qc, QO_SERVFAIL);
		}
		return;
	case EP_DNSQ_ADDRS:
		if (add_addrs(&b->st[qc->idx], &a))
			b->err = -ENOMEM;
		qo = QO_ADDRS;
		break;
	case EP_DNSQ_NODATA: qo = QO_NODATA; break;
	case EP_DNSQ_NXDOMAIN: qo = QO_NXDOMAIN; break;
	case EP_DNSQ_REFUSED: qo = QO_REFUSED; break;
	case EP_DNSQ_CHAIN_LOOP:
		b->st[qc->idx].chain_error = true;
		qo = QO_SERVFAIL;
		break;
	default: qo = QO_SERVFAIL; break;
	}
	ep_dnsq_answer_free(&a);
	finish_query(b, qc, qo);
}

/* Keeps the pool full with the next (name, type) pairs. */
static void feed(struct build *b)
{
	size_t total = (size_t)b->names.n * 2;

	while (b->next_q < total && ep_pool_inflight(b->pool) < ep_pool_capacity(b->pool) && !b->err) {
		size_t q = b->next_q++;
		struct qctx *qc = calloc(1, sizeof(*qc));
		int ret;

		if (!qc) {
			b->err = -ENOMEM;
			return;
		}
		qc->idx = (uint32_t)(q / 2);
		qc->t = (uint8_t)(q % 2);
		ret = ep_pool_submit(b->pool, b->names.order[qc->idx], qtypes[qc->t], qc);
		if (ret) {
			if (ret == -EBUSY) {
				free(qc);
				b->next_q--;
				return;
			}
			/* A name that ldns cannot encode cannot be asked: count it failed. */
			if (ret == -ENOMEM)
				b->err = ret;
			finish_query(b, qc, QO_SERVFAIL);
		}
	}
}

static void progress(struct build *b, bool final)
{
	double now = ((double)ep_now_ns() / 1e9), el = now - b->t0;
	size_t total = b->names.n;
	double rate = el > 0 ? (double)b->done_names / el : 0;
	double pct = total ? (double)b->done_names * 100.0 / (double)total : 100.0;

	if (b->o->quiet)
		return;
	if (b->tty) {
		char bar[31];
		int i, fill = (int)(pct * 30 / 100);

		if (!final && now - b->last_progress < 0.1)
			return;
		for (i = 0; i < 30; i++)
			bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
		bar[30] = '\0';
		fprintf(b->out, "\r[%s] %5.1f%% %zu/%zu names %.0f/s failed %zu\033[K", bar, pct,
			b->done_names, total, rate, b->failed_names);
		if (final)
			fputc('\n', b->out);
		fflush(b->out);
		b->progress_shown = true;
	} else {
		if (final || now - b->last_progress < 2.0)
			return;
		fprintf(b->out, "cache build: %zu/%zu names (%.0f%%), %.0f names/s, %zu failed\n",
			b->done_names, total, pct, rate, b->failed_names);
		fflush(b->out);
	}
	b->last_progress = now;
}

static void format_time(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void write_header(struct build *b, FILE *f, const char *what)
{
	struct ep_cache_build_result *r = b->r;
	char when[32];
	size_t i;

	format_time(when, sizeof(when));
	fprintf(f, "# %s\n# built %s by edgeplane cache build from %s\n# resolvers:", what, when,
		b->o->domains_path);
	for (i = 0; i < b->n_res; i++)
		fprintf(f, " %s", b->res[i].label);
	fprintf(f,
		"\n# names %u resolved %u nodata %u nxdomain %u servfail %u refused %u timeout %u "
		"records %u\n",
		r->names, r->resolved, r->nodata, r->nxdomain, r->servfail, r->refused, r->timeout,
		r->records);
}

static int write_hosts(struct build *b)
{
	struct ep_atomic_file af;
	char abuf[64];
	size_t i, j;
	int ret;

	ret = ep_atomic_open(&af, b->o->out_path, 0644);
	if (ret) {
		set_error(b->r, "cannot create a file next to %s: %s", b->o->out_path, strerror(-ret));
		return ret;
	}
	write_header(b, af.f, "edgeplane preload snapshot (dnsmasq addn-hosts format)");
	for (i = 0; i < b->names.n; i++) {
		const struct name_state *ns = &b->st[i];

		if (ns->outcome != NO_RESOLVED)
			continue;
		/* A CNAME'd name is written with its final addresses under the
		 * name that was asked for: that is the name clients look up. */
		for (j = 0; j < ns->n_addrs; j++)
			fprintf(af.f, "%s %s\n", ep_dns_addr_str(&ns->addrs[j], abuf, sizeof(abuf)),
				b->names.order[i]);
	}
	ret = ep_atomic_commit(&af);
	if (ret)
		set_error(b->r, "cannot write %s: %s", b->o->out_path, strerror(-ret));
	return ret;
}

static int write_report(struct build *b, const char *path)
{
	struct ep_atomic_file af;
	size_t i;
	int ret;

	ret = ep_atomic_open(&af, path, 0644);
	if (ret) {
		set_error(b->r, "cannot create a file next to %s: %s", path, strerror(-ret));
		return ret;
	}
	write_header(b, af.f, "edgeplane preload report: names left out of the snapshot");
	fprintf(af.f, "# NAME OUTCOME\n");
	for (i = 0; i < b->names.n; i++) {
		const struct name_state *ns = &b->st[i];

		if (ns->outcome == NO_RESOLVED)
			continue;
		fprintf(af.f, "%s %s%s\n", b->names.order[i], name_outcome_str[ns->outcome],
			ns->chain_error ? " (cname chain loop or too long)" : "");
	}
	ret = ep_atomic_commit(&af);
	if (ret)
		set_error(b->r, "cannot write %s: %s", path, strerror(-ret));
	return ret;
}

struct shown {
	FILE *out;
	unsigned n;
};

static void show_changed(const char *name, void *arg)
{
	struct shown *s = arg;

	if (s->n++ < 5)
		fprintf(s->out, "cache build: changed: %s\n", name);
}

/*
 * The loss guard counts names; a poisoned resolver answers every name, with
 * its own addresses. So also refuse when more than --max-change percent of
 * the old names changed their address set. Runs after the loss guard passed
 * (or was forced); same rules: new names never count, --force overrides.
 */
static int change_guard(struct build *b)
{
	const struct ep_cache_build_opts *o = b->o;
	struct ep_snapshot old, cur;
	struct ep_change ch;
	struct shown shown = { .out = b->out };
	int ret;

	memset(&cur, 0, sizeof(cur));
	ret = ep_snapshot_load(o->out_path, &old);
	if (ret == -ENOENT)
		return EP_CACHE_BUILD_OK; /* gone since the loss guard read it */
	if (ret) {
		if (o->force)
			return EP_CACHE_BUILD_OK; /* the loss guard warned about reading it */
		set_error(b->r, "cannot read the current snapshot %s for the change guard: %s "
				"(--force replaces it unchecked)", o->out_path, strerror(-ret));
		return EP_CACHE_BUILD_FAILED;
	}
	for (size_t i = 0; i < b->names.n; i++) {
		const struct name_state *ns = &b->st[i];

		if (ns->outcome != NO_RESOLVED)
			continue;
		for (uint32_t j = 0; j < ns->n_addrs; j++) {
			if (ep_snapshot_add(&cur, b->names.order[i], &ns->addrs[j])) {
				set_error(b->r, "out of memory");
				ret = EP_CACHE_BUILD_FAILED;
				goto out;
			}
		}
	}
	ep_snapshot_change(&old, &cur, &ch, NULL, NULL);
	b->r->changed_names = (unsigned)ch.changed;
	ret = EP_CACHE_BUILD_OK;
	if (!ep_change_exceeds(&ch, o->max_change_pct))
		goto out;
	if (o->force) {
		fprintf(b->out, "cache build: warning: %zu of the %zu names in %s (%.1f%%) changed their "
				"addresses; --force: replacing it anyway\n", ch.changed, ch.old_names,
			o->out_path, ch.changed_pct);
		goto out;
	}
	set_error(b->r, "refusing to replace %s: %zu of its %zu names (%.1f%%) changed their "
			"addresses (> --max-change %g%%); kept the old snapshot (--force overrides)",
		  o->out_path, ch.changed, ch.old_names, ch.changed_pct, o->max_change_pct);
	/* A few of them, so the operator can go and compare. */
	ep_snapshot_change(&old, &cur, &ch, show_changed, &shown);
	ret = EP_CACHE_BUILD_REFUSED;
out:
	ep_snapshot_free(&old);
	ep_snapshot_free(&cur);
	return ret;
}

/* Returns EP_CACHE_BUILD_OK to go on writing, or the code to stop with. */
static int loss_guard(struct build *b)
{
	const struct ep_cache_build_opts *o = b->o;
	struct ep_nameset old, cur;
	struct ep_loss loss;
	size_t i, shown = 0;
	int ret;

	ep_nameset_init(&old);
	ep_nameset_init(&cur);
	ret = ep_hosts_read_names(o->out_path, &old);
	if (ret == -ENOENT) {
		ret = EP_CACHE_BUILD_OK;
		goto out;
	}
	if (ret) {
		if (o->force) {
			fprintf(b->out, "cache build: warning: cannot read %s (%s); --force: replacing it\n",
				o->out_path, strerror(-ret));
			ret = EP_CACHE_BUILD_OK;
		} else {
			set_error(b->r, "cannot read the current snapshot %s for the loss guard: %s "
					"(--force replaces it unchecked)", o->out_path, strerror(-ret));
			ret = EP_CACHE_BUILD_FAILED;
		}
		goto out;
	}
	for (i = 0; i < b->names.n; i++) {
		if (b->st[i].outcome == NO_RESOLVED && ep_nameset_add(&cur, b->names.order[i]) < 0) {
			set_error(b->r, "out of memory");
			ret = EP_CACHE_BUILD_FAILED;
			goto out;
		}
	}
	ep_loss_compute(&old, &cur, &loss);
	b->r->previous_names = (unsigned)loss.old_names;
	b->r->lost_names = (unsigned)loss.lost;
	ret = EP_CACHE_BUILD_OK;
	if (!ep_loss_exceeds(&loss, o->max_loss_pct)) {
		ret = change_guard(b);
		goto out;
	}
	if (o->force) {
		fprintf(b->out, "cache build: warning: %zu of the %zu names in %s (%.1f%%) are lost; "
				"--force: replacing it anyway\n", loss.lost, loss.old_names, o->out_path,
			loss.lost_pct);
		ret = change_guard(b);
		goto out;
	}
	set_error(b->r, "refusing to replace %s: the new snapshot lost %zu of its %zu names "
			"(%.1f%% > --max-loss %g%%); kept the old snapshot (--force overrides)",
		  o->out_path, loss.lost, loss.old_names, loss.lost_pct, o->max_loss_pct);
	/* A few of the lost names, so the operator can go and ask why. */
	for (i = 0; i < old.n && shown < 5; i++) {
		if (ep_nameset_has(&cur, old.order[i]))
			continue;
		fprintf(b->out, "cache build: lost: %s\n", old.order[i]);
		shown++;
	}
	ret = EP_CACHE_BUILD_REFUSED;
out:
	ep_nameset_free(&old);
	ep_nameset_free(&cur);
	return ret;
}

static void summary(struct build *b)
{
	const struct ep_cache_build_result *r = b->r;
	unsigned failed = r->servfail + r->refused + r->timeout;

	fprintf(b->out,
		"cache build: %u names: %u resolved, %u nodata, %u nxdomain, %u failed (servfail %u, "
		"refused %u, timeout %u), %u bad lines; %u records; %.2f s, %.0f names/s\n",
		r->names, r->resolved, r->nodata, r->nxdomain, failed, r->servfail, r->refused,
		r->timeout, r->bad_lines, r->records, r->seconds,
		r->seconds > 0 ? r->names / r->seconds : 0.0);
	if (b->pool) {
		const struct ep_pool_stats *s = ep_pool_get_stats(b->pool);

		fprintf(b->out,
			"cache build: queries %llu, attempts %llu, retries %llu, timeouts %llu, "
			"tcp %llu; discarded: %llu wrong source, %llu wrong id, %llu wrong question, "
			"%llu malformed\n",
			(unsigned long long)s->queries, (unsigned long long)s->attempts,
			(unsigned long long)s->retries, (unsigned long long)s->timeouts,
			(unsigned long long)s->truncated, (unsigned long long)s->bad_source,
			(unsigned long long)s->bad_id,
			(unsigned long long)(s->bad_question + s->not_response),
			(unsigned long long)s->malformed);
	}
	fflush(b->out);
}

/* Each in-flight query holds a UDP socket per address family in use, and a
 * TCP one while it retries a truncated answer. Raises the open-file limit to
 * fit, or lowers the concurrency to what the limit allows: it is a speed
 * knob, not worth failing for. */
static unsigned fit_fd_limit(struct build *b, unsigned concurrency)
{
	struct rlimit rl;
	unsigned per = 0, fit;
	rlim_t need;
	bool v4 = false, v6 = false;
	size_t i;

	for (i = 0; i < b->n_res; i++) {
		if (b->res[i].sa.ss_family == AF_INET6)
			v6 = true;
		else
			v4 = true;
	}
	per = (v4 ? 8 : 0) + (v6 ? 8 : 0) + 1; /* in eighths of a descriptor */
	need = (rlim_t)concurrency * per / 8 + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return concurrency;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
		rl.rlim_cur = need;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			return concurrency;
		getrlimit(RLIMIT_NOFILE, &rl);
	} else {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	fit = rl.rlim_cur > 128 ? (unsigned)((rl.rlim_cur - 64) * 8 / per) : 8;
	if (fit < concurrency) {
		fprintf(b->out, "cache build: warning: open-file limit %llu allows --concurrency %u, not %u\n",
			(unsigned long long)rl.rlim_cur, fit, concurrency);
		return fit;
	}
	return concurrency;
}

static int resolve_all(struct build *b)
{
	const struct ep_cache_build_opts *o = b->o;
	struct ep_pool_opts po = {
		.concurrency = o->concurrency,
		.timeout_ms = o->timeout_ms,
		.retries = o->retries,
		.exempt = o->exempt,
	};
	size_t total_q = (size_t)b->names.n * 2;

	if (po.concurrency > total_q && total_q)
		po.concurrency = (unsigned)total_q;
	po.concurrency = fit_fd_limit(b, po.concurrency);
	b->pool = ep_pool_new(b->res, b->n_res, &po, on_done, b);
	if (!b->pool) {
		set_error(b->r, "cannot set up the query engine: %s", strerror(errno));
		return EP_CACHE_BUILD_FAILED;
	}
	while (b->done_names < b->names.n) {
		const struct ep_pool_stats *s;
		int ret;

		feed(b);
		if (b->err)
			break;
		ret = ep_pool_poll(b->pool, 100);
		if (ret < 0) {
			set_error(b->r, "epoll: %s", strerror(-ret));
			return EP_CACHE_BUILD_FAILED;
		}
		progress(b, false);
		/* No resolver has answered anything while a whole window of queries
		 * used up every attempt: none is reachable, stop now rather than
		 * time out every name in turn. */
		s = ep_pool_get_stats(b->pool);
		if (!s->replies && b->final_timeouts &&
		    b->final_timeouts >= (total_q < po.concurrency ? total_q : po.concurrency)) {
			if (b->tty && b->progress_shown && !o->quiet)
				fputc('\n', b->out);
			set_error(b->r, "no resolver answered: %llu queries timed out after %u attempts "
					"of %u ms each; nothing written",
				  (unsigned long long)b->final_timeouts, o->retries + 1, o->timeout_ms);
			return EP_CACHE_BUILD_FAILED;
		}
	}
	if (b->err) {
		set_error(b->r, "%s", strerror(-b->err));
		return EP_CACHE_BUILD_FAILED;
	}
	progress(b, true);
	return EP_CACHE_BUILD_OK;
}

int ep_cache_build(const struct ep_cache_build_opts *o, struct ep_cache_build_result *r)
{
	struct build b = { .o = o, .r = r };
	struct ep_domain_stats ds;
	char *report = NULL;
	size_t i;
	int ret, rc = EP_CACHE_BUILD_FAILED;

	memset(r, 0, sizeof(*r));
	b.out = o->progress ? o->progress : stderr;
	b.tty = isatty(fileno(b.out));
	ep_nameset_init(&b.names);
	if (!o->domains_path || !o->out_path) {
		set_error(r, "--domains and --out are required");
		return EP_CACHE_BUILD_USAGE;
	}
	if (!o->n_resolvers) {
		set_error(r, "at least one --resolver is needed");
		return EP_CACHE_BUILD_USAGE;
	}
	if (!o->concurrency || !o->timeout_ms || isnan(o->max_loss_pct) || o->max_loss_pct < 0 ||
	    o->max_loss_pct > 100 || isnan(o->max_change_pct) || o->max_change_pct < 0 ||
	    o->max_change_pct > 100) {
		set_error(r, "bad option: concurrency and timeout must be > 0, max-loss and max-change "
			     "0..100");
		return EP_CACHE_BUILD_USAGE;
	}
	b.res = calloc(o->n_resolvers, sizeof(*b.res));
	if (!b.res) {
		set_error(r, "out of memory");
		return EP_CACHE_BUILD_FAILED;
	}
	b.n_res = o->n_resolvers;
	for (i = 0; i < o->n_resolvers; i++) {
		if (ep_resolver_parse(o->resolvers[i], &b.res[i])) {
			set_error(r, "bad resolver address \"%s\" (want ADDR, ADDR:PORT or [V6]:PORT)",
				  o->resolvers[i] ? o->resolvers[i] : "");
			rc = EP_CACHE_BUILD_USAGE;
			goto out;
		}
	}
	if (o->report_path) {
		report = strdup(o->report_path);
	} else if (asprintf(&report, "%s.report", o->out_path) < 0) {
		report = NULL;
	}
	if (!report) {
		set_error(r, "out of memory");
		goto out;
	}

	ret = ep_domains_load(o->domains_path, &b.names, &ds, bad_line, &b);
	r->bad_lines = ds.bad_lines;
	r->duplicates = ds.duplicates;
	if (ret) {
		if (ret == -ENOMEM) {
			set_error(r, "out of memory reading %s", o->domains_path);
		} else {
			set_error(r, "cannot read domains file %s: %s", o->domains_path, strerror(-ret));
			rc = EP_CACHE_BUILD_USAGE;
		}
		goto out;
	}
	r->names = (unsigned)b.names.n;
	b.st = calloc(b.names.n ? b.names.n : 1, sizeof(*b.st));
	if (!b.st) {
		set_error(r, "out of memory");
		goto out;
	}
	for (i = 0; i < b.names.n; i++)
		b.st[i].pending = 2;

	b.t0 = b.last_progress = ((double)ep_now_ns() / 1e9);
	rc = b.names.n ? resolve_all(&b) : EP_CACHE_BUILD_OK;
	/* After an abort, queries still out end here as timeouts, which also
	 * frees their contexts. */
	if (b.pool)
		ep_pool_cancel(b.pool);
	r->seconds = ((double)ep_now_ns() / 1e9) - b.t0;
	for (i = 0; i < b.names.n; i++) {
		if (b.st[i].pending)
			continue; /* never asked: the build stopped first */
		switch (b.st[i].outcome) {
		case NO_RESOLVED:
			r->resolved++;
			r->records += b.st[i].n_addrs;
			break;
		case NO_NODATA: r->nodata++; break;
		case NO_NXDOMAIN: r->nxdomain++; break;
		case NO_SERVFAIL: r->servfail++; break;
		case NO_REFUSED: r->refused++; break;
		case NO_TIMEOUT: r->timeout++; break;
		}
	}
	if (rc != EP_CACHE_BUILD_OK)
		goto out_summary;
	if (b.names.n && !r->resolved) {
		/* An empty snapshot never helps a site whose upstream failed; this
		 * is a broken or misconfigured resolver, not a result. */
		set_error(r, "no name resolved (%u nxdomain, %u nodata, %u servfail, %u refused, "
			     "%u timeout); nothing written", r->nxdomain, r->nodata, r->servfail,
			  r->refused, r->timeout);
		rc = EP_CACHE_BUILD_FAILED;
		goto out_summary;
	}
	rc = loss_guard(&b);
	if (rc != EP_CACHE_BUILD_OK)
		goto out_summary;
	if (write_hosts(&b)) {
		rc = EP_CACHE_BUILD_FAILED;
		goto out_summary;
	}
	r->written = true;
	/* The snapshot is in place; a report that cannot be written is reported
	 * but does not undo it. */
	if (write_report(&b, report))
		rc = EP_CACHE_BUILD_FAILED;
out_summary:
	if (!r->seconds)
		r->seconds = ((double)ep_now_ns() / 1e9) - b.t0;
	summary(&b);
out:
	if (b.st)
		for (i = 0; i < b.names.n; i++)
			free(b.st[i].addrs);
	free(b.st);
	ep_pool_free(b.pool);
	ep_nameset_free(&b.names);
	free(b.res);
	free(report);
	return rc;
}
