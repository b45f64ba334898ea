/*
 * Big-endian field access and Internet checksums (RFC 1071) for the tests
 * that craft and check packets.
 */
#ifndef EP_TEST_CSUM_H
#define EP_TEST_CSUM_H

#include <stddef.h>
#include <stdint.h>

void put16(uint8_t *p, uint32_t v);
void put32(uint8_t *p, uint32_t v);
uint16_t get16(const uint8_t *p);
/* One's-complement sum of big-endian 16-bit words (not folded). */
uint32_t sum16(uint32_t s, const void *data, size_t len);
/* Folded and complemented: the checksum field's value. */
uint16_t fold(uint32_t s);
/* The TCP/UDP/ICMPv6 pseudo header's sum; family EP_FAMILY_V4 or _V6. */
uint32_t pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
		    uint32_t len);

#endif
