//! [`ModelShape`]: the few numbers of a model that size a [`Layout`](crate::Layout).

use crate::error::MemError;
use crate::layout::LayoutBuilder;

/// Bytes of one activation value in scratch: `f32`.
pub(crate) const ACTIVATION_BYTES: usize = 4;
/// Activation buffers of `hidden x context` values that scratch holds at once.
pub(crate) const ACTIVATION_BUFFERS: usize = 4;

/// A plain description of a model: enough numbers to size the three tapes of a
/// [`Layout`](crate::Layout), nothing about files or formats (loading a model is the
/// runtime's job).
///
/// The sizes are computed as the `cyb` runtime computes them, with its fixed context of
/// 4096 tokens, its 2-byte KV elements and its single sequence made parameters:
///
/// | tape | bytes |
/// |---|---|
/// | weights | `ceil(params x weight_bits / 8)` |
/// | scratch | `batch x hidden x context x 4 x 4` (four `f32` activation buffers of `hidden x context`) |
/// | history | `batch x layers x 2 x kv_heads x head_dim x context x kv_bytes` (K and V of every layer for every token of every sequence) |
///
/// A paged history (a Grid) holds cells of `tokens` tokens of one sequence:
/// `cell = layers x 2 x kv_heads x head_dim x tokens x kv_bytes` bytes, and
/// `batch x ceil(context / tokens)` cells, enough for every sequence to reach the full
/// context.
///
/// Every field must be at least 1 ([`ModelZero`](MemError::ModelZero) otherwise), and
/// every size is computed without overflow: one above `isize::MAX` bytes is
/// [`ModelOverflow`](MemError::ModelOverflow).
///
/// # Examples
///
/// Llama 2 7B in `f16`, one sequence of 4096 tokens:
///
/// ```
/// use unimem::ModelShape;
///
/// let llama = ModelShape {
///     params: 6_738_415_616,
///     weight_bits: 16,
///     hidden: 4096,
///     layers: 32,
///     kv_heads: 32,
///     head_dim: 128,
///     context: 4096,
///     kv_bytes: 2,
///     batch: 1,
/// };
/// assert_eq!(llama.weight_bytes()?, 13_476_831_232);
/// assert_eq!(llama.scratch_bytes()?, 256 << 20);
/// assert_eq!(llama.history_bytes()?, 2 << 30);
/// assert_eq!(llama.cell_bytes(16)?, 8 << 20);
/// assert_eq!(llama.cells(16)?, 256);
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// Number of weights (parameters).
    pub params: usize,
    /// Bits per weight: 16 for `f16`/`bf16`, 8, 4 for 4-bit quantizations. Bits rather than
    /// bytes so that sub-byte formats are exact; round formats with fractional bits (block
    /// scales) up.
    pub weight_bits: usize,
    /// Hidden size (model dimension).
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Key/value heads (fewer than the query heads under grouped-query attention).
    pub kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Context length: the most tokens one sequence holds.
    pub context: usize,
    /// Bytes per key/value element: 2 for `f16`, 1 for 8-bit caches.
    pub kv_bytes: usize,
    /// Sequences decoded at once, each with its own scratch and history.
    pub batch: usize,
}

impl ModelShape {
    /// Bytes of the weights: `ceil(params x weight_bits / 8)`.
    ///
    /// # Errors
    ///
    /// [`ModelZero`](MemError::ModelZero), [`ModelOverflow`](MemError::ModelOverflow).
    pub fn weight_bytes(&self) -> Result<usize, MemError> {
        self.check()?;
        // Exact: both factors are below 2^64.
        let bits = self.params as u128 * self.weight_bits as u128;
        bytes("weights", bits.div_ceil(8))
    }

    /// Bytes of scratch: `batch x hidden x context x 4 x 4`.
    ///
    /// # Errors
    ///
    /// [`ModelZero`](MemError::ModelZero), [`ModelOverflow`](MemError::ModelOverflow).
    pub fn scratch_bytes(&self) -> Result<usize, MemError> {
        self.check()?;
        product(
            "scratch",
            &[
                self.batch,
                self.hidden,
                self.context,
                ACTIVATION_BYTES,
                ACTIVATION_BUFFERS,
            ],
        )
    }

    /// Bytes of the history as one Tape: `batch x layers x 2 x kv_heads x head_dim x
    /// context x kv_bytes`.
    ///
    /// # Errors
    ///
    /// [`ModelZero`](MemError::ModelZero), [`ModelOverflow`](MemError::ModelOverflow).
    pub fn history_bytes(&self) -> Result<usize, MemError> {
        self.check()?;
        product(
            "history",
            &[
                self.batch,
                self.layers,
                2,
                self.kv_heads,
                self.head_dim,
                self.context,
                self.kv_bytes,
            ],
        )
    }

    /// Bytes of one history cell holding `tokens` tokens of one sequence, keys and values
    /// of every layer: `layers x 2 x kv_heads x head_dim x tokens x kv_bytes`.
    ///
    /// # Errors
    ///
    /// [`ModelZero`](MemError::ModelZero) (also for `tokens == 0`, as `"tokens per cell"`),
    /// [`ModelOverflow`](MemError::ModelOverflow).
    pub fn cell_bytes(&self, tokens: usize) -> Result<usize, MemError> {
        self.check_tokens(tokens)?;
        product(
            "history cell",
            &[
                self.layers,
                2,
                self.kv_heads,
                self.head_dim,
                tokens,
                self.kv_bytes,
            ],
        )
    }

    /// Cells of `tokens` tokens for every sequence to reach the full context:
    /// `batch x ceil(context / tokens)`.
    ///
    /// # Errors
    ///
    /// As [`cell_bytes`](ModelShape::cell_bytes).
    pub fn cells(&self, tokens: usize) -> Result<usize, MemError> {
        self.check_tokens(tokens)?;
        product("history", &[self.batch, self.context.div_ceil(tokens)])
    }

    /// A [`LayoutBuilder`] for this model, with a Tape history: sizes from
    /// [`weight_bytes`](ModelShape::weight_bytes),
    /// [`scratch_bytes`](ModelShape::scratch_bytes) and
    /// [`history_bytes`](ModelShape::history_bytes). Set the pin policy or names on it,
    /// then [`build`](LayoutBuilder::build).
    ///
    /// # Errors
    ///
    /// [`ModelZero`](MemError::ModelZero), [`ModelOverflow`](MemError::ModelOverflow).
    pub fn builder(&self) -> Result<LayoutBuilder, MemError> {
        Ok(LayoutBuilder::new(
            self.weight_bytes()?,
            self.scratch_bytes()?,
            self.history_bytes()?,
        ))
    }

    /// A [`LayoutBuilder`] for this model whose history is a Grid of
    /// [`cells(tokens)`](ModelShape::cells) cells of
    /// [`cell_bytes(tokens)`](ModelShape::cell_bytes) bytes each: a paged KV cache.
    ///
    /// ```
    /// use unimem::{ModelShape, Pin};
    ///
    /// let tiny = ModelShape {
    ///     params: 1 << 20,
    ///     weight_bits: 16,
    ///     hidden: 256,
    ///     layers: 4,
    ///     kv_heads: 2,
    ///     head_dim: 64,
    ///     context: 512,
    ///     kv_bytes: 2,
    ///     batch: 2,
    /// };
    /// let layout = tiny.paged_builder(16)?.pin(Pin::BestEffort).build()?;
    /// let grid = layout.history_grid().unwrap();
    /// assert_eq!(grid.total(), 2 * 512 / 16);
    /// assert_eq!(grid.cell_size(), 4 * 2 * 2 * 64 * 16 * 2);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`cell_bytes`](ModelShape::cell_bytes) and [`builder`](ModelShape::builder).
    pub fn paged_builder(&self, tokens: usize) -> Result<LayoutBuilder, MemError> {
        let cell = self.cell_bytes(tokens)?;
        let cells = self.cells(tokens)?;
        Ok(self.builder()?.history_cells(cell, cells))
    }

    /// Every field is at least 1.
    fn check(&self) -> Result<(), MemError> {
        let fields = [
            ("params", self.params),
            ("weight_bits", self.weight_bits),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("context", self.context),
            ("kv_bytes", self.kv_bytes),
            ("batch", self.batch),
        ];
        match fields.iter().find(|(_, value)| *value == 0) {
            Some(&(field, _)) => Err(MemError::ModelZero { field }),
            None => Ok(()),
        }
    }

    fn check_tokens(&self, tokens: usize) -> Result<(), MemError> {
        self.check()?;
        if tokens == 0 {
            return Err(MemError::ModelZero {
                field: "tokens per cell",
            });
        }
        Ok(())
    }
}

/// The product of `factors`, or [`ModelOverflow`](MemError::ModelOverflow) for `part`
/// when it exceeds `isize::MAX`.
fn product(part: &'static str, factors: &[usize]) -> Result<usize, MemError> {
    let exact = factors
        .iter()
        .try_fold(1u128, |acc, &f| acc.checked_mul(f as u128));
    match exact {
        Some(value) => bytes(part, value),
        // Beyond 2^128: the sum of the factors' logarithms (rounded up) is close enough.
        None => Err(MemError::ModelOverflow {
            part,
            log2: factors.iter().map(|&f| ceil_log2(f as u128)).sum(),
        }),
    }
}

/// `value` as a size, or [`ModelOverflow`](MemError::ModelOverflow) when it exceeds
/// `isize::MAX`.
fn bytes(part: &'static str, value: u128) -> Result<usize, MemError> {
    if value <= isize::MAX as u128 {
        Ok(value as usize)
    } else {
        Err(MemError::ModelOverflow {
            part,
            log2: ceil_log2(value),
        })
    }
}

/// The smallest `k` with `2^k >= value` (0 for 0 and 1); integer arithmetic only.
fn ceil_log2(value: u128) -> u32 {
    match value {
        0 | 1 => 0,
        v => 128 - (v - 1).leading_zeros(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama() -> ModelShape {
        ModelShape {
            params: 6_738_415_616,
            weight_bits: 16,
            hidden: 4096,
            layers: 32,
            kv_heads: 32,
            head_dim: 128,
            context: 4096,
            kv_bytes: 2,
            batch: 1,
        }
    }

    #[test]
    fn cyb_sizes() {
        let m = llama();
        assert_eq!(m.weight_bytes(), Ok(6_738_415_616 * 2));
        assert_eq!(m.scratch_bytes(), Ok(4096 * 4096 * 4 * 4));
        assert_eq!(m.history_bytes(), Ok(32 * 2 * 32 * 128 * 4096 * 2));
    }

    #[test]
    fn batch_multiplies_scratch_and_history() {
        let m = ModelShape {
            batch: 3,
            ..llama()
        };
        assert_eq!(m.weight_bytes(), llama().weight_bytes());
        assert_eq!(m.scratch_bytes(), Ok(3 * (256 << 20)));
        assert_eq!(m.history_bytes(), Ok(3 * (2 << 30)));
        assert_eq!(m.cells(16), Ok(3 * 256));
        assert_eq!(m.cell_bytes(16), llama().cell_bytes(16));
    }

    #[test]
    fn sub_byte_weights_round_up() {
        let m = ModelShape {
            params: 3,
            weight_bits: 4,
            ..llama()
        };
        assert_eq!(m.weight_bytes(), Ok(2));
    }

    #[test]
    fn cells_cover_the_context() {
        let m = ModelShape {
            context: 100,
            ..llama()
        };
        assert_eq!(m.cells(16), Ok(7));
        assert_eq!(m.cells(100), Ok(1));
        assert_eq!(m.cells(1000), Ok(1));
        assert_eq!(m.cell_bytes(1), Ok(32 * 2 * 32 * 128 * 2));
    }

    #[test]
    fn zeros_are_named() {
        let m = ModelShape {
            layers: 0,
            ..llama()
        };
        assert_eq!(
            m.history_bytes(),
            Err(MemError::ModelZero { field: "layers" })
        );
        assert_eq!(
            m.weight_bytes(),
            Err(MemError::ModelZero { field: "layers" })
        );
        assert_eq!(
            llama().cells(0),
            Err(MemError::ModelZero {
                field: "tokens per cell"
            })
        );
        assert!(
            ModelShape {
                batch: 0,
                ..llama()
            }
            .builder()
            .is_err()
        );
    }

    #[test]
    fn overflow_is_an_error() {
        // 32 * 2 * 32 * 128 * 2 = 2^19 bytes per token: 2^43 tokens fit, 2^44 do not.
        let fits = ModelShape {
            context: 1 << 43,
            ..llama()
        };
        assert_eq!(fits.history_bytes(), Ok(1 << 62));
        let m = ModelShape {
            context: 1 << 44,
            ..llama()
        };
        assert_eq!(
            m.history_bytes(),
            Err(MemError::ModelOverflow {
                part: "history",
                log2: 63
            })
        );
        let m = ModelShape {
            context: usize::MAX,
            ..llama()
        };
        assert_eq!(
            m.history_bytes(),
            Err(MemError::ModelOverflow {
                part: "history",
                log2: 83
            })
        );
        let m = ModelShape {
            params: usize::MAX,
            weight_bits: 16,
            ..llama()
        };
        assert_eq!(
            m.weight_bytes(),
            Err(MemError::ModelOverflow {
                part: "weights",
                log2: 65
            })
        );
        let m = ModelShape {
            batch: usize::MAX,
            ..llama()
        };
        assert_eq!(ceil_log2(1 << 70), 70);
        assert_eq!(ceil_log2((1 << 70) + 1), 71);
        assert_eq!(ceil_log2(u128::MAX), 128);
        assert_eq!(
            product("history", &[usize::MAX, usize::MAX, 1 << 20]),
            Err(MemError::ModelOverflow {
                part: "history",
                log2: 148
            })
        );
        assert!(matches!(
            m.cells(16),
            Err(MemError::ModelOverflow {
                part: "history",
                ..
            })
        ));
    }
}
