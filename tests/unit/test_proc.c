/* core/proc: spawning a child, its exit status, stopping it within a bound. */
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Runs spec to its end; returns the wait status. */
static int run(const struct proc_spec *spec)
{
    pid_t pid = 0;
    assert_int_equal(proc_spawn(spec, &pid), 0);
    assert_true(pid > 0);
    int st = -1;
    assert_int_equal(proc_wait(pid, &st), 0);
    return st;
}

/* A temp file for a child's output: the open descriptor; its path in path. */
static int log_open(char *path, size_t size)
{
    snprintf(path, size, "/tmp/fs-proc.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    return fd;
}

static void log_read(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
}

static void true_exits_0(void **state)
{
    (void)state;
    char *const argv[] = {"true", NULL};
    struct proc_spec s = {.path = "/bin/true", .argv = argv, .log_fd = -1};
    int st = run(&s);
    assert_true(WIFEXITED(st));
    assert_int_equal(proc_exit_code(st), 0);
}

static void exit_code_of_sh_searched_in_path(void **state)
{
    (void)state;
    char *const argv[] = {"sh", "-c", "exit 3", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1};
    assert_int_equal(proc_exit_code(run(&s)), 3);
}

static void killed_child_code_is_128_plus_signal(void **state)
{
    (void)state;
    char *const argv[] = {"sh", "-c", "kill -9 $$", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1};
    int st = run(&s);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(proc_exit_code(st), 128 + SIGKILL);
}

static void missing_program_exits_127_and_says_so(void **state)
{
    (void)state;
    char path[64], out[512];
    int fd = log_open(path, sizeof(path));
    char *const argv[] = {"fs-no-such-program", NULL};
    struct proc_spec s = {.path = "/nonexistent/fs-no-such-program", .argv = argv, .log_fd = fd};
    assert_int_equal(proc_exit_code(run(&s)), 127);
    close(fd);
    log_read(path, out, sizeof(out));
    assert_non_null(strstr(out, "fleetsync: cannot run /nonexistent/fs-no-such-program: No such file"));
}

static void output_goes_to_log_fd(void **state)
{
    (void)state;
    char path[64], out[512];
    int fd = log_open(path, sizeof(path));
    char *const argv[] = {"sh", "-c", "echo to-stdout; echo to-stderr >&2", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = fd};
    assert_int_equal(proc_exit_code(run(&s)), 0);
    close(fd);
    log_read(path, out, sizeof(out));
    assert_string_equal(out, "to-stdout\nto-stderr\n");
}

static void env_add_adds_and_replaces(void **state)
{
    (void)state;
    char path[64], out[512];
    int fd = log_open(path, sizeof(path));
    assert_int_equal(setenv("FS_PROC_OLD", "parent", 1), 0);
    assert_int_equal(setenv("FS_PROC_KEPT", "kept", 1), 0);
    const char *env[] = {"FS_PROC_OLD=child", "FS_PROC_NEW=added", NULL};
    char *const argv[] = {"sh", "-c", "echo \"$FS_PROC_OLD $FS_PROC_NEW $FS_PROC_KEPT\"", NULL};
    struct proc_spec s = {.argv = argv, .env_add = env, .log_fd = fd};
    assert_int_equal(proc_exit_code(run(&s)), 0);
    close(fd);
    log_read(path, out, sizeof(out));
    assert_string_equal(out, "child added kept\n");
    /* Our own environment is untouched. */
    assert_string_equal(getenv("FS_PROC_OLD"), "parent");
    assert_null(getenv("FS_PROC_NEW"));
}

static void stdin_null_reads_end_of_file(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(0);
    dup2(p[0], 0); /* a stdin that would block: its write end stays open */
    char *const argv[] = {"sh", "-c", "read x; echo $?", NULL};
    char path[64], out[64];
    int fd = log_open(path, sizeof(path));
    struct proc_spec s = {.argv = argv, .log_fd = fd, .stdin_null = 1};
    int st = run(&s);
    dup2(saved, 0);
    close(saved);
    close(p[0]);
    close(p[1]);
    close(fd);
    assert_int_equal(proc_exit_code(st), 0);
    log_read(path, out, sizeof(out));
    assert_string_equal(out, "1\n");
}

static void setup_to_chdir(void *arg)
{
    if (chdir((const char *)arg) != 0)
        _exit(126);
}

static void setup_runs_in_child_before_exec(void **state)
{
    (void)state;
    char path[64], out[512], cwd[512];
    int fd = log_open(path, sizeof(path));
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *const argv[] = {"sh", "-c", "pwd", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = fd, .setup = setup_to_chdir, .setup_arg = "/"};
    assert_int_equal(proc_exit_code(run(&s)), 0);
    close(fd);
    log_read(path, out, sizeof(out));
    assert_string_equal(out, "/\n");
    char now[512];
    assert_non_null(getcwd(now, sizeof(now)));
    assert_string_equal(now, cwd);
}

static void own_group_and_own_session(void **state)
{
    (void)state;
    char *const argv[] = {"sh", "-c", "sleep 5", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1, .group = PROC_GROUP_OWN};
    pid_t pid;
    assert_int_equal(proc_spawn(&s, &pid), 0);
    for (int i = 0; i < 100 && getpgid(pid) != pid; i++)
        usleep(10 * 1000);
    assert_int_equal(getpgid(pid), pid);
    assert_int_equal(getsid(pid), getsid(0));
    assert_int_equal(proc_stop(pid, SIGTERM, 2000, 0, NULL), 0);
    s.group = PROC_SESSION_OWN;
    assert_int_equal(proc_spawn(&s, &pid), 0);
    for (int i = 0; i < 100 && getsid(pid) != pid; i++)
        usleep(10 * 1000);
    assert_int_equal(getsid(pid), pid);
    assert_int_equal(proc_stop(pid, SIGTERM, 2000, 0, NULL), 0);
}

static void reap_is_0_while_running_then_1(void **state)
{
    (void)state;
    char *const argv[] = {"sh", "-c", "sleep 0.3; exit 7", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1};
    pid_t pid;
    assert_int_equal(proc_spawn(&s, &pid), 0);
    int st = -1, r;
    assert_int_equal(proc_reap(pid, &st), 0);
    for (int i = 0; i < 500 && (r = proc_reap(pid, &st)) == 0; i++)
        usleep(10 * 1000);
    assert_int_equal(r, 1);
    assert_int_equal(proc_exit_code(st), 7);
    errno = 0;
    assert_int_equal(proc_reap(pid, &st), -1); /* reaped already */
    assert_int_equal(errno, ECHILD);
}

static void reap_any_finds_the_exited_child(void **state)
{
    (void)state;
    char *const argv[] = {"sh", "-c", "exit 5", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1};
    pid_t pid, got = 0;
    int st = -1;
    assert_int_equal(proc_spawn(&s, &pid), 0);
    for (int i = 0; i < 500 && (got = proc_reap_any(&st)) == 0; i++)
        usleep(10 * 1000);
    assert_int_equal(got, pid);
    assert_int_equal(proc_exit_code(st), 5);
    errno = 0;
    assert_int_equal(proc_reap_any(&st), -1);
    assert_int_equal(errno, ECHILD);
}

static void stop_ends_child_that_obeys_sigterm(void **state)
{
    (void)state;
    char *const argv[] = {"sleep", "30", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1, .default_signals = 1};
    pid_t pid;
    assert_int_equal(proc_spawn(&s, &pid), 0);
    int st = -1;
    int64_t t0 = now_ms();
    assert_int_equal(proc_stop(pid, SIGTERM, 5000, 0, &st), 0);
    assert_true(now_ms() - t0 < 2000);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
}

static void stop_kills_child_that_ignores_sigterm_after_timeout(void **state)
{
    (void)state;
    /* An ignored signal stays ignored across fork and exec: the child never
     * sees SIGTERM, whenever it comes. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGTERM, &ign, &old);
    char *const argv[] = {"sleep", "30", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1};
    pid_t pid;
    int rc = proc_spawn(&s, &pid);
    sigaction(SIGTERM, &old, NULL);
    assert_int_equal(rc, 0);
    int st = -1;
    int64_t t0 = now_ms();
    assert_int_equal(proc_stop(pid, SIGTERM, 400, 0, &st), 1);
    int64_t took = now_ms() - t0;
    assert_true(took >= 400);
    assert_true(took < 3000);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
}

static void default_signals_undoes_an_inherited_ignore(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGTERM, &ign, &old);
    char *const argv[] = {"sleep", "30", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = -1, .default_signals = 1};
    pid_t pid;
    int rc = proc_spawn(&s, &pid);
    sigaction(SIGTERM, &old, NULL);
    assert_int_equal(rc, 0);
    int st = -1;
    /* Time for the child to reset SIGTERM and exec; then it obeys it. */
    usleep(200 * 1000);
    assert_int_equal(proc_stop(pid, SIGTERM, 3000, 0, &st), 0);
    assert_int_equal(WTERMSIG(st), SIGTERM);
}

static void kill_group_ends_the_grandchildren(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGTERM, &ign, &old);
    char path[64], out[64];
    int fd = log_open(path, sizeof(path));
    /* sh and its sleep both ignore SIGTERM; the sleep prints its pid. */
    char *const argv[] = {"sh", "-c", "sleep 30 & echo $!; wait", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = fd, .group = PROC_GROUP_OWN};
    pid_t pid;
    int rc = proc_spawn(&s, &pid);
    sigaction(SIGTERM, &old, NULL);
    assert_int_equal(rc, 0);
    close(fd);
    long grandchild = 0;
    for (int i = 0; i < 200 && grandchild <= 0; i++) {
        usleep(10 * 1000);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &grandchild) != 1)
                grandchild = 0;
            fclose(f);
        }
    }
    assert_true(grandchild > 0);
    assert_int_equal(proc_stop(pid, SIGTERM, 200, PROC_KILL_GROUP, NULL), 1);
    int alive = 1;
    for (int i = 0; i < 200 && alive; i++) {
        alive = kill((pid_t)grandchild, 0) == 0;
        if (alive)
            usleep(10 * 1000);
    }
    log_read(path, out, sizeof(out));
    assert_false(alive);
}

static void spawn_logged_closes_the_log_fd(void **state)
{
    (void)state;
    char path[64], out[512];
    int fd = log_open(path, sizeof(path));
    char *const argv[] = {"sh", "-c", "echo logged", NULL};
    struct proc_spec s = {.argv = argv, .log_fd = fd};
    pid_t pid = 0;
    int st = -1;
    assert_int_equal(proc_spawn_logged(&s, &pid), 0);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(proc_wait(pid, &st), 0);
    assert_int_equal(proc_exit_code(st), 0);
    log_read(path, out, sizeof(out));
    assert_string_equal(out, "logged\n");
}

static void self_path_is_this_program(void **state)
{
    (void)state;
    char path[4096];
    struct stat a, b;
    assert_int_equal(proc_self_path(path, sizeof(path)), 0);
    assert_int_equal(stat(path, &a), 0);
    assert_int_equal(stat("/proc/self/exe", &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(true_exits_0),
        cmocka_unit_test(exit_code_of_sh_searched_in_path),
        cmocka_unit_test(killed_child_code_is_128_plus_signal),
        cmocka_unit_test(missing_program_exits_127_and_says_so),
        cmocka_unit_test(output_goes_to_log_fd),
        cmocka_unit_test(env_add_adds_and_replaces),
        cmocka_unit_test(stdin_null_reads_end_of_file),
        cmocka_unit_test(setup_runs_in_child_before_exec),
        cmocka_unit_test(own_group_and_own_session),
        cmocka_unit_test(reap_is_0_while_running_then_1),
        cmocka_unit_test(reap_any_finds_the_exited_child),
        cmocka_unit_test(stop_ends_child_that_obeys_sigterm),
        cmocka_unit_test(stop_kills_child_that_ignores_sigterm_after_timeout),
        cmocka_unit_test(default_signals_undoes_an_inherited_ignore),
        cmocka_unit_test(kill_group_ends_the_grandchildren),
        cmocka_unit_test(spawn_logged_closes_the_log_fd),
        cmocka_unit_test(self_path_is_this_program),
    };
    return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
