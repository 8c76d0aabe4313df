//! Work split in two fixed halves that run in parallel (`rayon::join`). The
//! split depends only on the size, never on the thread count, so the
//! results are the same bits however many threads run them.

use std::ops::Range;

/// Where the second half of `n` items starts, rounded down to a multiple
/// of `multiple`.
pub fn split(n: usize, multiple: usize) -> usize {
    n / 2 / multiple * multiple
}

/// `f(points, their_rows)` on the two halves of the points whose rows
/// (`per_point` entries each) fill `out`.
pub fn for_each_half(
    out: &mut [f64],
    per_point: usize,
    f: impl Fn(Range<usize>, &mut [f64]) + Sync,
) {
    let n = out.len() / per_point;
    let mid = split(n, 1);
    let (first, second) = out.split_at_mut(mid * per_point);
    rayon::join(|| f(0..mid, first), || f(mid..n, second));
}
