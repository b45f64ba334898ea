#include "log.h"

#include <bpf/libbpf.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xdp/libxdp.h>

static int log_json;
static enum ep_log_level log_min = EP_LOG_INFO;
/* The metrics thread logs too; one line must never interleave with another. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void ep_log_setup(int json, enum ep_log_level min_level)
{
	log_json = json;
	log_min = min_level;
}

int ep_log_json_format(void)
{
	return log_json;
}

int ep_log_level_parse(const char *s, enum ep_log_level *out)
{
	for (int i = 0; i <= EP_LOG_ERROR; i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum ep_log_level)i;
			return 0;
		}
	}
	return -1;
}

__attribute__((format(printf, 2, 0))) static void vlog(enum ep_log_level lvl, const char *fmt,
						       va_list ap)
{
	char msg[2048], ts[64];
	struct timespec now;
	struct tm tm;
	size_t n;

	if (lvl < log_min)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

	pthread_mutex_lock(&log_lock);
	if (log_json) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[lvl], "msg",
				      msg);
		char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;

		if (line)
			fprintf(stderr, "%s\n", line);
		free(line);
		json_decref(o);
	} else {
		fprintf(stderr, "%s %-5s %s\n", ts, level_names[lvl], msg);
	}
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void ep_log(enum ep_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, fmt, ap);
	va_end(ap);
}

/* Library warnings captured while ep_log_lib_capture(true): some library
 * calls warn about situations we handle ourselves (libxdp falling back to a
 * single program, TC hooks that do not exist yet); they are shown only when
 * the operation fails. */
static bool capturing;
static char capture[16384];
static size_t capture_len;

__attribute__((format(printf, 3, 0))) static void lib_message(enum ep_log_level l, const char *lib,
							      const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (capturing && l >= EP_LOG_WARN) {
		pthread_mutex_lock(&log_lock);
		int w = snprintf(capture + capture_len, sizeof(capture) - capture_len, "%s: %s\n", lib,
				 buf);

		if (w > 0 && capture_len + (size_t)w < sizeof(capture))
			capture_len += (size_t)w;
		pthread_mutex_unlock(&log_lock);
		return;
	}
	ep_log(l, "%s: %s", lib, buf);
}

__attribute__((format(printf, 2, 0))) static int libbpf_print(enum libbpf_print_level level,
							      const char *fmt, va_list ap)
{
	lib_message(level == LIBBPF_WARN ? EP_LOG_WARN : EP_LOG_DEBUG, "libbpf", fmt, ap);
	return 0;
}

__attribute__((format(printf, 2, 0))) static int libxdp_print(enum libxdp_print_level level,
							      const char *fmt, va_list ap)
{
	lib_message(level == LIBXDP_WARN ? EP_LOG_WARN : EP_LOG_DEBUG, "libxdp", fmt, ap);
	return 0;
}

void ep_log_lib_capture(bool on)
{
	capturing = on;
	if (on)
		capture_len = 0;
}

void ep_log_lib_flush(enum ep_log_level lvl)
{
	char *line = capture, *nl;

	capture[capture_len] = '\0';
	while ((nl = strchr(line, '\n'))) {
		*nl = '\0';
		ep_log(lvl, "%s", line);
		line = nl + 1;
	}
	capture_len = 0;
}

void ep_log_hook_libs(void)
{
	libbpf_set_print(libbpf_print);
	libxdp_set_print(libxdp_print);
}
