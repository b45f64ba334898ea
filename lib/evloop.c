/*
 * Why sd-event (libsystemd) for the agent's loop: it has every source kind
 * the agent's modules need in one loop -- io (control socket clients, ring
 * buffers), time (GC, probes, health cadences), signal (reload/stop, via
 * signalfd), child with pidfd (dnsmasq) and inotify (config and snapshot
 * files) -- and sources are owned and freed by whoever registered them, so a
 * module plugs in without core growing a case per feature. sd_notify
 * (READY/RELOADING/STOPPING/STATUS) and the watchdog come from the same
 * library, it runs without systemd as PID 1, it is in Debian 12, and it is
 * what systemd-networkd and systemd-resolved are built on.
 *
 * This file adds the little sd-event leaves to its callers: timers that
 * repeat at a fixed cadence, one-shot timers that are armed and disarmed,
 * and freeing a source in one call.
 */
#include "evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

/* sd-event's default accuracy is 250 ms (it coalesces wake-ups); the agent's
 * cadences (100 ms health slots) need the timers on time. */
#define ACCURACY_US 1000ULL

struct repeat {
	ep_repeat_fn fn;
	void *userdata;
	uint64_t interval_us;
};

static int on_repeat(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct repeat *r = userdata;
	uint64_t now_us = 0, next = usec + r->interval_us;

	sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now_us);
	/* After a stall, one expiry and then the cadence again: no burst. */
	if (next <= now_us)
		next = now_us + r->interval_us;
	sd_event_source_set_time(s, next);
	/* Last: fn may free this source (and r with it). */
	r->fn(r->userdata, ep_now_ns());
	return 0;
}

int ep_timer_repeat(sd_event *ev, sd_event_source **out, uint64_t interval_ns, bool first_now,
		    ep_repeat_fn fn, void *userdata, const char *desc)
{
	struct repeat *r = calloc(1, sizeof(*r));
	sd_event_source *s = NULL;
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->fn = fn;
	r->userdata = userdata;
	r->interval_us = interval_ns / 1000 ?: 1;
	rc = sd_event_add_time_relative(ev, &s, CLOCK_MONOTONIC, first_now ? 0 : r->interval_us,
					ACCURACY_US, on_repeat, r);
	if (rc < 0) {
		free(r);
		return rc;
	}
	sd_event_source_set_destroy_callback(s, free);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	if (desc)
		sd_event_source_set_description(s, desc);
	*out = s;
	return 0;
}

int ep_timer_oneshot(sd_event *ev, sd_event_source **out, sd_event_time_handler_t fn,
		     void *userdata, const char *desc)
{
	int rc = sd_event_add_time(ev, out, CLOCK_MONOTONIC, UINT64_MAX, ACCURACY_US, fn, userdata);

	if (rc < 0) {
		*out = NULL;
		return rc;
	}
	sd_event_source_set_enabled(*out, SD_EVENT_OFF);
	if (desc)
		sd_event_source_set_description(*out, desc);
	return 0;
}

int ep_timer_arm(sd_event_source *s, uint64_t delay_ns)
{
	int rc;

	if (!s)
		return -EINVAL;
	rc = sd_event_source_set_time_relative(s, delay_ns / 1000);
	if (rc >= 0)
		rc = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return rc < 0 ? rc : 0;
}

void ep_timer_disarm(sd_event_source *s)
{
	if (s)
		sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

bool ep_timer_armed(sd_event_source *s)
{
	int enabled = SD_EVENT_OFF;

	if (!s || sd_event_source_get_enabled(s, &enabled) < 0)
		return false;
	return enabled != SD_EVENT_OFF;
}

void ep_source_free(sd_event_source **s)
{
	if (s && *s)
		*s = sd_event_source_disable_unref(*s);
}
