/*
 * ep_musl_resolve: an Alpine-like pod's name lookups. Built with musl-gcc
 * (static), so getaddrinfo() is musl's stub resolver: it reads
 * /etc/resolv.conf, sends the A and AAAA questions of an AF_UNSPEC lookup
 * together from one socket, and fails the whole lookup when either of them
 * gets no usable answer. That is the client the glibc-based checks miss: a
 * cache that answers A but leaves AAAA unanswered breaks every lookup here.
 *
 *   ep_musl_resolve [--rounds N | --duration S] [--interval-ms MS] NAME...
 *   ep_musl_resolve [--rounds N | --duration S] [--interval-ms MS] --file FILE
 *                   (FILE: the first word of each line)
 * --duration: the names over and over until S seconds have passed.
 *
 * Prints one JSON object: lookups, ok, failed, the first failures with
 * musl's error, and the longest lookup. Exit 0 when every lookup resolved.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_NAMES 4096
#define MAX_REPORTED 5

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_names(const char *path, char **names, int max)
{
	char line[512], word[256];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		perror(path);
		return -1;
	}
	while (n < max && fgets(line, sizeof(line), f))
		if (sscanf(line, "%255s", word) == 1 && word[0] != '#')
			names[n++] = strdup(word);
	fclose(f);
	return n;
}

static int usage(void)
{
	fprintf(stderr, "usage: ep_musl_resolve [--rounds N | --duration S] [--interval-ms MS] (--file FILE | NAME...)\n");
	return 2;
}

int main(int argc, char **argv)
{
	static char *names[MAX_NAMES];
	long rounds = 1, interval_ms = 0, duration_s = 0, lookups = 0, ok = 0, failed = 0, reported = 0;
	double worst = 0;
	int n = 0, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--duration") && i + 1 < argc)
			duration_s = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
			interval_ms = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--file") && i + 1 < argc) {
			int got = read_names(argv[++i], names + n, MAX_NAMES - n);

			if (got < 0)
				return 2;
			n += got;
		} else if (argv[i][0] == '-')
			return usage();
		else if (n < MAX_NAMES)
			names[n++] = argv[i];
	}
	if (n == 0 || rounds < 1 || duration_s < 0)
		return usage();
	double end = duration_s ? now_s() + duration_s : 0;

	if (duration_s)
		rounds = 1L << 40;

	printf("{\"failures\": [");
	for (long r = 0; r < rounds && !(end && now_s() >= end); r++) {
		for (i = 0; i < n && !(end && now_s() >= end); i++) {
			struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
			struct addrinfo *res = NULL;
			double t0 = now_s(), dt;
			int rc = getaddrinfo(names[i], "80", &hints, &res);

			dt = now_s() - t0;
			if (dt > worst)
				worst = dt;
			lookups++;
			if (rc == 0) {
				ok++;
				freeaddrinfo(res);
			} else {
				failed++;
				if (reported++ < MAX_REPORTED)
					printf("%s{\"name\": \"%s\", \"error\": \"%s\", \"s\": %.3f}",
					       reported > 1 ? ", " : "", names[i], gai_strerror(rc), dt);
			}
			if (interval_ms > 0) {
				struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };

				nanosleep(&ts, NULL);
			}
		}
	}
	printf("], \"lookups\": %ld, \"ok\": %ld, \"failed\": %ld, \"slowest_s\": %.3f}\n",
	       lookups, ok, failed, worst);
	return failed ? 1 : 0;
}
