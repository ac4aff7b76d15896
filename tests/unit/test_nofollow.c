/* core/nofollow: files under a folder another user writes, never through a link. */
#include "core/nofollow.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

struct tree {
    char base[64];    /* the trusted data dir */
    char outside[96]; /* a file the links point to */
};

static int setup(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    snprintf(t->base, sizeof(t->base), "/tmp/fs-nofollow.XXXXXX");
    if (!t || !mkdtemp(t->base))
        return -1;
    snprintf(t->outside, sizeof(t->outside), "%s.target", t->base);
    FILE *f = fopen(t->outside, "w");
    if (!f)
        return -1;
    fputs("precious\n", f);
    fclose(f);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/log", t->base);
    mkdir(dir, 0755);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tree *t = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", t->base, t->outside);
    if (system(cmd) != 0)
        return -1;
    free(t);
    return 0;
}

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void plant(const struct tree *t, const char *rel, const char *target)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", t->base, rel);
    assert_int_equal(symlink(target, path), 0);
}

static void write_replaces_a_link_and_leaves_its_target(void **state)
{
    struct tree *t = *state;
    plant(t, "log/x.log", t->outside);
    assert_int_equal(nf_write(t->base, "log/x.log", "mine\n", 5, 0644, (uid_t)-1, (gid_t)-1), 0);
    char buf[64], path[128];
    slurp(t->outside, buf, sizeof(buf));
    assert_string_equal(buf, "precious\n");
    snprintf(path, sizeof(path), "%s/log/x.log", t->base);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    slurp(path, buf, sizeof(buf));
    assert_string_equal(buf, "mine\n");
}

static void append_open_replaces_a_link(void **state)
{
    struct tree *t = *state;
    plant(t, "log/y.log", t->outside);
    int fd = nf_open(t->base, "log/y.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "z", 1), 1);
    close(fd);
    char buf[64];
    slurp(t->outside, buf, sizeof(buf));
    assert_string_equal(buf, "precious\n");
}

static void read_refuses_a_link(void **state)
{
    struct tree *t = *state;
    plant(t, "log/r.pid", t->outside);
    errno = 0;
    assert_int_equal(nf_open(t->base, "log/r.pid", O_RDONLY, 0), -1);
    assert_int_equal(errno, ELOOP);
}

static void a_linked_folder_on_the_way_is_refused(void **state)
{
    struct tree *t = *state;
    char outdir[160];
    snprintf(outdir, sizeof(outdir), "%s.dir", t->base);
    mkdir(outdir, 0755);
    plant(t, "run", outdir);
    assert_int_equal(nf_write(t->base, "run/p.pid", "1\n", 2, 0644, (uid_t)-1, (gid_t)-1), -1);
    assert_int_equal(nf_opendir(t->base, "run", 1, 0755), -1);
    char path[192];
    snprintf(path, sizeof(path), "%s/p.pid", outdir);
    assert_int_equal(access(path, F_OK), -1);
    rmdir(outdir);
}

static void a_second_hard_link_is_not_written_through(void **state)
{
    struct tree *t = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/log/h.log", t->base);
    if (link(t->outside, path) != 0)
        skip(); /* another file system */
    assert_int_equal(nf_write(t->base, "log/h.log", "mine\n", 5, 0644, (uid_t)-1, (gid_t)-1), 0);
    char buf[64];
    slurp(t->outside, buf, sizeof(buf));
    assert_string_equal(buf, "precious\n");
}

static void opendir_creates_missing_folders(void **state)
{
    struct tree *t = *state;
    int fd = nf_opendir(t->base, "a/b/c", 1, 0750);
    assert_true(fd >= 0);
    close(fd);
    char path[128];
    snprintf(path, sizeof(path), "%s/a/b/c", t->base);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(nf_opendir(t->base, "a/../b", 1, 0750), -1);
}

static void unlink_removes_the_link_not_its_target(void **state)
{
    struct tree *t = *state;
    plant(t, "log/u.pid", t->outside);
    assert_int_equal(nf_unlink(t->base, "log/u.pid"), 0);
    assert_int_equal(access(t->outside, F_OK), 0);
    assert_int_equal(nf_unlink(t->base, "log/u.pid"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(write_replaces_a_link_and_leaves_its_target, setup, teardown),
        cmocka_unit_test_setup_teardown(append_open_replaces_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(read_refuses_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(a_linked_folder_on_the_way_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_second_hard_link_is_not_written_through, setup, teardown),
        cmocka_unit_test_setup_teardown(opendir_creates_missing_folders, setup, teardown),
        cmocka_unit_test_setup_teardown(unlink_removes_the_link_not_its_target, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
