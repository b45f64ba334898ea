/* Names, the domains file, the hosts file and the loss guard arithmetic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "dns_name.h"
#include "hosts_file.h"
#include "snapshot.h"
#include "tap.h"

static int norm_ok(const char *in, const char *want)
{
	char out[EP_DNS_NAME_BUF];
	const char *why = NULL;

	if (ep_dns_name_normalize(in, strlen(in), out, &why))
		return 0;
	return !strcmp(out, want);
}

static int norm_bad(const char *in, const char *reason)
{
	char out[EP_DNS_NAME_BUF];
	const char *why = NULL;

	return ep_dns_name_normalize(in, strlen(in), out, &why) == -EINVAL && why &&
	       (!reason || strstr(why, reason));
}

static void test_names(void)
{
	char label63[64], label64[65], long_name[300];
	int i;

	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';

	tap_ok(norm_ok("www.example.com", "www.example.com"), "plain name");
	tap_ok(norm_ok("WWW.Example.COM.", "www.example.com"), "lowercased, trailing dot dropped");
	tap_ok(norm_ok("_acme-challenge.x-1.example", "_acme-challenge.x-1.example"),
	       "underscore and inner hyphen allowed");
	tap_ok(norm_ok("localhost", "localhost"), "single label");
	tap_ok(norm_ok("1.2.3.example", "1.2.3.example"), "numeric labels below a name");
	tap_ok(norm_bad("a..b", "empty label"), "empty label rejected");
	tap_ok(norm_bad(".a.b", "empty label"), "leading dot rejected");
	tap_ok(norm_bad(".", "empty"), "root alone rejected");
	tap_ok(norm_bad("", "empty"), "empty rejected");
	{
		char n[80];

		snprintf(n, sizeof(n), "%s.example", label63);
		tap_ok(norm_ok(n, n), "63-character label accepted");
		snprintf(n, sizeof(n), "%s.example", label64);
		tap_ok(norm_bad(n, "63"), "64-character label rejected");
	}
	/* 4 labels of 63 = 255 characters with dots: too long. */
	long_name[0] = '\0';
	for (i = 0; i < 4; i++) {
		strcat(long_name, label63);
		if (i < 3)
			strcat(long_name, ".");
	}
	tap_ok(norm_bad(long_name, "253"), "255-character name rejected");
	/* 253 exactly: 3 x 63 + 61 + 3 dots. */
	long_name[0] = '\0';
	for (i = 0; i < 3; i++) {
		strcat(long_name, label63);
		strcat(long_name, ".");
	}
	memset(long_name + strlen(long_name), 'b', 61);
	long_name[3 * 64 + 61] = '\0';
	tap_ok(strlen(long_name) == 253 && norm_ok(long_name, long_name), "253-character name accepted");
	tap_ok(norm_bad("bad!.example", "character"), "'!' rejected");
	tap_ok(norm_bad("sp ace.example", "character"), "space rejected");
	tap_ok(norm_bad("caf\xc3\xa9.example", "character"), "non-ASCII rejected");
	tap_ok(norm_bad("*.example", "character"), "wildcard rejected");
	tap_ok(norm_bad("-a.example", "-"), "leading hyphen rejected");
	tap_ok(norm_bad("a-.example", "-"), "trailing hyphen rejected");
	tap_ok(norm_bad("10.1.2.3", "numeric"), "an IPv4 address is not a name");
}

struct bad_rec {
	unsigned line[16];
	char why[16][64];
	int n;
};

static void on_bad(void *ctx, unsigned line, const char *text, const char *why)
{
	struct bad_rec *b = ctx;

	if (b->n < 16) {
		b->line[b->n] = line;
		snprintf(b->why[b->n], sizeof(b->why[0]), "%s", why);
		b->n++;
	}
}

static void test_domains_file(void)
{
	static const char text[] =
		"# comment line\n"		/* 1 */
		"\n"				/* 2 */
		"  www.example.com  \n"		/* 3 */
		"api.example.com # trailing\n"	/* 4 */
		"bad..example.com\n"		/* 5 */
		"\tWWW.EXAMPLE.COM.\n"		/* 6 duplicate */
		"two words.example\n"		/* 7 */
		"   \n"				/* 8 */
		"last.example.com";		/* 9, no newline */
	struct ep_nameset s;
	struct ep_domain_stats st;
	struct bad_rec bad = { 0 };
	FILE *f = fmemopen((void *)text, sizeof(text) - 1, "r");
	int ret;

	ep_nameset_init(&s);
	ret = ep_domains_read(f, &s, &st, on_bad, &bad);
	fclose(f);
	tap_ok(ret == 0, "domains file read");
	tap_ok(s.n == 3, "3 unique names (got %zu)", s.n);
	tap_ok(s.n == 3 && !strcmp(s.order[0], "www.example.com") && !strcmp(s.order[1], "api.example.com") &&
		       !strcmp(s.order[2], "last.example.com"),
	       "names in file order, trimmed, comment stripped, last line without newline");
	tap_ok(st.lines == 9 && st.bad_lines == 2 && st.duplicates == 1, "stats: 9 lines, 2 bad, 1 duplicate");
	tap_ok(bad.n == 2 && bad.line[0] == 5 && bad.line[1] == 7, "bad lines reported with line numbers 5 and 7");
	tap_ok(bad.n == 2 && strstr(bad.why[0], "empty label") && strstr(bad.why[1], "word"),
	       "bad lines carry a reason");
	tap_ok(ep_nameset_has(&s, "api.example.com") && !ep_nameset_has(&s, "nope.example.com"), "set lookup");
	ep_nameset_free(&s);

	ep_nameset_init(&s);
	tap_ok(ep_domains_load("/nonexistent/domains.txt", &s, &st, NULL, NULL) == -ENOENT,
	       "missing file: -ENOENT");
	ep_nameset_free(&s);

	/* Many names: the table grows and keeps everything. */
	ep_nameset_init(&s);
	{
		char n[64];
		int i, all = 1;

		for (i = 0; i < 50000; i++) {
			snprintf(n, sizeof(n), "n%d.example", i);
			if (ep_nameset_add(&s, n) != 1)
				all = 0;
		}
		for (i = 0; i < 50000; i += 7) {
			snprintf(n, sizeof(n), "n%d.example", i);
			if (!ep_nameset_has(&s, n) || ep_nameset_add(&s, n) != 0)
				all = 0;
		}
		tap_ok(all && s.n == 50000, "50000 names added once, found, duplicates refused");
	}
	ep_nameset_free(&s);
}

static struct ep_dns_addr mk4(const char *s)
{
	struct ep_dns_addr a = { .family = AF_INET };

	inet_pton(AF_INET, s, a.a);
	return a;
}

static struct ep_dns_addr mk6(const char *s)
{
	struct ep_dns_addr a = { .family = AF_INET6 };

	inet_pton(AF_INET6, s, a.a);
	return a;
}

static void test_hosts_file(void)
{
	char dir[] = "/tmp/ep-test-hosts.XXXXXX", path[256], buf[64];
	struct ep_atomic_file af;
	struct ep_nameset names, cur;
	struct ep_loss loss;
	struct stat sb;
	struct ep_dns_addr v[5] = { mk6("2001:db8::1"), mk4("198.18.0.2"), mk4("198.18.0.1"),
				    mk4("198.18.0.2"), mk6("2001:db8::1") };
	size_t n;
	int i;

	n = ep_dns_addr_sort_unique(v, 5);
	tap_ok(n == 3 && v[0].family == AF_INET && v[2].family == AF_INET6 &&
		       !strcmp(ep_dns_addr_str(&v[0], buf, sizeof(buf)), "198.18.0.1"),
	       "addresses sorted (A first) and deduplicated");

	if (!mkdtemp(dir)) {
		tap_ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/preload.hosts", dir);
	tap_ok(ep_atomic_open(&af, path, 0644) == 0, "atomic open");
	fprintf(af.f, "# header\n198.18.0.1 a.example\n2001:db8::1 a.example\n198.18.0.2 b.example\n");
	tap_ok(access(path, F_OK) != 0, "target does not exist before commit");
	tap_ok(ep_atomic_commit(&af) == 0, "atomic commit");
	tap_ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "file in place, mode 0644");

	/* An aborted write leaves the old file and no temporary behind. */
	tap_ok(ep_atomic_open(&af, path, 0644) == 0, "second atomic open");
	fprintf(af.f, "garbage\n");
	ep_atomic_abort(&af);
	{
		FILE *f = fopen(path, "r");
		char line[128] = "";

		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = '\0';
			fclose(f);
		}
		tap_ok(!strcmp(line, "# header\n"), "abort keeps the old content");
	}
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) = 1", dir);
		tap_ok(system(cmd) == 0, "no temporary file left after abort");
	}

	ep_nameset_init(&names);
	tap_ok(ep_hosts_read_names(path, &names) == 0 && names.n == 2 && ep_nameset_has(&names, "a.example") &&
		       ep_nameset_has(&names, "b.example"),
	       "hosts file read back: 2 names");
	tap_ok(ep_hosts_read_names("/nonexistent/x.hosts", &names) == -ENOENT, "missing hosts file: -ENOENT");

	/* Loss guard arithmetic: 2 old names. */
	ep_nameset_init(&cur);
	ep_nameset_add(&cur, "a.example");
	ep_nameset_add(&cur, "new.example");
	ep_loss_compute(&names, &cur, &loss);
	tap_ok(loss.old_names == 2 && loss.lost == 1 && loss.lost_pct == 50.0, "1 of 2 lost = 50%%");
	tap_ok(ep_loss_exceeds(&loss, 10) && ep_loss_exceeds(&loss, 49.9) && !ep_loss_exceeds(&loss, 50) &&
		       !ep_loss_exceeds(&loss, 100),
	       "50%% loss: refused at 10 and 49.9, allowed at exactly 50 and at 100");
	ep_nameset_free(&cur);
	ep_nameset_free(&names);

	/* 1000 old names, 100 lost = exactly 10%: allowed; 101 lost: refused. */
	ep_nameset_init(&names);
	ep_nameset_init(&cur);
	for (i = 0; i < 1000; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "h%d.example", i);
		ep_nameset_add(&names, nm);
		if (i >= 100)
			ep_nameset_add(&cur, nm);
	}
	ep_loss_compute(&names, &cur, &loss);
	tap_ok(loss.lost == 100 && !ep_loss_exceeds(&loss, 10), "exactly 10%% lost is allowed by --max-loss 10");
	ep_nameset_free(&cur);
	ep_nameset_init(&cur);
	for (i = 101; i < 1000; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "h%d.example", i);
		ep_nameset_add(&cur, nm);
	}
	ep_loss_compute(&names, &cur, &loss);
	tap_ok(loss.lost == 101 && ep_loss_exceeds(&loss, 10), "10.1%% lost is refused by --max-loss 10");
	tap_ok(!ep_loss_exceeds(&loss, 100), "--max-loss 100 never refuses");
	ep_nameset_free(&cur);
	/* New names do not count against the old snapshot. */
	ep_nameset_init(&cur);
	for (i = 0; i < 2000; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "h%d.example", i);
		ep_nameset_add(&cur, nm);
	}
	ep_loss_compute(&names, &cur, &loss);
	tap_ok(loss.lost == 0 && !ep_loss_exceeds(&loss, 0), "a grown snapshot loses nothing");
	ep_nameset_free(&cur);
	ep_nameset_free(&names);
	{
		struct ep_nameset empty;

		ep_nameset_init(&empty);
		ep_nameset_init(&cur);
		ep_loss_compute(&empty, &cur, &loss);
		tap_ok(!ep_loss_exceeds(&loss, 0), "no previous names: never refused");
	}

	unlink(path);
	rmdir(dir);
}

static void count_changed(const char *name, void *arg)
{
	(*(int *)arg)++;
}

/* The change guard's comparison: poisoning looks like change, not loss. */
static void test_snapshot_change(void)
{
	struct ep_snapshot old = { 0 }, cur = { 0 };
	struct ep_dns_addr a1 = mk4("198.18.0.1"), a2 = mk4("198.18.0.2"), a9 = mk4("198.51.100.9"),
			   v6 = mk6("2001:db8::1");
	struct ep_change ch;
	int seen = 0, i;

	/* old: same (two addresses), reordered, dup, replaced, lost-aaaa, gone */
	ep_snapshot_add(&old, "same.example", &a1);
	ep_snapshot_add(&old, "same.example", &v6);
	ep_snapshot_add(&old, "order.example", &a1);
	ep_snapshot_add(&old, "order.example", &a2);
	ep_snapshot_add(&old, "dup.example", &a1);
	ep_snapshot_add(&old, "replaced.example", &a1);
	ep_snapshot_add(&old, "lost-aaaa.example", &a2);
	ep_snapshot_add(&old, "lost-aaaa.example", &v6);
	ep_snapshot_add(&old, "added.example", &a2);
	ep_snapshot_add(&old, "gone.example", &a2);
	/* cur */
	ep_snapshot_add(&cur, "SAME.example", &a1);
	ep_snapshot_add(&cur, "same.example", &v6);
	ep_snapshot_add(&cur, "order.example", &a2);
	ep_snapshot_add(&cur, "order.example", &a1);
	ep_snapshot_add(&cur, "dup.example", &a1);
	ep_snapshot_add(&cur, "dup.example", &a1);
	ep_snapshot_add(&cur, "replaced.example", &a9);
	ep_snapshot_add(&cur, "lost-aaaa.example", &a2);
	ep_snapshot_add(&cur, "added.example", &a2);
	ep_snapshot_add(&cur, "added.example", &a9);
	ep_snapshot_add(&cur, "new.example", &a9);
	ep_snapshot_change(&old, &cur, &ch, count_changed, &seen);
	tap_ok(ch.old_names == 7 && ch.both == 6, "change: 7 old names, 6 in both (gone is loss, not change)");
	tap_ok(ch.changed == 3 && seen == 3,
	       "change: replaced, one address lost, one added = 3 changed; same set in another order, "
	       "case or with duplicates is not (%zu)", ch.changed);
	tap_ok(ep_change_exceeds(&ch, 25) && ep_change_exceeds(&ch, 42.8) && !ep_change_exceeds(&ch, 42.86) &&
		       !ep_change_exceeds(&ch, 100),
	       "3 of 7 (42.9%%) refused at 25, allowed at 42.86 and 100");
	ep_snapshot_free(&old);
	ep_snapshot_free(&cur);

	/* 100 names, exactly 25 changed: allowed at 25; 26: refused. */
	for (i = 0; i < 100; i++) {
		char nm[32];
		struct ep_dns_addr x = a1;

		snprintf(nm, sizeof(nm), "h%d.example", i);
		x.a[3] = (uint8_t)i;
		ep_snapshot_add(&old, nm, &x);
		if (i < 25)
			x.a[2] = 7;
		ep_snapshot_add(&cur, nm, &x);
	}
	ep_snapshot_change(&old, &cur, &ch, NULL, NULL);
	tap_ok(ch.changed == 25 && !ep_change_exceeds(&ch, 25), "exactly 25%% changed is allowed by 25");
	{
		struct ep_dns_addr x = a1;

		x.a[3] = 99;
		x.a[2] = 8;
		ep_snapshot_add(&cur, "h99.example", &x); /* h99 gains an address */
	}
	ep_snapshot_change(&old, &cur, &ch, NULL, NULL);
	tap_ok(ch.changed == 26 && ep_change_exceeds(&ch, 25), "26%% changed is refused by 25");
	ep_snapshot_free(&cur);
	ep_snapshot_change(&old, &cur, &ch, NULL, NULL);
	tap_ok(ch.both == 0 && ch.changed == 0 && !ep_change_exceeds(&ch, 0),
	       "an empty new snapshot changes nothing (that is the loss guard's case)");
	ep_snapshot_free(&old);
	ep_snapshot_change(&old, &cur, &ch, NULL, NULL);
	tap_ok(!ep_change_exceeds(&ch, 0), "no previous names: never refused");
}

int main(void)
{
	test_names();
	test_snapshot_change();
	test_domains_file();
	test_hosts_file();
	return tap_done();
}
