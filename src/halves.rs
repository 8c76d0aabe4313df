//! Work split in two fixed halves that run in parallel (`rayon::join`). The
//! split depends only on the size, never on the thread count, so the
//! results are the same bits however many threads run them. Also: a list of
//! independent tasks run largest first, each result in its task's place.

use rayon::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// `[task(0), task(1), …]`, the tasks taken in order of decreasing `costs`
/// by whichever worker is free. Nested joins would leave a core idle: the
/// worker that steals a large task's second half only gets to it after
/// finishing the small tasks it started with. Only which core runs a task
/// depends on timing; each result is what its task alone computes.
pub fn largest_first<T: Send + Sync>(costs: &[usize], task: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
    let results: Vec<OnceLock<T>> = costs.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().min(costs.len());
    (0..workers).into_par_iter().for_each(|_| {
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            // Each index is handed out once, so its cell is still empty.
            let _ = results[i].set(task(i));
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().expect("every task was handed out and ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in task order whatever the costs, and every task
    /// runs exactly once, with one worker or several.
    #[test]
    fn largest_first_runs_each_task_once_in_its_place() {
        let costs = [1, 5, 3, 5, 0, 9, 2];
        for threads in [1, 2, 3] {
            let runs: Vec<AtomicUsize> = costs.iter().map(|_| AtomicUsize::new(0)).collect();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let results = pool.install(|| {
                largest_first(&costs, |i| {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                    i * 10
                })
            });
            assert_eq!(results, vec![0, 10, 20, 30, 40, 50, 60]);
            assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
        }
        assert!(largest_first(&[], |i| i).is_empty());
    }
}
