/*
 * Weighted Maglev consistent hashing (Eisenbud et al., NSDI'16), as Katran
 * builds it. Each backend walks its own permutation of the table, claiming
 * free slots; weights set how many turns a backend gets per round, so slot
 * shares follow weights within n/M. A backend's permutation depends only on
 * its identity, so adding or removing one disturbs about 1/N of the slots.
 */
#ifndef EP_MAGLEV_H
#define EP_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

struct ep_maglev_backend {
	uint32_t id;	  /* value written into the slots (backend id, non-zero) */
	uint32_t weight;  /* 0 = not in the table */
	uint64_t key;	  /* stable identity hash, e.g. ep_maglev_key("10.0.0.1:80") */
};

/* 64-bit identity hash of a string (FNV-1a with a final avalanche). */
uint64_t ep_maglev_key(const char *identity);

/* True if m is prime (table sizes must be prime for the permutations). */
int ep_is_prime(uint32_t m);
/* The smallest prime >= m (m <= 4294967291, the largest 32-bit prime). */
uint32_t ep_next_prime(uint32_t m);

/*
 * Fills table[0..m-1] with backend ids. Backends with weight 0 are left out;
 * if none remain every slot is 0. Order of `be` does not matter (they are
 * sorted by key first). Returns 0, -EINVAL (m not prime / m < 2) or -ENOMEM.
 */
int ep_maglev_build(const struct ep_maglev_backend *be, size_t n, uint32_t m, uint32_t *table);

#endif
