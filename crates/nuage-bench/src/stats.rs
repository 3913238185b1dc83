//! Percentiles of latency samples and the figure lines the script reads.

use std::time::Duration;

/// Nearest-rank percentile `p` (0–100) of `samples` in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * ms.len() as f64).ceil() as usize;
    ms[rank.clamp(1, ms.len()) - 1]
}

/// Prints one figure: `name value unit`.
pub fn figure(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.3} {unit}");
}

/// Prints p50, p99 and max of `samples` as `{name}_p50` etc. in ms.
pub fn latency_figures(name: &str, samples: &[Duration]) {
    figure(&format!("{name}_p50"), percentile_ms(samples, 50.0), "ms");
    figure(&format!("{name}_p99"), percentile_ms(samples, 99.0), "ms");
    figure(&format!("{name}_max"), percentile_ms(samples, 100.0), "ms");
    figure(&format!("{name}_samples"), samples.len() as f64, "n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&s, 50.0), 50.0);
        assert_eq!(percentile_ms(&s, 99.0), 99.0);
        assert_eq!(percentile_ms(&s, 100.0), 100.0);
        assert_eq!(percentile_ms(&s[..1], 99.0), 1.0);
    }
}
