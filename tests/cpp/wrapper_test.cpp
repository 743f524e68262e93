// Drives include/hrm.hpp: every class, the exceptions, moves. Run by
// crates/hrm-ffi/artifact/tests/c_abi.rs under AddressSanitizer and UBSan.
//
//   wrapper_test CONFIG.toml GOOD_PACKAGE PHOTO FACES
#include <hrm.hpp>

#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

static int failures = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                    \
    } while (0)

// Runs `body`, which must throw hrm::Error with `status` and a message containing `needle`.
template <typename Body>
static void expect_error(const char *what, hrm_status status, const char *needle, Body body) {
    try {
        body();
        CHECK(!"no exception");
        std::fprintf(stderr, "  %s: no exception\n", what);
    } catch (const hrm::Error &e) {
        CHECK(e.status() == status);
        CHECK(std::strstr(e.what(), needle) != nullptr);
        std::printf("ok   %-40s -> %s: %s\n", what, hrm_status_str(e.status()), e.what());
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s CONFIG.toml GOOD_PACKAGE PHOTO FACES\n", argv[0]);
        return 2;
    }
    const std::string config = argv[1], package = argv[2], photo_path = argv[3];
    const size_t expected_faces = std::strtoul(argv[4], nullptr, 10);
    CHECK(hrm::abi_matches());
    CHECK(!hrm::version().empty());

    expect_error("missing configuration", HRM_ERROR_IO, "/nonexistent.toml",
                 [] { hrm::Runtime::from_file("/nonexistent.toml"); });
    expect_error("unknown key", HRM_ERROR_CONFIG, "frobnicate",
                 [&] { hrm::Runtime::from_string("model = \"" + package + "\"\nfrobnicate = 1\n"); });
    expect_error("missing photograph", HRM_ERROR_IO, "/nonexistent.jpg", [] { hrm::Bitmap("/nonexistent.jpg"); });

    hrm::Runtime runtime = hrm::Runtime::from_file(config);
    hrm::Detector first(runtime);
    hrm::Detector detector = std::move(first);
    hrm::Bitmap photo(photo_path);
    hrm::Result result = detector.detect(photo.image(42));
    CHECK(result.size() == expected_faces);
    CHECK(result.timestamp() == 42);
    CHECK(runtime.device() == "tract:cpu" && runtime.device(HRM_STAGE_FACE_DETECTOR) == "tract:cpu");
    const hrm::Span<const char *> ids = runtime.au_ids();
    CHECK(ids.size() == 22 && std::strcmp(ids[0], "AU1") == 0);
    size_t with_pose = 0;
    for (const hrm::Face &face : result.faces()) {
        CHECK(face.score > 0.5f && face.bbox[2] > 10.0f);
        // The configuration runs the face mesh: a face it sees has 478 landmarks and a pose; an
        // HRM package gives no blendshapes.
        CHECK(face.landmarks.size() == (face.has_pose ? 3 * 478u : 0u));
        CHECK(face.blendshapes.empty() && face.blendshape_names.empty());
        CHECK(!face.has_pose || (std::fabs(face.pose[1]) < 90.0f && face.pose_matrix[15] == 1.0f));
        with_pose += face.has_pose ? 1 : 0;
        CHECK(face.probabilities.size() == ids.size() && face.present.size() == ids.size());
        for (size_t a = 0; a < ids.size(); a++) {
            CHECK(face.au_ids[a] == ids[a]);
            CHECK(face.probabilities[a] >= 0.0f && face.probabilities[a] <= 1.0f);
        }
    }
    size_t iterated = 0;
    for (const hrm::Face &face : result) {
        CHECK(face.score == result[iterated].score);
        iterated++;
    }
    CHECK(iterated == result.size());
    CHECK(with_pose + 1 >= result.size());
    expect_error("face past the end", HRM_ERROR_INVALID_ARGUMENT, "index", [&] { (void)result[result.size()]; });

    // A frame the caller owns, as a camera would hand it: BGR rows with padding.
    const hrm_image rgb = photo.image();
    const size_t stride = rgb.width * 3 + 5;
    std::vector<uint8_t> bgr(stride * rgb.height);
    for (uint32_t y = 0; y < rgb.height; y++) {
        for (uint32_t x = 0; x < rgb.width; x++) {
            const uint8_t *p = rgb.data + y * rgb.stride + x * 3;
            uint8_t *q = bgr.data() + y * stride + x * 3;
            q[0] = p[2], q[1] = p[1], q[2] = p[0];
        }
    }
    hrm::Result from_bgr = detector.detect(hrm::image(bgr.data(), rgb.width, rgb.height, stride, HRM_PIXEL_FORMAT_BGR8));
    CHECK(from_bgr.size() == result.size());
    for (size_t i = 0; i < result.size() && i < from_bgr.size(); i++) {
        for (size_t a = 0; a < ids.size(); a++) CHECK(from_bgr[i].probabilities[a] == result[i].probabilities[a]);
    }
    expect_error("stride smaller than a row", HRM_ERROR_INVALID_ARGUMENT, "stride", [&] {
        detector.detect(hrm::image(bgr.data(), rgb.width, rgb.height, rgb.width, HRM_PIXEL_FORMAT_BGR8));
    });
    expect_error("unknown pixel format", HRM_ERROR_INVALID_ARGUMENT, "pixel_format",
                 [&] { detector.detect(hrm::image(bgr.data(), rgb.width, rgb.height, stride, 77)); });

    hrm::Result aligned = detector.detect_aligned({rgb, rgb, rgb});
    CHECK(aligned.size() == 3);
    CHECK(aligned[0].score == 1.0f && aligned[2].bbox[2] == static_cast<float>(rgb.width));
    expect_error("empty aligned batch", HRM_ERROR_INVALID_ARGUMENT, "count", [&] { detector.detect_aligned({}); });
    for (const hrm::Face &face : result) CHECK(face.track_id == -1 && std::isnan(face.atypicality));

    // A stream: the same photograph twice keeps each face's track; time may not go back.
    hrm::Stream stream(runtime);
    hrm::Result first_frame = stream.push(photo.image(1000));
    hrm::Result second_frame = stream.push(photo.image(41000));
    CHECK(first_frame.size() == expected_faces && second_frame.size() == expected_faces);
    for (size_t i = 0; i < first_frame.size() && i < second_frame.size(); i++) {
        CHECK(first_frame[i].track_id >= 0 && first_frame[i].track_id == second_frame[i].track_id);
        CHECK(std::isnan(second_frame[i].atypicality));
    }
    expect_error("a stream's time going back", HRM_ERROR_INVALID_ARGUMENT, "timestamp",
                 [&] { stream.push(photo.image(0)); });
    stream.reset();
    hrm::Result after_reset = stream.push(photo.image(0));
    for (const hrm::Face &face : after_reset) CHECK(face.track_id >= static_cast<int64_t>(expected_faces));

    if (failures > 0) {
        std::fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    std::printf("all checks passed\n");
    return 0;
}
