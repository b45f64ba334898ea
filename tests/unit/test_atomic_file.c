/*
 * ep_atomic_* and ep_write_file_atomic (lib/util.c), the one way the agent and
 * the CLI write files: a unique temporary per writer (two writers at once
 * never clobber each other's), the file fsync()ed before the rename and the
 * directory after it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

/*
 * fsync() interposed: this definition wins over libc's for every caller in
 * the test binary, lib/util.c included. It records what was synced (a
 * directory or a regular file, by device and inode) and then syncs for real.
 */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static bool recording;
static struct {
	dev_t dev;
	ino_t ino;
	bool dir;
} synced[64];
static size_t n_synced;

int fsync(int fd)
{
	struct stat st;

	pthread_mutex_lock(&sync_lock);
	if (recording && n_synced < EP_ARRAY_SIZE(synced) && fstat(fd, &st) == 0) {
		synced[n_synced].dev = st.st_dev;
		synced[n_synced].ino = st.st_ino;
		synced[n_synced].dir = S_ISDIR(st.st_mode);
		n_synced++;
	}
	pthread_mutex_unlock(&sync_lock);
	return (int)syscall(SYS_fsync, fd);
}

/* Index of the first recorded sync of path's inode, or -1. */
static int synced_at(const char *path, bool dir)
{
	struct stat st;

	if (stat(path, &st))
		return -1;
	for (size_t i = 0; i < n_synced; i++)
		if (synced[i].dev == st.st_dev && synced[i].ino == st.st_ino && synced[i].dir == dir)
			return (int)i;
	return -1;
}

static int entries(const char *dir)
{
	char cmd[300];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

static bool content_is(const char *path, const char *want)
{
	char *buf = NULL;
	bool ok;

	if (ep_read_file(path, 1 << 20, &buf, NULL))
		return false;
	ok = !strcmp(buf, want);
	free(buf);
	return ok;
}

static void test_syncs(const char *dir)
{
	char path[256];
	int f, d;

	snprintf(path, sizeof(path), "%s/synced.conf", dir);
	pthread_mutex_lock(&sync_lock);
	recording = true;
	n_synced = 0;
	pthread_mutex_unlock(&sync_lock);
	tap_ok(ep_write_file_atomic(path, "a=1\n", 4, 0644) == 0, "ep_write_file_atomic writes");
	pthread_mutex_lock(&sync_lock);
	recording = false;
	pthread_mutex_unlock(&sync_lock);
	f = synced_at(path, false);
	d = synced_at(dir, true);
	tap_ok(f >= 0, "the file's data was fsync()ed (the inode now at the target)");
	tap_ok(d >= 0, "the directory was fsync()ed");
	tap_ok(f >= 0 && d > f, "... after the file (the rename is what the directory sync makes durable)");
	{
		struct stat st;

		tap_ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644 && content_is(path, "a=1\n"),
		       "content in place, mode 0644");
	}
}

static void test_two_writers(const char *dir)
{
	struct ep_atomic_file a, b;
	char path[256];

	snprintf(path, sizeof(path), "%s/two.hosts", dir);
	tap_ok(ep_atomic_open(&a, path, 0644) == 0 && ep_atomic_open(&b, path, 0644) == 0,
	       "two writers open the same target at once");
	tap_ok(a.tmp && b.tmp && strcmp(a.tmp, b.tmp) != 0, "each gets its own temporary file (%s, %s)",
	       a.tmp ? strrchr(a.tmp, '/') + 1 : "?", b.tmp ? strrchr(b.tmp, '/') + 1 : "?");
	tap_ok(a.tmp && b.tmp && !strncmp(a.tmp, dir, strlen(dir)) && !strncmp(b.tmp, dir, strlen(dir)),
	       "both in the target's directory");
	fputs("first writer\n", a.f);
	fputs("second writer, longer content\n", b.f);
	tap_ok(ep_atomic_commit(&b) == 0, "second writer commits first");
	tap_ok(content_is(path, "second writer, longer content\n"), "... its whole content is in place");
	tap_ok(ep_atomic_commit(&a) == 0, "first writer commits after it");
	tap_ok(content_is(path, "first writer\n"), "... and its whole content replaces it (not a mix)");
	tap_ok(entries(dir) == 2, "no temporary file left (2 entries: synced.conf, two.hosts)");
}

#define WRITERS 4
#define ROUNDS 150
#define SIZE 8192

static const char *race_path;
static volatile bool race_stop;

static void *writer(void *arg)
{
	char *buf = malloc(SIZE);
	long errors = 0;

	if (!buf)
		return (void *)1L;
	memset(buf, 'a' + (int)(long)arg, SIZE);
	for (int i = 0; i < ROUNDS; i++)
		if (ep_write_file_atomic(race_path, buf, SIZE, 0644))
			errors++;
	free(buf);
	return (void *)errors;
}

static void *reader(void *arg)
{
	long torn = 0;

	while (!__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE)) {
		char *buf = NULL;
		size_t len = 0;

		if (ep_read_file(race_path, 1 << 20, &buf, &len) == 0) {
			bool whole = len == SIZE;

			for (size_t i = 1; whole && i < len; i++)
				whole = buf[i] == buf[0];
			if (!whole)
				torn++;
		}
		free(buf);
	}
	return (void *)torn;
}

static void test_concurrent(const char *dir)
{
	char path[256];
	pthread_t w[WRITERS], r;
	long errors = 0, torn = 0;
	void *ret;

	snprintf(path, sizeof(path), "%s/race.conf", dir);
	race_path = path;
	{
		char *first = malloc(SIZE);

		if (first) {
			memset(first, 'z', SIZE);
			ep_write_file_atomic(path, first, SIZE, 0644);
			free(first);
		}
	}
	pthread_create(&r, NULL, reader, NULL);
	for (long i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)i);
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(w[i], &ret);
		errors += (long)ret;
	}
	__atomic_store_n(&race_stop, true, __ATOMIC_RELEASE);
	pthread_join(r, &ret);
	torn = (long)ret;
	/* One process, so the old "PATH.tmp.PID" name was shared by all four:
	 * O_TRUNC under another writer, renames of a name already renamed. */
	tap_ok(errors == 0, "%d threads x %d writes of the same file at once: no write failed (%ld)",
	       WRITERS, ROUNDS, errors);
	tap_ok(torn == 0, "a reader meanwhile always saw one writer's whole content (%ld torn)", torn);
	tap_ok(entries(dir) == 3, "no temporary file left behind");
}

int main(void)
{
	char dir[] = "/tmp/ep-test-atomic.XXXXXX";

	if (!mkdtemp(dir)) {
		tap_ok(0, "mkdtemp");
		return tap_done();
	}
	test_syncs(dir);
	test_two_writers(dir);
	test_concurrent(dir);
	tap_ok(ep_write_file_atomic("/nonexistent-dir/x", "x", 1, 0644) == -ENOENT,
	       "a missing directory is -ENOENT");
	ep_rm_rf(dir);
	return tap_done();
}
