/* Prometheus metrics, /healthz and /readyz over libmicrohttpd. */
#ifndef EP_METRICS_H
#define EP_METRICS_H

#include "agent.h"

/* Renders the exposition text (caller frees); takes agent->lock itself. */
char *ep_metrics_render(struct ep_agent *a);
/* Starts the HTTP server on listen ("host:port"); "" starts nothing. */
int ep_metrics_start(struct ep_agent *a, const char *listen, char *err, size_t errlen);
void ep_metrics_stop(struct ep_agent *a);

#endif
