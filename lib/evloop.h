/*
 * Event-loop glue: the agent runs one sd-event loop (libsystemd) and every
 * module registers the sources it needs on it (timers, fds, signals,
 * inotify, child processes). These helpers cover what sd-event leaves to
 * the caller: repeating timers and sources that are freed and forgotten in
 * one call. All times are CLOCK_MONOTONIC nanoseconds, like ep_now_ns().
 */
#ifndef EP_EVLOOP_H
#define EP_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/* Called on every expiry of a repeating timer; now is ep_now_ns(). */
typedef void (*ep_repeat_fn)(void *userdata, uint64_t now_ns);

/* A timer firing every interval_ns, first after interval_ns (or at once when
 * first_now). Expiries keep a fixed cadence (no drift by the callback's run
 * time) and are not bunched after a stall. *out owns it; free it with
 * ep_source_free(). desc names it in sd-event's debug output. */
int ep_timer_repeat(sd_event *ev, sd_event_source **out, uint64_t interval_ns, bool first_now,
		    ep_repeat_fn fn, void *userdata, const char *desc);

/* A one-shot timer, created disabled: arm it with ep_timer_arm(). */
int ep_timer_oneshot(sd_event *ev, sd_event_source **out, sd_event_time_handler_t fn,
		     void *userdata, const char *desc);
/* (Re)arms a one-shot timer to fire in delay_ns (0: on the next iteration). */
int ep_timer_arm(sd_event_source *s, uint64_t delay_ns);
/* Disarms a one-shot timer without freeing it. */
void ep_timer_disarm(sd_event_source *s);
bool ep_timer_armed(sd_event_source *s);

/* Disables and frees *s (NULL is fine) and sets it to NULL. */
void ep_source_free(sd_event_source **s);

#endif
