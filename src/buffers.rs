//! `f64` buffers kept between steps for the linearisation's arrays (four of
//! `N·S × width` per set of points). Allocated afresh they came zeroed, and
//! zeroing 7 MB per step took a third of the documented interior's
//! linearisation (0.45 against 0.31 ms). A taken buffer holds whatever its
//! last user left: every caller writes each entry before reading it.

use std::sync::{Mutex, PoisonError};

static POOL: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

/// Buffers kept at most: more than a linearisation of the deep model uses.
const KEPT: usize = 64;

/// A buffer of `len` entries with unspecified contents: one of exactly that
/// length if the pool has it, else a new one (zeroed). A longer one cut down
/// would come back short, and the next caller asking for its old length
/// would have the rest zero-filled: with one thread, where the boundary's
/// linearisation ran after the interior's and took its buffers, that was
/// 3.6 MB of zeroing per step.
pub fn take(len: usize) -> Vec<f64> {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    match pool.iter().position(|b| b.len() == len) {
        Some(i) => pool.swap_remove(i),
        None => vec![0.0; len],
    }
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

    /// A longer request gets a new buffer, not a shorter one zero-extended
    /// (which would leave it short for whoever asks for its length next).
    #[test]
    fn a_buffer_is_reused_only_at_its_own_length() {
        let mut marked = Vec::with_capacity(20_000);
        marked.resize(12_345, 7.0);
        let address = marked.as_ptr();
        give(marked);
        let longer = take(12_346);
        assert!(longer.iter().all(|&x| x == 0.0), "a new, zeroed buffer");
        assert_ne!(longer.as_ptr(), address);
        let same = take(12_345);
        assert_eq!(same.as_ptr(), address, "the given buffer, at its length");
        assert!(same.iter().all(|&x| x == 7.0), "its contents as left");
    }
}
