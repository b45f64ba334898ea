/* Minimal TAP output for C tests (https://testanything.org/tap-specification.html).
 *
 *   tap_ok(cond, fmt, ...)       "ok N - ..." or "not ok N - ..."; returns cond
 *   tap_skip(reason, fmt, ...)   "ok N - ... # SKIP reason": a check that did not run
 *   tap_diag(fmt, ...)           "# ..." (shown by tests/run.sh)
 *   tap_done()                   prints the plan "1..N"; returns the exit status
 *                                (1 if anything failed; only skips is success)
 *   tap_skip_all(reason)         "1..0 # SKIP reason": the whole program cannot run
 *
 * tests/run.sh counts "ok" lines as passed, "not ok" as failed and any line
 * with "# SKIP" as skipped -- never as passed. Never write tap_ok(1, ...): a
 * check that cannot fail is not a check. */
#ifndef EP_TAP_H
#define EP_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed, tap_skipped;

static inline int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline void tap_skip(const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void tap_skip(const char *reason, const char *fmt, ...)
{
	va_list ap;

	printf("ok %d - ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
	tap_skipped++;
}

static inline int tap_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	fflush(stdout);
	return 0;
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
