/*
 * libFuzzer target: arbitrary bytes as a fallback resolver's reply
 * (cache/fallback.c, dns.cache.fallback). Whoever can reach the responder's
 * socket can send it datagrams; beyond "does not crash or read out of
 * bounds" it checks the promise the matcher makes: a reply is taken only
 * when it is a response with the id we sent and exactly our one question
 * (letters compared without case), checked here against ldns's own reading
 * of the same bytes. The first byte picks one of a few queries; the rest is
 * the reply.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "fallback.h"

static uint8_t *queries[4];
static size_t qlens[4];

static void setup(void)
{
	static const char *const names[] = { "outside.example.", "a.b.c.edge.test.", "x.", "." };
	static const ldns_rr_type types[] = { LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_MX,
					      LDNS_RR_TYPE_NS };

	for (int i = 0; i < 4; i++) {
		ldns_pkt *p = NULL;

		if (ldns_pkt_query_new_frm_str(&p, names[i], types[i], LDNS_RR_CLASS_IN, LDNS_RD) !=
		    LDNS_STATUS_OK)
			abort();
		ldns_pkt_set_id(p, (uint16_t)(0x1234 + i));
		if (ldns_pkt2wire(&queries[i], p, &qlens[i]) != LDNS_STATUS_OK)
			abort();
		ldns_pkt_free(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *q, *r;
	size_t qlen, n;
	bool match;

	if (!queries[0])
		setup();
	if (size < 1)
		return 0;
	q = queries[data[0] & 3];
	qlen = qlens[data[0] & 3];
	r = data + 1;
	n = size - 1;
	match = ep_fallback_reply_matches(r, n, q, qlen);
	if (match) {
		ldns_pkt *p = NULL;
		ldns_rr *qr;

		/* A match has our id, QR set and one question... */
		if (n < qlen || r[0] != q[0] || r[1] != q[1] || !(r[2] & 0x80) || r[4] || r[5] != 1)
			abort();
		/* ... and the same question bytes but for case. */
		for (size_t i = 12; i < qlen; i++)
			if (tolower(r[i]) != tolower(q[i]))
				abort();
		/* Where ldns can read the whole reply, it reads our question. */
		if (ldns_wire2pkt(&p, r, n) == LDNS_STATUS_OK) {
			ldns_pkt *sent = NULL;

			if (ldns_wire2pkt(&sent, q, qlen) != LDNS_STATUS_OK)
				abort();
			qr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
			if (!qr || ldns_rr_get_type(qr) !=
					   ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(sent), 0)) ||
			    ldns_dname_compare(ldns_rr_owner(qr),
					       ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(sent), 0))))
				abort();
			ldns_pkt_free(sent);
			ldns_pkt_free(p);
		}
	} else if (n >= qlen && (r[2] & 0x80) && r[0] == q[0] && r[1] == q[1] && !r[4] && r[5] == 1 &&
		   !memcmp(r + 12, q + 12, qlen - 12)) {
		abort(); /* our own question, byte for byte, refused */
	}
	return 0;
}
