//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`),
//! read as whole milli-units so CPU (millicores) and memory (bytes) share
//! one exact parser.

/// A parsed quantity in thousandths of its unit (so `100m` is 100 and
/// `1Ki` is 1 024 000), rounded up like the apiserver rounds requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    milli: i128,
}

impl Quantity {
    /// Parses a quantity string; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let (negative, number) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            _ => (false, number),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || whole.len() + frac.len() > 30
        {
            return None;
        }
        // The number as an integer scaled by 10^-frac.len().
        let digits: i128 = format!("{whole}{frac}").parse().ok()?;
        let (mul, pow10): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            e if e.starts_with(['e', 'E']) => (1, e[1..].parse().ok()?),
            _ => return None,
        };
        // milli = digits * mul * 10^(pow10 + 3 - frac.len()), rounded up.
        let exp = pow10 + 3 - frac.len() as i32;
        let base = digits.checked_mul(mul)?;
        let milli = if exp >= 0 {
            base.checked_mul(10i128.checked_pow(exp as u32)?)?
        } else {
            let div = 10i128.checked_pow((-exp) as u32)?;
            (base + div - 1) / div
        };
        Some(Self {
            milli: if negative { -milli } else { milli },
        })
    }

    /// In thousandths (millicores for CPU).
    pub fn milli(self) -> i128 {
        self.milli
    }

    /// In whole units, rounded up (bytes for memory).
    pub fn value(self) -> i128 {
        (self.milli + 999).div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    #[test]
    fn cpu_and_memory_forms() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").milli(), 100);
        assert_eq!(q("0.5").milli(), 500);
        assert_eq!(q("2").milli(), 2000);
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("1n").milli(), 1, "rounded up");
        assert_eq!(q("-1").milli(), -1000);
        for bad in ["", "m", "1.2.3", "12x", "1Mb", "abc"] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }
}
