/* One program, built three times: against version 1 of hrm.h (tests/c/hrm_v1.h), against today's,
 * and against a "future" header whose hrm_image and hrm_face end with a field this library does
 * not know (HRM_TEST_FUTURE). Each build runs against today's libhrm and prints what it reads; the
 * test compares the three. It also checks on its own that the library writes nothing past the
 * struct_size it was given, and leaves alone the fields it does not know.
 *
 * usage: abi_growth CONFIG.toml PHOTO */
#include <hrm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SENTINEL 0x5A5A5A5A5A5A5A5AULL

static int check(hrm_status status, const char *what) {
    if (status != HRM_OK) {
        char message[1024] = "";
        hrm_last_error(message, sizeof message, NULL);
        fprintf(stderr, "%s: %s: %s\n", what, hrm_status_str(status), message);
        return 1;
    }
    return 0;
}

/* A face with room after it: bytes past sizeof(hrm_face) must stay as they were. */
struct padded_face {
    hrm_face face;
    unsigned char after[64];
};

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: abi_growth CONFIG.toml PHOTO\n");
        return 2;
    }
    hrm_runtime *runtime = NULL;
    hrm_detector *detector = NULL;
    hrm_bitmap *bitmap = NULL;
    hrm_result *result = NULL;
    if (check(hrm_runtime_new_from_file(argv[1], &runtime), "runtime") ||
        check(hrm_detector_new(runtime, &detector), "detector") || check(hrm_bitmap_load(argv[2], &bitmap), "bitmap")) {
        return 1;
    }
    hrm_image image;
    memset(&image, 0, sizeof image);
    image.struct_size = sizeof image;
#ifdef HRM_TEST_FUTURE
    image.future = SENTINEL;
#endif
    if (check(hrm_bitmap_image(bitmap, &image), "hrm_bitmap_image")) {
        return 1;
    }
#ifdef HRM_TEST_FUTURE
    if (image.future != SENTINEL) {
        fprintf(stderr, "hrm_bitmap_image wrote past the fields it knows\n");
        return 1;
    }
    image.future = SENTINEL; /* read as nothing by today's library */
#endif
    if (check(hrm_detect_frame(detector, &image, &result), "hrm_detect_frame")) {
        return 1;
    }
    size_t count = 0;
    if (check(hrm_result_face_count(result, &count), "count")) {
        return 1;
    }
    printf("sizes %zu %zu faces %zu\n", sizeof(hrm_image), sizeof(hrm_face), count);
    for (size_t i = 0; i < count; i++) {
        struct padded_face padded;
        memset(&padded, 0xEE, sizeof padded);
        memset(&padded.face, 0, sizeof padded.face);
        padded.face.struct_size = sizeof padded.face;
#ifdef HRM_TEST_FUTURE
        padded.face.future = SENTINEL;
#endif
        if (check(hrm_result_face(result, i, &padded.face), "hrm_result_face")) {
            return 1;
        }
        for (size_t b = 0; b < sizeof padded.after; b++) {
            if (padded.after[b] != 0xEE) {
                fprintf(stderr, "hrm_result_face wrote past struct_size\n");
                return 1;
            }
        }
        const hrm_face *face = &padded.face;
        if (face->struct_size != sizeof *face) {
            fprintf(stderr, "hrm_result_face changed struct_size\n");
            return 1;
        }
        printf("face %zu score %.6f bbox %.3f %.3f %.3f %.3f aus %zu", i, face->score, face->bbox[0], face->bbox[1],
               face->bbox[2], face->bbox[3], face->au_count);
        for (size_t a = 0; a < face->au_count; a++) {
            printf(" %s=%.9g", face->au_ids[a], face->probabilities[a]);
        }
        printf("\n");
#ifdef HRM_FACE_SIZE_V1 /* defined from version 2 of the header on */
        printf("transform %zu %.4f %.4f %.4f %.4f %.4f %.4f\n", i, face->crop_transform[0], face->crop_transform[1],
               face->crop_transform[2], face->crop_transform[3], face->crop_transform[4], face->crop_transform[5]);
#endif
#ifdef HRM_TEST_FUTURE
        if (face->future != SENTINEL) {
            fprintf(stderr, "hrm_result_face wrote a field it does not know\n");
            return 1;
        }
#endif
    }
    hrm_result_free(result);
    hrm_bitmap_free(bitmap);
    hrm_detector_free(detector);
    hrm_runtime_free(runtime);
    return 0;
}
