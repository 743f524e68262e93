/* One configuration file through libhrm, optionally with a model package put in front of it:
 *
 *   backend_parity CONFIG MODEL|- aligned|frames PHOTO...
 *
 * Prints what runs each stage (hrm_runtime_device), then per photo its faces and their AUs
 * (`au ID P`, or `au ID none` where not estimated), for c_abi.rs to hold one backend's answers to
 * another's. `aligned` takes each photo as one aligned face; `frames` detects the faces first.
 */
#include <hrm.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(const char *what, hrm_status status) {
    if (status != HRM_OK) {
        char message[1024] = {0};
        hrm_last_error(message, sizeof message, NULL);
        fprintf(stderr, "%s: %s (%s)\n", what, hrm_status_str(status), message);
    }
    return status == HRM_OK;
}

/* The configuration file's text, with `model = "MODEL"` first when a model is given. */
static char *configuration(const char *path, const char *model) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    char prefix[1024] = "";
    if (strcmp(model, "-") != 0) snprintf(prefix, sizeof prefix, "model = \"%s\"\n", model);
    size_t used = strlen(prefix), cap = used + 65536;
    char *text = malloc(cap);
    if (text) {
        memcpy(text, prefix, used);
        used += fread(text + used, 1, cap - used - 1, file);
        text[used] = '\0';
    }
    fclose(file);
    return text;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s CONFIG MODEL|- aligned|frames PHOTO...\n", argv[0]);
        return 2;
    }
    int aligned = strcmp(argv[3], "aligned") == 0;
    char *text = configuration(argv[1], argv[2]);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    /* Relative paths in the configuration are taken from its folder. */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, ".");
    hrm_runtime *runtime = NULL;
    hrm_detector *detector = NULL;
    int ok = check("runtime", hrm_runtime_new_from_string(text, dir, &runtime)) &&
             check("detector", hrm_detector_new(runtime, &detector));
    free(text);
    if (!ok) return 1;
    const char *stages[] = {"au", "detector", "mesh"};
    for (uint32_t stage = HRM_STAGE_AU_MODEL; stage <= HRM_STAGE_FACE_MESH; stage++) {
        char device[128];
        if (hrm_runtime_device(runtime, stage, device, sizeof device, NULL) == HRM_OK) {
            printf("device %s %s\n", stages[stage], device);
        }
    }
    int failed = 0;
    for (int p = 4; p < argc; p++) {
        hrm_bitmap *bitmap = NULL;
        hrm_image image = {0};
        image.struct_size = sizeof image;
        const hrm_image *faces[1] = {&image};
        hrm_result *result = NULL;
        size_t count = 0;
        if (!check(argv[p], hrm_bitmap_load(argv[p], &bitmap)) || !check("image", hrm_bitmap_image(bitmap, &image)) ||
            !check("detect", aligned ? hrm_detect_aligned(detector, faces, 1, &result)
                                     : hrm_detect_frame(detector, &image, &result)) ||
            !check("count", hrm_result_face_count(result, &count))) {
            failed = 1;
        }
        printf("photo %s faces %zu\n", argv[p], count);
        for (size_t i = 0; i < count; i++) {
            hrm_face face = {0};
            face.struct_size = sizeof face;
            if (!check("face", hrm_result_face(result, i, &face))) {
                failed = 1;
                break;
            }
            for (size_t a = 0; a < face.au_count; a++) {
                if (isnan(face.probabilities[a])) {
                    printf("au %s none\n", face.au_ids[a]);
                } else {
                    printf("au %s %.9f\n", face.au_ids[a], face.probabilities[a]);
                }
            }
        }
        hrm_result_free(result);
        hrm_bitmap_free(bitmap);
    }
    hrm_detector_free(detector);
    hrm_runtime_free(runtime);
    return failed;
}
