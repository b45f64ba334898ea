/* Reading a source set and installing a set atomically (cert_store.h). */
#include "cert_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

const char *const ep_cert_file_names[EP_CERT_NFILES] = {"tls.crt", "tls.key", "ca.crt"};

static const mode_t file_modes[EP_CERT_NFILES] = {0644, 0600, 0644};

void ep_cert_set_free(struct ep_cert_set *s)
{
	for (int i = 0; i < EP_CERT_NFILES; i++) {
		free(s->data[i]);
		s->data[i] = NULL;
		s->len[i] = 0;
	}
}

uint64_t ep_cert_set_hash(const struct ep_cert_set *s)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < EP_CERT_NFILES; i++) {
		uint64_t part = s->data[i] ? ep_hash64(s->data[i], s->len[i]) : 0;

		h = (h ^ part ^ (uint64_t)s->len[i] ^ ((uint64_t)(s->data[i] != NULL) << i)) *
		    0x100000001b3ULL;
	}
	return h;
}

/* Whole file at FD, at most max bytes; larger: an empty buffer and its size. */
static int read_fd(int fd, size_t max, char **out, size_t *len)
{
	struct stat st;
	size_t cap, n = 0;
	char *buf;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((size_t)st.st_size > max) {
		*out = calloc(1, 1);
		*len = (size_t)st.st_size;
		return *out ? 0 : -ENOMEM;
	}
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			/* Growing under us (a writer still at it): read on, up to the limit. */
			char *nb;

			if (cap > max) {
				free(buf);
				*out = calloc(1, 1);
				*len = cap;
				return *out ? 0 : -ENOMEM;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return -errno;
		}
		if (!r)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

static bool inside(const char *root, const char *p)
{
	size_t n = strlen(root);

	return !strncmp(root, p, n) && (p[n] == '/' || (n == 1 && root[0] == '/'));
}

int ep_cert_set_read(const char *dir, unsigned want, size_t max_bytes, struct ep_cert_set *s,
		     char *err, size_t errlen)
{
	char root[PATH_MAX], path[PATH_MAX], real[EP_CERT_NFILES][PATH_MAX];
	int rc;

	memset(s, 0, sizeof(*s));
	if (!realpath(dir, root)) {
		rc = -errno;
		snprintf(err, errlen, "source directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	for (int i = 0; i < EP_CERT_NFILES; i++) {
		struct stat st;
		int fd;

		real[i][0] = '\0';
		if (!(want & (1u << i)))
			continue;
		snprintf(path, sizeof(path), "%.4000s/%s", root, ep_cert_file_names[i]);
		if (lstat(path, &st)) {
			if (errno == ENOENT)
				continue;
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto fail;
		}
		if (!realpath(path, real[i])) {
			/* A link to nothing is an absent file: the validation
			 * names it, and the caller's retry waits out a writer
			 * that is about to create it. */
			if (errno == ENOENT) {
				real[i][0] = '\0';
				continue;
			}
			rc = -errno;
			snprintf(err, errlen, "%s: %s", ep_cert_file_names[i], strerror(-rc));
			goto fail;
		}
		if (!inside(root, real[i])) {
			snprintf(err, errlen, "%s resolves to %s, outside the source directory %s",
				 ep_cert_file_names[i], real[i], root);
			rc = -EPERM;
			goto fail;
		}
		fd = open(real[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0) {
			rc = errno == ENOENT ? -EAGAIN : -errno;
			snprintf(err, errlen, "%s: %s", ep_cert_file_names[i], strerror(errno));
			goto fail;
		}
		rc = read_fd(fd, max_bytes, &s->data[i], &s->len[i]);
		close(fd);
		if (rc) {
			snprintf(err, errlen, "%s: %s", ep_cert_file_names[i],
				 rc == -EINVAL ? "not a regular file" : strerror(-rc));
			goto fail;
		}
	}
	/* The same files still? Otherwise ..data moved during the read and
	 * the set may mix two versions. */
	for (int i = 0; i < EP_CERT_NFILES; i++) {
		char again[PATH_MAX];

		if (!real[i][0])
			continue;
		snprintf(path, sizeof(path), "%.4000s/%s", root, ep_cert_file_names[i]);
		if (!realpath(path, again) || strcmp(again, real[i])) {
			snprintf(err, errlen, "the set changed while being read");
			rc = -EAGAIN;
			goto fail;
		}
	}
	return 0;
fail:
	ep_cert_set_free(s);
	return rc;
}

int ep_cert_set_read_installed(const char *target, unsigned want, size_t max_bytes,
			       struct ep_cert_set *s, char *err, size_t errlen)
{
	char data[PATH_MAX];

	snprintf(data, sizeof(data), "%s/..data", target);
	return ep_cert_set_read(data, want, max_bytes, s, err, errlen);
}

static int write_file(int dfd, const char *name, const char *buf, size_t len, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t off = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)w;
	}
	/* The umask must not widen or narrow what consumers rely on. */
	if (!rc && fchmod(fd, mode))
		rc = -errno;
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/* Replaces (or creates) the symlink NAME in DFD with one to DEST, atomically. */
static int link_swap(int dfd, const char *name, const char *dest)
{
	char tmp[NAME_MAX + 1], cur[PATH_MAX];
	ssize_t n = readlinkat(dfd, name, cur, sizeof(cur) - 1);

	if (n > 0) {
		cur[n] = '\0';
		if (!strcmp(cur, dest))
			return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s_tmp", name);
	unlinkat(dfd, tmp, 0);
	if (symlinkat(dest, dfd, tmp))
		return -errno;
	if (renameat(dfd, tmp, dfd, name)) {
		int rc = -errno;

		unlinkat(dfd, tmp, 0);
		return rc;
	}
	return 0;
}

static void remove_tree(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d;
	struct dirent *e;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(fd, e->d_name, 0);
	closedir(d);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

/* Timestamped directories other than KEEP1 and KEEP2 go. */
static void prune(int tfd, const char *keep1, const char *keep2)
{
	int fd = dup(tfd);
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d))) {
		const char *n = e->d_name;

		if (strncmp(n, "..", 2) || !n[2] || !strncmp(n, "..data", 6) || !strcmp(n, keep1) ||
		    (keep2 && !strcmp(n, keep2)) || e->d_type != DT_DIR)
			continue;
		remove_tree(tfd, n);
	}
	closedir(d);
}

int ep_cert_set_install(const char *target, const struct ep_cert_set *s, char *err,
			size_t errlen)
{
	char gen[NAME_MAX + 1], old[NAME_MAX + 1] = "", link[64];
	struct timespec ts;
	struct tm tm;
	int tfd = -1, dfd = -1, rc;
	ssize_t n;

	if (mkdir(target, 0755) && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "target %s: %s", target, strerror(-rc));
		return rc;
	}
	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "target %s: %s", target, strerror(-rc));
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	for (int tries = 0;; tries++) {
		size_t l = strftime(gen, sizeof(gen), "..%Y_%m_%d_%H_%M_%S", &tm);

		snprintf(gen + l, sizeof(gen) - l, ".%09ld%s%.0d", ts.tv_nsec, tries ? "_" : "",
			 tries);
		if (!mkdirat(tfd, gen, 0755))
			break;
		if (errno != EEXIST || tries > 100) {
			rc = -errno;
			snprintf(err, errlen, "%s/%s: %s", target, gen, strerror(-rc));
			goto out;
		}
	}
	dfd = openat(tfd, gen, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: %s", target, gen, strerror(-rc));
		goto out_rm;
	}
	for (int i = 0; i < EP_CERT_NFILES; i++) {
		if (!s->data[i])
			continue;
		rc = write_file(dfd, ep_cert_file_names[i], s->data[i], s->len[i], file_modes[i]);
		if (rc) {
			snprintf(err, errlen, "writing %s/%s/%s: %s", target, gen,
				 ep_cert_file_names[i], strerror(-rc));
			goto out_rm;
		}
	}
	/* The directory's entries on disk before anything points at them. */
	if (fchmod(dfd, 0755) || fsync(dfd)) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: %s", target, gen, strerror(-rc));
		goto out_rm;
	}
	n = readlinkat(tfd, "..data", old, sizeof(old) - 1);
	old[n > 0 ? n : 0] = '\0';
	rc = link_swap(tfd, "..data", gen);
	if (rc) {
		snprintf(err, errlen, "swapping %s/..data: %s", target, strerror(-rc));
		goto out_rm;
	}
	for (int i = 0; i < EP_CERT_NFILES; i++) {
		if (!s->data[i]) {
			unlinkat(tfd, ep_cert_file_names[i], 0);
			continue;
		}
		snprintf(link, sizeof(link), "..data/%s", ep_cert_file_names[i]);
		rc = link_swap(tfd, ep_cert_file_names[i], link);
		if (rc) {
			snprintf(err, errlen, "linking %s/%s: %s", target, ep_cert_file_names[i],
				 strerror(-rc));
			goto out;
		}
	}
	if (fsync(tfd)) {
		rc = -errno;
		snprintf(err, errlen, "fsync %s: %s", target, strerror(-rc));
		goto out;
	}
	prune(tfd, gen, old[0] ? old : NULL);
	rc = 0;
	goto out;
out_rm:
	if (dfd >= 0)
		close(dfd);
	dfd = -1;
	remove_tree(tfd, gen);
out:
	if (dfd >= 0)
		close(dfd);
	close(tfd);
	return rc;
}
