/* hello: a small WASI command for the `scratch` base and the tests.
 *
 * It reports what a container program can see, so tests can check argv, env, the working
 * directory, stdin and exit codes through a non-Python program:
 *
 *   hello [--env] [--cat] [--write FILE TEXT] [--read FILE] [--cd DIR] [--exit N] [ARG...]
 *
 * Prints "$GREETING from C on wasi!" (GREETING defaults to "Hello"), then "argv:" with every
 * argument, then "cwd: <getcwd()>". --env prints the environment, --cat copies stdin to stdout, --write writes TEXT to FILE,
 * --read prints FILE, --cd changes directory, --exit N ends with exit code N. Options run in
 * order; any other argument is only printed.
 *
 * Using chdir() matters beyond --cd: wasi-libc resolves relative paths against the current
 * directory only in programs that link chdir; in others they resolve against "/".
 *
 * Build: python -m ziglang cc -target wasm32-wasi -O2 -o hello.wasm hello.c
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int copy(FILE *in, const char *what) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, stdout);
    if (ferror(in)) {
        fprintf(stderr, "hello: cannot read %s: %s\n", what, strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *greeting = getenv("GREETING");
    char cwd[4096];
    int code = 0;

    printf("%s from C on wasi!\n", greeting ? greeting : "Hello");
    printf("argv:");
    for (int i = 0; i < argc; i++)
        printf(" [%s]", argv[i]);
    printf("\ncwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerror(errno));

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--env") == 0) {
            for (char **e = environ; *e; e++)
                printf("env: %s\n", *e);
        } else if (strcmp(argv[i], "--cat") == 0) {
            code |= copy(stdin, "stdin");
        } else if (strcmp(argv[i], "--write") == 0 && i + 2 < argc) {
            FILE *f = fopen(argv[i + 1], "w");
            if (!f || fputs(argv[i + 2], f) < 0 || fclose(f) != 0) {
                fprintf(stderr, "hello: cannot write %s: %s\n", argv[i + 1], strerror(errno));
                return 1;
            }
            printf("wrote %s\n", argv[i + 1]);
            i += 2;
        } else if (strcmp(argv[i], "--read") == 0 && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "r");
            if (!f) {
                fprintf(stderr, "hello: cannot open %s: %s\n", argv[i], strerror(errno));
                return 1;
            }
            code |= copy(f, argv[i]);
            fclose(f);
        } else if (strcmp(argv[i], "--cd") == 0 && i + 1 < argc) {
            if (chdir(argv[++i]) != 0) {
                fprintf(stderr, "hello: cannot cd to %s: %s\n", argv[i], strerror(errno));
                return 1;
            }
            printf("cwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerror(errno));
        } else if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            fflush(stdout);
            return atoi(argv[++i]);
        }
    }
    return code;
}
