//! A real `docker-registry` on 127.0.0.1 whose storage the test can see (to
//! tamper with a blob), optionally behind htpasswd Basic auth; docker config
//! files; raw HTTP status checks. All from `soci-testkit`.
#![allow(unused_imports)]

pub use soci_testkit::{Registry as StoredRegistry, docker_config, flip_byte, http_status};
