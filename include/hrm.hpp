// hrm.hpp: a header-only C++17 wrapper of hrm.h. RAII handles, an exception carrying the status
// and libhrm's message, and spans over the results; no behaviour of its own.
//
//   hrm::Runtime runtime = hrm::Runtime::from_file("configs/cpu.toml");
//   hrm::Detector detector(runtime);
//   hrm::Bitmap photo("face.jpg");
//   hrm::Result result = detector.detect(photo.image());
//   for (const hrm::Face &face : result) { ... face.probabilities ... }
//
// A Face's spans point into its Result: keep the Result alive while reading them.
//
// Threads follow hrm.h: share a Runtime, give each thread its own Detector. Link as hrm.h says
// (pkg-config hrm, or CMake's hrm::hrm).
#ifndef HRM_HPP
#define HRM_HPP

#include <hrm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hrm {

/// A failed libhrm call: the status (HRM_ERROR_*) and libhrm's message for it.
class Error : public std::runtime_error {
public:
    Error(hrm_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    hrm_status status() const noexcept { return status_; }

private:
    hrm_status status_;
};

namespace detail {

/// This thread's last error from libhrm.
inline std::string last_error() {
    size_t needed = 0;
    hrm_last_error(nullptr, 0, &needed);
    std::string message(needed, '\0');
    if (needed == 0 || hrm_last_error(message.data(), message.size(), nullptr) != HRM_OK) {
        return {};
    }
    message.resize(needed - 1);
    return message;
}

/// Throws hrm::Error unless `status` is HRM_OK.
inline void check(hrm_status status) {
    if (status != HRM_OK) {
        std::string message = last_error();
        throw Error(status, message.empty() ? hrm_status_str(status) : message);
    }
}

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *handle) const noexcept { Free(handle); }
};

template <typename T, void (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

}  // namespace detail

/// A read-only view of `size()` values owned by a Result (what std::span is in C++20).
template <typename T>
class Span {
public:
    Span() = default;
    Span(const T *data, size_t size) : data_(data), size_(size) {}
    const T *begin() const noexcept { return data_; }
    const T *end() const noexcept { return data_ + size_; }
    const T *data() const noexcept { return data_; }
    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const T &operator[](size_t i) const { return data_[i]; }

private:
    const T *data_ = nullptr;
    size_t size_ = 0;
};

/// One face of a Result; the spans stay valid as long as the Result they came from.
struct Face {
    float score;
    /// x, y, width, height in frame pixels.
    std::array<float, 4> bbox;
    /// Right eye, left eye, nose tip, right and left mouth corner, as {x, y}.
    std::array<std::array<float, 2>, 5> keypoints;
    Span<const char *> au_ids;
    /// NaN for an AU the model does not estimate (the MediaPipe estimator's AD19, AU23, AD32).
    Span<float> probabilities;
    /// 1 where the AU is present.
    Span<uint8_t> present;
    /// The face mesh's presence score (NaN when the mesh did not run on this face).
    float mesh_score;
    /// Whether `pose` and `pose_matrix` hold the head pose.
    bool has_pose;
    /// Pitch, yaw, roll in degrees (R = Rz(roll) * Ry(yaw) * Rx(pitch)).
    std::array<float, 3> pose;
    /// MediaPipe's facial transformation matrix, row-major 4x4.
    std::array<float, 16> pose_matrix;
    /// x, y, z of each of the 478 mesh landmarks, flat (empty without a mesh).
    Span<float> landmarks;
    /// MediaPipe's 52 blendshape scores and their names (the MediaPipe estimator only).
    Span<float> blendshapes;
    Span<const char *> blendshape_names;
    /// The face's track in a Stream (-1 from a Detector).
    int64_t track_id;
    /// HRM's atypicality score of the track's last window (15 frames); NaN until then and without an
    /// `[atypicality] model`.
    float atypicality;
};

/// Describes a frame the caller owns; libhrm reads it during a detection call only.
inline hrm_image image(const void *data, uint32_t width, uint32_t height, size_t stride,
                       uint32_t pixel_format = HRM_PIXEL_FORMAT_RGB8, int64_t timestamp = 0, uint32_t flags = 0) {
    hrm_image image{};
    image.struct_size = sizeof image;
    image.pixel_format = pixel_format;
    image.width = width;
    image.height = height;
    image.stride = stride;
    image.data = static_cast<const uint8_t *>(data);
    image.timestamp = timestamp;
    image.flags = flags;
    return image;
}

/// The faces one detection call found; movable, not copyable.
class Result {
public:
    explicit Result(hrm_result *result) : result_(result) {
        detail::check(hrm_result_face_count(result_.get(), &size_));
    }

    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    int64_t timestamp() const {
        int64_t timestamp = 0;
        detail::check(hrm_result_timestamp(result_.get(), &timestamp));
        return timestamp;
    }

    Face operator[](size_t index) const {
        hrm_face raw{};
        raw.struct_size = sizeof raw;
        raw.track_id = -1;  // what an older libhrm, which does not know the field, leaves
        raw.atypicality = std::numeric_limits<float>::quiet_NaN();
        detail::check(hrm_result_face(result_.get(), index, &raw));
        Face face{};
        face.score = raw.score;
        for (size_t i = 0; i < 4; i++) face.bbox[i] = raw.bbox[i];
        for (size_t i = 0; i < 5; i++) face.keypoints[i] = {raw.keypoints[2 * i], raw.keypoints[2 * i + 1]};
        face.au_ids = Span<const char *>(raw.au_ids, raw.au_count);
        face.probabilities = Span<float>(raw.probabilities, raw.au_count);
        face.present = Span<uint8_t>(raw.present, raw.au_count);
        face.mesh_score = raw.mesh_score;
        face.has_pose = raw.has_pose != 0;
        for (size_t i = 0; i < 3; i++) face.pose[i] = raw.pose[i];
        for (size_t i = 0; i < 16; i++) face.pose_matrix[i] = raw.pose_matrix[i];
        face.track_id = raw.track_id;
        face.atypicality = raw.atypicality;
        const float *points = nullptr;
        size_t count = 0;
        detail::check(hrm_result_face_landmarks(result_.get(), index, &points, &count));
        face.landmarks = Span<float>(points, 3 * count);
        const float *scores = nullptr;
        const char *const *names = nullptr;
        detail::check(hrm_result_face_blendshapes(result_.get(), index, &scores, &names, &count));
        face.blendshapes = Span<float>(scores, count);
        face.blendshape_names = Span<const char *>(names, count);
        return face;
    }

    /// Iterates the faces by value: `for (const hrm::Face &face : result)`.
    class Iterator {
    public:
        Iterator(const Result *result, size_t index) : result_(result), index_(index) {}
        Face operator*() const { return (*result_)[index_]; }
        Iterator &operator++() {
            ++index_;
            return *this;
        }
        bool operator!=(const Iterator &other) const { return index_ != other.index_; }

    private:
        const Result *result_;
        size_t index_;
    };

    Iterator begin() const { return Iterator(this, 0); }
    Iterator end() const { return Iterator(this, size_); }

    /// Every face, in order (highest detection score first for frames).
    std::vector<Face> faces() const {
        std::vector<Face> all;
        all.reserve(size_);
        for (size_t i = 0; i < size_; i++) all.push_back((*this)[i]);
        return all;
    }

    const hrm_result *get() const noexcept { return result_.get(); }

private:
    detail::Handle<hrm_result, hrm_result_free> result_;
    size_t size_ = 0;
};

/// A configuration with its models loaded and verified; share one between threads.
class Runtime {
public:
    static Runtime from_file(const std::string &path) {
        hrm_runtime *runtime = nullptr;
        detail::check(hrm_runtime_new_from_file(path.c_str(), &runtime));
        return Runtime(runtime);
    }

    /// TOML text; relative paths are taken from `base_dir` (empty: the current directory).
    static Runtime from_string(const std::string &toml, const std::string &base_dir = {}) {
        hrm_runtime *runtime = nullptr;
        detail::check(hrm_runtime_new_from_string(toml.c_str(), base_dir.empty() ? nullptr : base_dir.c_str(),
                                                  &runtime));
        return Runtime(runtime);
    }

    /// The AU ids of every result, in order.
    Span<const char *> au_ids() const {
        const char *const *ids = nullptr;
        size_t count = 0;
        detail::check(hrm_runtime_au_ids(runtime_.get(), &ids, &count));
        return Span<const char *>(ids, count);
    }

    /// What runs a stage (`HRM_STAGE_*`), "BACKEND:DEVICE": "tract:cpu", "onnxruntime:cuda".
    std::string device(uint32_t stage = HRM_STAGE_AU_MODEL) const {
        size_t needed = 0;
        hrm_status status = hrm_runtime_device(runtime_.get(), stage, nullptr, 0, &needed);
        if (status != HRM_ERROR_BUFFER_TOO_SMALL) detail::check(status);
        std::string text(needed, '\0');
        detail::check(hrm_runtime_device(runtime_.get(), stage, text.data(), text.size(), &needed));
        text.resize(needed - 1);
        return text;
    }

    const hrm_runtime *get() const noexcept { return runtime_.get(); }

private:
    explicit Runtime(hrm_runtime *runtime) : runtime_(runtime) {}
    detail::Handle<hrm_runtime, hrm_runtime_free> runtime_;
};

/// A detector with its own inference state: one thread at a time. Destroy it before its Runtime.
class Detector {
public:
    explicit Detector(const Runtime &runtime) {
        hrm_detector *detector = nullptr;
        detail::check(hrm_detector_new(runtime.get(), &detector));
        detector_.reset(detector);
    }

    /// Every face in a frame, with its AUs.
    Result detect(const hrm_image &frame) {
        hrm_result *result = nullptr;
        detail::check(hrm_detect_frame(detector_.get(), &frame, &result));
        return Result(result);
    }

    /// AUs of faces that are already aligned, one result face per image, in order.
    Result detect_aligned(const std::vector<hrm_image> &faces) {
        std::vector<const hrm_image *> pointers;
        pointers.reserve(faces.size());
        for (const hrm_image &face : faces) pointers.push_back(&face);
        hrm_result *result = nullptr;
        detail::check(hrm_detect_aligned(detector_.get(), pointers.data(), pointers.size(), &result));
        return Result(result);
    }

private:
    detail::Handle<hrm_detector, hrm_detector_free> detector_;
};

/// The frames of one camera or video, in order, with face tracks and the atypicality score: one
/// thread at a time. Destroy it before its Runtime.
class Stream {
public:
    explicit Stream(const Runtime &runtime) {
        hrm_stream *stream = nullptr;
        detail::check(hrm_stream_new(runtime.get(), &stream));
        stream_.reset(stream);
    }

    /// The next frame; `frame.timestamp` (microseconds) must not go back.
    Result push(const hrm_image &frame) {
        hrm_result *result = nullptr;
        detail::check(hrm_stream_push(stream_.get(), &frame, &result));
        return Result(result);
    }

    /// Forgets every track (a cut, another camera); new tracks get new ids.
    void reset() { detail::check(hrm_stream_reset(stream_.get())); }

private:
    detail::Handle<hrm_stream, hrm_stream_free> stream_;
};

/// A photograph decoded by libhrm (RGB8).
class Bitmap {
public:
    explicit Bitmap(const std::string &path) {
        hrm_bitmap *bitmap = nullptr;
        detail::check(hrm_bitmap_load(path.c_str(), &bitmap));
        bitmap_.reset(bitmap);
    }

    /// The pixels as a frame; valid as long as the Bitmap.
    hrm_image image(int64_t timestamp = 0) const {
        hrm_image image{};
        image.struct_size = sizeof image;
        detail::check(hrm_bitmap_image(bitmap_.get(), &image));
        image.timestamp = timestamp;
        return image;
    }

private:
    detail::Handle<hrm_bitmap, hrm_bitmap_free> bitmap_;
};

/// The loaded library's version, and whether its ABI is the one this header describes.
inline std::string_view version() { return hrm_version(); }
inline bool abi_matches() { return hrm_abi_version() == HRM_ABI_VERSION; }

}  // namespace hrm

#endif  // HRM_HPP
