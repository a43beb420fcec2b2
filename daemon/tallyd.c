/*
 * tallyd — the network side of Tally, one binary with subcommands:
 *   tallyd serve   the township's HTTPS sync server (serve.h)
 * (`tallyd sync`, the village's side, is added to the table below.)
 */
#include <stdio.h>
#include <string.h>

#include "daemon/serve.h"
#include "daemon/syncd.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{"serve", serve_main, "乡镇服务器：接收各村上传的修改，提供下载（HTTPS）"},
	{"sync", syncd_main, "村里：持续把本机的修改上传到乡镇，并下载乡镇的决定和通报"},
};

static int usage(void)
{
	fprintf(stderr, "用法: tallyd COMMAND [选项]\n");
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		fprintf(stderr, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
		if (strcmp(argv[1], subcommands[i].name) == 0)
			return subcommands[i].run(argc - 1, argv + 1);
	}
	return usage();
}
