/* libhrm's default runtime (an empty configuration: the models built into libhrm) on the
 * photographs named on the command line. Prints, per face, its box, mesh score, head pose,
 * landmark count, the blendshapes by name and the AUs (NaN where not estimated), for
 * c_abi.rs to compare with MediaPipe's own FaceLandmarker.
 */
#include <hrm.h>

#include <math.h>
#include <stdio.h>

static int check(const char *what, hrm_status status) {
    if (status != HRM_OK) {
        char message[512] = {0};
        hrm_last_error(message, sizeof message, NULL);
        fprintf(stderr, "%s: %s (%s)\n", what, hrm_status_str(status), message);
    }
    return status == HRM_OK;
}

int main(int argc, char **argv) {
    hrm_runtime *runtime = NULL;
    hrm_detector *detector = NULL;
    if (!check("runtime", hrm_runtime_new_from_string("", NULL, &runtime)) ||
        !check("detector", hrm_detector_new(runtime, &detector))) {
        return 1;
    }
    int failed = 0;
    for (int p = 1; p < argc; p++) {
        hrm_bitmap *bitmap = NULL;
        hrm_image image = {0};
        image.struct_size = sizeof image;
        hrm_result *result = NULL;
        size_t count = 0;
        if (!check(argv[p], hrm_bitmap_load(argv[p], &bitmap)) || !check("image", hrm_bitmap_image(bitmap, &image)) ||
            !check("detect", hrm_detect_frame(detector, &image, &result)) ||
            !check("count", hrm_result_face_count(result, &count))) {
            failed = 1;
        }
        printf("photo %s faces %zu\n", argv[p], count);
        for (size_t i = 0; i < count; i++) {
            hrm_face face = {0};
            face.struct_size = sizeof face;
            const float *points = NULL, *scores = NULL;
            const char *const *names = NULL;
            size_t landmarks = 0, blendshapes = 0;
            if (!check("face", hrm_result_face(result, i, &face)) ||
                !check("landmarks", hrm_result_face_landmarks(result, i, &points, &landmarks)) ||
                !check("blendshapes", hrm_result_face_blendshapes(result, i, &scores, &names, &blendshapes))) {
                failed = 1;
                break;
            }
            if (landmarks != face.landmark_count || (landmarks > 0) != (points != NULL)) {
                fprintf(stderr, "landmark counts disagree: %zu vs %u\n", landmarks, face.landmark_count);
                failed = 1;
            }
            printf("face %zu bbox %.3f %.3f %.3f %.3f mesh %.4f has_pose %u pose %.4f %.4f %.4f landmarks %zu",
                   i, face.bbox[0], face.bbox[1], face.bbox[2], face.bbox[3], face.mesh_score, face.has_pose,
                   face.pose[0], face.pose[1], face.pose[2], landmarks);
            if (landmarks > 0) {
                printf(" first %.3f %.3f %.3f", points[0], points[1], points[2]);
            }
            printf("\n");
            for (size_t b = 0; b < blendshapes; b++) {
                printf("  shape %s %.6f\n", names[b], scores[b]);
            }
            for (size_t a = 0; a < face.au_count; a++) {
                if (isnan(face.probabilities[a])) {
                    printf("  au %s none\n", face.au_ids[a]);
                } else {
                    printf("  au %s %.6f %d\n", face.au_ids[a], face.probabilities[a], face.present[a]);
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
