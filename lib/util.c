#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ep_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -1;
	return 0;
}

int ep_rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char sub[PATH_MAX];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		ep_rm_rf(sub);
	}
	closedir(d);
	return rmdir(path);
}

int ep_read_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	*out = NULL;
	if (!f)
		return -errno;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, 4096, f);

		n += r;
		if (n > max) {
			free(buf);
			fclose(f);
			return -EFBIG;
		}
		if (r < 4096) {
			if (ferror(f)) {
				int e = errno ? errno : EIO;

				free(buf);
				fclose(f);
				return -e;
			}
			break;
		}
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int ep_atomic_open(struct ep_atomic_file *af, const char *path, mode_t mode)
{
	char *dcopy = NULL, *bcopy = NULL;
	int fd = -1, ret;

	memset(af, 0, sizeof(*af));
	af->path = strdup(path);
	dcopy = strdup(path);
	bcopy = strdup(path);
	if (!af->path || !dcopy || !bcopy) {
		ret = -ENOMEM;
		goto fail;
	}
	/* A hidden name in the same directory: rename(2) is only atomic within a
	 * file system, and dnsmasq must never pick up a half-written file. */
	if (asprintf(&af->tmp, "%s/.%s.tmp.XXXXXX", dirname(dcopy), basename(bcopy)) < 0) {
		af->tmp = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	fd = mkostemp(af->tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		free(af->tmp);
		af->tmp = NULL;
		goto fail;
	}
	/* mkstemp makes 0600; dnsmasq rereads addn-hosts after dropping root. */
	if (fchmod(fd, mode)) {
		ret = -errno;
		goto fail;
	}
	af->f = fdopen(fd, "w");
	if (!af->f) {
		ret = -errno;
		goto fail;
	}
	free(dcopy);
	free(bcopy);
	return 0;
fail:
	if (fd >= 0) {
		close(fd);
		unlink(af->tmp);
	}
	free(dcopy);
	free(bcopy);
	free(af->path);
	free(af->tmp);
	memset(af, 0, sizeof(*af));
	return ret;
}

void ep_atomic_abort(struct ep_atomic_file *af)
{
	if (af->f)
		fclose(af->f);
	if (af->tmp)
		unlink(af->tmp);
	free(af->tmp);
	free(af->path);
	memset(af, 0, sizeof(*af));
}

static int fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
	} else {
		if (fsync(fd))
			ret = -errno;
		close(fd);
	}
	free(copy);
	return ret;
}

int ep_atomic_commit(struct ep_atomic_file *af)
{
	int ret = 0;

	if (fflush(af->f) || ferror(af->f))
		ret = -(errno ? errno : EIO);
	else if (fsync(fileno(af->f)))
		ret = -errno;
	if (fclose(af->f) && !ret)
		ret = -errno;
	af->f = NULL;
	if (!ret && rename(af->tmp, af->path))
		ret = -errno;
	/* The rename itself must reach the disk before we call it written. */
	if (!ret)
		ret = fsync_dir(af->path);
	else
		unlink(af->tmp);
	free(af->tmp);
	free(af->path);
	memset(af, 0, sizeof(*af));
	return ret;
}

int ep_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	struct ep_atomic_file af;
	int ret = ep_atomic_open(&af, path, mode);

	if (ret)
		return ret;
	if (len && fwrite(data, 1, len, af.f) != len) {
		ret = -(errno ? errno : EIO);
		ep_atomic_abort(&af);
		return ret;
	}
	return ep_atomic_commit(&af);
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t ep_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t ep_boottime_ns(void)
{
	return clock_ns(CLOCK_BOOTTIME);
}

uint64_t ep_coarse_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC_COARSE);
}

double ep_wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
