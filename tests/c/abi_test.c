/* Drives every function of include/hrm.h, correctly and incorrectly, and checks each status,
 * each last-error text and each result. Run by crates/hrm-ffi/artifact/tests/c_abi.rs under
 * valgrind; written from the header alone.
 *
 *   abi_test CONFIG.toml GOOD_PACKAGE BAD_HASH_PACKAGE PHOTO:FACES...
 */
#include <hrm.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            failures++;                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, "\n");                                    \
        }                                                             \
    } while (0)

static char last_error[4096];

/* Copies the last error into last_error and returns it. */
static const char *error_text(void) {
    size_t needed = 0;
    hrm_status status = hrm_last_error(last_error, sizeof last_error, &needed);
    if (status != HRM_OK) {
        snprintf(last_error, sizeof last_error, "<hrm_last_error gave %u>", status);
    }
    return last_error;
}

/* A call must give `expected`; a failure must leave a last error containing `needle`. */
static void expect(const char *what, hrm_status got, hrm_status expected, const char *needle) {
    if (got != expected) {
        CHECK(0, "%s: status %u (%s), expected %u (%s): %s", what, got, hrm_status_str(got), expected,
              hrm_status_str(expected), error_text());
        return;
    }
    if (expected != HRM_OK) {
        const char *text = error_text();
        CHECK(strlen(text) > 0, "%s: no last error", what);
        CHECK(needle == NULL || strstr(text, needle) != NULL, "%s: last error \"%s\" does not mention \"%s\"", what,
              text, needle);
        printf("ok   %-58s -> %s: %s\n", what, hrm_status_str(got), text);
    } else {
        printf("ok   %s\n", what);
    }
}

static void test_versions_and_errors(void) {
    const char *version = hrm_version();
    CHECK(version != NULL && version[0] >= '0' && version[0] <= '9', "hrm_version");
    CHECK(hrm_abi_version() == HRM_ABI_VERSION, "hrm_abi_version %u", hrm_abi_version());
    CHECK(strcmp(hrm_status_str(HRM_OK), "ok") == 0, "hrm_status_str(HRM_OK)");
    for (hrm_status s = HRM_ERROR_INVALID_ARGUMENT; s <= HRM_ERROR_PANIC; s++) {
        CHECK(strcmp(hrm_status_str(s), "unknown status") != 0, "hrm_status_str(%u)", s);
    }
    CHECK(strcmp(hrm_status_str(999), "unknown status") == 0, "hrm_status_str(999)");

    /* Before any failure on this thread the message is empty. */
    size_t needed = 0;
    char small[4] = "xyz";
    expect("hrm_last_error before any failure", hrm_last_error(small, sizeof small, &needed), HRM_OK, NULL);
    CHECK(needed == 1 && small[0] == '\0', "empty last error: needed %zu", needed);
    /* A NULL buffer with a capacity is refused, and does not replace the last error itself. */
    CHECK(hrm_last_error(NULL, 5, &needed) == HRM_ERROR_INVALID_ARGUMENT, "hrm_last_error(NULL, 5, ...)");
    CHECK(hrm_last_error(small, sizeof small, &needed) == HRM_OK && needed == 1, "last error after misuse of it");
}

static void test_last_error_buffer(void) {
    hrm_runtime *runtime = NULL;
    hrm_runtime_new_from_file("/nonexistent/hrm.toml", &runtime);
    size_t needed = 0;
    CHECK(hrm_last_error(NULL, 0, &needed) == HRM_ERROR_BUFFER_TOO_SMALL && needed > 10, "size query %zu", needed);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(hrm_last_error(small, sizeof small, &needed) == HRM_ERROR_BUFFER_TOO_SMALL, "too small buffer");
    CHECK(small[0] == 'x', "a too small buffer is left untouched");
    char *exact = malloc(needed);
    CHECK(exact != NULL && hrm_last_error(exact, needed, NULL) == HRM_OK && strlen(exact) == needed - 1,
          "exact buffer");
    CHECK(exact != NULL && strstr(exact, "/nonexistent/hrm.toml") != NULL, "message names the file: %s", exact);
    free(exact);
    printf("ok   hrm_last_error: size query, too small, exact\n");
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_runtime_misuse(const char *good_package, const char *bad_package) {
    static int sentinel_target;
    hrm_runtime *const sentinel = (hrm_runtime *)(void *)&sentinel_target;
    hrm_runtime *runtime = sentinel;
    char text[4096];

    expect("runtime from NULL path", hrm_runtime_new_from_file(NULL, &runtime), HRM_ERROR_INVALID_ARGUMENT, "path");
    expect("runtime with NULL out", hrm_runtime_new_from_file("configs/cpu.toml", NULL), HRM_ERROR_INVALID_ARGUMENT,
           "out");
    expect("runtime from a missing file", hrm_runtime_new_from_file("/nonexistent/hrm.toml", &runtime), HRM_ERROR_IO,
           "/nonexistent/hrm.toml");
    write_file("abi_test_malformed.toml", "backend = [\n");
    expect("runtime from malformed TOML", hrm_runtime_new_from_file("abi_test_malformed.toml", &runtime),
           HRM_ERROR_CONFIG, "abi_test_malformed.toml");
    remove("abi_test_malformed.toml");
    expect("runtime from NULL string", hrm_runtime_new_from_string(NULL, NULL, &runtime), HRM_ERROR_INVALID_ARGUMENT,
           "toml");
    snprintf(text, sizeof text, "model = \"%s\"\nthreds = 2\n", good_package);
    expect("runtime with an unknown key", hrm_runtime_new_from_string(text, NULL, &runtime), HRM_ERROR_CONFIG,
           "threds");
    expect("runtime with a missing mesh package",
           hrm_runtime_new_from_string("[mesh]\nmodel = \"/nonexistent/mesh\"\n", NULL, &runtime), HRM_ERROR_MODEL,
           "/nonexistent/mesh");
    snprintf(text, sizeof text, "model = \"%s\"\nbackend = \"cuda-of-my-dreams\"\n", good_package);
    expect("runtime with an unknown backend", hrm_runtime_new_from_string(text, NULL, &runtime), HRM_ERROR_CONFIG,
           "cuda-of-my-dreams");
    snprintf(text, sizeof text, "model = \"%s\"\n[thresholds]\nAU99 = 0.5\n", good_package);
    expect("runtime with a threshold for an unknown AU", hrm_runtime_new_from_string(text, NULL, &runtime),
           HRM_ERROR_CONFIG, "AU99");
    snprintf(text, sizeof text, "model = \"%s\"\n", bad_package);
    expect("runtime with a package of the wrong hash", hrm_runtime_new_from_string(text, NULL, &runtime),
           HRM_ERROR_MODEL, "sha256");
    expect("runtime with a missing package", hrm_runtime_new_from_string("model = \"/nonexistent/pkg\"\n", NULL, &runtime),
           HRM_ERROR_MODEL, "/nonexistent/pkg");
    snprintf(text, sizeof text, "model = \"%s\"\n[detector]\nmodel = \"/nonexistent/yunet.onnx\"\n", good_package);
    expect("runtime with a missing face detector", hrm_runtime_new_from_string(text, NULL, &runtime), HRM_ERROR_MODEL,
           "/nonexistent/yunet.onnx");
    snprintf(text, sizeof text, "model = \"%s\"\n[atypicality]\nmodel = \"/nonexistent/gru\"\n", good_package);
    expect("runtime with a missing atypicality package", hrm_runtime_new_from_string(text, NULL, &runtime),
           HRM_ERROR_MODEL, "/nonexistent/gru");
    expect("runtime with a bad smoothing", hrm_runtime_new_from_string("[stream]\nsmoothing = \"kalman\"\n", NULL, &runtime),
           HRM_ERROR_CONFIG, "kalman");
    CHECK(runtime == sentinel, "a failed hrm_runtime_new_* wrote its out-parameter");

    hrm_detector *detector = NULL;
    expect("detector from a NULL runtime", hrm_detector_new(NULL, &detector), HRM_ERROR_INVALID_ARGUMENT, "runtime");
    hrm_stream *stream = NULL;
    expect("stream from a NULL runtime", hrm_stream_new(NULL, &stream), HRM_ERROR_INVALID_ARGUMENT, "runtime");
    expect("reset of a NULL stream", hrm_stream_reset(NULL), HRM_ERROR_INVALID_ARGUMENT, "stream");
    CHECK(stream == NULL, "a failed hrm_stream_new wrote its out-parameter");
    const char *const *ids = NULL;
    size_t count = 0;
    expect("AU ids of a NULL runtime", hrm_runtime_au_ids(NULL, &ids, &count), HRM_ERROR_INVALID_ARGUMENT, "runtime");

    expect("runtime from a string with a NULL out", hrm_runtime_new_from_string("threads = 1\n", NULL, NULL),
           HRM_ERROR_INVALID_ARGUMENT, "out");
    expect("runtime from a path that is not UTF-8", hrm_runtime_new_from_file("\xff\xfe.toml", &runtime),
           HRM_ERROR_INVALID_ARGUMENT, "UTF-8");
    expect("runtime from a base_dir that is not UTF-8", hrm_runtime_new_from_string("threads = 1\n", "\xff", &runtime),
           HRM_ERROR_INVALID_ARGUMENT, "UTF-8");
    expect("timestamp of a NULL result", hrm_result_timestamp(NULL, NULL), HRM_ERROR_INVALID_ARGUMENT, "result");

    hrm_runtime_free(NULL);
    hrm_detector_free(NULL);
    hrm_stream_free(NULL);
    hrm_result_free(NULL);
    hrm_bitmap_free(NULL);
    printf("ok   every _free accepts NULL\n");
}

/* An image of the bitmap, checked. */
static hrm_image image_of(const hrm_bitmap *bitmap) {
    hrm_image image = {0};
    image.struct_size = sizeof image;
    expect("hrm_bitmap_image", hrm_bitmap_image(bitmap, &image), HRM_OK, NULL);
    return image;
}

static void test_frame_misuse(hrm_detector *detector, const hrm_image *good) {
    static int sentinel_target;
    hrm_result *const sentinel = (hrm_result *)(void *)&sentinel_target;
    hrm_result *result = sentinel;
    hrm_image bad;

    expect("detect with a NULL detector", hrm_detect_frame(NULL, good, &result), HRM_ERROR_INVALID_ARGUMENT,
           "detector");
    expect("detect a NULL image", hrm_detect_frame(detector, NULL, &result), HRM_ERROR_INVALID_ARGUMENT, "image");
    expect("detect with a NULL out", hrm_detect_frame(detector, good, NULL), HRM_ERROR_INVALID_ARGUMENT, "out");
    bad = *good, bad.struct_size = 0;
    expect("struct_size 0", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "struct_size");
    bad = *good, bad.struct_size = sizeof(hrm_image) - 8;
    expect("struct_size too small", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT,
           "struct_size");
    bad = *good, bad.width = 0;
    expect("width 0", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "width");
    bad = *good, bad.height = 0;
    expect("height 0", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "height");
    bad = *good, bad.width = HRM_MAX_IMAGE_SIDE + 1;
    expect("width too large", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "width");
    bad = *good, bad.width = UINT32_MAX, bad.height = UINT32_MAX;
    expect("huge width and height", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, NULL);
    bad = *good, bad.height = 2, bad.stride = SIZE_MAX;
    expect("a stride that overflows", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT,
           "overflow");
    /* Refused on its size before a byte is read: 32768x32768 is over HRM_DEFAULT_MAX_IMAGE_PIXELS. */
    bad = *good, bad.width = HRM_MAX_IMAGE_SIDE, bad.height = HRM_MAX_IMAGE_SIDE, bad.stride = HRM_MAX_IMAGE_SIDE * 3;
    expect("a frame over the pixel budget", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT,
           "max_image_pixels");
    bad = *good, bad.stride = good->width * 3 - 1;
    expect("stride smaller than a row", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT,
           "stride");
    bad = *good, bad.stride = 0;
    expect("stride 0", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "stride");
    bad = *good, bad.pixel_format = 5;
    expect("pixel format 5", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "pixel_format");
    bad = *good, bad.pixel_format = UINT32_MAX;
    expect("pixel format UINT32_MAX", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT,
           "pixel_format");
    bad = *good, bad.flags = 0x80;
    expect("unknown flags", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "flags");
    bad = *good, bad.data = NULL;
    expect("data NULL", hrm_detect_frame(detector, &bad, &result), HRM_ERROR_INVALID_ARGUMENT, "data");
    CHECK(result == sentinel, "a failed hrm_detect_frame wrote its out-parameter");

    const hrm_image *faces[2] = {good, NULL};
    expect("aligned: NULL array", hrm_detect_aligned(detector, NULL, 1, &result), HRM_ERROR_INVALID_ARGUMENT,
           "faces");
    expect("aligned: count 0", hrm_detect_aligned(detector, faces, 0, &result), HRM_ERROR_INVALID_ARGUMENT, "count");
    expect("aligned: count too large", hrm_detect_aligned(detector, faces, HRM_MAX_BATCH + 1, &result),
           HRM_ERROR_INVALID_ARGUMENT, "count");
    expect("aligned: a NULL face", hrm_detect_aligned(detector, faces, 2, &result), HRM_ERROR_INVALID_ARGUMENT,
           "faces[1]");
    CHECK(result == sentinel, "a failed hrm_detect_aligned wrote its out-parameter");
}

/* Faces of a result, with the accessor misuse checked on the way. */
static size_t face_count(const hrm_result *result) {
    size_t count = 0;
    expect("hrm_result_face_count", hrm_result_face_count(result, &count), HRM_OK, NULL);
    return count;
}

static hrm_face face_at(const hrm_result *result, size_t index) {
    hrm_face face = {0};
    face.struct_size = sizeof face;
    hrm_status status = hrm_result_face(result, index, &face);
    CHECK(status == HRM_OK, "hrm_result_face(%zu): %s", index, error_text());
    return face;
}

static void test_result_misuse(const hrm_result *result) {
    size_t count = face_count(result);
    hrm_face face = {0};
    face.struct_size = sizeof face;
    expect("face of a NULL result", hrm_result_face(NULL, 0, &face), HRM_ERROR_INVALID_ARGUMENT, "result");
    expect("face past the end", hrm_result_face(result, count, &face), HRM_ERROR_INVALID_ARGUMENT, "index");
    expect("face into NULL", hrm_result_face(result, 0, NULL), HRM_ERROR_INVALID_ARGUMENT, "face");
    face.struct_size = 4;
    expect("face with struct_size 4", hrm_result_face(result, 0, &face), HRM_ERROR_INVALID_ARGUMENT, "struct_size");
    expect("count of a NULL result", hrm_result_face_count(NULL, &count), HRM_ERROR_INVALID_ARGUMENT, "result");
    expect("count into NULL", hrm_result_face_count(result, NULL), HRM_ERROR_INVALID_ARGUMENT, "count");
    expect("timestamp into NULL", hrm_result_timestamp(result, NULL), HRM_ERROR_INVALID_ARGUMENT, "timestamp");
}

static int same_aus(const hrm_face *a, const hrm_face *b) {
    if (a->au_count != b->au_count) {
        return 0;
    }
    for (size_t i = 0; i < a->au_count; i++) {
        if (a->probabilities[i] != b->probabilities[i] || a->present[i] != b->present[i] ||
            strcmp(a->au_ids[i], b->au_ids[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Detects on one photograph in RGB, BGRA and bottom-up RGB: the same faces every time. */
static void test_photo(hrm_detector *detector, const char *path, size_t expected_faces) {
    hrm_bitmap *bitmap = NULL;
    expect(path, hrm_bitmap_load(path, &bitmap), HRM_OK, NULL);
    if (bitmap == NULL) {
        return;
    }
    hrm_image image = image_of(bitmap);
    image.timestamp = 1234567890123;
    hrm_result *result = NULL;
    expect("hrm_detect_frame", hrm_detect_frame(detector, &image, &result), HRM_OK, NULL);
    size_t count = face_count(result);
    CHECK(count == expected_faces, "%s: %zu faces, expected %zu", path, count, expected_faces);
    int64_t timestamp = 0;
    expect("hrm_result_timestamp", hrm_result_timestamp(result, &timestamp), HRM_OK, NULL);
    CHECK(timestamp == 1234567890123, "timestamp %lld", (long long)timestamp);
    test_result_misuse(result);
    for (size_t i = 0; i < count; i++) {
        hrm_face face = face_at(result, i);
        CHECK(face.track_id == -1 && isnan(face.atypicality), "a detector's face has no track or score");
    }

    /* The same pixels as BGRA with padded rows, and upside down with HRM_IMAGE_BOTTOM_UP. */
    size_t w = image.width, h = image.height, bgra_stride = w * 4 + 12;
    uint8_t *bgra = calloc(bgra_stride * h, 1);
    uint8_t *flipped = malloc(w * 3 * h);
    for (size_t y = 0; bgra != NULL && flipped != NULL && y < h; y++) {
        const uint8_t *row = image.data + y * image.stride;
        memcpy(flipped + (h - 1 - y) * w * 3, row, w * 3);
        for (size_t x = 0; x < w; x++) {
            uint8_t *p = bgra + y * bgra_stride + x * 4;
            p[0] = row[x * 3 + 2], p[1] = row[x * 3 + 1], p[2] = row[x * 3], p[3] = 255;
        }
    }
    hrm_image as_bgra = image, upside_down = image;
    as_bgra.pixel_format = HRM_PIXEL_FORMAT_BGRA8, as_bgra.stride = bgra_stride, as_bgra.data = bgra;
    upside_down.flags = HRM_IMAGE_BOTTOM_UP, upside_down.data = flipped;
    hrm_result *from_bgra = NULL, *from_flipped = NULL;
    expect("detect on BGRA with padded rows", hrm_detect_frame(detector, &as_bgra, &from_bgra), HRM_OK, NULL);
    expect("detect on bottom-up rows", hrm_detect_frame(detector, &upside_down, &from_flipped), HRM_OK, NULL);
    CHECK(face_count(from_bgra) == count && face_count(from_flipped) == count, "%s: face counts differ by layout",
          path);
    for (size_t i = 0; i < count && face_count(from_bgra) == count && face_count(from_flipped) == count; i++) {
        hrm_face rgb = face_at(result, i), b = face_at(from_bgra, i), f = face_at(from_flipped, i);
        CHECK(rgb.au_count > 0 && rgb.score > 0.5f && rgb.bbox[2] > 10.0f, "%s face %zu looks wrong", path, i);
        CHECK(same_aus(&rgb, &b) && memcmp(rgb.bbox, b.bbox, sizeof rgb.bbox) == 0, "%s face %zu: BGRA differs",
              path, i);
        CHECK(same_aus(&rgb, &f) && memcmp(rgb.keypoints, f.keypoints, sizeof rgb.keypoints) == 0,
              "%s face %zu: bottom-up differs", path, i);
        printf("ok   %s face %zu: score %.3f, %zu AUs, same in BGRA and bottom-up\n", path, i, rgb.score,
               rgb.au_count);
    }
    hrm_result_free(from_bgra);
    hrm_result_free(from_flipped);
    free(bgra);
    free(flipped);
    test_frame_misuse(detector, &image);
    hrm_result_free(result);
    hrm_bitmap_free(bitmap);
}

static void test_small_frames(hrm_detector *detector) {
    uint8_t gray[64 * 48];
    memset(gray, 128, sizeof gray);
    hrm_image image = {0};
    image.struct_size = sizeof image;
    image.pixel_format = HRM_PIXEL_FORMAT_GRAY8;
    image.width = 64, image.height = 48, image.stride = 64, image.data = gray;
    hrm_result *result = NULL;
    expect("a flat gray frame", hrm_detect_frame(detector, &image, &result), HRM_OK, NULL);
    CHECK(face_count(result) == 0, "faces in a flat gray frame");
    hrm_result_free(result);
    result = NULL;
    image.width = 1, image.height = 1, image.stride = 1;
    expect("a 1x1 frame", hrm_detect_frame(detector, &image, &result), HRM_OK, NULL);
    CHECK(face_count(result) == 0, "faces in a 1x1 frame");
    hrm_result_free(result);
}

/* A copy of a real JPEG whose frame header claims 30000x30000: refused before decoding. */
static void test_bitmap_bomb(const char *photo) {
    FILE *in = fopen(photo, "rb");
    CHECK(in != NULL, "cannot open %s", photo);
    if (in == NULL) {
        return;
    }
    static unsigned char bytes[1 << 22];
    size_t n = fread(bytes, 1, sizeof bytes, in);
    fclose(in);
    size_t at = 0;
    while (at + 9 < n && !(bytes[at] == 0xFF && (bytes[at + 1] == 0xC0 || bytes[at + 1] == 0xC2))) {
        at++;
    }
    CHECK(at + 9 < n, "no frame header in %s", photo);
    bytes[at + 5] = 30000 >> 8, bytes[at + 6] = 30000 & 0xFF, bytes[at + 7] = 30000 >> 8, bytes[at + 8] = 30000 & 0xFF;
    const char *bomb = "abi_test_bomb.jpg";
    FILE *out = fopen(bomb, "wb");
    CHECK(out != NULL && fwrite(bytes, 1, n, out) == n, "cannot write %s", bomb);
    if (out != NULL) {
        fclose(out);
    }
    hrm_bitmap *bitmap = NULL;
    expect("a decompression bomb", hrm_bitmap_load(bomb, &bitmap), HRM_ERROR_DECODE, "30000x30000");
    CHECK(bitmap == NULL, "a refused bomb wrote the out-parameter");
    remove(bomb);
    expect("bitmap from a device", hrm_bitmap_load("/dev/zero", &bitmap), HRM_ERROR_IO, "not a regular file");
}

static void test_bitmaps(const char *config_path) {
    hrm_bitmap *bitmap = NULL;
    expect("bitmap from NULL", hrm_bitmap_load(NULL, &bitmap), HRM_ERROR_INVALID_ARGUMENT, "path");
    expect("bitmap from a missing file", hrm_bitmap_load("/nonexistent.jpg", &bitmap), HRM_ERROR_IO,
           "/nonexistent.jpg");
    expect("bitmap from a TOML file", hrm_bitmap_load(config_path, &bitmap), HRM_ERROR_DECODE, "decode");
    CHECK(bitmap == NULL, "a failed hrm_bitmap_load wrote its out-parameter");
    hrm_image image = {0};
    expect("image of a NULL bitmap", hrm_bitmap_image(NULL, &image), HRM_ERROR_INVALID_ARGUMENT, "bitmap");
    expect("bitmap with a NULL out", hrm_bitmap_load(config_path, NULL), HRM_ERROR_INVALID_ARGUMENT, "out");
}

/* A runtime without [detector] or mesh: aligned faces work, raw frames use the built-in YuNet. */
static void test_aligned_only(const char *good_package, const char *photo) {
    char text[4096];
    snprintf(text, sizeof text, "model = \"%s\"\nthreads = 1\n[mesh]\nenabled = false\n", good_package);
    hrm_runtime *runtime = NULL;
    hrm_detector *detector = NULL;
    expect("runtime from a string", hrm_runtime_new_from_string(text, NULL, &runtime), HRM_OK, NULL);
    expect("detector without [detector]", hrm_detector_new(runtime, &detector), HRM_OK, NULL);
    const char *const *ids = NULL;
    size_t au_count = 0;
    expect("hrm_runtime_au_ids", hrm_runtime_au_ids(runtime, &ids, &au_count), HRM_OK, NULL);
    CHECK(au_count == 22 && strcmp(ids[0], "AU1") == 0 && strcmp(ids[21], "AU43E") == 0, "AU ids");
    expect("AU ids into NULL", hrm_runtime_au_ids(runtime, NULL, &au_count), HRM_ERROR_INVALID_ARGUMENT, "ids");
    expect("AU count into NULL", hrm_runtime_au_ids(runtime, &ids, NULL), HRM_ERROR_INVALID_ARGUMENT, "count");
    char device[32] = {0};
    size_t needed = 0;
    expect("device of the AU model", hrm_runtime_device(runtime, HRM_STAGE_AU_MODEL, device, sizeof device, &needed),
           HRM_OK, NULL);
    CHECK(strcmp(device, "tract:cpu") == 0 && needed == 10, "the AU model runs on tract");
    expect("device size only", hrm_runtime_device(runtime, HRM_STAGE_FACE_DETECTOR, NULL, 0, &needed),
           HRM_ERROR_BUFFER_TOO_SMALL, "needs 10 bytes");
    CHECK(needed == 10, "the size asked for");
    expect("device into a short buffer", hrm_runtime_device(runtime, HRM_STAGE_AU_MODEL, device, 4, NULL),
           HRM_ERROR_BUFFER_TOO_SMALL, "`cap` is 4");
    expect("device of a stage not loaded", hrm_runtime_device(runtime, HRM_STAGE_FACE_MESH, device, sizeof device, NULL),
           HRM_ERROR_INVALID_ARGUMENT, "no face mesh");
    expect("device of an unknown stage", hrm_runtime_device(runtime, 7, device, sizeof device, NULL),
           HRM_ERROR_INVALID_ARGUMENT, "stage 7");
    expect("device of a NULL runtime", hrm_runtime_device(NULL, HRM_STAGE_AU_MODEL, device, sizeof device, NULL),
           HRM_ERROR_INVALID_ARGUMENT, "runtime");
    expect("device into NULL with a capacity", hrm_runtime_device(runtime, HRM_STAGE_AU_MODEL, NULL, 8, NULL),
           HRM_ERROR_INVALID_ARGUMENT, "`buf` is NULL");
    hrm_bitmap *bitmap = NULL;
    expect("bitmap", hrm_bitmap_load(photo, &bitmap), HRM_OK, NULL);
    if (bitmap != NULL && detector != NULL) {
        hrm_image image = image_of(bitmap);
        hrm_image too_small = {0};
        too_small.struct_size = 8;
        expect("bitmap image with struct_size 8", hrm_bitmap_image(bitmap, &too_small), HRM_ERROR_INVALID_ARGUMENT,
               "struct_size");
        expect("bitmap image into NULL", hrm_bitmap_image(bitmap, NULL), HRM_ERROR_INVALID_ARGUMENT, "out");
        hrm_result *result = NULL;
        expect("raw frame with the built-in YuNet", hrm_detect_frame(detector, &image, &result), HRM_OK, NULL);
        CHECK(face_count(result) == 1, "the built-in YuNet finds the face");
        hrm_face found = face_at(result, 0);
        CHECK(found.has_pose == 0 && found.landmark_count == 0 && isnan(found.mesh_score), "no mesh, no pose");
        static const float untouched = 1.0f;
        const float *points = &untouched, *scores = &untouched;
        const char *const *names = ids;
        size_t count = 99;
        expect("landmarks without a mesh", hrm_result_face_landmarks(result, 0, &points, &count), HRM_OK, NULL);
        CHECK(points == NULL && count == 0, "a face without a mesh has no landmarks");
        expect("blendshapes of an HRM model", hrm_result_face_blendshapes(result, 0, &scores, &names, &count), HRM_OK,
               NULL);
        CHECK(scores == NULL && names == NULL && count == 0, "an HRM model gives no blendshapes");
        points = &untouched;
        count = 99;
        expect("landmarks of a face past the end", hrm_result_face_landmarks(result, 1, &points, &count),
               HRM_ERROR_INVALID_ARGUMENT, "index 1");
        expect("landmarks of NULL", hrm_result_face_landmarks(NULL, 0, &points, &count), HRM_ERROR_INVALID_ARGUMENT,
               "result");
        expect("landmarks into NULL", hrm_result_face_landmarks(result, 0, NULL, &count), HRM_ERROR_INVALID_ARGUMENT,
               "points");
        expect("blendshape names into NULL", hrm_result_face_blendshapes(result, 0, &scores, NULL, &count),
               HRM_ERROR_INVALID_ARGUMENT, "names");
        CHECK(points == &untouched && count == 99, "failed accessors wrote their out-parameters");
        hrm_result_free(result);
        result = NULL;
        const hrm_image *faces[2] = {&image, &image};
        expect("hrm_detect_aligned with 2 faces", hrm_detect_aligned(detector, faces, 2, &result), HRM_OK, NULL);
        CHECK(face_count(result) == 2, "2 aligned faces in, 2 results out");
        hrm_face a = face_at(result, 0), b = face_at(result, 1);
        CHECK(same_aus(&a, &b) && a.au_count == 22 && a.au_ids == ids, "aligned results");
        CHECK(a.score == 1.0f && a.bbox[2] == (float)image.width && a.keypoints[0] == 0.0f, "aligned face box");
        hrm_result_free(result);
    }
    hrm_bitmap_free(bitmap);
    hrm_detector_free(detector);
    hrm_runtime_free(runtime);
}

/* A stream fed one photograph as three frames: each face keeps its track id; timestamps may not
 * go back until a reset, after which the faces start new tracks. No [atypicality] model: NaN. */
static void test_stream(hrm_runtime *runtime, const char *path, size_t expected_faces) {
    hrm_stream *stream = NULL;
    hrm_bitmap *bitmap = NULL;
    expect("hrm_stream_new", hrm_stream_new(runtime, &stream), HRM_OK, NULL);
    expect("stream with a NULL out", hrm_stream_new(runtime, NULL), HRM_ERROR_INVALID_ARGUMENT, "out");
    expect(path, hrm_bitmap_load(path, &bitmap), HRM_OK, NULL);
    if (stream == NULL || bitmap == NULL) {
        hrm_stream_free(stream);
        hrm_bitmap_free(bitmap);
        return;
    }
    hrm_image image = image_of(bitmap);
    hrm_result *result = NULL;
    for (int64_t frame = 0; frame < 3; frame++) {
        image.timestamp = 1000000 + frame * 40000;
        expect("hrm_stream_push", hrm_stream_push(stream, &image, &result), HRM_OK, NULL);
        size_t count = face_count(result);
        CHECK(count == expected_faces, "stream frame %lld: %zu faces, expected %zu", (long long)frame, count,
              expected_faces);
        for (size_t i = 0; i < count; i++) {
            hrm_face face = face_at(result, i);
            CHECK(face.track_id >= 0 && face.track_id < (int64_t)expected_faces, "frame %lld face %zu: track %lld",
                  (long long)frame, i, (long long)face.track_id);
            CHECK(isnan(face.atypicality), "no [atypicality] model, yet a score %f", face.atypicality);
        }
        hrm_result_free(result);
        result = NULL;
    }
    hrm_result *sentinel = (hrm_result *)(void *)&image;
    result = sentinel;
    image.timestamp = 0;
    expect("a timestamp before the previous frame's", hrm_stream_push(stream, &image, &result),
           HRM_ERROR_INVALID_ARGUMENT, "timestamp 0 us is before the previous frame's (1080000 us)");
    CHECK(result == sentinel, "a failed hrm_stream_push wrote its out-parameter");
    expect("push to a NULL stream", hrm_stream_push(NULL, &image, &result), HRM_ERROR_INVALID_ARGUMENT, "stream");
    expect("push a NULL image", hrm_stream_push(stream, NULL, &result), HRM_ERROR_INVALID_ARGUMENT, "image");
    expect("push with a NULL out", hrm_stream_push(stream, &image, NULL), HRM_ERROR_INVALID_ARGUMENT, "out");
    expect("hrm_stream_reset", hrm_stream_reset(stream), HRM_OK, NULL);
    expect("an early timestamp after a reset", hrm_stream_push(stream, &image, &result), HRM_OK, NULL);
    for (size_t i = 0; result != sentinel && i < face_count(result); i++) {
        hrm_face face = face_at(result, i);
        CHECK(face.track_id >= (int64_t)expected_faces, "after a reset, new track ids: %lld", (long long)face.track_id);
    }
    if (result != sentinel) {
        hrm_result_free(result);
    }
    hrm_stream_free(stream);
    hrm_bitmap_free(bitmap);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s CONFIG.toml GOOD_PACKAGE BAD_HASH_PACKAGE PHOTO:FACES...\n", argv[0]);
        return 2;
    }
    test_versions_and_errors();
    test_last_error_buffer();
    test_runtime_misuse(argv[2], argv[3]);
    test_bitmaps(argv[1]);

    hrm_runtime *runtime = NULL;
    hrm_detector *detector = NULL;
    expect("runtime from the configuration file", hrm_runtime_new_from_file(argv[1], &runtime), HRM_OK, NULL);
    expect("detector", hrm_detector_new(runtime, &detector), HRM_OK, NULL);
    expect("detector with a NULL out", hrm_detector_new(runtime, NULL), HRM_ERROR_INVALID_ARGUMENT, "out");
    if (detector != NULL) {
        for (int i = 4; i < argc; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s", argv[i]);
            char *colon = strrchr(path, ':');
            CHECK(colon != NULL, "argument %s is not PHOTO:FACES", argv[i]);
            if (colon != NULL) {
                *colon = '\0';
                test_photo(detector, path, (size_t)strtoul(colon + 1, NULL, 10));
                test_stream(runtime, path, (size_t)strtoul(colon + 1, NULL, 10));
            }
        }
        test_small_frames(detector);
    }
    hrm_detector_free(detector);
    hrm_runtime_free(runtime);
    char first_photo[4096];
    snprintf(first_photo, sizeof first_photo, "%s", argv[4]);
    char *colon = strrchr(first_photo, ':');
    if (colon != NULL) {
        *colon = '\0';
    }
    test_aligned_only(argv[2], first_photo);
    test_bitmap_bomb(first_photo);

    if (failures > 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
