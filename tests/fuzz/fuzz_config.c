/*
 * libFuzzer target for the config loader: any byte string must come back as
 * a config or a list of errors, never a crash, leak, hang or unbounded
 * allocation (ASan/UBSan/LSan and -rss_limit_mb catch those).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ep_config cfg;
	struct ep_cfg_errors errs;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;
	size_t i;

	if (ep_config_parse((const char *)data, size, &cfg, &errs) == 0) {
		/* Walk what came back so bad lengths or pointers show up here. */
		for (i = 0; i < cfg.n_services; i++)
			if (ep_config_find_service(&cfg, cfg.services[i].name) == NULL)
				abort();
	}
	/* The printer formats user-controlled text: exercise it too. */
	f = open_memstream(&out, &outlen);
	if (f) {
		ep_cfg_errors_print(&errs, "fuzz.yaml", f);
		fclose(f);
	}
	free(out);
	ep_cfg_errors_free(&errs);
	ep_config_free(&cfg);
	return 0;
}
