/* See csum.h. */
#include "csum.h"

#include "edgeplane_abi.h"

void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* One's-complement sum of big-endian 16-bit words (not folded). */
uint32_t sum16(uint32_t s, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		s += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		s += (uint32_t)p[0] << 8;
	return s;
}

uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

uint32_t pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint32_t len)
{
	size_t alen = family == EP_FAMILY_V4 ? 4 : 16;
	uint32_t s = 0;

	s = sum16(s, src, alen);
	s = sum16(s, dst, alen);
	s += proto;
	s += len >> 16;
	s += len & 0xffff;
	return s;
}
