//! Progress bars for long work (indexing layers, uploads).
//!
//! Bars are drawn on stderr, and only when they help: never with `--quiet` and
//! never when stdout is not a terminal (scripts and CI logs get the plain
//! per-line output only). Lines printed through [`Progress::println`] appear
//! above the bars instead of being torn by them.

use std::fmt::Display;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress output of one command.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars are shown unless `quiet` or stdout is not a terminal.
    pub fn new(quiet: bool) -> Progress {
        Progress::with_bars(!quiet && std::io::stdout().is_terminal())
    }

    /// Bars shown (`true`) or not, regardless of the terminal.
    pub fn with_bars(enabled: bool) -> Progress {
        Progress {
            multi: enabled.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Whether bars are drawn.
    pub fn enabled(&self) -> bool {
        self.multi.is_some()
    }

    /// A bar counting `total` bytes, labelled `label` (e.g. `layer sha256:…`).
    pub fn bar(&self, label: impl Into<String>, total: u64) -> Bar {
        let Some(multi) = &self.multi else {
            return Bar { inner: None };
        };
        let pb = multi.add(ProgressBar::new(total));
        let style = ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_message(short_label(&label.into()));
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar { inner: Some(pb) }
    }

    /// Print a line on stdout (above the bars when they are drawn).
    pub fn println(&self, line: impl Display) {
        match &self.multi {
            Some(m) => m.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Run `f` (which prints) with the bars hidden.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    /// Clear the bars and print the final summary line on stderr (stdout keeps
    /// upstream's output only).
    pub fn finish_summary(&self, summary: impl Display) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
        eprintln!("{summary}");
    }
}

/// `sha256:0123456789ab…` for bar labels: enough to tell layers apart.
fn short_label(label: &str) -> String {
    match label.rsplit_once("sha256:") {
        Some((prefix, hex)) if hex.len() > 12 => format!("{prefix}sha256:{}", &hex[..12]),
        _ => label.to_string(),
    }
}

/// One bar; a no-op when bars are off.
pub struct Bar {
    inner: Option<ProgressBar>,
}

impl Bar {
    /// Count `n` more bytes.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.inner {
            pb.inc(n);
        }
    }

    /// The work is done; the bar disappears.
    pub fn finish(&self) {
        if let Some(pb) = &self.inner {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1.2 MiB`-style sizes for summaries.
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_shortened() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_label(&d), "sha256:abababababab");
        assert_eq!(
            short_label(&format!("layer {d}")),
            "layer sha256:abababababab"
        );
        assert_eq!(short_label("config"), "config");
    }

    #[test]
    fn disabled_progress_is_silent_and_cheap() {
        let p = Progress::with_bars(false);
        assert!(!p.enabled());
        let b = p.bar("x", 10);
        b.inc(5);
        b.finish();
        assert_eq!(human_bytes(1536), "1.50 KiB");
    }
}
