/* Logging to stderr, as text or JSON lines (--log-format json). */
#ifndef EP_LOG_H
#define EP_LOG_H

#include <stdbool.h>

enum ep_log_level { EP_LOG_DEBUG = 0, EP_LOG_INFO, EP_LOG_WARN, EP_LOG_ERROR };

void ep_log_setup(int json, enum ep_log_level min_level);
/* As set up: for helper processes that log into the same stream. */
int ep_log_json_format(void);
int ep_log_level_parse(const char *s, enum ep_log_level *out);
void ep_log(enum ep_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) ep_log(EP_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) ep_log(EP_LOG_INFO, __VA_ARGS__)
#define log_warn(...) ep_log(EP_LOG_WARN, __VA_ARGS__)
#define log_error(...) ep_log(EP_LOG_ERROR, __VA_ARGS__)

/* Routes libbpf and libxdp messages into our log (warnings and above, debug
 * when the log level is debug). */
void ep_log_hook_libs(void);
/* Buffer library warnings (instead of logging them) until capture ends;
 * flush logs what was buffered at lvl (debug to keep it quiet). */
void ep_log_lib_capture(bool on);
void ep_log_lib_flush(enum ep_log_level lvl);

#endif
