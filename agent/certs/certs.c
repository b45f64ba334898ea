/*
 * Certificate sync on the agent's loop (certs.h). One struct cert_set per
 * certs[] entry; its life is a small cycle:
 *
 *   source event ─▶ settle timer ─▶ attempt: read ─▶ validate ─▶ install ─▶ reload ─▶ verify
 *        ▲               ▲  retry (half-written: same bytes must fail twice)        │
 *        └── 2 s poll ───┴────────────────────────────────────────────────────────┘
 *
 * cert_sync_seconds runs from the first source event of a change to the
 * consumer reloaded (verified when verify is set), so it is what an operator
 * waits for, not what the agent spends.
 */
#include "certs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cert_annotate.h"
#include "cert_check.h"
#include "cert_csr.h"
#include "cert_secret.h"
#include "cert_store.h"
#include "certs_int.h"
#include "evloop.h"
#include "hash.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

#define POLL_NS (2000ULL * 1000000)
/* A failing set is read again after this; only bytes that stayed the same
 * for that long are refused. Long enough for a writer copying files one by
 * one (certbot, a script), short enough that a refusal is said promptly. */
#define RETRY_NS (1000ULL * 1000000)
#define AGAIN_NS (20ULL * 1000000)      /* the set changed under the read */
#define MAX_AGAIN 500                    /* ~10 s of a source that never holds still */
#define WATCH_MASK                                                                        \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY | \
	 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

void cert_set_result(struct cert_set *s, const char *state, const char *fmt, ...)
{
	va_list ap;

	if (state)
		snprintf(s->state, sizeof(s->state), "%s", state);
	va_start(ap, fmt);
	vsnprintf(s->last_result, sizeof(s->last_result), fmt, ap);
	va_end(ap);
	s->last_result_at = ep_wall_seconds();
}

static void check_expiry(struct cert_set *s);

/* The installed serials onto the Node, "name=SERIAL,..." in config order. */
static void publish_serials(struct ep_certs *c)
{
	char v[4096];
	size_t o = 0;

	if (!c->ann)
		return;
	v[0] = '\0';
	for (size_t i = 0; i < c->n && o < sizeof(v); i++)
		if (c->sets[i].have_installed && c->sets[i].cfg.name[0])
			o += (size_t)snprintf(v + o, sizeof(v) - o, "%s%s=%s", o ? "," : "",
					      c->sets[i].cfg.name, c->sets[i].inst.serial);
	ep_cert_annotator_set(c->ann, v);
}

/* ---- one attempt -------------------------------------------------------- */

static int read_trust(const struct cert_set *s, char **buf, size_t *len, char *err, size_t errlen)
{
	int fd = open(s->cfg.trust, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		snprintf(err, errlen, "trust bundle %.300s: %s", s->cfg.trust, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (size_t)st.st_size > s->cfg.max_bytes) {
		snprintf(err, errlen, "trust bundle %.300s: not a regular file within %u bytes",
			 s->cfg.trust, s->cfg.max_bytes);
		close(fd);
		return -1;
	}
	*buf = malloc((size_t)st.st_size + 1);
	n = *buf ? read(fd, *buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0) {
		free(*buf);
		*buf = NULL;
		snprintf(err, errlen, "trust bundle %.300s: unreadable", s->cfg.trust);
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

static int validate(struct cert_set *s, const struct ep_cert_set *set, struct ep_cert_info *info,
		    char *err, size_t errlen)
{
	struct ep_cert_policy p = {.now = time(NULL), .skew_s = s->cfg.skew_s,
				   .max_bytes = s->cfg.max_bytes};
	char *trust = NULL;
	size_t trust_len = 0;
	int rc;

	if (s->is_bundle)
		return ep_cert_check_bundle(set->data[EP_CERT_CA], set->len[EP_CERT_CA], &p, info,
					    err, errlen);
	for (size_t i = 0; i < s->cfg.expect.n_san && i < EP_CERT_MAX_SAN; i++)
		p.san[p.n_san++] = s->cfg.expect.san[i];
	if (s->cfg.trust[0] && read_trust(s, &trust, &trust_len, err, errlen))
		return -EIO;
	rc = ep_cert_check(set->data[EP_CERT_CRT], set->len[EP_CERT_CRT], set->data[EP_CERT_KEY],
			   set->len[EP_CERT_KEY], trust ? trust : set->data[EP_CERT_CA],
			   trust ? trust_len : set->len[EP_CERT_CA], &p, info, err, errlen);
	free(trust);
	return rc;
}

static void refuse(struct cert_set *s, uint64_t hash, const struct ep_cert_info *info,
		   const char *why)
{
	s->refused_hash = hash;
	snprintf(s->refused_serial, sizeof(s->refused_serial), "%s", info->serial);
	snprintf(s->refused_reason, sizeof(s->refused_reason), "%s", why);
	s->refused_at = ep_wall_seconds();
	s->rot[ROT_REFUSED]++;
	if (s->csr)
		ep_csr_verdict(s->csr, false, 0, 0, why);
	s->change_ns = 0;
	cert_set_result(s, "refused", "refused%s%s: %s; %s", info->serial[0] ? " serial " : "",
		   info->serial, why,
		   s->have_installed ? "the installed set stays" : "nothing is installed");
	if (s->owner->ann) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "certs %s: new set from %.300s refused%s%s%s: %.300s",
			 s->cfg.name, src_dir(s), info->serial[0] ? " (serial " : "", info->serial,
			 info->serial[0] ? ")" : "", why);
		ep_cert_annotator_event(s->owner->ann, msg);
	}
	log_warn("certs %s: new set from %s refused%s%s%s: %s; %s", s->cfg.name, src_dir(s),
		 info->serial[0] ? " (serial " : "", info->serial, info->serial[0] ? ")" : "", why,
		 s->have_installed ? "the installed set stays" : "nothing installed");
}

static void attempt(struct cert_set *s)
{
	struct ep_cert_set set;
	struct ep_cert_info info = {};
	char err[512] = "";
	uint64_t hash;
	int rc;

	if (cert_reload_busy(s)) {
		/* One consumer reload at a time; the change is picked up after it. */
		ep_timer_arm(s->settle, AGAIN_NS);
		return;
	}
	if (s->is_csr) {
		uint64_t at = 0;

		if (!s->csr) {
			cert_set_result(s, s->have_installed ? NULL : "error", "%s", s->k8s_error);
			s->change_ns = 0;
			return;
		}
		rc = ep_csr_take(s->csr, &set, &at, err, sizeof(err));
		if (rc == 2 && s->owner->ann) {
			char msg[1024];

			/* A denied CSR is a refusal too: the fleet sees it the same way. */
			snprintf(msg, sizeof(msg), "certs %s: %.900s", s->cfg.name, err);
			ep_cert_annotator_event(s->owner->ann, msg);
		}
		if (rc == 0 || rc == 2) {
			cert_set_result(s, s->have_installed ? NULL : "waiting", "%s", err);
			s->change_ns = 0;
			return;
		}
		if (rc < 0) {
			snprintf(err, sizeof(err), "out of memory");
			rc = -ENOMEM;
		} else {
			char *trust = NULL;
			size_t tlen = 0;

			/* The signer's CA goes with the set: the consumer needs it to
			 * verify its peers, and the API does not return it. */
			rc = 0;
			if (!read_trust(s, &trust, &tlen, err, sizeof(err))) {
				set.data[EP_CERT_CA] = trust;
				set.len[EP_CERT_CA] = tlen;
				trust[tlen] = '\0';
			}
		}
	} else if (s->is_secret) {
		uint64_t at = 0;

		if (!s->sw) {
			cert_set_result(s, s->have_installed ? NULL : "error", "%s", s->k8s_error);
			s->change_ns = 0;
			return;
		}
		rc = ep_secret_watch_take(s->sw, &set, &at, err, sizeof(err));
		if (rc == 0) {
			cert_set_result(s, s->have_installed ? NULL : "waiting", "%s", err);
			s->change_ns = 0;
			return;
		}
		if (rc < 0) {
			snprintf(err, sizeof(err), "out of memory");
			rc = -ENOMEM;
		} else {
			rc = 0;
			for (int i = 0; i < EP_CERT_NFILES; i++)
				if (!(s->want & (1u << i))) {
					free(set.data[i]);
					set.data[i] = NULL;
					set.len[i] = 0;
				}
		}
	} else {
		rc = ep_cert_set_read(src_dir(s), s->want, s->cfg.max_bytes, &set, err,
				      sizeof(err));
	}
	if (rc == -EAGAIN && ++s->again < MAX_AGAIN) {
		ep_timer_arm(s->settle, AGAIN_NS);
		return;
	}
	s->again = 0;
	if (rc == -EPERM) {
		/* A file pointing out of the source: a refusal, not a read error. */
		hash = ep_hash64(err, strlen(err));
		if (hash != s->refused_hash)
			refuse(s, hash, &info, err);
		return;
	}
	if (rc) {
		if (strcmp(s->read_error, err)) {
			log_warn("certs %s: cannot read the source: %s", s->cfg.name, err);
			snprintf(s->read_error, sizeof(s->read_error), "%s", err);
		}
		cert_set_result(s, s->have_installed ? NULL : "error", "cannot read the source: %s",
				err);
		s->change_ns = 0;
		return;
	}
	s->read_error[0] = '\0';
	if (!set.data[EP_CERT_CRT] && !set.data[EP_CERT_KEY] && !set.data[EP_CERT_CA]) {
		/* Nothing there (yet): a source being created or emptied is not a
		 * set to refuse. */
		cert_set_result(s, s->have_installed ? NULL : "waiting",
				"the source holds no file yet");
		s->change_ns = 0;
		return;
	}
	hash = ep_cert_set_hash(&set);
	if (hash == s->installed_hash || hash == s->refused_hash) {
		if (s->csr)
			ep_csr_verdict(s->csr, hash == s->installed_hash, s->inst.not_before,
				       s->inst.not_after, s->refused_reason);
		ep_cert_set_free(&set);
		s->change_ns = 0;
		s->failed_hash = 0;
		return;
	}
	rc = validate(s, &set, &info, err, sizeof(err));
	if (rc) {
		if (hash != s->failed_hash) {
			/* Maybe a writer still at work: look again before judging. */
			s->failed_hash = hash;
			cert_set_result(s, s->have_installed ? NULL : "waiting",
				   "new set not valid yet (%s); reading it again", err);
			ep_timer_arm(s->settle, RETRY_NS);
		} else {
			refuse(s, hash, &info, err);
		}
		ep_cert_set_free(&set);
		return;
	}
	s->failed_hash = 0;
	rc = ep_cert_set_install(s->cfg.target, &set, err, sizeof(err));
	ep_cert_set_free(&set);
	if (rc) {
		s->rot[ROT_INSTALL_FAILED]++;
		cert_set_result(s, NULL, "install of serial %s failed: %s", info.serial, err);
		log_error("certs %s: install of serial %s into %s failed: %s; retrying", s->cfg.name,
			  info.serial, s->cfg.target, err);
		ep_timer_arm(s->settle, RETRY_NS);
		return;
	}
	s->installed_hash = hash;
	s->inst = info;
	s->have_installed = true;
	s->installed_at = ep_wall_seconds();
	s->expiring = false;
	s->rot[ROT_OK]++;
	if (s->csr)
		ep_csr_verdict(s->csr, true, info.not_before, info.not_after, NULL);
	snprintf(s->state, sizeof(s->state), "installed");
	check_expiry(s);
	publish_serials(s->owner);
	cert_reload_start(s);
}

static int on_settle(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct cert_set *s = userdata;

	cert_set_lock(s);
	attempt(s);
	cert_set_unlock(s);
	return 0;
}

static void changed(struct cert_set *s, uint64_t delay_ns)
{
	if (!s->change_ns) {
		s->change_ns = ep_now_ns();
		s->change_at = ep_wall_seconds();
	}
	s->failed_hash = 0;
	ep_timer_arm(s->settle, delay_ns);
}

static int on_inotify(sd_event_source *src, const struct inotify_event *ev, void *userdata)
{
	struct cert_set *s = userdata;

	cert_set_lock(s);
	if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
		/* The directory itself went: the poll watches for its return. */
		ep_source_free(&s->watch);
	}
	changed(s, (uint64_t)s->cfg.settle_ms * 1000000);
	cert_set_unlock(s);
	return 0;
}

static int on_secret(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct cert_set *s = userdata;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0)
		return 0;
	cert_set_lock(s);
	changed(s, 0);
	cert_set_unlock(s);
	return 0;
}

static int add_watch(struct cert_set *s)
{
	if (s->is_secret || s->is_csr)
		return s->efd >= 0 ? sd_event_add_io(s->owner->ev, &s->efd_src, s->efd, EPOLLIN,
						      on_secret, s)
				   : 0;
	{
	int rc = sd_event_add_inotify(s->owner->ev, &s->watch, src_dir(s), WATCH_MASK, on_inotify, s);

	if (rc < 0)
		s->watch = NULL;
	return rc;
	}
}

/* Identity of what the source's names point at, to catch what inotify missed. */
static uint64_t source_id(const struct cert_set *s)
{
	uint64_t h = 0;
	char p[PATH_MAX];
	struct stat st;

	for (int i = 0; i < EP_CERT_NFILES && !s->is_secret && !s->is_csr; i++) {
		if (!(s->want & (1u << i)))
			continue;
		snprintf(p, sizeof(p), "%.4000s/%s", src_dir(s), ep_cert_file_names[i]);
		if (stat(p, &st))
			memset(&st, 0, sizeof(st));
		h = h * 31 + ep_hash64(&st.st_mtim, sizeof(st.st_mtim)) + (uint64_t)st.st_ino +
		    ((uint64_t)st.st_size << 32);
	}
	return h;
}

/* Warns once per installed set when its NotAfter comes within warn_before_s. */
static void check_expiry(struct cert_set *s)
{
	time_t t = time(NULL), thr = (time_t)s->cfg.warn_before_s;

	if (s->is_csr) {
		/* Short-lived by design: warn when the renewal is overdue (past
		 * renew_at + renew_jitter), not for every certificate it issues. */
		const struct ep_cfg_cert_csr *q = &s->cfg.source.csr;
		time_t tail = (s->inst.not_after - s->inst.not_before) *
			      (time_t)(10000 - q->renew_at_bp - q->renew_jitter_bp) / 10000;

		if (tail < thr)
			thr = tail;
	}
	if (s->have_installed && thr > 0 && s->inst.not_after - t < thr && !s->expiring) {
		s->expiring = true;
		log_warn("certs %s: installed serial %s expires in %ld s (at %ld), within the "
			 "warning threshold of %ld s",
			 s->cfg.name, s->inst.serial, (long)(s->inst.not_after - t),
			 (long)s->inst.not_after, (long)thr);
	}
}

static void on_poll(void *userdata, uint64_t now)
{
	struct cert_set *s = userdata;
	uint64_t id;

	cert_set_lock(s);
	if (!s->is_secret && !s->is_csr) {
		if (!s->watch && !add_watch(s))
			changed(s, 0);
		id = source_id(s);
		if (id != s->src_id && !ep_timer_armed(s->settle))
			changed(s, 0);
		s->src_id = id;
	}
	check_expiry(s);
	cert_set_unlock(s);
}

/* ---- life --------------------------------------------------------------- */

/* The loop's sources of a set (whose userdata is the set's address). */
static void set_unhook(struct cert_set *s)
{
	ep_source_free(&s->watch);
	ep_source_free(&s->efd_src);
	ep_source_free(&s->settle);
	ep_source_free(&s->poll);
	ep_source_free(&s->reload_io);
	ep_source_free(&s->reload_timer);
}

static void set_stop(struct cert_set *s)
{
	set_unhook(s);
	ep_secret_watch_stop(s->sw);
	s->sw = NULL;
	ep_csr_stop(s->csr);
	s->csr = NULL;
	if (s->efd >= 0)
		close(s->efd);
	s->efd = -1;
	if (s->cmd_pid > 0) {
		/* Leave a running reload command to finish; reap it if it did. */
		ep_spawn_reap(s->cmd_pid, false, NULL);
		close(s->cmd_pidfd);
		s->cmd_pid = 0;
	}
}

static int set_start(struct ep_certs *c, struct cert_set *s, const struct ep_cfg_cert *cfg,
		     char *err, size_t errlen)
{
	struct ep_cert_set cur;
	char e2[256];
	int rc;

	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->owner = c;
	s->cmd_pidfd = -1;
	s->efd = -1;
	s->is_bundle = cfg->bundle.present;
	s->is_secret = src_cfg(s)->secret[0] != '\0';
	s->is_csr = src_cfg(s)->csr.present;
	s->want = s->is_bundle ? 1u << EP_CERT_CA
			       : (1u << EP_CERT_CRT) | (1u << EP_CERT_KEY) | (1u << EP_CERT_CA);
	snprintf(s->state, sizeof(s->state), "none");
	/* What a previous agent installed is the baseline: a restart does not
	 * reinstall an unchanged set or reload the consumer for nothing. */
	if (!ep_cert_set_read_installed(cfg->target, s->want, cfg->max_bytes, &cur, e2,
					sizeof(e2))) {
		struct ep_cert_info info;

		if (!validate(s, &cur, &info, e2, sizeof(e2))) {
			s->installed_hash = ep_cert_set_hash(&cur);
			s->inst = info;
			s->have_installed = true;
			snprintf(s->state, sizeof(s->state), "installed");
			cert_set_result(s, NULL, "serial %s found installed at start", info.serial);
			check_expiry(s);
		}
		ep_cert_set_free(&cur);
	}
	rc = ep_timer_oneshot(c->ev, &s->settle, on_settle, s, "certs-settle");
	if (!rc)
		rc = ep_timer_oneshot(c->ev, &s->reload_timer, cert_reload_on_timer, s, "certs-reload");
	if (!rc)
		rc = ep_timer_repeat(c->ev, &s->poll, POLL_NS, false, on_poll, s, "certs-poll");
	if (rc) {
		snprintf(err, errlen, "certs %s: event loop: %s", cfg->name, strerror(-rc));
		set_stop(s);
		return rc;
	}
	if (s->is_secret) {
		char ns[64];
		const char *ref = src_cfg(s)->secret, *slash = strchr(ref, '/');

		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - ref), ref);
		if (c->k8s_mode != 1) {
			snprintf(s->k8s_error, sizeof(s->k8s_error),
				 "secret source without a usable Kubernetes API: %.240s",
				 c->k8s_err[0] ? c->k8s_err : "not in a cluster");
			log_error("certs %s: %s", cfg->name, s->k8s_error);
		} else {
			s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (s->efd >= 0)
				s->sw = ep_secret_watch_start(&c->k8s, ns, slash + 1, s->efd);
			if (!s->sw)
				snprintf(s->k8s_error, sizeof(s->k8s_error),
					 "cannot start the watch of Secret %.250s", ref);
		}
	}
	if (s->is_csr) {
		if (c->k8s_mode != 1) {
			snprintf(s->k8s_error, sizeof(s->k8s_error),
				 "csr source without a usable Kubernetes API: %.240s",
				 c->k8s_err[0] ? c->k8s_err : "not in a cluster");
			log_error("certs %s: %s", cfg->name, s->k8s_error);
		} else {
			s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (s->efd >= 0)
				s->csr = ep_csr_start(&c->k8s, cfg, c->k8s.node_name,
						      s->have_installed, s->inst.not_before,
						      s->inst.not_after, s->efd);
			if (!s->csr)
				snprintf(s->k8s_error, sizeof(s->k8s_error),
					 "cannot start the CertificateSigningRequest thread");
		}
	}
	rc = add_watch(s);
	if (rc < 0)
		log_warn("certs %s: cannot watch %s yet (%s); checking every 2 s", cfg->name,
			 src_dir(s), strerror(-rc));
	s->src_id = source_id(s);
	changed(s, 0);
	return 0;
}

/* Secret sources talk to the API server the kubernetes section names. */
static void resolve_k8s(struct ep_certs *c, const struct ep_config *cfg)
{
	/* In a cluster (or told so): secret sources and the node annotation. */
	c->k8s_mode = 0;
	c->k8s_err[0] = '\0';
	if (cfg->n_certs)
		c->k8s_mode = ep_k8s_resolve(&cfg->kubernetes, cfg->node_name, &c->k8s, c->k8s_err,
					     sizeof(c->k8s_err));
	if (c->k8s_mode == 1 && !c->ann)
		c->ann = ep_cert_annotator_start(&c->k8s);
	else if (c->k8s_mode != 1 && c->ann) {
		ep_cert_annotator_stop(c->ann);
		c->ann = NULL;
	}
}

int ep_certs_start(struct ep_certs **out, const struct ep_config *cfg, sd_event *ev,
		   pthread_mutex_t *lk, char *err, size_t errlen)
{
	struct ep_certs *c;
	int rc;

	*out = NULL;
	if (!cfg->n_certs)
		return 0;
	c = calloc(1, sizeof(*c));
	if (c)
		c->sets = calloc(cfg->n_certs, sizeof(*c->sets));
	if (!c || !c->sets) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->ev = ev;
	c->lock = lk;
	resolve_k8s(c, cfg);
	for (size_t i = 0; i < cfg->n_certs; i++) {
		rc = set_start(c, &c->sets[i], &cfg->certs[i], err, errlen);
		if (rc) {
			c->n = i;
			ep_certs_stop(c);
			return rc;
		}
		c->n = i + 1;
	}
	log_info("certs: syncing %zu set%s%s", c->n, c->n == 1 ? "" : "s",
		 c->ann ? "; installed serials go to the node annotation " EP_CERT_ANNOTATION : "");
	publish_serials(c);
	*out = c;
	return 0;
}

void ep_certs_stop(struct ep_certs *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		set_stop(&c->sets[i]);
	ep_cert_annotator_stop(c->ann);
	free(c->sets);
	free(c);
}

static bool same_cfg(const struct ep_cfg_cert *a, const struct ep_cfg_cert *b)
{
	struct ep_cfg_cert x = *a, y = *b;

	x.line = y.line = 0;
	return !memcmp(&x, &y, sizeof(x));
}

int ep_certs_reconfigure(struct ep_certs *c, const struct ep_config *cfg, char *err,
			 size_t errlen)
{
	struct cert_set *sets;
	int rc = 0;

	sets = calloc(cfg->n_certs ? cfg->n_certs : 1, sizeof(*sets));
	if (!sets) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	resolve_k8s(c, cfg);
	/* Unchanged entries move over with their sources, whose userdata is
	 * the set itself: those are torn down and made again on the new
	 * address, keeping every counter and the installed state. */
	for (size_t i = 0; i < cfg->n_certs && !rc; i++) {
		struct cert_set *old = NULL;

		for (size_t j = 0; j < c->n; j++)
			if (c->sets[j].cfg.name[0] && same_cfg(&c->sets[j].cfg, &cfg->certs[i]))
				old = &c->sets[j];
		if (!old) {
			rc = set_start(c, &sets[i], &cfg->certs[i], err, errlen);
			continue;
		}
		/* The watch thread and eventfd move with the set. */
		set_unhook(old);
		sets[i] = *old;
		sets[i].cfg = cfg->certs[i];
		old->cfg.name[0] = '\0';
		rc = ep_timer_oneshot(c->ev, &sets[i].settle, on_settle, &sets[i], "certs-settle");
		if (!rc)
			rc = ep_timer_oneshot(c->ev, &sets[i].reload_timer, cert_reload_on_timer, &sets[i],
					      "certs-reload");
		if (!rc)
			rc = ep_timer_repeat(c->ev, &sets[i].poll, POLL_NS, false, on_poll, &sets[i],
					     "certs-poll");
		if (!rc)
			add_watch(&sets[i]);
		if (!rc)
			changed(&sets[i], 0);
	}
	for (size_t j = 0; j < c->n; j++)
		if (c->sets[j].cfg.name[0])
			set_stop(&c->sets[j]);
	free(c->sets);
	c->sets = sets;
	c->n = cfg->n_certs;
	if (rc && !err[0])
		snprintf(err, errlen, "certs: event loop: %s", strerror(-rc));
	publish_serials(c);
	return rc;
}

/* ---- report ------------------------------------------------------------- */
