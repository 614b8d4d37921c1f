//! An on-disk cache of judge responses keyed by (judge, request): a rerun of an evaluation
//! never sends the same request twice, and an interrupted run resumes from what it has. One
//! JSON line per response, appended as soon as it arrives; a torn last line is ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::data::jsonl::{append_jsonl, complete_rows};
use crate::error::Result;

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    response: Value,
}

pub struct ResponseCache {
    path: PathBuf,
    entries: Mutex<HashMap<String, Value>>,
}

impl ResponseCache {
    pub fn open(path: &Path) -> Result<Self> {
        let rows: Vec<Entry> = complete_rows(path)?;
        Ok(ResponseCache {
            path: path.to_path_buf(),
            entries: Mutex::new(rows.into_iter().map(|e| (e.key, e.response)).collect()),
        })
    }

    /// SHA-256 of the judge's name and the request body.
    pub fn key(judge: &str, request: &Value) -> String {
        let mut h = Sha256::new();
        h.update(judge.as_bytes());
        h.update([0]);
        h.update(request.to_string().as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.entries.lock().expect("cache lock").get(key).cloned()
    }

    pub fn put(&self, key: String, response: Value) -> Result<()> {
        let mut entries = self.entries.lock().expect("cache lock");
        append_jsonl(
            &self.path,
            &[Entry {
                key: key.clone(),
                response: response.clone(),
            }],
        )?;
        entries.insert(key, response);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
