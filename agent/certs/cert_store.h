/*
 * Files of a certificate set: reading a source directory without being
 * fooled by it, and installing a validated set into a target directory with
 * Kubernetes' AtomicWriter layout.
 *
 * Source: tls.crt, tls.key, ca.crt (a bundle: ca.crt only), each possibly a
 * symlink (a mounted Secret's "tls.crt -> ..data/tls.crt"), but never one
 * that resolves outside the source directory. A set read while the
 * writer swaps ..data is detected (the files' resolved paths change under
 * the read) and reported as transient.
 *
 * Target:   TARGET/..2026_12_02_04_05_06.123456789/{tls.crt,tls.key,ca.crt}
 *           TARGET/..data -> ..2026_12_02_04_05_06.123456789
 *           TARGET/tls.crt -> ..data/tls.crt   (and the others)
 * The new timestamped directory is written and fsynced in full, then
 * ..data is replaced with one rename(2): a reader resolving ..data sees the
 * whole old set or the whole new set. The previous directory is kept one
 * generation (a reader that resolved ..data just before the swap still
 * finds its files) and removed at the next install.
 */
#ifndef EP_CERT_STORE_H
#define EP_CERT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ep_cert_file { EP_CERT_CRT, EP_CERT_KEY, EP_CERT_CA, EP_CERT_NFILES };

extern const char *const ep_cert_file_names[EP_CERT_NFILES];

struct ep_cert_set {
	char *data[EP_CERT_NFILES]; /* NULL: absent */
	size_t len[EP_CERT_NFILES];
};

/* Reads the files of WANT (bit i: file i) from DIR; an absent file is
 * NULL, not an error (the validation names it). Files over max_bytes are
 * not read into memory: len is set to their size and data to an empty
 * buffer so the validation reports the size.
 * 0; -EAGAIN: the set changed while being read (retry); other -errno with
 * err: unreadable (directory missing, a file resolving outside DIR, ...). */
int ep_cert_set_read(const char *dir, unsigned want, size_t max_bytes, struct ep_cert_set *s,
		     char *err, size_t errlen);
void ep_cert_set_free(struct ep_cert_set *s);
/* A hash of the set's bytes, to tell a change of content. */
uint64_t ep_cert_set_hash(const struct ep_cert_set *s);

/* Installs the present files of S into TARGET (created 0755 if missing);
 * tls.key mode 0600, the others 0644. 0 or -errno with err. */
int ep_cert_set_install(const char *target, const struct ep_cert_set *s, char *err,
			size_t errlen);

/* Reads the installed set of TARGET (through ..data), e.g. at start to
 * report what a previous agent installed. Same as ep_cert_set_read. */
int ep_cert_set_read_installed(const char *target, unsigned want, size_t max_bytes,
			       struct ep_cert_set *s, char *err, size_t errlen);

#endif
