/*
 * probe: the tiny client/server the conformance scripts use to see which
 * packets a policy lets through.
 *
 *   probe serve [--log FILE] [--ready FILE] [--bind ADDR] tcp|udp PORT
 *       Listen on [::]:PORT dual-stack (or on ADDR). tcp: accept, write
 *       "HELLO <port>\n", close. udp: echo every datagram back, from the
 *       address it was sent to. --log appends "tcp|udp <peer> <port>" per
 *       accepted connection / datagram (flushed at once). --ready is
 *       created once the socket is bound.
 *
 *   probe connect [--src ADDR] tcp|udp ADDR PORT TIMEOUT_MS
 *       tcp: connect, half-close, read what the server says (greeting or
 *       EOF); success once the handshake completed. udp: send one datagram
 *       (a well-formed DNS query, so a DNS server answers it as an echo
 *       server would) and wait for any reply.
 *       --src binds the source address (IP_FREEBIND: it need not exist).
 *       Exit 0 on success, 1 on timeout/refused/unreachable (reason on
 *       stderr), 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_FREEBIND
#define IP_FREEBIND 15
#endif

static FILE *logf;

static void usage(void)
{
	fprintf(stderr,
		"usage: probe serve [--log FILE] [--ready FILE] [--bind ADDR] tcp|udp PORT\n"
		"       probe connect [--src ADDR] tcp|udp ADDR PORT TIMEOUT_MS\n");
	exit(2);
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
		usage();
	return (int)v;
}

/* "tcp" -> 1, "udp" -> 0, anything else: usage */
static int parse_tcp(const char *s)
{
	if (strcmp(s, "tcp") == 0)
		return 1;
	if (strcmp(s, "udp") != 0)
		usage();
	return 0;
}

/* Parse a numeric address into ss; returns the family or -1. */
static int parse_addr(const char *s, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return AF_INET6;
	}
	return -1;
}

/* Peer address as text, v4-mapped IPv6 shown as plain IPv4. */
static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	if (ss->ss_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, n);
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a))
		return inet_ntop(AF_INET, &a->s6_addr[12], buf, n);
	return inet_ntop(AF_INET6, a, buf, n);
}

static void log_peer(const char *proto, const struct sockaddr_storage *peer, int port)
{
	char buf[INET6_ADDRSTRLEN];

	if (!logf)
		return;
	fprintf(logf, "%s %s %d\n", proto, addr_str(peer, buf, sizeof(buf)), port);
	fflush(logf);
}

static int serve(int argc, char **argv)
{
	const char *logpath = NULL, *ready = NULL, *bindaddr = NULL;
	int i = 0;

	while (i < argc && strncmp(argv[i], "--", 2) == 0) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--log") == 0)
			logpath = argv[i + 1];
		else if (strcmp(argv[i], "--ready") == 0)
			ready = argv[i + 1];
		else if (strcmp(argv[i], "--bind") == 0)
			bindaddr = argv[i + 1];
		else
			usage();
		i += 2;
	}
	if (argc - i != 2)
		usage();
	int tcp = parse_tcp(argv[i]);
	int port = parse_port(argv[i + 1]);

	if (logpath) {
		logf = fopen(logpath, "ae");
		if (!logf) {
			fprintf(stderr, "probe: opening %s: %s\n", logpath, strerror(errno));
			return 1;
		}
	}

	struct sockaddr_storage ss;
	socklen_t sslen;
	int fam;
	if (bindaddr) {
		fam = parse_addr(bindaddr, port, &ss, &sslen);
		if (fam < 0)
			usage();
	} else {
		fam = parse_addr("::", port, &ss, &sslen);
	}

	int fd = socket(fam, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("probe: socket");
		return 1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6 && !bindaddr)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (!tcp) {
		/* Reply from the address the datagram was sent to. */
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		if (fam == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
		fprintf(stderr, "probe: bind %s port %d: %s\n", bindaddr ? bindaddr : "::", port,
			strerror(errno));
		return 1;
	}
	if (tcp && listen(fd, 128) < 0) {
		perror("probe: listen");
		return 1;
	}
	if (ready) {
		int rfd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (rfd >= 0)
			close(rfd);
	}

	if (tcp) {
		char greet[32];
		int glen = snprintf(greet, sizeof(greet), "HELLO %d\n", port);
		for (;;) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			int c = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
			if (c < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				perror("probe: accept");
				return 1;
			}
			log_peer("tcp", &peer, port);
			/* A peer that is gone already gets nothing: ignore errors. */
			(void)!send(c, greet, glen, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(c);
		}
	}

	for (;;) {
		char buf[65536];
		char cbuf[256];
		struct sockaddr_storage peer;
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = {
			.msg_name = &peer, .msg_namelen = sizeof(peer),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(fd, &mh, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("probe: recvmsg");
			return 1;
		}
		log_peer("udp", &peer, port);

		/* Hand the destination address back as the source of the reply. */
		char obuf[256];
		size_t olen = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo pi;
				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				pi.ipi_ifindex = 0;
				pi.ipi_spec_dst = pi.ipi_addr;
				struct cmsghdr *o = (struct cmsghdr *)obuf;
				o->cmsg_level = IPPROTO_IP;
				o->cmsg_type = IP_PKTINFO;
				o->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(o), &pi, sizeof(pi));
				olen = CMSG_SPACE(sizeof(pi));
			} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
				struct in6_pktinfo pi;
				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				/* Keep the ifindex: needed for link-local sources. */
				struct cmsghdr *o = (struct cmsghdr *)obuf;
				o->cmsg_level = IPPROTO_IPV6;
				o->cmsg_type = IPV6_PKTINFO;
				o->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(o), &pi, sizeof(pi));
				olen = CMSG_SPACE(sizeof(pi));
			}
		}
		iov.iov_len = (size_t)n;
		struct msghdr om = {
			.msg_name = &peer, .msg_namelen = mh.msg_namelen,
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = olen ? obuf : NULL, .msg_controllen = olen,
		};
		if (sendmsg(fd, &om, MSG_DONTWAIT) < 0)
			fprintf(stderr, "probe: echo: %s\n", strerror(errno));
	}
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline; returns revents, 0 on timeout. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		return p.revents;
	}
}

static const char *reason(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return "refused";
	case EHOSTUNREACH:
		return "unreachable (host)";
	case ENETUNREACH:
		return "unreachable (network)";
	case EACCES:
	case EPERM:
		return "denied locally";
	default:
		return strerror(err);
	}
}

/* A DNS query for web.default.svc.cluster.local A, id 0x6e66. */
static size_t dns_query(unsigned char *q)
{
	static const char *labels[] = { "web", "default", "svc", "cluster", "local", NULL };
	size_t n = 0;
	static const unsigned char hdr[12] = { 0x6e, 0x66, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };

	memcpy(q, hdr, sizeof(hdr));
	n = sizeof(hdr);
	for (int i = 0; labels[i]; i++) {
		size_t l = strlen(labels[i]);
		q[n++] = (unsigned char)l;
		memcpy(q + n, labels[i], l);
		n += l;
	}
	q[n++] = 0;
	q[n++] = 0; q[n++] = 1;	/* QTYPE A */
	q[n++] = 0; q[n++] = 1;	/* QCLASS IN */
	return n;
}

static int do_connect(int argc, char **argv)
{
	const char *src = NULL;
	int i = 0;

	while (i < argc && strncmp(argv[i], "--", 2) == 0) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--src") == 0)
			src = argv[i + 1];
		else
			usage();
		i += 2;
	}
	if (argc - i != 4)
		usage();
	int tcp = parse_tcp(argv[i]);
	int port = parse_port(argv[i + 2]);
	char *end;
	long timeout = strtol(argv[i + 3], &end, 10);
	if (*end != '\0' || timeout <= 0)
		usage();

	struct sockaddr_storage dst, sa;
	socklen_t dlen, slen;
	int fam = parse_addr(argv[i + 1], port, &dst, &dlen);
	if (fam < 0) {
		fprintf(stderr, "probe: not a numeric address: %s\n", argv[i + 1]);
		return 2;
	}
	long long deadline = now_ms() + timeout;

	int fd = socket(fam, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		perror("probe: socket");
		return 1;
	}
	if (src) {
		if (parse_addr(src, 0, &sa, &slen) != fam) {
			fprintf(stderr, "probe: --src %s: not an address of the destination's family\n", src);
			return 2;
		}
		int one = 1;
		/* IP_FREEBIND at SOL_IP also covers IPv6 sockets. */
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, slen) < 0) {
			fprintf(stderr, "probe: bind %s: %s\n", src, strerror(errno));
			return 1;
		}
	}

	if (connect(fd, (struct sockaddr *)&dst, dlen) < 0 && errno != EINPROGRESS) {
		fprintf(stderr, "probe: connect %s %d: %s\n", argv[i + 1], port, reason(errno));
		return 1;
	}

	if (tcp) {
		int ev = wait_fd(fd, POLLOUT, deadline);
		if (!ev) {
			fprintf(stderr, "probe: tcp %s %d: timeout\n", argv[i + 1], port);
			return 1;
		}
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			fprintf(stderr, "probe: tcp %s %d: %s\n", argv[i + 1], port, reason(err));
			return 1;
		}
		/* Connected: the policy let the handshake through. Half-close so
		 * servers that wait for a request (httpd, dnsmasq) close at once,
		 * and print whatever the server said. */
		shutdown(fd, SHUT_WR);
		char buf[512];
		size_t got = 0;
		while (got < sizeof(buf) - 1 && wait_fd(fd, POLLIN, deadline)) {
			ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		buf[got] = '\0';
		if (got)
			fputs(buf, stdout);
		else
			puts("connected");
		return 0;
	}

	unsigned char q[512];
	size_t qlen = dns_query(q);
	/* Resend a few times within the timeout: UDP may lose the first one
	 * while neighbours are being resolved. */
	long long next_send = 0;
	for (;;) {
		long long t = now_ms();
		if (t >= deadline) {
			fprintf(stderr, "probe: udp %s %d: timeout\n", argv[i + 1], port);
			return 1;
		}
		if (t >= next_send) {
			if (send(fd, q, qlen, 0) < 0 && errno != EAGAIN) {
				fprintf(stderr, "probe: udp %s %d: %s\n", argv[i + 1], port, reason(errno));
				return 1;
			}
			next_send = t + 400;
		}
		long long until = next_send < deadline ? next_send : deadline;
		if (!wait_fd(fd, POLLIN, until))
			continue;
		char buf[2048];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n >= 0) {
			printf("reply %zd bytes\n", n);
			return 0;
		}
		if (errno == EAGAIN || errno == EINTR)
			continue;
		fprintf(stderr, "probe: udp %s %d: %s\n", argv[i + 1], port, reason(errno));
		return 1;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "serve") == 0)
		return serve(argc - 2, argv + 2);
	if (strcmp(argv[1], "connect") == 0)
		return do_connect(argc - 2, argv + 2);
	usage();
	return 2;
}
