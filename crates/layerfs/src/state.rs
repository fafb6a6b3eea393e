//! The layer state file under `/.soci-snapshotter/<layer digest>.json`.

use std::sync::Arc;

/// Name of the state directory at the root of every layer mount.
pub const STATE_DIR_NAME: &str = ".soci-snapshotter";

/// What the state file reports about a layer, produced fresh on every open/read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerState {
    /// Last error of the layer (for example a failed span fetch), if any.
    pub error: Option<String>,
    /// Layer digest (`sha256:...`).
    pub digest: String,
    /// Size of the layer blob.
    pub size: u64,
    /// Bytes of the layer blob fetched so far.
    pub fetched_size: u64,
    /// `fetched_size / size * 100`.
    pub fetched_percent: f64,
}

/// Produces the current [`LayerState`]; called on every open and read of the state file.
pub type StateFn = Arc<dyn Fn() -> LayerState + Send + Sync>;

impl LayerState {
    /// The state file content: JSON like Go's `encoding/json` writes upstream's
    /// struct (`error` omitted when empty), followed by a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = String::from("{");
        if let Some(e) = self.error.as_deref().filter(|e| !e.is_empty()) {
            out.push_str("\"error\":");
            out.push_str(&go_json_string(e));
            out.push(',');
        }
        out.push_str("\"digest\":");
        out.push_str(&go_json_string(&self.digest));
        out.push_str(&format!(
            ",\"size\":{},\"fetchedSize\":{},\"fetchedPercent\":{}}}\n",
            self.size,
            self.fetched_size,
            go_json_float(self.fetched_percent)
        ));
        out.into_bytes()
    }
}

/// A JSON string with Go's default HTML-safe escaping.
fn go_json_string(s: &str) -> String {
    let json = serde_json::Value::String(s.to_string()).to_string();
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A float64 as Go's `encoding/json` writes it: shortest digits, plain notation
/// between 1e-6 and 1e21, exponent notation (two-digit minimum) outside.
fn go_json_float(f: f64) -> String {
    if !f.is_finite() {
        // Go refuses to encode these; report 0 rather than invalid JSON.
        return "0".to_string();
    }
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{f}");
    }
    let s = format!("{f:e}");
    let (mantissa, exp) = s.split_once('e').expect("{:e} has an exponent");
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_go() {
        let s = LayerState {
            error: None,
            digest: "sha256:abc".into(),
            size: 1000,
            fetched_size: 125,
            fetched_percent: 12.5,
        };
        assert_eq!(
            String::from_utf8(s.to_json()).unwrap(),
            "{\"digest\":\"sha256:abc\",\"size\":1000,\"fetchedSize\":125,\"fetchedPercent\":12.5}\n"
        );
        let s = LayerState {
            error: Some("fetch <span 3> failed & \"retried\"".into()),
            fetched_percent: 100.0,
            ..s
        };
        let text = String::from_utf8(s.to_json()).unwrap();
        assert!(text.starts_with(
            "{\"error\":\"fetch \\u003cspan 3\\u003e failed \\u0026 \\\"retried\\\"\",\"digest\""
        ));
        assert!(text.ends_with("\"fetchedPercent\":100}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], "fetch <span 3> failed & \"retried\"");
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(go_json_float(0.0), "0");
        assert_eq!(go_json_float(100.0), "100");
        assert_eq!(go_json_float(33.333333333333336), "33.333333333333336");
        assert_eq!(go_json_float(1e-7), "1e-07");
        assert_eq!(go_json_float(0.000001), "0.000001");
        assert_eq!(go_json_float(f64::NAN), "0");
    }
}
