/* The stream API: raw RGB frames of a video (as `ffmpeg -f rawvideo -pix_fmt rgb24` writes them)
 * pushed one after another into an hrm_stream with an [atypicality] model, every face printed
 * with its track, score, box and AUs, for c_abi.rs to compare with hrm-core's own stream.
 *
 *   stream ATYPICALITY_PACKAGE FRAMES.rgb WIDTH HEIGHT FPS
 */
#include <hrm.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int check(const char *what, hrm_status status) {
    if (status != HRM_OK) {
        char message[1024] = {0};
        hrm_last_error(message, sizeof message, NULL);
        fprintf(stderr, "%s: %s (%s)\n", what, hrm_status_str(status), message);
    }
    return status == HRM_OK;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s ATYPICALITY_PACKAGE FRAMES.rgb WIDTH HEIGHT FPS\n", argv[0]);
        return 2;
    }
    uint32_t width = (uint32_t)strtoul(argv[3], NULL, 10), height = (uint32_t)strtoul(argv[4], NULL, 10);
    double fps = strtod(argv[5], NULL);
    char config[4096];
    snprintf(config, sizeof config, "[atypicality]\nmodel = \"%s\"\n", argv[1]);
    FILE *frames = fopen(argv[2], "rb");
    size_t frame_bytes = (size_t)width * height * 3;
    uint8_t *pixels = malloc(frame_bytes);
    hrm_runtime *runtime = NULL;
    hrm_stream *stream = NULL;
    if (frames == NULL || pixels == NULL || !check("runtime", hrm_runtime_new_from_string(config, NULL, &runtime)) ||
        !check("stream", hrm_stream_new(runtime, &stream))) {
        return 1;
    }
    int failed = 0;
    for (int64_t n = 0; fread(pixels, 1, frame_bytes, frames) == frame_bytes; n++) {
        hrm_image image = {0};
        image.struct_size = sizeof image;
        image.pixel_format = HRM_PIXEL_FORMAT_RGB8;
        image.width = width;
        image.height = height;
        image.stride = (size_t)width * 3;
        image.data = pixels;
        image.timestamp = (int64_t)((double)n * 1e6 / fps + 0.5);
        hrm_result *result = NULL;
        size_t count = 0;
        if (!check("push", hrm_stream_push(stream, &image, &result)) ||
            !check("count", hrm_result_face_count(result, &count))) {
            failed = 1;
            break;
        }
        printf("frame %lld faces %zu\n", (long long)(n + 1), count);
        for (size_t i = 0; i < count; i++) {
            hrm_face face = {0};
            face.struct_size = sizeof face;
            if (!check("face", hrm_result_face(result, i, &face))) {
                failed = 1;
                break;
            }
            printf("face %zu track %lld atypicality %.9g bbox %.4f %.4f %.4f %.4f\n", i, (long long)face.track_id,
                   face.atypicality, face.bbox[0], face.bbox[1], face.bbox[2], face.bbox[3]);
            for (size_t a = 0; a < face.au_count; a++) {
                printf("  au %s %.9g %d\n", face.au_ids[a], face.probabilities[a], face.present[a]);
            }
        }
        hrm_result_free(result);
    }
    hrm_stream_free(stream);
    hrm_runtime_free(runtime);
    free(pixels);
    fclose(frames);
    return failed;
}
