/* JSON model of the agent's state for the control socket (and the CLI). */
#ifndef EP_STATUS_H
#define EP_STATUS_H

#include <jansson.h>

#include "agent.h"

json_t *ep_status_summary(const struct ep_agent *a);
json_t *ep_status_services(const struct ep_agent *a);
json_t *ep_status_dns(const struct ep_agent *a);

#endif
