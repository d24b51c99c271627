//! Shared pieces of the benchmark tools.

/// Latency summary in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl Summary {
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Self {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_of_a_known_sample() {
        let mut v: Vec<u64> = (1..=100).collect();
        let s = super::Summary::of(&mut v);
        assert_eq!((s.p50, s.p90, s.p99, s.max), (51, 90, 99, 100));
    }
}
