//! YuNet face detection on tract. The network runs at one input size per frame size: a fixed-size
//! model gets the frame letterboxed into its input; a free-size model gets the frame itself
//! (shrunk past `max_side`) padded to multiples of 32, as OpenCV's FaceDetectorYN runs it.

use crate::threads::Pool;
use hrm_core::config::FaceDetectorConfig;
use hrm_core::face::{decode_yunet, DetectionLimits, Face, FaceDetector, Placement, StrideOutput};
use hrm_core::{Error, ImageView, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

const STRIDES: [usize; 3] = [8, 16, 32];

fn error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend { backend: crate::NAME.into(), message: format!("YuNet: {what}: {e:#}") }
}

pub struct YunetDetector {
    model: InferenceModel,
    /// The model's own input size, if it has one.
    fixed_input: Option<(usize, usize)>,
    max_side: usize,
    limits: DetectionLimits,
    states: HashMap<(usize, usize), TypedSimpleState>,
    pool: Arc<Pool>,
}

/// A clone shares nothing mutable: it prepares its own plan for each input size it meets, so
/// clones can run on different threads.
impl Clone for YunetDetector {
    fn clone(&self) -> Self {
        YunetDetector {
            model: self.model.clone(),
            fixed_input: self.fixed_input,
            max_side: self.max_side,
            limits: self.limits.clone(),
            states: HashMap::new(),
            pool: self.pool.clone(),
        }
    }
}

/// The largest face-detector model read.
const MAX_MODEL_BYTES: u64 = 256 << 20;

impl YunetDetector {
    /// Loads a YuNet ONNX file. With `input_size`, frames are letterboxed into that input; without,
    /// the network runs at each frame's own size (up to `max_side`), as OpenCV's FaceDetectorYN
    /// does. The shapes a fixed-size export records are dropped, so any YuNet runs at any size.
    pub fn load(
        path: &Path,
        input_size: Option<(usize, usize)>,
        limits: DetectionLimits,
        max_side: usize,
        threads: usize,
    ) -> Result<YunetDetector> {
        let what = format!("loading {}", path.display());
        let onnx = tract_onnx::onnx();
        // Read here, a regular file of bounded size (YuNet is 100-300 KB), rather than mapped by
        // tract: a FIFO or /dev/zero given as the model is an error, not a hang.
        let bytes = hrm_core::files::read_regular_file(path, MAX_MODEL_BYTES)?;
        let mut proto = onnx.proto_model_for_read(&mut bytes.as_slice()).map_err(|e| error(&what, e))?;
        if let Some(graph) = proto.graph.as_mut() {
            graph.value_info.clear();
        }
        let model = onnx.model_for_proto_model(&proto).map_err(|e| error(&what, e))?;
        let pool = Pool::new(threads);
        Ok(YunetDetector { model, fixed_input: input_size, max_side, limits, states: HashMap::new(), pool })
    }

    /// The detector a configuration's `[detector]` section describes, its model at `model`.
    pub fn configured(model: &Path, config: &FaceDetectorConfig, threads: usize) -> Result<YunetDetector> {
        let letterbox = config.letterbox.map(|[w, h]| (w, h));
        Self::load(model, letterbox, config.limits(), config.max_side, threads)
    }

    /// Where a frame of this size goes in the network input.
    pub fn placement(&self, width: usize, height: usize) -> Placement {
        match self.fixed_input {
            Some((w, h)) => Placement::letterbox(width, height, w, h),
            None => Placement::native(width, height, self.max_side),
        }
    }

    fn state(&mut self, width: usize, height: usize) -> Result<&mut TypedSimpleState> {
        if !self.states.contains_key(&(width, height)) {
            let what = format!("preparing a {width}x{height} input");
            let state = self
                .model
                .clone()
                .with_input_fact(0, f32::fact([1, 3, height, width]).into())
                .and_then(|m| m.into_typed())
                .and_then(|m| m.into_decluttered())
                .and_then(|mut m| crate::pool::fuse_max_pools(&mut m).map(|_| m))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .and_then(|plan| plan.spawn())
                .map_err(|e| error(&what, e))?;
            self.states.insert((width, height), state);
        }
        Ok(self.states.get_mut(&(width, height)).expect("inserted above"))
    }
}

impl FaceDetector for YunetDetector {
    fn detect(&mut self, frame: &ImageView<'_>) -> Result<Vec<Face>> {
        let placement = self.placement(frame.width(), frame.height());
        let mut tensor =
            Tensor::zero::<f32>(&[1, 3, placement.height, placement.width]).map_err(|e| error("input", e))?;
        {
            let mut plain = tensor.try_as_plain_ram_mut().map_err(|e| error("input", e))?;
            placement.write_input(frame, plain.as_slice_mut::<f32>().map_err(|e| error("input", e))?)?;
        }
        let executor = self.pool.executor();
        let state = self.state(placement.width, placement.height)?;
        let outputs =
            crate::threads::run_in(executor, || state.run(tvec!(tensor.into()))).map_err(|e| error("running", e))?;
        if outputs.len() != 12 {
            return Err(error(
                "outputs",
                format!("expected cls, obj, bbox and kps for 3 strides, found {} outputs", outputs.len()),
            ));
        }
        let views: Vec<Vec<f32>> = outputs
            .iter()
            .map(|o| o.to_plain_array_view::<f32>().map(|v| v.iter().copied().collect()))
            .collect::<TractResult<_>>()
            .map_err(|e| error("outputs", e))?;
        let per_stride: Vec<StrideOutput> = STRIDES
            .iter()
            .enumerate()
            .map(|(i, &stride)| StrideOutput {
                stride,
                cls: &views[i],
                obj: &views[3 + i],
                bbox: &views[6 + i],
                kps: &views[9 + i],
            })
            .collect();
        for out in &per_stride {
            let cells = (placement.width / out.stride) * (placement.height / out.stride);
            if out.cls.len() != cells || out.kps.len() != cells * 10 {
                return Err(error(
                    "outputs",
                    format!("stride {} gives {} cells, the input has {cells}", out.stride, out.cls.len()),
                ));
            }
        }
        Ok(decode_yunet(&per_stride, &placement, &self.limits))
    }
}
