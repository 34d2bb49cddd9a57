/* The floor: what one check costs with no HTTP and no process spawn. MariaDB Connector/C in a
 * loop: connect and log in, `select @@hostname`, read the row, close (COM_QUIT).
 *
 * Usage: floor HOST PORT USER PASSWORD N [RAW]     (FLOOR_TLS=1: TLS enforced, no certificate
 *                                                  check, like mysqlchk --ssl-mode REQUIRED;
 *                                                  FLOOR_TLS_CA=FILE: the CA file to load;
 *                                                  FLOOR_KEEP=1: one login before the loop,
 *                                                  and each check is the query and its row
 *                                                  alone, the floor of --keep-session;
 *                                                  FLOOR_QUERY=SQL: that statement instead of
 *                                                  `select @@hostname`)
 * After one untimed check (the library's start-up), prints: ok=N fail=N median_us= p99_us=
 * mean_us= wall_s= cpu_us= (user+system of the N checks) hwm_kb=, and appends the duration of
 * each good check (µs, one a line) to the file RAW. */
#include <mysql.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include "stats.h"

static int tls;
static const char *sql = "select @@hostname";

/* The query and its row on a logged-in `db`. */
static int query(MYSQL *db) {
    int good = 0;
    if (mysql_query(db, sql) == 0) {
        MYSQL_RES *res = mysql_store_result(db);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        good = row && row[0];
        if (res) mysql_free_result(res);
    }
    return good;
}

/* A logged-in connection, or NULL (reported once). */
static MYSQL *login(const char *host, int port, const char *user, const char *password, int *reported) {
    MYSQL *db = mysql_init(NULL);
    if (tls) {
        my_bool on = 1;
        mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &on);
        /* A CA file of its own, so the library does not load the system's whole trust store for
         * every connection (no verification is asked for either way). */
        if (getenv("FLOOR_TLS_CA")) mysql_optionsv(db, MYSQL_OPT_SSL_CA, getenv("FLOOR_TLS_CA"));
    }
    if (mysql_real_connect(db, host, user, password, NULL, port, NULL, 0)) return db;
    if (!*reported) {
        fprintf(stderr, "floor: %s\n", mysql_error(db));
        *reported = 1;
    }
    mysql_close(db);
    return NULL;
}

/* One check: connect and log in, the query, its row, close. */
static int check(const char *host, int port, const char *user, const char *password, int *reported) {
    MYSQL *db = login(host, port, user, password, reported);
    if (!db) return 0;
    int good = query(db);
    if (!good && !*reported) {
        fprintf(stderr, "floor: %s\n", mysql_error(db));
        *reported = 1;
    }
    mysql_close(db);
    return good;
}

static double cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: floor HOST PORT USER PASSWORD N [RAW]\n");
        return 2;
    }
    int port = atoi(argv[2]), n = atoi(argv[5]), ok = 0, reported = 0;
    tls = getenv("FLOOR_TLS") && strcmp(getenv("FLOOR_TLS"), "1") == 0;
    if (getenv("FLOOR_QUERY") && *getenv("FLOOR_QUERY")) sql = getenv("FLOOR_QUERY");
    int keep = getenv("FLOOR_KEEP") && strcmp(getenv("FLOOR_KEEP"), "1") == 0;
    /* FLOOR_GAP_MS: checks that many milliseconds apart (HAProxy's pace), not back to back. */
    int gap_us = getenv("FLOOR_GAP_MS") ? atoi(getenv("FLOOR_GAP_MS")) * 1000 : 0;
    double *us = calloc(n, sizeof *us);
    /* Connector/C's connect calls usleep(1) once; with the default 50 µs timer slack that idles
     * ~50 µs per check (152 -> 106 µs median here), which is no cost of a check. */
    prctl(PR_SET_TIMERSLACK, 1UL);
    check(argv[1], port, argv[3], argv[4], &reported); /* the library's start-up, not timed */
    MYSQL *kept = keep ? login(argv[1], port, argv[3], argv[4], &reported) : NULL;
    if (keep && !kept) return 1;
    double start = now_us(), cpu0 = cpu_us();
    for (int i = 0; i < n; i++) {
        if (gap_us > 0 && i > 0) usleep(gap_us);
        double t0 = now_us();
        if (kept ? query(kept) : check(argv[1], port, argv[3], argv[4], &reported)) us[ok++] = now_us() - t0;
    }
    if (kept) mysql_close(kept);
    double wall = (now_us() - start) / 1e6, cpu = cpu_us() - cpu0;
    if (argc == 7 && append_raw(argv[6], us, ok)) return 1;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("ok=%d fail=%d ", ok, n - ok);
    print_latency(us, ok);
    printf(" wall_s=%.3f cpu_us=%.0f hwm_kb=%ld\n", wall, cpu, ru.ru_maxrss);
    return 0;
}
