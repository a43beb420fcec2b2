/*
 * addr — "host:port" text to a socket address, and stream socket options.
 *
 * Accepts "1.2.3.4:443", "[::1]:8443" and "name:443" (the first answer of
 * getaddrinfo for a name; flags may restrict it, e.g. AI_NUMERICHOST).
 * Port 0 is allowed: the kernel picks. No allocation survives the call.
 */
#ifndef TALLY_DAEMON_ADDR_H
#define TALLY_DAEMON_ADDR_H

#include <sys/socket.h>

/* Fills *ss and *sslen. Returns 0, or -1 on any malformed part or a name
 * that does not resolve to IPv4 or IPv6. ai_flags go to getaddrinfo. */
int addr_parse_hostport(const char *hp, int ai_flags, struct sockaddr_storage *ss, int *sslen);

/* Turns Nagle's algorithm off on a TCP socket. A TLS answer is written as
 * several small records; with Nagle on, the second waits for the peer's
 * delayed ACK of the first (~40 ms a request on Linux). Errors are ignored:
 * the socket still works, only slower. */
void addr_set_nodelay(int fd);

#endif
