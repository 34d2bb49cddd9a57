/* Shared by floor.c and tool.c: the monotonic clock and the latency summary line. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Appends the n durations to the file at path, one a line, before print_latency sorts them. */
static int append_raw(const char *path, const double *us, int n) {
    FILE *f = fopen(path, "a");
    if (!f) {
        perror(path);
        return 1;
    }
    for (int i = 0; i < n; i++) fprintf(f, "%.1f\n", us[i]);
    return fclose(f) != 0;
}

/* Prints `median_us=.. p99_us=.. mean_us=..` over the n durations (sorted in place): the
 * nearest-rank percentiles, 0 when there is none. */
static void print_latency(double *us, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += us[i];
    qsort(us, n, sizeof *us, cmp_double);
    double median = n ? us[(n - 1) / 2] : 0, p99 = n ? us[(int)(0.99 * (n - 1) + 0.5)] : 0;
    printf("median_us=%.1f p99_us=%.1f mean_us=%.1f", median, p99, n ? sum / n : 0);
}
