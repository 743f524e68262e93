//! `hrm_stream`: the frames of one video or camera, in order, with face tracks, smoothing and
//! the atypicality score (hrm-core's [`Stream`]).

use crate::handle::{give, handle, handle_mut};
use crate::image::{hrm_image, Frame};
use crate::result::{hrm_result, FaceBox};
use crate::runtime::{hrm_runtime, StaticCStr};
use crate::status::{guard, hrm_status, out_arg, Failure};
use hrm_core::stream::Stream;

/// A stream: a detector that remembers the faces of earlier frames. One thread at a time may use
/// it (it may move between threads); give each camera or video its own.
pub struct hrm_stream {
    stream: Stream,
    au_ids: &'static [StaticCStr],
    max_pixels: u64,
    /// The previous frame's timestamp, in microseconds.
    last_timestamp: Option<i64>,
}

/// Creates a stream from a runtime: its pipeline (as `hrm_detector_new` makes one), face tracks
/// (`[stream] max_missing`, `max_distance`), the `[stream] smoothing` of AU probabilities, and the
/// atypicality score when the runtime has an `[atypicality] model`.
///
/// On success `*out` owns the stream: free it with `hrm_stream_free` before the runtime. Any
/// thread, also while other threads use the runtime.
///
/// # Safety
/// `runtime` came from `hrm_runtime_new_*`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_stream_new(runtime: *const hrm_runtime, out: *mut *mut hrm_stream) -> hrm_status {
    guard("hrm_stream_new", || {
        // SAFETY: the caller guarantees a live runtime.
        let runtime = unsafe { handle(runtime, "runtime")? };
        out_arg(out, "out")?;
        let stream = hrm_stream {
            stream: runtime.core().stream().map_err(Failure::model)?,
            au_ids: runtime.au_ids,
            max_pixels: runtime.core().config().max_image_pixels,
            last_timestamp: None,
        };
        // SAFETY: the caller guarantees `out` is writable; out_arg checked it is not NULL.
        unsafe { give(out, stream) };
        Ok(())
    })
}

/// The stream's next frame. `image->timestamp` is its time in microseconds and must not be
/// earlier than the previous frame's (`HRM_ERROR_INVALID_ARGUMENT`; call `hrm_stream_reset`
/// to start over). As `hrm_detect_frame`, plus per face `track_id` and `atypicality` (a score
/// once the face's track has a window of frames with AUs (15 for HRM's regressor), NaN before and without an `[atypicality]
/// model`), and AU probabilities smoothed over the track when `[stream] smoothing` says so.
///
/// `image` is read during the call only. On success `*out` owns a new result: free it with
/// `hrm_result_free`. One thread at a time per stream.
///
/// # Safety
/// `stream` came from `hrm_stream_new`; `image` points at an `hrm_image` whose `data` holds what
/// its fields describe; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_stream_push(
    stream: *mut hrm_stream,
    image: *const hrm_image,
    out: *mut *mut hrm_result,
) -> hrm_status {
    guard("hrm_stream_push", || {
        // SAFETY: the caller guarantees a live stream used by this thread alone.
        let stream = unsafe { handle_mut(stream, "stream")? };
        // SAFETY: the caller guarantees an image whose data holds what its fields describe.
        let frame = unsafe { Frame::new(image, "image", stream.max_pixels)? };
        out_arg(out, "out")?;
        if let Some(last) = stream.last_timestamp.filter(|&last| frame.timestamp < last) {
            return Err(Failure::invalid(format!(
                "image: timestamp {} us is before the previous frame's ({last} us): a stream's frames come in \
                 order (hrm_stream_reset starts over)",
                frame.timestamp
            )));
        }
        let faces = stream.stream.push(&frame.view()?, frame.timestamp as f64 / 1e6)?;
        stream.last_timestamp = Some(frame.timestamp);
        let faces = faces.into_iter().map(|f| (FaceBox::from_result(&f), f.aus)).collect();
        let result = hrm_result::new(frame.timestamp, stream.au_ids, faces)?;
        // SAFETY: out_arg checked `out`, which the caller guarantees is writable.
        unsafe { give(out, result) };
        Ok(())
    })
}

/// Forgets every track and the previous timestamp (a cut, a new video, another camera): the next
/// frame's faces start new tracks, whose ids go on from the last one given (never reused). One
/// thread at a time per stream.
///
/// # Safety
/// `stream` came from `hrm_stream_new`.
#[no_mangle]
pub unsafe extern "C" fn hrm_stream_reset(stream: *mut hrm_stream) -> hrm_status {
    guard("hrm_stream_reset", || {
        // SAFETY: the caller guarantees a live stream used by this thread alone.
        let stream = unsafe { handle_mut(stream, "stream")? };
        stream.stream.reset();
        stream.last_timestamp = None;
        Ok(())
    })
}

/// Frees a stream; NULL is ignored. Results it gave stay valid.
///
/// # Safety
/// `stream` is NULL or came from `hrm_stream_new` and was not freed before, and no other thread
/// is using it.
#[no_mangle]
pub unsafe extern "C" fn hrm_stream_free(stream: *mut hrm_stream) {
    // SAFETY: the caller guarantees no other thread uses the stream.
    unsafe { crate::handle::free("hrm_stream_free", stream) };
}
