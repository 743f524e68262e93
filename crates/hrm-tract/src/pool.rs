//! A 2x2, stride-2 max-pool over NCHW f32, with the ReLU before it folded in. YuNet pools this way
//! four times; tract's general pooling (and its strided subsampling) spent about a quarter of a
//! 640x480 frame there, a row-pair loop spends a few percent.

use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MaxPool2x2 {
    /// Also clamp at zero: `max(relu(x))` is `relu(max(x))`, so the ReLU runs on a quarter of the data.
    relu: bool,
}

impl MaxPool2x2 {
    fn pool(&self, input: &[f32], output: &mut [f32], height: usize, width: usize) {
        let floor = if self.relu { 0.0 } else { f32::NEG_INFINITY };
        let plane_in = height * width;
        let plane_out = plane_in / 4;
        for (src, dst) in input.chunks_exact(plane_in).zip(output.chunks_exact_mut(plane_out)) {
            for (rows, out) in src.chunks_exact(2 * width).zip(dst.chunks_exact_mut(width / 2)) {
                let (top, bottom) = rows.split_at(width);
                for ((o, t), b) in out.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                    *o = t[0].max(t[1]).max(b[0].max(b[1])).max(floor);
                }
            }
        }
    }
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("relu: {}", self.relu)])
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, h, w] = input.shape() else { bail!("MaxPool2x2 expects NCHW, found {:?}", input.shape()) };
        ensure!(h % 2 == 0 && w % 2 == 0, "MaxPool2x2 expects even sizes, found {h}x{w}");
        let mut output = Tensor::zero::<f32>(&[n, c, h / 2, w / 2])?;
        let input = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let (plane_in, plane_out) = (h * w, h * w / 4);
        // Planes split across the executor's threads, as tract's own element-wise ops do.
        par_chunks_mut(output.try_as_plain_ram_mut()?.as_slice_mut()?, plane_out, n * c * plane_in, |first, out| {
            let planes = out.len() / plane_out;
            self.pool(&input[first * plane_in..][..planes * plane_in], out, h, w);
            Ok(())
        })?;
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.len() == 4 && inputs[0].datum_type == f32::datum_type());
        let half = |d: &TDim| d.clone().div_ceil(2);
        Ok(tvec!(f32::fact([shape[0].clone(), shape[1].clone(), half(&shape[2]), half(&shape[3])])))
    }

    as_op!();
}

/// Replaces each f32 NCHW 2x2, stride-2, unpadded max-pool over even sizes by [`MaxPool2x2`],
/// taking in the ReLU before it when nothing else reads that ReLU.
pub(crate) fn fuse_max_pools(model: &mut TypedModel) -> TractResult<()> {
    let pools: Vec<usize> =
        model.nodes().iter().filter(|node| is_plain_2x2_pool(model, node)).map(|node| node.id).collect();
    for id in pools {
        let mut input = model.node(id).inputs[0];
        let relu = relu_input(model, input)?;
        if let Some(before) = relu {
            input = before;
        }
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, input)?;
        let op = MaxPool2x2 { relu: relu.is_some() };
        let out = patch.wire_node(format!("{}.2x2", model.node(id).name), op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
    }
    Ok(())
}

fn is_plain_2x2_pool(model: &TypedModel, node: &TypedNode) -> bool {
    let Some(pool) = node.op_as::<MaxPool>() else { return false };
    let spec = &pool.pool_spec;
    let unpadded = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(before, after) | PaddingSpec::ExplicitOnnxPool(before, after, _) => {
            before.iter().chain(after).all(|&p| p == 0)
        }
        _ => false,
    };
    let even_f32 = model.outlet_fact(node.inputs[0]).is_ok_and(|fact| {
        fact.datum_type == f32::datum_type()
            && fact.shape.len() == 4
            && (2..4).all(|axis| fact.shape[axis].as_i64().is_some_and(|d| d % 2 == 0))
    });
    pool.with_index_outputs.is_none()
        && spec.data_format == DataFormat::NCHW
        && spec.kernel_shape.as_slice() == [2, 2]
        && spec.strides.as_deref() == Some(&[2, 2][..])
        && spec.dilations.as_ref().is_none_or(|d| d.iter().all(|&d| d == 1))
        && unpadded
        && even_f32
}

/// If `outlet` is a ReLU (ONNX's becomes `max(x, 0)`) read by nothing but the pool, its input.
fn relu_input(model: &TypedModel, outlet: OutletId) -> TractResult<Option<OutletId>> {
    let node = model.node(outlet.node);
    let is_max = node.op_as::<TypedBinOp>().is_some_and(|op| op.0.name() == "Max");
    if !is_max || node.inputs.len() != 2 || model.outlet_successors(outlet).len() != 1 {
        return Ok(None);
    }
    let zero = model
        .outlet_fact(node.inputs[1])?
        .konst
        .as_ref()
        .is_some_and(|k| k.len() == 1 && k.cast_to_scalar::<f32>().is_ok_and(|v| v == 0.0));
    let same_shape = model.outlet_fact(node.inputs[0])?.shape == model.outlet_fact(outlet)?.shape;
    Ok((zero && same_shape).then_some(node.inputs[0]))
}

#[cfg(test)]
mod tests {
    use super::MaxPool2x2;

    /// Each output is the largest of its 2x2 window, written out one window at a time.
    fn reference(input: &[f32], planes: usize, h: usize, w: usize, relu: bool) -> Vec<f32> {
        let mut out = Vec::new();
        for p in 0..planes {
            for y in (0..h).step_by(2) {
                for x in (0..w).step_by(2) {
                    let window = [(y, x), (y, x + 1), (y + 1, x), (y + 1, x + 1)];
                    let max = window.iter().map(|&(y, x)| input[(p * h + y) * w + x]).fold(f32::MIN, f32::max);
                    out.push(if relu { max.max(0.0) } else { max });
                }
            }
        }
        out
    }

    #[test]
    fn pools_each_window_and_folds_the_relu() {
        let (planes, h, w) = (3, 6, 8);
        // Mostly negative, so the ReLU matters, and no two values equal.
        let input: Vec<f32> = (0..planes * h * w).map(|i| ((i * 37 % 101) as f32 - 70.0) / 7.0).collect();
        for relu in [false, true] {
            let mut output = vec![f32::NAN; planes * h * w / 4];
            MaxPool2x2 { relu }.pool(&input, &mut output, h, w);
            assert_eq!(output, reference(&input, planes, h, w, relu), "relu: {relu}");
        }
    }
}
