/* A network namespace of the test's own with lo up (needs root), so servers
 * can take fixed loopback ports without meeting anything else. */
#ifndef EP_TEST_OWN_NETNS_H
#define EP_TEST_OWN_NETNS_H

int ep_test_own_netns(void); /* 0 or -errno */

#endif
