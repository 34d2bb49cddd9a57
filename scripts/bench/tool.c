/* The measuring side of scripts/bench.sh, one binary with four commands:
 *
 *   tool port                  a free TCP port on 127.0.0.1
 *   tool http PORT N [RAW]     N checks one after another, each as HAProxy does it: a fresh
 *                              connection, `GET / HTTP/1.0`, read to EOF, close. Prints
 *                              ok= fail= refused= reset= median_us= p99_us= mean_us= wall_s=
 *                              (a check is ok when the answer starts with an HTTP 200 status
 *                              line; the durations are those of the ok checks) and appends
 *                              those durations (µs, one a line) to the file RAW
 *   tool cpu PID               CPU time used so far: self_ns= (all threads; from
 *                              /proc/PID/task/TID/schedstat, in ns, else utime+stime in ticks)
 *                              children_ns= (cutime+cstime: the reaped children, in ticks)
 *   tool load PORT C SECONDS   C threads each doing such checks back to back for SECONDS
 *                              (for the seed, whose answers wrk cannot read), pausing 10 ms
 *                              after a refused connection. Prints ok=
 *                              fail= refused= reset= rate= (ok checks per second) secs=
 *   tool rss PID               samples every 5 ms until SIGTERM (or PID's end), then prints peak_kb= (the
 *                              largest sum of VmRSS over PID and all its descendants),
 *                              peak_pss_kb= (the same with Pss, which shares shared pages out)
 *                              and procs= (the most processes seen in that tree at once)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "stats.h"

static int cmd_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &len)) return 1;
    printf("%d\n", ntohs(a.sin_port));
    return 0;
}

enum { OK, FAIL, REFUSED, RESET };

/* One check; fills *took with its duration in µs. */
static int one_check(int port, double *took) {
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval limit = {.tv_sec = 10};
    char head[16] = {0}, buf[4096];
    size_t got = 0;
    int result = FAIL;
    double t0 = now_us();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) {
        result = errno == ECONNREFUSED ? REFUSED : FAIL;
        goto out;
    }
    if (write(s, req, sizeof req - 1) != sizeof req - 1) goto out;
    for (;;) {
        ssize_t n = read(s, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0 && got < sizeof head - 1) {
            size_t k = (size_t)n < sizeof head - 1 - got ? (size_t)n : sizeof head - 1 - got;
            memcpy(head + got, buf, k);
            got += k;
        }
        if (n > 0) continue;
        /* A server that never reads the request (the seed script) closes with it unread: RST. */
        int answered = strncmp(head, "HTTP/1.1 200", 12) == 0 || strncmp(head, "HTTP/1.0 200", 12) == 0;
        if (n < 0 && errno == ECONNRESET) result = answered ? OK : RESET;
        else if (n == 0) result = answered ? OK : FAIL;
        break;
    }
out:
    close(s);
    *took = now_us() - t0;
    return result;
}

/* Checks one after another; with TOOL_GAP_MS set, that many milliseconds apart, as HAProxy's
 * `inter` spaces them, so that the server goes idle between checks. */
static int cmd_http(int port, int n, const char *raw) {
    double *us = calloc(n, sizeof *us), took, start = now_us();
    const char *gap = getenv("TOOL_GAP_MS");
    int count[4] = {0}, ok = 0, gap_us = gap ? atoi(gap) * 1000 : 0;
    for (int i = 0; i < n; i++) {
        if (gap_us > 0 && i > 0) usleep(gap_us);
        int r = one_check(port, &took);
        count[r]++;
        if (r == OK) us[ok++] = took;
    }
    double wall = (now_us() - start) / 1e6;
    if (raw && append_raw(raw, us, ok)) return 1;
    printf("ok=%d fail=%d refused=%d reset=%d ", count[OK], count[FAIL], count[REFUSED], count[RESET]);
    print_latency(us, ok);
    printf(" wall_s=%.3f\n", wall);
    return 0;
}

static int load_port;
static double load_end;
static int load_count[4];
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static void *load_thread(void *arg) {
    (void)arg;
    int count[4] = {0};
    double took;
    while (now_us() < load_end) {
        int r = one_check(load_port, &took);
        count[r]++;
        if (r == REFUSED) usleep(10000); /* xinetd's cps tripped: no point in spinning */
    }
    pthread_mutex_lock(&load_lock);
    for (int i = 0; i < 4; i++) load_count[i] += count[i];
    pthread_mutex_unlock(&load_lock);
    return NULL;
}

static int cmd_load(int port, int c, double seconds) {
    pthread_t *t = calloc(c, sizeof *t);
    double start = now_us();
    load_port = port;
    load_end = start + seconds * 1e6;
    for (int i = 0; i < c; i++) pthread_create(&t[i], NULL, load_thread, NULL);
    for (int i = 0; i < c; i++) pthread_join(t[i], NULL);
    double secs = (now_us() - start) / 1e6;
    printf("ok=%d fail=%d refused=%d reset=%d rate=%.1f secs=%.3f\n", load_count[OK], load_count[FAIL],
           load_count[REFUSED], load_count[RESET], load_count[OK] / secs, secs);
    return 0;
}

/* Fields 14-17 of /proc/PID/stat (utime stime cutime cstime), in ns; the ppid in *ppid. */
static int read_stat(const char *pid, long long ns[4], int *ppid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long long v[4];
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", ppid, &v[0],
                     &v[1], &v[2], &v[3]) != 5)
        return -1;
    long tick = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < 4; i++) ns[i] = v[i] * (1000000000LL / tick);
    return 0;
}

static int cmd_cpu(const char *pid) {
    long long ns[4], sched = 0;
    int ppid, have = 0;
    if (read_stat(pid, ns, &ppid)) return 1;
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/task", pid);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%s/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(path, "r");
        long long run;
        if (f && fscanf(f, "%lld", &run) == 1) sched += run, have = 1;
        if (f) fclose(f);
    }
    if (d) closedir(d);
    printf("self_ns=%lld children_ns=%lld\n", have ? sched : ns[0] + ns[1], ns[2] + ns[3]);
    return 0;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

/* Rss and Pss of one process in kB (0 for one that is gone). */
static void mem_kb(const char *pid, long *rss, long *pss) {
    char path[64], line[256];
    *rss = *pss = 0;
    snprintf(path, sizeof path, "/proc/%s/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Rss: %ld", rss);
        sscanf(line, "Pss: %ld", pss);
    }
    if (f) fclose(f);
}

/* The sums of Rss and Pss over the tree rooted at root; its process count in *procs. */
static long tree_kb(int root, int *procs, long *pss_kb) {
    enum { MAX = 65536 };
    static int pids[MAX], parents[MAX];
    static char in[MAX];
    int n = 0;
    long long ns[4];
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d)) && n < MAX;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        if (read_stat(e->d_name, ns, &parents[n]) == 0) pids[n++] = atoi(e->d_name);
    }
    if (d) closedir(d);
    /* Mark the descendants: repeat until no process joins (parents may be listed after). */
    for (int i = 0; i < n; i++) in[i] = pids[i] == root;
    for (int grew = 1; grew;) {
        grew = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; !in[i] && j < n; j++)
                if (in[j] && parents[i] == pids[j]) in[i] = grew = 1;
    }
    long kb = 0, rss, pss;
    *procs = 0, *pss_kb = 0;
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue;
        char pid[16];
        snprintf(pid, sizeof pid, "%d", pids[i]);
        mem_kb(pid, &rss, &pss);
        kb += rss, *pss_kb += pss;
        ++*procs;
    }
    return kb;
}

static int cmd_rss(int root) {
    long peak = 0, peak_pss = 0, pss;
    int procs, peak_procs = 0;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    while (!stop && kill(root, 0) == 0) {
        long kb = tree_kb(root, &procs, &pss);
        if (kb > peak) peak = kb;
        if (pss > peak_pss) peak_pss = pss;
        if (procs > peak_procs) peak_procs = procs;
        usleep(5000);
    }
    printf("peak_kb=%ld peak_pss_kb=%ld procs=%d\n", peak, peak_pss, peak_procs);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "port")) return cmd_port();
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "http"))
        return cmd_http(atoi(argv[2]), atoi(argv[3]), argc == 5 ? argv[4] : NULL);
    if (argc == 3 && !strcmp(argv[1], "cpu")) return cmd_cpu(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "load")) return cmd_load(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "rss")) return cmd_rss(atoi(argv[2]));
    fprintf(stderr, "usage: tool port | [TOOL_GAP_MS=MS] http PORT N [RAW] | load PORT C SECONDS | cpu PID | rss PID\n");
    return 2;
}
