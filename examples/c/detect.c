/* Detects faces and their Action Units in photographs with libhrm.
 *
 *   cc -std=c11 detect.c $(pkg-config --cflags --libs hrm) -o detect
 *   ./detect configs/cpu.toml ../shared/images/multi_face.jpg
 *
 * Prints, for each photograph, its faces (box, score, keypoints) and each face's AUs: id,
 * probability and presence. Exits 1 if any photograph failed, after trying every one.
 */
#include <hrm.h>

#include <stdio.h>
#include <stdlib.h>

/* Prints what failed, with libhrm's message for it. */
static void report(const char *what, hrm_status status) {
    size_t needed = 0;
    hrm_last_error(NULL, 0, &needed);
    char *message = malloc(needed);
    if (message != NULL && hrm_last_error(message, needed, NULL) == HRM_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, message, hrm_status_str(status));
    } else {
        fprintf(stderr, "%s: %s\n", what, hrm_status_str(status));
    }
    free(message);
}

/* Detects on one photograph and prints the faces; returns the status of the first failure. */
static hrm_status detect_photo(hrm_detector *detector, const char *path) {
    hrm_bitmap *bitmap = NULL;
    hrm_status status = hrm_bitmap_load(path, &bitmap);
    if (status != HRM_OK) {
        return status;
    }
    hrm_image image = {0};
    image.struct_size = sizeof image;
    hrm_result *result = NULL;
    status = hrm_bitmap_image(bitmap, &image);
    if (status == HRM_OK) {
        status = hrm_detect_frame(detector, &image, &result);
    }
    size_t count = 0;
    if (status == HRM_OK) {
        status = hrm_result_face_count(result, &count);
    }
    if (status == HRM_OK) {
        printf("%s: %zu faces\n", path, count);
    }
    for (size_t i = 0; status == HRM_OK && i < count; i++) {
        hrm_face face = {0};
        face.struct_size = sizeof face;
        status = hrm_result_face(result, i, &face);
        if (status != HRM_OK) {
            break;
        }
        printf("face %zu score %.4f bbox %.2f %.2f %.2f %.2f keypoints", i, face.score, face.bbox[0], face.bbox[1],
               face.bbox[2], face.bbox[3]);
        for (int k = 0; k < 10; k++) {
            printf(" %.2f", face.keypoints[k]);
        }
        printf("\n");
        for (size_t a = 0; a < face.au_count; a++) {
            printf("  %-5s %.9g%s\n", face.au_ids[a], face.probabilities[a], face.present[a] ? " present" : "");
        }
    }
    hrm_result_free(result);
    hrm_bitmap_free(bitmap);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CONFIG.toml PHOTO...\n", argv[0]);
        return 2;
    }
    if (hrm_abi_version() != HRM_ABI_VERSION) {
        fprintf(stderr, "libhrm %s has ABI %u, this program was built for ABI %u\n", hrm_version(),
                hrm_abi_version(), HRM_ABI_VERSION);
        return 1;
    }
    hrm_runtime *runtime = NULL;
    hrm_status status = hrm_runtime_new_from_file(argv[1], &runtime);
    if (status != HRM_OK) {
        report(argv[1], status);
        return 1;
    }
    hrm_detector *detector = NULL;
    status = hrm_detector_new(runtime, &detector);
    if (status != HRM_OK) {
        report("creating the detector", status);
        hrm_runtime_free(runtime);
        return 1;
    }
    int failures = 0;
    for (int i = 2; i < argc; i++) {
        status = detect_photo(detector, argv[i]);
        if (status != HRM_OK) {
            report(argv[i], status);
            failures++;
        }
    }
    hrm_detector_free(detector);
    hrm_runtime_free(runtime);
    if (failures > 0) {
        fprintf(stderr, "%d of %d photographs failed\n", failures, argc - 2);
        return 1;
    }
    return 0;
}
