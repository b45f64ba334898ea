#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ep_ip_parse(const char *s, struct ep_ip *out)
{
	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return -EINVAL;
	if (strchr(s, ':')) {
		if (inet_pton(AF_INET6, s, out->addr) != 1)
			return -EINVAL;
		out->family = EP_FAMILY_V6;
		return 0;
	}
	if (inet_pton(AF_INET, s, &out->addr[0]) != 1)
		return -EINVAL;
	out->family = EP_FAMILY_V4;
	return 0;
}

const char *ep_ip_str(const struct ep_ip *ip, char *buf, size_t len)
{
	if (!inet_ntop(ip->family == EP_FAMILY_V6 ? AF_INET6 : AF_INET, ip->addr, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

int ep_port_parse(const char *s, uint16_t *port)
{
	char *end;
	long v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int ep_endpoint_parse(const char *s, struct ep_ip *ip, uint16_t *port)
{
	char buf[EP_ENDPOINT_STRLEN + 8];
	char *colon;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		if (ep_ip_parse(buf + 1, ip) || ip->family != EP_FAMILY_V6)
			return -EINVAL;
		return ep_port_parse(close + 2, port);
	}
	colon = strrchr(buf, ':');
	if (!colon || strchr(buf, ':') != colon)
		return -EINVAL; /* bare IPv6 needs brackets */
	*colon = '\0';
	if (ep_ip_parse(buf, ip) || ip->family != EP_FAMILY_V4)
		return -EINVAL;
	return ep_port_parse(colon + 1, port);
}

const char *ep_endpoint_str(const struct ep_ip *ip, uint16_t port, char *buf, size_t len)
{
	char a[EP_IP_STRLEN];

	ep_ip_str(ip, a, sizeof(a));
	if (ip->family == EP_FAMILY_V6)
		snprintf(buf, len, "[%s]:%u", a, port);
	else
		snprintf(buf, len, "%s:%u", a, port);
	return buf;
}

bool ep_ip_eq(const struct ep_ip *a, const struct ep_ip *b)
{
	return a->family == b->family && !memcmp(a->addr, b->addr, sizeof(a->addr));
}

int ep_hostport_parse(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t n;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		n = (size_t)(colon - s);
	}
	if (n >= hostlen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (n) {
		struct ep_ip tmp;

		if (ep_ip_parse(host, &tmp))
			return -EINVAL;
	}
	return ep_port_parse(colon + 1, port);
}
