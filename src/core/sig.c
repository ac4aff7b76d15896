/*
 * sig.c - stop requests from signals (see sig.h).  The handler only touches
 * an atomic flag and writes one byte to a non-blocking pipe.
 */
#include "core/sig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static atomic_int sig_stop_flag;
static int sig_pipe[2] = {-1, -1};

static void sig_handler(int signo)
{
    (void)signo;
    int saved = errno;
    if (atomic_exchange(&sig_stop_flag, 1))
        _exit(1);
    if (sig_pipe[1] >= 0) {
        ssize_t r = write(sig_pipe[1], "x", 1);
        (void)r;
    }
    errno = saved;
}

int sig_install(void)
{
    if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction sa = {0};
    sa.sa_handler = sig_handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int sig_stopping(void)
{
    return atomic_load(&sig_stop_flag);
}
int sig_fd(void)
{
    return sig_pipe[0];
}

void sig_request_stop(void)
{
    if (atomic_exchange(&sig_stop_flag, 1))
        return;
    if (sig_pipe[1] >= 0) {
        ssize_t r = write(sig_pipe[1], "x", 1);
        (void)r;
    }
}

int sig_after_fork(void)
{
    if (sig_pipe[0] >= 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
    }
    atomic_store(&sig_stop_flag, 0);
    return pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK);
}
