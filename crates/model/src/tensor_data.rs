//! Zero-copy access to the f32 data of CPU tensors.

use candle_core::{CpuStorage, Result, Storage, StorageRef, Tensor};

/// Borrowed f32 data of a contiguous CPU tensor; holds the storage read lock.
pub(crate) struct F32Data<'a> {
    guard: StorageRef<'a>,
    start: usize,
    end: usize,
}

impl<'a> F32Data<'a> {
    /// Borrows `t`'s data; fails for non-contiguous, non-f32 or non-CPU tensors.
    pub fn of(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("expected a contiguous tensor")
        };
        if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
            candle_core::bail!("expected an f32 CPU tensor")
        }
        Ok(Self { guard, start, end })
    }

    /// The tensor's elements in row-major order.
    pub fn slice(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.start..self.end],
            _ => &[],
        }
    }
}
