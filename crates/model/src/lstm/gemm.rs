//! Safe wrapper over the `gemm` crate for row-major f32 matrices with strides.

use gemm::Parallelism;

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A dense row-major matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `dst` is row-major
/// with `dst_row_stride` between rows. Shapes and bounds are checked up front, so
/// the unsafe call below only ever sees in-bounds views.
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    lhs: View<'_>,
    rhs: View<'_>,
    threads: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul inner dimensions differ");
    assert!(
        lhs.fits() && rhs.fits(),
        "matmul operand view out of bounds"
    );
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_row_stride + n <= dst.len(),
        "matmul destination out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_row_stride..r * dst_row_stride + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every view was checked above to lie within its slice, `dst` is a
    // unique borrow that cannot alias the shared operands, and T = f32.
    // The strides step within those slices, which are never longer than
    // isize::MAX elements, so gemm's signed strides hold them exactly.
    #[allow(clippy::cast_possible_wrap)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &View, b: &View) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    out[i * b.cols + j] += a.data[i * a.row_stride + p * a.col_stride]
                        * b.data[p * b.row_stride + j * b.col_stride];
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_with_transposes_and_accumulation() {
        let a: Vec<f32> = (0..12).map(|x| x as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..20).map(|x| (x as f32).sin()).collect();
        let av = View::dense(&a, 3, 4);
        let bv = View::dense(&b, 5, 4).t();
        let mut out = vec![1.0; 15];
        matmul(&mut out, 5, false, av, bv, 1);
        let want = naive(&av, &bv);
        for (o, w) in out.iter().zip(&want) {
            assert!((o - w).abs() < 1e-5);
        }
        matmul(&mut out, 5, true, av, bv, 1);
        for (o, w) in out.iter().zip(&want) {
            assert!((o - 2.0 * w).abs() < 1e-5);
        }
    }
}
