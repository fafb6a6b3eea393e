//! A subset of containerd's filter syntax for `List`: selectors joined by `,`
//! must all match, and a snapshot is listed if any one filter matches.
//!
//! A selector is a field path, optionally followed by `==` or `!=` and a value.
//! Fields are `name`, `parent`, `kind` and `labels.<key>`; path parts and values
//! may be double-quoted (`labels."containerd.io/gc.root"`). A bare path tests
//! that the field is present and non-empty. The regex operator `~=` is refused.

use crate::error::{Result, SnapshotError};
use crate::types::Info;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Present,
    Eq(String),
    Ne(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// Parsed filters; an empty set matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<Vec<Selector>>);

impl Filters {
    /// Parse each filter string; empty strings are ignored.
    pub fn parse(filters: &[String]) -> Result<Self> {
        let mut out = Vec::new();
        for f in filters.iter().filter(|f| !f.trim().is_empty()) {
            out.push(parse_filter(f).map_err(|reason| {
                SnapshotError::InvalidArgument(format!("filter {f:?}: {reason}"))
            })?);
        }
        Ok(Filters(out))
    }

    /// Whether `info` passes.
    pub fn matches(&self, info: &Info) -> bool {
        self.0.is_empty() || self.0.iter().any(|all| all.iter().all(|s| s.matches(info)))
    }
}

impl Selector {
    fn field<'a>(&self, info: &'a Info) -> Option<&'a str> {
        match self
            .path
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["name"] => Some(info.name.as_str()),
            // No parent is the empty string, as in containerd (whose
            // metadata store walks with `parent==""` for bottom layers).
            ["parent"] => Some(info.parent.as_deref().unwrap_or("")),
            ["kind"] => Some(info.kind.as_str()),
            ["labels", key] => info.labels.get(*key).map(String::as_str),
            ["labels", rest @ ..] if rest.len() > 1 => {
                info.labels.get(&rest.join(".")).map(String::as_str)
            }
            _ => None,
        }
    }

    fn matches(&self, info: &Info) -> bool {
        let value = self.field(info);
        match &self.op {
            Op::Present => value.is_some_and(|v| !v.is_empty()),
            Op::Eq(want) => value == Some(want.as_str()),
            Op::Ne(want) => value != Some(want.as_str()),
        }
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = self.s.get(self.i + 1).copied().ok_or("dangling escape")?;
                    out.push(match c {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                    self.i += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| "quoted string is not UTF-8".into())
    }

    /// A path part: stops at `.`, `,`, an operator or whitespace.
    fn word(&mut self, stop: &[u8]) -> Result<String, String> {
        self.skip_ws();
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let start = self.i;
        while let Some(c) = self.peek() {
            if stop.contains(&c) || c.is_ascii_whitespace() {
                break;
            }
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a name at offset {start}"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
}

fn parse_filter(f: &str) -> Result<Vec<Selector>, String> {
    let mut lx = Lexer {
        s: f.as_bytes(),
        i: 0,
    };
    let mut selectors = Vec::new();
    loop {
        let mut path = vec![lx.word(b".,=!~")?];
        while lx.peek() == Some(b'.') {
            lx.i += 1;
            path.push(lx.word(b".,=!~")?);
        }
        lx.skip_ws();
        let rest = &lx.s[lx.i..];
        let op = if rest.starts_with(b"==") || rest.starts_with(b"!=") {
            let eq = rest[0] == b'=';
            lx.i += 2;
            let value = lx.word(b",")?;
            if eq { Op::Eq(value) } else { Op::Ne(value) }
        } else if rest.starts_with(b"~=") {
            return Err("the ~= operator is not supported".into());
        } else {
            Op::Present
        };
        selectors.push(Selector { path, op });
        lx.skip_ws();
        match lx.peek() {
            None => return Ok(selectors),
            Some(b',') => lx.i += 1,
            Some(c) => return Err(format!("unexpected {:?} at offset {}", c as char, lx.i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::types::{Kind, Labels};

    fn info(name: &str, parent: Option<&str>, kind: Kind, labels: &[(&str, &str)]) -> Info {
        Info {
            name: name.into(),
            parent: parent.map(Into::into),
            kind,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Labels>(),
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
        }
    }

    fn f(s: &[&str]) -> Filters {
        Filters::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn containerd_remote_snapshot_lookup() {
        // The filter containerd's metadata store walks with after a remote
        // snapshotter answers Prepare with AlreadyExists.
        let target = "sha256:37ece565af598ac3476dade1b677956d006fdf98bb858ce39e32dfa31871da1d";
        let bottom = info(
            target,
            None,
            Kind::Committed,
            &[("containerd.io/snapshot.ref", target)],
        );
        let filter = format!(r#"labels."containerd.io/snapshot.ref"=={target},parent=="""#);
        assert!(f(&[&filter]).matches(&bottom));
        let upper = info(
            "u",
            Some("ns/1/p"),
            Kind::Committed,
            &[("containerd.io/snapshot.ref", "u")],
        );
        let filter = r#"labels."containerd.io/snapshot.ref"==u,parent=="ns/1/p""#;
        assert!(f(&[filter]).matches(&upper));
        assert!(!f(&[r#"parent=="""#]).matches(&upper));
        assert!(f(&[r#"parent!="""#]).matches(&upper));
        assert!(!f(&["parent"]).matches(&bottom));
    }

    #[test]
    fn selectors_and_or() {
        let a = info(
            "a",
            None,
            Kind::Committed,
            &[("containerd.io/gc.root", "x"), ("t", "1")],
        );
        let b = info("b", Some("a"), Kind::Active, &[]);
        assert!(f(&[]).matches(&a));
        assert!(f(&["name==a"]).matches(&a) && !f(&["name==a"]).matches(&b));
        assert!(f(&["kind==active"]).matches(&b));
        assert!(f(&["parent==a"]).matches(&b) && !f(&["parent"]).matches(&a));
        assert!(f(&[r#"labels."containerd.io/gc.root""#]).matches(&a));
        assert!(f(&["labels.t==1,kind==committed"]).matches(&a));
        assert!(!f(&["labels.t==1,kind==active"]).matches(&a));
        assert!(f(&["name==zzz", "name == b"]).matches(&b));
        assert!(f(&["name!=a"]).matches(&b));
        assert!(f(&[r#"name=="a""#]).matches(&a));
    }

    #[test]
    fn bad_filters_are_invalid_arguments() {
        for bad in ["name~=a", "name==", "==a", "name==a junk", r#"name=="a"#] {
            let e = Filters::parse(&[bad.to_string()]).unwrap_err();
            assert!(matches!(e, SnapshotError::InvalidArgument(_)), "{bad}: {e}");
        }
    }
}
