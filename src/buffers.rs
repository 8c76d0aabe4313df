//! `f64` buffers kept between steps for the linearisation's arrays (four of
//! `N·S × width` per set of points). Allocated afresh they came zeroed, and
//! zeroing 7 MB per step took a third of the documented interior's
//! linearisation (0.45 against 0.31 ms). A taken buffer holds whatever its
//! last user left: every caller writes each entry before reading it.

use std::sync::{Mutex, PoisonError};

static POOL: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

/// Buffers kept at most: more than a linearisation of the deep model uses.
const KEPT: usize = 64;

/// A buffer of `len` entries with unspecified contents: one of that length
/// if the pool has it, else one grown (zeros only where it grows).
pub fn take(len: usize) -> Vec<f64> {
    let found = {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        // The best fit: one of that length, else the smallest that holds it.
        let index = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| (b.len() != len, b.capacity()))
            .map(|(i, _)| i);
        index.map(|i| pool.swap_remove(i))
    };
    let mut buffer = found.unwrap_or_default();
    buffer.resize(len, 0.0);
    buffer
}

/// Returns a buffer for a later `take`.
pub fn give(buffer: Vec<f64>) {
    if buffer.capacity() == 0 {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    // Full, it forgets its oldest: a kind no longer asked for leaves.
    if pool.len() == KEPT {
        pool.remove(0);
    }
    pool.push(buffer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_with_the_length_asked_for() {
        give(vec![7.0; 5]);
        for len in [0, 3, 5, 9] {
            let b = take(len);
            assert_eq!(b.len(), len);
            give(b);
        }
    }
}
