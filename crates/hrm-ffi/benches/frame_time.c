/* Per-frame time of libhrm as a C host sees it: hrm_detect_frame on one photograph, every face's
 * AUs read, the result freed; the median of N frames after 5 warm-up frames.
 * Built and run by tools/bench_libhrm_frames.sh.
 *
 * usage: frame_time CONFIG.toml PHOTO FRAMES */
#define _POSIX_C_SOURCE 199309L
#include <hrm.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int check(hrm_status status, const char *what) {
    if (status != HRM_OK) {
        char message[1024] = "";
        hrm_last_error(message, sizeof message, NULL);
        fprintf(stderr, "%s: %s\n", what, message);
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: frame_time CONFIG.toml PHOTO FRAMES\n");
        return 2;
    }
    int frames = atoi(argv[3]);
    if (frames < 1) {
        frames = 1;
    }
    hrm_runtime *runtime = NULL;
    hrm_detector *detector = NULL;
    hrm_bitmap *bitmap = NULL;
    check(hrm_runtime_new_from_file(argv[1], &runtime), "runtime");
    check(hrm_detector_new(runtime, &detector), "detector");
    check(hrm_bitmap_load(argv[2], &bitmap), "photo");
    hrm_image image = {0};
    image.struct_size = sizeof image;
    check(hrm_bitmap_image(bitmap, &image), "image");
    double *times = malloc(sizeof(double) * frames);
    size_t faces = 0;
    float sum = 0;
    for (int i = -5; i < frames; i++) {
        double start = now_ms();
        hrm_result *result = NULL;
        check(hrm_detect_frame(detector, &image, &result), "detect");
        check(hrm_result_face_count(result, &faces), "count");
        for (size_t f = 0; f < faces; f++) {
            hrm_face face = {0};
            face.struct_size = sizeof face;
            check(hrm_result_face(result, f, &face), "face");
            sum += face.probabilities[0];
        }
        hrm_result_free(result);
        if (i >= 0) {
            times[i] = now_ms() - start;
        }
    }
    qsort(times, frames, sizeof(double), by_value);
    printf("%ux%u %zu faces: median %.2f ms, min %.2f ms over %d frames (checksum %.3f)\n", image.width, image.height,
           faces, times[frames / 2], times[0], frames, sum);
    free(times);
    hrm_bitmap_free(bitmap);
    hrm_detector_free(detector);
    hrm_runtime_free(runtime);
    return 0;
}
