/*
 * services[].mirror (agent/canary/mirror_config.c): accepted shapes with
 * their defaults, and each way to get it wrong reported at the key and line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "mirror.h"
#include "tap.h"

static struct ep_config cfg;
static struct ep_cfg_errors errs;

/* Lines 1-6; a case appends keys of the mirror mapping from line 7. */
#define MIR                                                                                        \
	"interfaces: [{name: eth0, role: uplink}]\n"                                               \
	"services:\n"                                                                              \
	"  - name: web\n"                                                                          \
	"    vip: 10.0.0.1\n"                                                                      \
	"    port: 80\n"                                                                           \
	"    mirror:\n"

static int parse(const char *y)
{
	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
	return ep_config_parse(y, strlen(y), &cfg, &errs);
}

static void dump(void)
{
	for (size_t i = 0; i < errs.n; i++)
		tap_diag("  line %d %s: %s", errs.v[i].line, errs.v[i].key, errs.v[i].msg);
}

static void expect_error(const char *name, const char *y, const char *key, int line,
			 const char *want)
{
	bool found = false;

	if (parse(y) == -EINVAL)
		for (size_t i = 0; i < errs.n; i++)
			found |= !strcmp(errs.v[i].key, key) && errs.v[i].line == line &&
				 strstr(errs.v[i].msg, want);
	if (!tap_ok(found, "%s: '%s' line %d: %s", name, key, line, want))
		dump();
}

int main(void)
{
	const struct ep_cfg_mirror *m;
	char a[EP_IP_STRLEN];

	if (!tap_ok(parse(MIR "      percent: 10\n      to: {interface: mirror0}\n") == 0,
		    "interface target accepted"))
		dump();
	m = cfg.n_services ? &cfg.services[0].mirror : NULL;
	tap_ok(m && m->configured && m->percent_bp == 1000 && !strcmp(m->to.interface, "mirror0") &&
		       !m->to.vxlan.present && m->max_bytes_per_s == 10000000,
	       "percent 10 = 1000 bp, interface mirror0, max_bytes_per_s defaults to 10000000");

	if (!tap_ok(parse(MIR "      percent: 0.5\n"
			      "      to: {vxlan: {remote: 10.9.0.2, vni: 100}}\n"
			      "      max_bytes_per_s: 2500\n") == 0,
		    "VXLAN target accepted"))
		dump();
	m = cfg.n_services ? &cfg.services[0].mirror : NULL;
	tap_ok(m && m->percent_bp == 50 && m->to.vxlan.present && m->to.vxlan.vni == 100 &&
		       m->to.vxlan.port == 4789 && m->max_bytes_per_s == 2500 &&
		       !strcmp(ep_ip_str(&m->to.vxlan.remote, a, sizeof(a)), "10.9.0.2"),
	       "VXLAN remote 10.9.0.2 VNI 100, port defaults to 4789, 2500 B/s");
	tap_ok(parse(MIR "      percent: 1\n"
			 "      to: {vxlan: {remote: 'fd09::2', vni: 16777215, port: 8472}}\n") == 0 &&
		       cfg.services[0].mirror.to.vxlan.port == 8472 &&
		       cfg.services[0].mirror.to.vxlan.remote.family == 6,
	       "IPv6 collector, the largest VNI, another port");
	tap_ok(parse(MIR "      percent: 10\n      to: {interface: m0}\n") == 0 &&
		       !cfg.services[0].canary.percent_bp,
	       "mirror alone leaves the canary split alone");

	expect_error("percent missing", MIR "      to: {interface: m0}\n", "services[0].mirror.percent",
		     7, "missing required key");
	expect_error("to missing", MIR "      percent: 10\n", "services[0].mirror.to", 7,
		     "missing required key");
	expect_error("both targets", MIR "      percent: 10\n"
					 "      to: {interface: m0, vxlan: {remote: 10.9.0.2, vni: 1}}\n",
		     "services[0].mirror.to", 8, "give exactly one of interface, vxlan");
	expect_error("no target", MIR "      percent: 10\n      to: {}\n", "services[0].mirror.to", 8,
		     "give exactly one of interface, vxlan");
	expect_error("percent range", MIR "      percent: 101\n      to: {interface: m0}\n",
		     "services[0].mirror.percent", 7, "got \"101\"");
	expect_error("VNI range", MIR "      percent: 1\n"
				      "      to: {vxlan: {remote: 10.9.0.2, vni: 16777216}}\n",
		     "services[0].mirror.to.vxlan.vni", 8, "16777216");
	expect_error("remote missing", MIR "      percent: 1\n      to: {vxlan: {vni: 1}}\n",
		     "services[0].mirror.to.vxlan.remote", 8, "missing required key");
	expect_error("bad remote", MIR "      percent: 1\n"
				       "      to: {vxlan: {remote: collector, vni: 1}}\n",
		     "services[0].mirror.to.vxlan.remote", 8, "collector");
	expect_error("rate too low", MIR "      percent: 1\n      to: {interface: m0}\n"
					 "      max_bytes_per_s: 10\n",
		     "services[0].mirror.max_bytes_per_s", 9, "got \"10\"");
	expect_error("bad interface name", MIR "      percent: 1\n      to: {interface: 'a b'}\n",
		     "services[0].mirror.to.interface", 8, "an interface name");
	expect_error("unknown key", MIR "      percent: 1\n      to: {interface: m0}\n"
					"      sample: flows\n",
		     "services[0].mirror.sample", 9, "unknown key 'sample'");
	expect_error("target is a datapath interface",
		     MIR "      percent: 1\n      to: {interface: eth0}\n",
		     "services[0].mirror.to.interface", 8, "'eth0' is interfaces[0]");
	expect_error("loopback as the target", MIR "      percent: 1\n      to: {interface: lo}\n",
		     "services[0].mirror.to.interface", 8, "lo cannot be a mirror target");
	expect_error("XDP redirect", "datapath: {forwarding: redirect}\n" MIR
		     "      percent: 1\n      to: {interface: m0}\n",
		     "services[0].mirror.to", 8, "needs datapath.forwarding: stack");
	expect_error("one VNI and port, two collectors",
		     MIR "      percent: 1\n      to: {vxlan: {remote: 10.9.0.2, vni: 7}}\n"
			 "  - name: api\n    vip: 10.0.0.2\n    port: 80\n    mirror:\n"
			 "      percent: 1\n      to: {vxlan: {remote: 10.9.0.3, vni: 7}}\n",
		     "services[1].mirror.to.vxlan.remote", 14, "VNI 7 port 4789 already goes to 10.9.0.2");
	tap_ok(parse(MIR "      percent: 1\n      to: {vxlan: {remote: 10.9.0.2, vni: 7}}\n"
			 "  - name: api\n    vip: 10.0.0.2\n    port: 80\n    mirror:\n"
			 "      percent: 1\n      to: {vxlan: {remote: 10.9.0.2, vni: 7}}\n") == 0,
	       "two services share one VXLAN collector");
	tap_ok(ep_mirror_burst(10000000) == 1000000 && ep_mirror_burst(1000) == 131072,
	       "bucket depth: 100 ms of the rate, at least two 64 KiB packets");
	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
	return tap_done();
}
