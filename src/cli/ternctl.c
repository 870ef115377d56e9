/*
 * ternctl — tern's administration command. Today: `ternctl passwd`, which
 * makes a password hash for a users file (Dovecot passwd-file form).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "server/passwd.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: ternctl passwd\n"
	    "\n"
	    "  passwd   read a new password (twice from a terminal, once from a pipe)\n"
	    "           and print its yescrypt hash as {CRYPT}$y$..., ready for a\n"
	    "           users file line: user:{CRYPT}$y$...\n"
	    "  help     this text\n");
}

/* One line from stdin without its newline; no echo on a terminal. */
static int
read_secret(const char *prompt, char *out, size_t outsz)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO);
	size_t n;

	if (tty) {
		fputs(prompt, stderr);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (fgets(out, (int)outsz, stdin) == NULL)
		out[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static int
cmd_passwd(void)
{
	char pw[256], again[256], hash[256];
	int r = 1;

	if (read_secret("New password: ", pw, sizeof(pw)) == -1) {
		fprintf(stderr, "ternctl: empty password\n");
		return 1;
	}
	if (isatty(STDIN_FILENO) && (read_secret("Again: ", again, sizeof(again)) == -1 ||
	    strcmp(pw, again) != 0)) {
		fprintf(stderr, "ternctl: the passwords differ\n");
		goto out;
	}
	if (passwd_hash(pw, hash, sizeof(hash)) == -1) {
		fprintf(stderr, "ternctl: cannot make a hash\n");
		goto out;
	}
	printf("%s\n", hash);
	r = 0;
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	return r;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "passwd") == 0)
		return cmd_passwd();
	if (argc == 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
