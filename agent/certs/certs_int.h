/*
 * What certs.c (the sync cycle), cert_reload.c (its reload and verify)
 * and cert_report.c (status, summary, metrics) share: one struct cert_set
 * per certs[] entry and the set of them.
 * Internal to agent/certs/.
 */
#ifndef EP_CERTS_INT_H
#define EP_CERTS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "cert_annotate.h"
#include "cert_check.h"
#include "cert_csr.h"
#include "cert_secret.h"
#include "certs.h"

static const double sync_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				      0.5,   1,	   2.5,	  5,	10};
#define N_BUCKETS (sizeof(sync_buckets) / sizeof(sync_buckets[0]))

enum rot_result { ROT_OK, ROT_REFUSED, ROT_INSTALL_FAILED, ROT_RELOAD_FAILED, ROT_MAX };
static const char *const rot_names[ROT_MAX] = {"ok", "refused", "install_failed",
					       "reload_failed"};

struct cert_set {
	struct ep_cfg_cert cfg;
	struct ep_certs *owner;
	bool is_bundle;
	bool is_secret;
	bool is_csr;
	unsigned want;
	struct ep_csr *csr; /* csr source: the issuing thread (wakes the loop through efd) */
	/* secret source: the watch thread and the eventfd it wakes the loop with */
	struct ep_secret_watch *sw;
	int efd;
	sd_event_source *efd_src;
	char k8s_error[300];
	sd_event_source *watch, *settle, *poll, *reload_io, *reload_timer;
	/* the change being worked on */
	uint64_t change_ns;	/* first event of it, 0 when idle */
	double change_at;	/* its wall time */
	uint64_t failed_hash;	/* bytes that failed once: waited out */
	unsigned again;		/* consecutive "changed while read" */
	uint64_t src_id;	/* identity of the source files at the last poll */
	/* what is installed */
	uint64_t installed_hash;
	struct ep_cert_info inst;
	bool have_installed;
	double installed_at;
	/* the last refusal */
	uint64_t refused_hash;
	char refused_serial[EP_CERT_SERIAL_MAX];
	char refused_reason[512];
	double refused_at;
	/* a source that cannot be read at all */
	char read_error[512];
	/* reload in progress */
	pid_t cmd_pid;
	int cmd_pidfd;
	uint64_t reload_start_ns, reload_deadline_ns;
	char verify_seen[EP_CERT_SERIAL_MAX];
	/* report */
	char state[16]; /* none, installed, waiting, refused, error */
	char last_result[600];
	double last_result_at;
	double last_sync_s;
	bool expiring;
	uint64_t rot[ROT_MAX];
	uint64_t hist[N_BUCKETS + 1];
	double hist_sum;
	uint64_t hist_n;
};

struct ep_certs {
	sd_event *ev;
	pthread_mutex_t *lock;
	struct ep_k8s_settings k8s; /* for secret sources */
	int k8s_mode;		    /* ep_k8s_resolve: 1 usable */
	char k8s_err[300];
	struct ep_cert_annotator *ann; /* the node annotation, in a cluster */
	struct cert_set *sets;
	size_t n;
};

static inline const struct ep_cfg_cert_source *src_cfg(const struct cert_set *s)
{
	return s->is_bundle ? &s->cfg.bundle : &s->cfg.source;
}

/* The source as a name for messages: the directory or ns/name. */
static inline const char *src_dir(const struct cert_set *s)
{
	return s->is_csr ? src_cfg(s)->csr.signer_name
	       : s->is_secret ? src_cfg(s)->secret : src_cfg(s)->dir;
}

static inline void cert_set_lock(struct cert_set *s)
{
	if (s->owner->lock)
		pthread_mutex_lock(s->owner->lock);
}

static inline void cert_set_unlock(struct cert_set *s)
{
	if (s->owner->lock)
		pthread_mutex_unlock(s->owner->lock);
}

/* certs.c: the set's state ("installed", ...; NULL keeps it) and result. */
void cert_set_result(struct cert_set *s, const char *state, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* cert_reload.c: tells the consumer about a fresh install, then verifies. */
void cert_reload_start(struct cert_set *s);
/* A reload (command or verification) is still running. */
bool cert_reload_busy(const struct cert_set *s);
/* The set's reload_timer: the command's timeout, or the next verify. */
int cert_reload_on_timer(sd_event_source *src, uint64_t usec, void *userdata);
#endif
