/*
 * The control socket: a Unix stream socket (mode 0600). One request per
 * connection, one JSON object per line each way:
 *   -> {"command":"status"}
 *   <- {"ok":true,"result":{...}}   or   {"ok":false,"error":"..."}
 */
#ifndef EP_CONTROL_H
#define EP_CONTROL_H

#include <stddef.h>

#include <jansson.h>
#include <systemd/sd-event.h>

struct ep_agent;

#define EP_DEFAULT_SOCKET "/run/edgeplane/agent.sock"

/* Server side. Refuses to steal a socket another agent still answers on. */
int ep_control_open(const char *path, char *err, size_t errlen);
void ep_control_close(int fd, const char *path);

/* The server on the agent's loop: listens on path and serves every client
 * from io sources, never blocking the loop (per-client line buffer, 10 s
 * idle deadline, at most 32 clients). ep_control_stop() closes the clients
 * and the socket and removes the file. */
struct ep_control;
int ep_control_start(struct ep_control **out, struct ep_agent *a, sd_event *ev, const char *path,
		     char *err, size_t errlen);
void ep_control_stop(struct ep_control *srv);

/* Client side: sends req, returns the parsed reply (caller decrefs) or NULL
 * with err filled. */
json_t *ep_control_call(const char *path, json_t *req, int timeout_ms, char *err, size_t errlen);

#endif
