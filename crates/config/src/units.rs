//! Typed integer durations that keep upstream's signed TOML representation.

use std::fmt;
use std::time::Duration;

macro_rules! duration_unit {
    ($(#[$doc:meta])* $name:ident, $unit:literal, $to:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub i64);

        impl $name {
            /// The value as a [`Duration`], or `None` when it is negative.
            ///
            /// Negative values are kept as written because some keys give them
            /// a meaning (for example "never expire"); what a negative value
            /// means is documented on each key.
            pub fn duration(self) -> Option<Duration> {
                u64::try_from(self.0).ok().map($to)
            }

            /// The raw count, as written in the TOML file.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", self.0, $unit)
            }
        }
    };
}

duration_unit!(
    /// A whole number of seconds (keys named `*_sec` and a few unsuffixed ones).
    Seconds,
    "s",
    Duration::from_secs
);

duration_unit!(
    /// A whole number of milliseconds (keys named `*_msec` / `*Msec`).
    Millis,
    "ms",
    Duration::from_millis
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_reject_negative() {
        assert_eq!(Seconds(3).duration(), Some(Duration::from_secs(3)));
        assert_eq!(Millis(30).duration(), Some(Duration::from_millis(30)));
        assert_eq!(Seconds(-1).duration(), None);
        assert_eq!(Millis(0).duration(), Some(Duration::ZERO));
        assert_eq!(Seconds(5).to_string(), "5s");
        assert_eq!(Millis(5).to_string(), "5ms");
    }
}
