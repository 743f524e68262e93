/* 4 threads x 250 frames, each thread with its own detector, all sharing one runtime: every
 * result must equal what one detector on one thread gave for the same frame.
 *
 *   threads PACKAGE YUNET.onnx PHOTO...
 */
#include <hrm.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define FRAMES_PER_THREAD 250
#define MAX_FRAMES 64
#define MAX_FACES 16
#define MAX_AUS 32

/* What a frame gave: faces, and per face its box, keypoints and probabilities. */
typedef struct {
    size_t faces;
    float boxes[MAX_FACES][4];
    float keypoints[MAX_FACES][10];
    float probabilities[MAX_FACES][MAX_AUS];
} outcome;

static hrm_runtime *runtime;
static hrm_image frames[MAX_FRAMES];
static size_t frame_count;
static outcome expected[MAX_FRAMES];

static void print_error(const char *what, hrm_status status) {
    char message[2048];
    if (hrm_last_error(message, sizeof message, NULL) != HRM_OK) {
        message[0] = '\0';
    }
    fprintf(stderr, "%s: %s: %s\n", what, hrm_status_str(status), message);
}

/* Detects on one frame; returns 0 on success. */
static int run(hrm_detector *detector, const hrm_image *frame, outcome *out) {
    hrm_result *result = NULL;
    hrm_status status = hrm_detect_frame(detector, frame, &result);
    if (status != HRM_OK) {
        print_error("hrm_detect_frame", status);
        return 1;
    }
    memset(out, 0, sizeof *out);
    hrm_result_face_count(result, &out->faces);
    for (size_t i = 0; i < out->faces && i < MAX_FACES; i++) {
        hrm_face face = {0};
        face.struct_size = sizeof face;
        hrm_result_face(result, i, &face);
        memcpy(out->boxes[i], face.bbox, sizeof face.bbox);
        memcpy(out->keypoints[i], face.keypoints, sizeof face.keypoints);
        memcpy(out->probabilities[i], face.probabilities, face.au_count * sizeof(float));
    }
    hrm_result_free(result);
    return 0;
}

static void *worker(void *arg) {
    size_t thread = (size_t)arg;
    size_t mismatches = 0;
    hrm_detector *detector = NULL;
    hrm_status status = hrm_detector_new(runtime, &detector);
    if (status != HRM_OK) {
        print_error("hrm_detector_new", status);
        return (void *)(size_t)1;
    }
    for (size_t i = 0; i < FRAMES_PER_THREAD; i++) {
        /* Each thread walks the frames from its own starting point. */
        size_t index = (i + thread * 7) % frame_count;
        outcome got;
        if (run(detector, &frames[index], &got) != 0 || memcmp(&got, &expected[index], sizeof got) != 0) {
            mismatches++;
            fprintf(stderr, "thread %zu, frame %zu (#%zu): result differs from the single-threaded one\n", thread, i,
                    index);
        }
    }
    hrm_detector_free(detector);
    return (void *)mismatches;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PACKAGE YUNET.onnx PHOTO...\n", argv[0]);
        return 2;
    }
    char config[4096];
    snprintf(config, sizeof config, "model = \"%s\"\nthreads = 1\n[detector]\nmodel = \"%s\"\n", argv[1], argv[2]);
    hrm_status status = hrm_runtime_new_from_string(config, NULL, &runtime);
    if (status != HRM_OK) {
        print_error("hrm_runtime_new_from_string", status);
        return 1;
    }
    /* Frames: each photograph whole, and three crops of it lent through an offset and the stride. */
    hrm_bitmap *bitmaps[16] = {0};
    int bitmap_count = 0;
    for (int i = 3; i < argc && bitmap_count < 16; i++) {
        if (hrm_bitmap_load(argv[i], &bitmaps[bitmap_count]) != HRM_OK) {
            print_error(argv[i], HRM_ERROR_IO);
            return 1;
        }
        hrm_image whole = {0};
        whole.struct_size = sizeof whole;
        hrm_bitmap_image(bitmaps[bitmap_count++], &whole);
        uint32_t w = whole.width, h = whole.height;
        hrm_image left = whole, top = whole, centre = whole;
        left.width = w * 3 / 4;
        top.height = h * 3 / 4;
        centre.width = w * 2 / 3, centre.height = h * 2 / 3;
        centre.data = whole.data + (h / 6) * whole.stride + (w / 6) * 3;
        const hrm_image crops[4] = {whole, left, top, centre};
        for (int c = 0; c < 4 && frame_count < MAX_FRAMES; c++) {
            frames[frame_count] = crops[c];
            frames[frame_count].timestamp = (int64_t)frame_count;
            frame_count++;
        }
    }

    hrm_detector *reference = NULL;
    status = hrm_detector_new(runtime, &reference);
    if (status != HRM_OK) {
        print_error("hrm_detector_new", status);
        return 1;
    }
    size_t faces = 0;
    for (size_t i = 0; i < frame_count; i++) {
        if (run(reference, &frames[i], &expected[i]) != 0) {
            return 1;
        }
        faces += expected[i].faces;
    }
    hrm_detector_free(reference);
    printf("single thread: %zu frames, %zu faces\n", frame_count, faces);

    pthread_t threads[THREADS];
    for (size_t t = 0; t < THREADS; t++) {
        if (pthread_create(&threads[t], NULL, worker, (void *)t) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    size_t mismatches = 0;
    for (size_t t = 0; t < THREADS; t++) {
        void *result = NULL;
        pthread_join(threads[t], &result);
        mismatches += (size_t)result;
    }
    for (int i = 0; i < bitmap_count; i++) {
        hrm_bitmap_free(bitmaps[i]);
    }
    hrm_runtime_free(runtime);
    printf("%d threads x %d frames: %zu results differ\n", THREADS, FRAMES_PER_THREAD, mismatches);
    return mismatches == 0 ? 0 : 1;
}
