/*
 * addr — "host:port" text to a socket address (see addr.h).
 */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/addr.h"

int addr_parse_hostport(const char *hp, int ai_flags, struct sockaddr_storage *ss, int *sslen)
{
	char host[256];
	const char *colon, *hs = hp;
	size_t hlen;
	struct addrinfo hints, *ai = NULL;
	char *end;
	long port;

	if (hp[0] == '[') {
		const char *rb = strchr(hp, ']');
		if (!rb || rb[1] != ':')
			return -1;
		hs = hp + 1;
		hlen = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - hp);
	}
	if (hlen == 0 || hlen >= sizeof host)
		return -1;
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
		return -1;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ai_flags;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
		return -1;
	memset(ss, 0, sizeof *ss);
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = (int)ai->ai_addrlen;
	freeaddrinfo(ai);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
	else
		return -1;
	return 0;
}


void addr_set_nodelay(int fd)
{
	int on = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}
