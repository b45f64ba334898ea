/*
 * libFuzzer target: arbitrary bytes as a domains file (the operator's list)
 * and as a previous snapshot read by the loss guard. Seeds in
 * tests/fuzz/corpus/dns_domains/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "dns_name.h"
#include "hosts_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *ctx, unsigned line, const char *text, const char *why)
{
	(void)ctx;
	(void)line;
	(void)text;
	(void)why;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ep_nameset names, old;
	struct ep_domain_stats st;
	struct ep_loss loss;
	char path[] = "/tmp/fuzz_dns_domains.XXXXXX";
	FILE *f;
	int fd;

	if (!size)
		return 0;
	ep_nameset_init(&names);
	f = fmemopen((void *)data, size, "r");
	if (f) {
		ep_domains_read(f, &names, &st, ignore, NULL);
		fclose(f);
	}
	/* The same bytes as the hosts file that a new snapshot would replace. */
	ep_nameset_init(&old);
	fd = mkstemp(path);
	if (fd >= 0) {
		if (write(fd, data, size) == (ssize_t)size)
			ep_hosts_read_names(path, &old);
		close(fd);
		unlink(path);
	}
	ep_loss_compute(&old, &names, &loss);
	ep_loss_exceeds(&loss, 10.0);
	ep_nameset_free(&old);
	ep_nameset_free(&names);
	return 0;
}
