//! f32 tensors in and out of a graph: a row-major buffer with its shape, checked to agree.

use crate::error::{Error, Result};

/// The number of values a shape holds, or an error when the product overflows.
fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::InvalidInput(format!("a tensor of shape {shape:?} holds more values than memory can")))
}

fn check(shape: &[usize], len: usize) -> Result<()> {
    let count = element_count(shape)?;
    if count != len {
        return Err(Error::InvalidInput(format!("a tensor of shape {shape:?} holds {count} values, the buffer {len}")));
    }
    Ok(())
}

/// An owned tensor: what a graph gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        check(&shape, data.len())?;
        Ok(Tensor { shape, data })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    pub fn view(&self) -> TensorView<'_> {
        TensorView { shape: &self.shape, data: &self.data }
    }
}

/// A borrowed tensor: what a caller hands a graph.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl<'a> TensorView<'a> {
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Result<TensorView<'a>> {
        check(shape, data.len())?;
        Ok(TensorView { shape, data })
    }

    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    pub fn data(&self) -> &'a [f32] {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_buffer_must_agree() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        let err = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("6 values") && err.contains("buffer 5"), "{err}");
        assert!(TensorView::new(&[usize::MAX, 2], &[]).is_err());
        assert_eq!(TensorView::new(&[], &[1.0]).unwrap().data(), [1.0]);
    }
}
