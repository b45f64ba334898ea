/*
 * Certificate sync as the operator sees it: `edgeplane certs` (status and
 * the status summary) and the cert_* metrics, read from the sets certs.c
 * keeps (certs_int.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cert_annotate.h"
#include "cert_csr.h"
#include "cert_secret.h"
#include "certs_int.h"
#include "strbuf.h"

static json_t *jtime(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

json_t *ep_certs_status(struct ep_certs *c)
{
	json_t *arr = json_array();
	time_t now = time(NULL);

	for (size_t i = 0; c && i < c->n; i++) {
		struct cert_set *s = &c->sets[i];
		json_t *o = json_object(), *rot = json_object(), *rel;
		char src[PATH_MAX + 8];

		snprintf(src, sizeof(src), "%s:%.4000s",
			 s->is_csr ? "csr" : s->is_secret ? "secret" : "dir", src_dir(s));
		json_object_set_new(o, "name", json_string(s->cfg.name));
		json_object_set_new(o, "kind", json_string(s->is_bundle ? "bundle" : "source"));
		json_object_set_new(o, "source", json_string(src));
		json_object_set_new(o, "target", json_string(s->cfg.target));
		json_object_set_new(o, "state", json_string(s->state));
		json_object_set_new(o, "serial", s->have_installed ? json_string(s->inst.serial)
								   : json_null());
		json_object_set_new(o, "subject", s->have_installed ? json_string(s->inst.subject)
								    : json_null());
		json_object_set_new(o, "not_before",
				    s->have_installed ? json_integer(s->inst.not_before) : json_null());
		json_object_set_new(o, "not_after",
				    s->have_installed ? json_integer(s->inst.not_after) : json_null());
		json_object_set_new(o, "expires_in_seconds",
				    s->have_installed ? json_integer(s->inst.not_after - now)
						      : json_null());
		json_object_set_new(o, "expiry_warning", json_boolean(s->expiring));
		json_object_set_new(o, "installed_at", jtime(s->installed_at));
		json_object_set_new(o, "last_result", json_string(s->last_result));
		json_object_set_new(o, "last_result_at", jtime(s->last_result_at));
		json_object_set_new(o, "last_sync_seconds",
				    s->hist_n ? json_real(s->last_sync_s) : json_null());
		/* A dir or secret source is renewed by whoever writes it; a csr
		 * source by the agent (0: now, nothing valid installed). */
		if (s->csr) {
			double t = ep_csr_next_renewal(s->csr);

			json_object_set_new(o, "next_renewal", json_integer(t > 0 ? (json_int_t)t : (json_int_t)now));
		} else {
			json_object_set_new(o, "next_renewal", json_null());
		}
		json_object_set_new(o, "refused",
				    s->refused_at > 0
					    ? json_pack("{s:s, s:s, s:f}", "serial", s->refused_serial,
							"reason", s->refused_reason, "at",
							s->refused_at)
					    : json_null());
		for (int r = 0; r < ROT_MAX; r++)
			json_object_set_new(rot, rot_names[r], json_integer((json_int_t)s->rot[r]));
		json_object_set_new(o, "rotations", rot);
		rel = json_object();
		json_object_set_new(rel, "kind",
				    json_string(!s->cfg.reload.present      ? "none"
						: s->cfg.reload.pidfile[0] ? "signal"
									   : "command"));
		if (s->cfg.reload.pidfile[0]) {
			json_object_set_new(rel, "pidfile", json_string(s->cfg.reload.pidfile));
			json_object_set_new(rel, "signal", json_string(strsignal(s->cfg.reload.signal)));
		}
		if (s->cfg.reload.verify[0])
			json_object_set_new(rel, "verify", json_string(s->cfg.reload.verify));
		json_object_set_new(o, "reload", rel);
		if (s->is_csr)
			json_object_set_new(o, "csr", s->csr ? ep_csr_status(s->csr)
							  : json_pack("{s:s}", "state", s->k8s_error));
		if (s->is_secret)
			json_object_set_new(o, "watch", s->sw ? ep_secret_watch_status(s->sw)
							      : json_pack("{s:s}", "state", s->k8s_error));
		json_array_append_new(arr, o);
	}
	return json_pack("{s:o, s:o}", "sets", arr, "node_annotation",
			 c && c->ann ? ep_cert_annotator_status(c->ann) : json_null());
}

json_t *ep_certs_summary(struct ep_certs *c)
{
	size_t inst = 0, refused = 0, expiring = 0;

	for (size_t i = 0; c && i < c->n; i++) {
		inst += c->sets[i].have_installed;
		refused += !strcmp(c->sets[i].state, "refused");
		expiring += c->sets[i].expiring;
	}
	return json_pack("{s:I, s:I, s:I, s:I}", "sets", (json_int_t)(c ? c->n : 0), "installed",
			 (json_int_t)inst, "refused", (json_int_t)refused, "expiring",
			 (json_int_t)expiring);
}

static void label(struct ep_strbuf *b, const char *name)
{
	ep_sb_printf(b, "name=\"");
	ep_sb_label(b, name);
	ep_sb_printf(b, "\"");
}

void ep_certs_metrics(struct ep_certs *c, struct ep_strbuf *b)
{
	if (!c)
		return;
	ep_sb_printf(b, "# HELP edgeplane_cert_expiry_timestamp_seconds NotAfter of the installed "
			"certificate (a bundle: its earliest).\n"
			"# TYPE edgeplane_cert_expiry_timestamp_seconds gauge\n");
	for (size_t i = 0; i < c->n; i++) {
		if (!c->sets[i].have_installed)
			continue;
		ep_sb_printf(b, "edgeplane_cert_expiry_timestamp_seconds{");
		label(b, c->sets[i].cfg.name);
		ep_sb_printf(b, "} %lld\n", (long long)c->sets[i].inst.not_after);
	}
	ep_sb_printf(b, "# HELP edgeplane_cert_rotations_total New certificate sets by outcome "
			"(ok, refused, install_failed, reload_failed).\n"
			"# TYPE edgeplane_cert_rotations_total counter\n");
	for (size_t i = 0; i < c->n; i++)
		for (int r = 0; r < ROT_MAX; r++) {
			ep_sb_printf(b, "edgeplane_cert_rotations_total{");
			label(b, c->sets[i].cfg.name);
			ep_sb_printf(b, ",result=\"%s\"} %llu\n", rot_names[r],
				     (unsigned long long)c->sets[i].rot[r]);
		}
	ep_sb_printf(b, "# HELP edgeplane_cert_sync_seconds From a source change to the "
			"consumer reloaded.\n# TYPE edgeplane_cert_sync_seconds histogram\n");
	for (size_t i = 0; i < c->n; i++) {
		struct cert_set *s = &c->sets[i];
		uint64_t acc = 0;

		for (size_t k = 0; k <= N_BUCKETS; k++) {
			acc += s->hist[k];
			ep_sb_printf(b, "edgeplane_cert_sync_seconds_bucket{");
			label(b, s->cfg.name);
			if (k < N_BUCKETS)
				ep_sb_printf(b, ",le=\"%g\"} %llu\n", sync_buckets[k],
					     (unsigned long long)acc);
			else
				ep_sb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)acc);
		}
		ep_sb_printf(b, "edgeplane_cert_sync_seconds_sum{");
		label(b, s->cfg.name);
		ep_sb_printf(b, "} %.6f\nedgeplane_cert_sync_seconds_count{", s->hist_sum);
		label(b, s->cfg.name);
		ep_sb_printf(b, "} %llu\n", (unsigned long long)s->hist_n);
	}
}
