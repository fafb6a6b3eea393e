//! Reading blobs back out of containerd's content store.

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{DeleteContentRequest, ReadContentRequest};
use tonic::Code;

use crate::client::Containerd;
use crate::error::{CtrdError, Result};

impl Containerd {
    /// Read `size` bytes of blob `digest` starting at `offset` (`size` 0: to
    /// the end). The caller verifies what it reads.
    pub async fn read_content(&self, digest: &str, offset: u64, size: u64) -> Result<Vec<u8>> {
        let req = ReadContentRequest {
            digest: digest.to_string(),
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            size: i64::try_from(size).unwrap_or(i64::MAX),
        };
        let mut stream = ContentClient::new(self.channel())
            .read(self.request(req))
            .await
            .map_err(|s| self.rpc_error("read content", digest, &s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| self.rpc_error("read content", digest, &s))?
        {
            let expected = offset + out.len() as u64;
            if msg.offset >= 0 && msg.offset as u64 != expected {
                return Err(CtrdError::Content {
                    digest: digest.to_string(),
                    reason: format!(
                        "containerd sent bytes at offset {} instead of {expected}",
                        msg.offset
                    ),
                });
            }
            out.extend_from_slice(&msg.data);
            if size > 0 && out.len() as u64 > size {
                return Err(CtrdError::Content {
                    digest: digest.to_string(),
                    reason: format!("containerd sent more than the {size} bytes asked"),
                });
            }
        }
        Ok(out)
    }

    /// Delete a blob; `false` when the namespace did not have it.
    pub async fn delete_content(&self, digest: &str) -> Result<bool> {
        match ContentClient::new(self.channel())
            .delete(self.request(DeleteContentRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(self.rpc_error("delete content", digest, &s)),
        }
    }
}
