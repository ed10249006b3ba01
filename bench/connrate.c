/*
 * connrate: new-TCP-connection rate, client and server.
 *
 *   connrate serve PORT [SECONDS]
 *       accept and close at once, on [::]:PORT (dual-stack); exits after
 *       SECONDS (default 3600) so it can never outlive a benchmark.
 *   connrate connect ADDR PORT SECONDS
 *       connect + close (RST, SO_LINGER 0: no TIME_WAIT, so the ephemeral
 *       ports never run out) in a loop for SECONDS; prints
 *       "<connections per second> <ok> <failed>". A connect that takes
 *       longer than 1 s counts as failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int serve(int port, int secs)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
	int one = 1, zero = 0;
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	if (s < 0)
		return perror("socket"), 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4096) < 0)
		return perror("bind/listen"), 1;
	alarm(secs);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c >= 0)
			close(c);
	}
}

static int client(const char *addr, int port, double secs)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	long ok = 0, bad = 0;

	if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		len = sizeof(*a6);
	} else {
		fprintf(stderr, "connrate: bad address %s\n", addr);
		return 2;
	}
	double t0 = now(), end = t0 + secs, t;
	while ((t = now()) < end) {
		int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (s < 0)
			return perror("socket"), 1;
		struct linger lg = {1, 0};
		setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		int r = connect(s, (struct sockaddr *)&ss, len);
		if (r < 0 && errno == EINPROGRESS) {
			struct pollfd p = {.fd = s, .events = POLLOUT};
			int err = 0;
			socklen_t el = sizeof(err);
			if (poll(&p, 1, 1000) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
				r = 0;
		}
		if (r == 0)
			ok++;
		else
			bad++;
		close(s);
	}
	t = now();
	printf("%.1f %ld %ld\n", ok / (t - t0), ok, bad);
	return ok > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "serve") == 0)
		return serve(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 3600);
	if (argc == 5 && strcmp(argv[1], "connect") == 0)
		return client(argv[2], atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: connrate serve PORT [SECONDS] | connrate connect ADDR PORT SECONDS\n");
	return 2;
}
